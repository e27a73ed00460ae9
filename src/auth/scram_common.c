/* scram_common.c - SCRAM-SHA-256 secrets, key derivation and message parsing helpers. */
#include "auth/scram_int.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/base64.h"
#include "auth/random.h"
#include "auth/saslprep.h"

#define SECRET_PREFIX "SCRAM-SHA-256$"

void sl_scram_i_buf_init(sl_scram_i_buf *b, char *p, size_t cap)
{
   b->p = p;
   b->cap = cap;
   b->len = 0;
   b->ok = cap > 0;
   if (cap > 0)
      p[0] = '\0';
}

void sl_scram_i_put(sl_scram_i_buf *b, const char *s, size_t n)
{
   if (!b->ok || n >= b->cap - b->len) {
      b->ok = false;
      return;
   }
   memcpy(b->p + b->len, s, n);
   b->len += n;
   b->p[b->len] = '\0';
}

void sl_scram_i_puts(sl_scram_i_buf *b, const char *s)
{
   sl_scram_i_put(b, s, strlen(s));
}

void sl_scram_i_put_b64(sl_scram_i_buf *b, const uint8_t *data, size_t n)
{
   if (!b->ok || !sl_base64_encode(data, n, b->p + b->len, b->cap - b->len)) {
      b->ok = false;
      return;
   }
   b->len += SL_BASE64_ENC_LEN(n);
}

void sl_scram_i_put_int(sl_scram_i_buf *b, int v)
{
   char tmp[16];

   snprintf(tmp, sizeof(tmp), "%d", v);
   sl_scram_i_puts(b, tmp);
}

bool sl_scram_i_attr(const char **p, const char *end, char name, const char **val, size_t *vlen)
{
   const char *s = *p, *comma;

   if (end - s < 2 || s[0] != name || s[1] != '=')
      return false;
   s += 2;
   comma = memchr(s, ',', (size_t)(end - s));
   *val = s;
   *vlen = (size_t)((comma ? comma : end) - s);
   *p = comma ? comma + 1 : end;
   return true;
}

bool sl_scram_i_exts_ok(const char *p, const char *end)
{
   while (p < end) {
      const char *val;
      size_t vlen;
      bool alpha = (p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z');

      if (!alpha || !sl_scram_i_attr(&p, end, p[0], &val, &vlen) || vlen == 0 || (p == end && end[-1] == ','))
         return false;
   }
   return true;
}

bool sl_scram_i_nonce_ok(const char *s, size_t n)
{
   if (n == 0)
      return false;
   for (size_t i = 0; i < n; i++)
      if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
         return false;
   return true;
}

bool sl_scram_i_parse_int(const char *s, size_t n, long min, long max, long *out)
{
   long v = 0;

   if (n == 0 || max < 0)
      return false;
   for (size_t i = 0; i < n; i++) {
      if (s[i] < '0' || s[i] > '9' || v > (max - (s[i] - '0')) / 10)
         return false;
      v = v * 10 + (s[i] - '0');
   }
   if (v < min || v > max)
      return false;
   *out = v;
   return true;
}

const char *sl_scram_i_gs2_header(char cbind_flag)
{
   switch (cbind_flag) {
   case 'n': return "n,,";
   case 'y': return "y,,";
   case 'p': return "p=" SL_SCRAM_CB_TYPE ",,";
   default: return NULL;
   }
}

bool sl_scram_i_cbind_b64(char cbind_flag, const uint8_t *cb_data, size_t cb_len, char out[SL_SCRAM_I_CBIND_B64_MAX])
{
   const char *hdr = sl_scram_i_gs2_header(cbind_flag);
   uint8_t input[sizeof("p=" SL_SCRAM_CB_TYPE ",,") - 1 + SL_SCRAM_MAX_CB_DATA];
   size_t hlen;

   out[0] = '\0';
   if (hdr == NULL || (cbind_flag == 'p') != (cb_len > 0) || cb_len > SL_SCRAM_MAX_CB_DATA ||
       (cb_len > 0 && cb_data == NULL))
      return false;
   hlen = strlen(hdr);
   memcpy(input, hdr, hlen);
   if (cb_len > 0)
      memcpy(input + hlen, cb_data, cb_len);
   return sl_base64_encode(input, hlen + cb_len, out, SL_SCRAM_I_CBIND_B64_MAX);
}

/* HMAC and SHA-256 are fetched from the provider once: fetching them by name on every call (a
 * login makes several) cost more than the hashing itself. */
static EVP_MAC *g_hmac;
static EVP_MD *g_sha256;
static pthread_once_t g_fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
   g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
   g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
   pthread_once(&g_fetch_once, fetch_algorithms);
   return g_sha256;
}

