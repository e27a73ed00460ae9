/* scram_client.c - SCRAM-SHA-256(-PLUS) client side: logging in to a PostgreSQL server (password or
 * pass-through), with or without channel binding. */
#include "auth/scram_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/base64.h"
#include "auth/random.h"

#define CLIENT_NONCE_BYTES 24

static bool fail(const char **errmsg, const char *why)
{
   if (errmsg)
      *errmsg = why;
   return false;
}

void sl_scram_client_init(sl_scram_client *st, const char *password, const uint8_t *client_key,
                          const uint8_t *server_key)
{
   memset(st, 0, sizeof(*st));
   if (password != NULL) {
      size_t n = strlen(password);

      if (n >= sizeof(st->password)) {
         st->state = -1;
         return;
      }
      memcpy(st->password, password, n + 1);
   } else if (client_key != NULL && server_key != NULL) {
      st->passthrough = true;
      memcpy(st->client_key, client_key, SL_SCRAM_KEY_LEN);
      memcpy(st->server_key, server_key, SL_SCRAM_KEY_LEN);
   } else {
      st->state = -1;
   }
}

bool sl_scram_client_set_nonce(sl_scram_client *st, const char *nonce, const char *user)
{
   size_t n = strlen(nonce);

   if (st->state != 0 || n >= sizeof(st->nonce) || !sl_scram_i_nonce_ok(nonce, n) ||
       (user != NULL && (strlen(user) >= sizeof(st->user) || strpbrk(user, ",=") != NULL)))
      return false;
   memcpy(st->nonce, nonce, n + 1);
   if (user != NULL)
      memcpy(st->user, user, strlen(user) + 1);
   return true;
}

bool sl_scram_client_set_channel_binding(sl_scram_client *st, sl_scram_cb_mode mode, const uint8_t *cb_data,
                                         size_t cb_len)
{
   bool bound = mode == SL_SCRAM_CB_BOUND;
   bool ok = mode == SL_SCRAM_CB_NONE || mode == SL_SCRAM_CB_CLIENT_ONLY || bound;

   if (st->state != 0)
      return false;
   if (!ok || (bound && (cb_data == NULL || cb_len == 0 || cb_len > SL_SCRAM_MAX_CB_DATA)) ||
       (!bound && (cb_data != NULL || cb_len != 0))) {
      st->state = -1; /* fail closed: a caller that ignores this cannot log in unbound by mistake */
      return false;
   }
   st->cb_mode = mode;
   memset(st->cb_data, 0, sizeof(st->cb_data));
   if (bound)
      memcpy(st->cb_data, cb_data, cb_len);
   st->cb_len = bound ? cb_len : 0;
   return true;
}

const char *sl_scram_client_mechanism(const sl_scram_client *st)
{
   return st->cb_mode == SL_SCRAM_CB_BOUND ? SL_SCRAM_MECH_PLUS : SL_SCRAM_MECH;
}

static char cbind_flag(const sl_scram_client *st)
{
   return st->cb_mode == SL_SCRAM_CB_BOUND ? 'p' : st->cb_mode == SL_SCRAM_CB_CLIENT_ONLY ? 'y' : 'n';
}

bool sl_scram_client_first(sl_scram_client *st, char *out, size_t outlen)
{
   sl_scram_i_buf b;
   const char *hdr = sl_scram_i_gs2_header(cbind_flag(st));
   size_t hlen = strlen(hdr);

   if (st->state != 0)
      return false;
   if (st->nonce[0] == '\0') {
      uint8_t raw[CLIENT_NONCE_BYTES];

      if (!sl_random_bytes(raw, sizeof(raw)))
         return false;
      sl_base64_encode(raw, sizeof(raw), st->nonce, sizeof(st->nonce));
   }
   sl_scram_i_buf_init(&b, st->client_first_bare, sizeof(st->client_first_bare));
   sl_scram_i_puts(&b, "n=");
   sl_scram_i_puts(&b, st->user);
   sl_scram_i_puts(&b, ",r=");
   sl_scram_i_puts(&b, st->nonce);
   if (!b.ok || b.len + hlen >= outlen)
      return false;
   st->client_first_bare_len = b.len;
   memcpy(out, hdr, hlen);
   memcpy(out + hlen, st->client_first_bare, b.len + 1);
   st->state = 1;
   return true;
}

