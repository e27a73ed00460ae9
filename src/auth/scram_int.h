/* scram_int.h - helpers shared by the SCRAM files (not part of the public API). */
#ifndef SL_AUTH_SCRAM_INT_H
#define SL_AUTH_SCRAM_INT_H

#include "auth/scram.h"

/* Growing-free output builder over a caller buffer; ok turns false on overflow and stays false. */
typedef struct sl_scram_i_buf {
   char *p;
   size_t cap, len;
   bool ok;
} sl_scram_i_buf;

void sl_scram_i_buf_init(sl_scram_i_buf *b, char *p, size_t cap);
void sl_scram_i_put(sl_scram_i_buf *b, const char *s, size_t n);
void sl_scram_i_puts(sl_scram_i_buf *b, const char *s);
void sl_scram_i_put_b64(sl_scram_i_buf *b, const uint8_t *data, size_t n);
void sl_scram_i_put_int(sl_scram_i_buf *b, int v);

/* Read "<name>=<value>" at *p (value up to the next ',' or end) and step past a following ','. */
bool sl_scram_i_attr(const char **p, const char *end, char name, const char **val, size_t *vlen);
/* [p, end) is empty or RFC 5802 extensions: ALPHA "=" 1*value-char, comma-separated, no trailing comma. */
bool sl_scram_i_exts_ok(const char *p, const char *end);
/* RFC 5802 nonce: one or more printable ASCII characters other than ','. */
bool sl_scram_i_nonce_ok(const char *s, size_t n);
/* Decimal integer in [min, max], digits only. */
bool sl_scram_i_parse_int(const char *s, size_t n, long min, long max, long *out);

bool sl_scram_i_sha256(const uint8_t *in, size_t n, uint8_t out[SL_SCRAM_KEY_LEN]);
bool sl_scram_i_hmac(const uint8_t *key, size_t keylen, const void *msg, size_t n, uint8_t out[SL_SCRAM_KEY_LEN]);
/* HMAC(key, AuthMessage) with AuthMessage = cfb "," sf "," cfwp. */
bool sl_scram_i_auth_hmac(const uint8_t key[SL_SCRAM_KEY_LEN], const char *cfb, size_t cfb_len, const char *sf,
                          size_t sf_len, const char *cfwp, size_t cfwp_len, uint8_t out[SL_SCRAM_KEY_LEN]);
/* The gs2 header for a channel binding flag: "n,,", "y,," or "p=tls-server-end-point,,". */
const char *sl_scram_i_gs2_header(char cbind_flag);
/* The c= value of client-final: base64 of the gs2 header, followed by cb_data for flag 'p'. out holds
 * SL_SCRAM_I_CBIND_B64_MAX bytes; false on a bad flag or cb_len (1..SL_SCRAM_MAX_CB_DATA for 'p', else 0). */
#define SL_SCRAM_I_CBIND_B64_MAX (4 * ((sizeof("p=" SL_SCRAM_CB_TYPE ",,") - 1 + SL_SCRAM_MAX_CB_DATA + 2) / 3) + 1)
bool sl_scram_i_cbind_b64(char cbind_flag, const uint8_t *cb_data, size_t cb_len, char out[SL_SCRAM_I_CBIND_B64_MAX]);
/* SaltedPassword from SASLprep(password), then ClientKey and ServerKey. */
bool sl_scram_i_password_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                              uint8_t client_key[SL_SCRAM_KEY_LEN], uint8_t server_key[SL_SCRAM_KEY_LEN]);

#endif