bool sl_scram_i_sha256(const uint8_t *in, size_t n, uint8_t out[SL_SCRAM_KEY_LEN])
{
   unsigned int len = 0;
   const EVP_MD *md = sha256();

   return md != NULL && EVP_Digest(in, n, out, &len, md, NULL) == 1 && len == SL_SCRAM_KEY_LEN;
}

/* HMAC-SHA-256 over up to three message parts. */
static bool hmac_parts(const uint8_t *key, size_t keylen, const void *const *parts, const size_t *lens, int nparts,
                       uint8_t out[SL_SCRAM_KEY_LEN])
{
   char digest[] = "SHA256";
   OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                          OSSL_PARAM_construct_end()};
   pthread_once(&g_fetch_once, fetch_algorithms);
   EVP_MAC_CTX *ctx = g_hmac ? EVP_MAC_CTX_new(g_hmac) : NULL;
   size_t outl = 0;
   bool ok = ctx != NULL && EVP_MAC_init(ctx, key, keylen, params) == 1;

   for (int i = 0; ok && i < nparts; i++)
      ok = EVP_MAC_update(ctx, parts[i], lens[i]) == 1;
   ok = ok && EVP_MAC_final(ctx, out, &outl, SL_SCRAM_KEY_LEN) == 1 && outl == SL_SCRAM_KEY_LEN;
   EVP_MAC_CTX_free(ctx);
   return ok;
}

bool sl_scram_i_hmac(const uint8_t *key, size_t keylen, const void *msg, size_t n, uint8_t out[SL_SCRAM_KEY_LEN])
{
   const void *parts[] = {msg};
   size_t lens[] = {n};

   return hmac_parts(key, keylen, parts, lens, 1, out);
}

bool sl_scram_i_auth_hmac(const uint8_t key[SL_SCRAM_KEY_LEN], const char *cfb, size_t cfb_len, const char *sf,
                          size_t sf_len, const char *cfwp, size_t cfwp_len, uint8_t out[SL_SCRAM_KEY_LEN])
{
   const void *parts[] = {cfb, ",", sf, ",", cfwp};
   size_t lens[] = {cfb_len, 1, sf_len, 1, cfwp_len};

   return hmac_parts(key, SL_SCRAM_KEY_LEN, parts, lens, 5, out);
}

bool sl_scram_i_password_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                              uint8_t client_key[SL_SCRAM_KEY_LEN], uint8_t server_key[SL_SCRAM_KEY_LEN])
{
   size_t plen = strlen(password);
   char *prep = malloc(plen + 1);
   uint8_t salted[SL_SCRAM_KEY_LEN];
   bool ok;

   if (prep == NULL || iterations < 1 || salt_len > INT_MAX || plen > INT_MAX) {
      free(prep);
      return false;
   }
   ok = sl_saslprep(password, prep, plen + 1) &&
        PKCS5_PBKDF2_HMAC(prep, (int)strlen(prep), salt, (int)salt_len, iterations, sha256(), SL_SCRAM_KEY_LEN,
                          salted) == 1 &&
        sl_scram_i_hmac(salted, sizeof(salted), "Client Key", 10, client_key) &&
        sl_scram_i_hmac(salted, sizeof(salted), "Server Key", 10, server_key);
   OPENSSL_cleanse(prep, plen + 1);
   OPENSSL_cleanse(salted, sizeof(salted));
   free(prep);
   return ok;
}