/* server-first: r= (extending our nonce), s=, i= (1..SL_SCRAM_MAX_ITERATIONS), allowed extensions. */
static bool parse_server_first(sl_scram_client *st, const char *server_first, size_t len, const char **nonce,
                               size_t *nonce_len, uint8_t *salt, size_t salt_cap, size_t *salt_len, long *iter,
                               const char **errmsg)
{
   const char *p = server_first, *end = server_first + len, *salt_b64, *iter_s;
   size_t salt_b64_len, iter_len, ours = strlen(st->nonce);

   if (len == 0 || memchr(server_first, '\0', len))
      return fail(errmsg, "malformed SCRAM server-first-message (empty or NUL byte)");
   if (len >= 2 && p[0] == 'm' && p[1] == '=')
      return fail(errmsg, "SCRAM mandatory extension is not supported");
   if (!sl_scram_i_attr(&p, end, 'r', nonce, nonce_len) || !sl_scram_i_nonce_ok(*nonce, *nonce_len))
      return fail(errmsg, "malformed SCRAM server-first-message (bad r=)");
   if (*nonce_len <= ours || memcmp(*nonce, st->nonce, ours) != 0)
      return fail(errmsg, "SCRAM server nonce does not start with the client nonce");
   if (!sl_scram_i_attr(&p, end, 's', &salt_b64, &salt_b64_len) ||
       !sl_base64_decode(salt_b64, salt_b64_len, salt, salt_cap, salt_len) || *salt_len == 0)
      return fail(errmsg, "malformed SCRAM server-first-message (bad s=)");
   if (!sl_scram_i_attr(&p, end, 'i', &iter_s, &iter_len) || !sl_scram_i_parse_int(iter_s, iter_len, 1, INT_MAX, iter))
      return fail(errmsg, "malformed SCRAM server-first-message (bad i=)");
   if (*iter > SL_SCRAM_MAX_ITERATIONS) {
      snprintf(st->errbuf, sizeof(st->errbuf),
               "server asks for %ld SCRAM iterations, more than the %d pgsluice computes (misconfigured or hostile "
               "server?)",
               *iter, SL_SCRAM_MAX_ITERATIONS);
      return fail(errmsg, st->errbuf);
   }
   if ((p == end && end[-1] == ',') || !sl_scram_i_exts_ok(p, end))
      return fail(errmsg, "malformed SCRAM server-first-message (bad extension)");
   return true;
}

bool sl_scram_client_needs_keys(const sl_scram_client *st)
{
   return st->state == 1 && !st->passthrough && !st->keys_set;
}

bool sl_scram_client_key_params(sl_scram_client *st, const char *server_first, size_t len, uint8_t *salt,
                                size_t *salt_len, int *iterations, const char **errmsg)
{
   const char *nonce;
   size_t nonce_len;
   long iter;

   if (!sl_scram_client_needs_keys(st))
      return fail(errmsg, "SCRAM exchange in wrong state");
   if (!parse_server_first(st, server_first, len, &nonce, &nonce_len, salt, SL_SCRAM_CLIENT_MAX_SALT, salt_len,
                           &iter, errmsg)) {
      st->state = -1;
      return false;
   }
   *iterations = (int)iter;
   return true;
}

bool sl_scram_derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                          uint8_t client_key[SL_SCRAM_KEY_LEN], uint8_t server_key[SL_SCRAM_KEY_LEN])
{
   return sl_scram_i_password_keys(password, salt, salt_len, iterations, client_key, server_key);
}

bool sl_scram_client_set_keys(sl_scram_client *st, const uint8_t *client_key, const uint8_t *server_key)
{
   if (!sl_scram_client_needs_keys(st))
      return false;
   memcpy(st->client_key, client_key, SL_SCRAM_KEY_LEN);
   memcpy(st->server_key, server_key, SL_SCRAM_KEY_LEN);
   st->keys_set = true;
   OPENSSL_cleanse(st->password, sizeof(st->password));
   return true;
}

bool sl_scram_client_final(sl_scram_client *st, const char *server_first, size_t len, char *out, size_t outlen,
                           const char **errmsg)
{
   const char *nonce;
   size_t nonce_len, salt_len;
   uint8_t salt[SL_SCRAM_CLIENT_MAX_SALT], stored[SL_SCRAM_KEY_LEN], client_sig[SL_SCRAM_KEY_LEN],
      proof[SL_SCRAM_KEY_LEN];
   char cbind[SL_SCRAM_I_CBIND_B64_MAX];
   long iter;
   sl_scram_i_buf b;
   bool ok;

   if (st->state != 1)
      return fail(errmsg, "SCRAM exchange in wrong state");
   st->state = -1;
   if (!parse_server_first(st, server_first, len, &nonce, &nonce_len, salt, sizeof(salt), &salt_len, &iter, errmsg))
      return false;
   /* keys derived elsewhere (sl_scram_client_set_keys) were derived from this very message's s= and i= */
   if (!st->passthrough && !st->keys_set &&
       !sl_scram_i_password_keys(st->password, salt, salt_len, (int)iter, st->client_key, st->server_key))
      return fail(errmsg, "SCRAM key derivation failed");
   OPENSSL_cleanse(st->password, sizeof(st->password)); /* only the derived keys are needed from here */

   sl_scram_i_buf_init(&b, out, outlen);
   sl_scram_i_puts(&b, "c=");
   ok = sl_scram_i_cbind_b64(cbind_flag(st), st->cb_data, st->cb_len, cbind);
   sl_scram_i_puts(&b, cbind);
   sl_scram_i_puts(&b, ",r=");
   sl_scram_i_put(&b, nonce, nonce_len);
   ok = ok && b.ok && sl_scram_i_sha256(st->client_key, SL_SCRAM_KEY_LEN, stored) &&
        sl_scram_i_auth_hmac(stored, st->client_first_bare, st->client_first_bare_len, server_first, len, out,
                             b.len, client_sig) &&
        sl_scram_i_auth_hmac(st->server_key, st->client_first_bare, st->client_first_bare_len, server_first, len,
                             out, b.len, st->server_signature);
   for (int i = 0; i < SL_SCRAM_KEY_LEN; i++)
      proof[i] = st->client_key[i] ^ client_sig[i];
   sl_scram_i_puts(&b, ",p=");
   sl_scram_i_put_b64(&b, proof, sizeof(proof));
   OPENSSL_cleanse(client_sig, sizeof(client_sig));
   OPENSSL_cleanse(proof, sizeof(proof));
   if (!ok || !b.ok) {
      if (outlen > 0)
         out[0] = '\0';
      return fail(errmsg, b.ok ? "SCRAM computation failed" : "output buffer too small");
   }
   st->state = 2;
   return true;
}

bool sl_scram_client_verify(sl_scram_client *st, const char *server_final, size_t len, const char **errmsg)
{
   const char *p = server_final, *end = server_final + len, *val;
   size_t vlen, sig_len;
   uint8_t sig[SL_SCRAM_KEY_LEN];

   if (st->state != 2)
      return fail(errmsg, "SCRAM exchange in wrong state");
   st->state = -1;
   if (len == 0 || memchr(server_final, '\0', len))
      return fail(errmsg, "malformed SCRAM server-final-message (empty or NUL byte)");
   if (sl_scram_i_attr(&p, end, 'e', &val, &vlen)) {
      snprintf(st->errbuf, sizeof(st->errbuf), "SCRAM server error: %.*s", (int)(vlen > 100 ? 100 : vlen), val);
      for (char *c = st->errbuf; *c; c++)
         if (*c < 0x20 || *c > 0x7e)
            *c = '?';
      return fail(errmsg, st->errbuf);
   }
   if (!sl_scram_i_attr(&p, end, 'v', &val, &vlen) || (p == end && end[-1] == ',') || !sl_scram_i_exts_ok(p, end))
      return fail(errmsg, "malformed SCRAM server-final-message (missing v=)");
   if (!sl_base64_decode(val, vlen, sig, sizeof(sig), &sig_len) || sig_len != SL_SCRAM_KEY_LEN)
      return fail(errmsg, "malformed SCRAM server-final-message (bad v=)");
   if (CRYPTO_memcmp(sig, st->server_signature, SL_SCRAM_KEY_LEN) != 0)
      return fail(errmsg, "SCRAM server signature mismatch");
   st->state = 3;
   return true;
}

void sl_scram_client_clear(sl_scram_client *st)
{
   OPENSSL_cleanse(st, sizeof(*st));
}