/* Decode base64 text into exactly want bytes (want == 0: any length from 1 to cap). */
static bool b64_field(const char *s, size_t n, uint8_t *out, size_t cap, size_t want, size_t *got)
{
   size_t len;

   if (!sl_base64_decode(s, n, out, cap, &len) || len == 0 || (want != 0 && len != want))
      return false;
   if (got)
      *got = len;
   return true;
}

bool sl_scram_parse_secret(const char *s, sl_scram_secret *out)
{
   const char *p, *colon, *dollar, *colon2, *end;
   long iter;
   sl_scram_secret sec;

   if (s == NULL || strncmp(s, SECRET_PREFIX, strlen(SECRET_PREFIX)) != 0)
      return false;
   p = s + strlen(SECRET_PREFIX);
   end = p + strlen(p);
   colon = strchr(p, ':');
   dollar = colon ? strchr(colon, '$') : NULL;
   colon2 = dollar ? strchr(dollar, ':') : NULL;
   if (colon2 == NULL || strchr(colon2 + 1, ':') || strchr(colon2 + 1, '$'))
      return false;
   memset(&sec, 0, sizeof(sec));
   if (!sl_scram_i_parse_int(p, (size_t)(colon - p), 1, INT_MAX, &iter) ||
       !b64_field(colon + 1, (size_t)(dollar - colon - 1), sec.salt, sizeof(sec.salt), 0, &sec.salt_len) ||
       !b64_field(dollar + 1, (size_t)(colon2 - dollar - 1), sec.stored_key, SL_SCRAM_KEY_LEN, SL_SCRAM_KEY_LEN,
                  NULL) ||
       !b64_field(colon2 + 1, (size_t)(end - colon2 - 1), sec.server_key, SL_SCRAM_KEY_LEN, SL_SCRAM_KEY_LEN, NULL))
      return false;
   sec.iterations = (int)iter;
   if (out)
      *out = sec;
   OPENSSL_cleanse(&sec, sizeof(sec));
   return true;
}

bool sl_scram_is_secret(const char *s)
{
   return sl_scram_parse_secret(s, NULL);
}

bool sl_scram_secret_format(const sl_scram_secret *secret, char *out, size_t outlen)
{
   sl_scram_i_buf b;

   sl_scram_i_buf_init(&b, out, outlen);
   if (secret->iterations < 1 || secret->salt_len == 0 || secret->salt_len > SL_SCRAM_MAX_SALT)
      b.ok = false;
   sl_scram_i_puts(&b, SECRET_PREFIX);
   sl_scram_i_put_int(&b, secret->iterations);
   sl_scram_i_puts(&b, ":");
   sl_scram_i_put_b64(&b, secret->salt, secret->salt_len);
   sl_scram_i_puts(&b, "$");
   sl_scram_i_put_b64(&b, secret->stored_key, SL_SCRAM_KEY_LEN);
   sl_scram_i_puts(&b, ":");
   sl_scram_i_put_b64(&b, secret->server_key, SL_SCRAM_KEY_LEN);
   if (!b.ok && outlen > 0)
      out[0] = '\0';
   return b.ok;
}

bool sl_scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                                   sl_scram_secret *out)
{
   sl_scram_secret sec;
   uint8_t client_key[SL_SCRAM_KEY_LEN];
   bool ok;

   memset(&sec, 0, sizeof(sec));
   if (salt == NULL) {
      salt_len = SL_SCRAM_DEFAULT_SALT_LEN;
      if (!sl_random_bytes(sec.salt, salt_len))
         return false;
   } else if (salt_len == 0 || salt_len > SL_SCRAM_MAX_SALT) {
      return false;
   } else {
      memcpy(sec.salt, salt, salt_len);
   }
   if (password == NULL || iterations < 1)
      return false;
   sec.salt_len = salt_len;
   sec.iterations = iterations;
   ok = sl_scram_i_password_keys(password, sec.salt, salt_len, iterations, client_key, sec.server_key) &&
        sl_scram_i_sha256(client_key, sizeof(client_key), sec.stored_key);
   if (ok)
      *out = sec;
   OPENSSL_cleanse(client_key, sizeof(client_key));
   OPENSSL_cleanse(&sec, sizeof(sec));
   return ok;
}
