/* scram_server.c - SCRAM-SHA-256 server side: verifying clients that log in to the pooler. */
#include "auth/scram_int.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/base64.h"
#include "auth/random.h"

#define SERVER_NONCE_BYTES 18

static pthread_once_t mock_once = PTHREAD_ONCE_INIT;
static uint8_t mock_key[SL_SCRAM_KEY_LEN];
static bool mock_key_ok;

static void mock_key_init(void)
{
   mock_key_ok = sl_random_bytes(mock_key, sizeof(mock_key));
}

/* Fake secret for an unknown user: salt = HMAC(process key, "salt" user), keys random, default iterations. */
static bool mock_secret(const char *user, sl_scram_secret *sec)
{
   uint8_t mac[SL_SCRAM_KEY_LEN];
   char msg[512];
   sl_scram_i_buf b;

   pthread_once(&mock_once, mock_key_init);
   if (!mock_key_ok)
      return false;
   sl_scram_i_buf_init(&b, msg, sizeof(msg));
   sl_scram_i_puts(&b, "salt:");
   sl_scram_i_put(&b, user, strnlen(user, sizeof(msg) - 8));
   if (!b.ok || !sl_scram_i_hmac(mock_key, sizeof(mock_key), msg, b.len, mac))
      return false;
   memset(sec, 0, sizeof(*sec));
   sec->iterations = SL_SCRAM_DEFAULT_ITERATIONS;
   sec->salt_len = SL_SCRAM_DEFAULT_SALT_LEN;
   memcpy(sec->salt, mac, sec->salt_len);
   return sl_random_bytes(sec->stored_key, SL_SCRAM_KEY_LEN) && sl_random_bytes(sec->server_key, SL_SCRAM_KEY_LEN);
}

static bool fail(const char **errmsg, const char *why)
{
   if (errmsg)
      *errmsg = why;
   return false;
}

/* Parse client-first-message; sets cbind_flag, client_first_bare and the client nonce (into st->nonce). */
static bool parse_client_first(sl_scram_server *st, const char *msg, size_t len, const char **errmsg)
{
   const char *p = msg, *end = msg + len, *val, *bare;
   size_t vlen;

   if (len == 0 || memchr(msg, '\0', len))
      return fail(errmsg, "malformed SCRAM message (empty or NUL byte)");
   if (p[0] == 'p')
      return fail(errmsg, "channel binding is not supported");
   if ((p[0] != 'n' && p[0] != 'y') || len < 2 || p[1] != ',')
      return fail(errmsg, "malformed SCRAM message (bad GS2 header)");
   st->cbind_flag = p[0];
   p += 2;
   if (p < end && p[0] == 'a')
      return fail(errmsg, "SCRAM authorization identity is not supported");
   if (p >= end || p[0] != ',')
      return fail(errmsg, "malformed SCRAM message (bad GS2 header)");
   bare = ++p;
   if ((size_t)(end - bare) > SL_SCRAM_MAX_MESSAGE)
      return fail(errmsg, "SCRAM message too long");
   if (end - p >= 2 && p[0] == 'm' && p[1] == '=')
      return fail(errmsg, "SCRAM mandatory extension is not supported");
   if (!sl_scram_i_attr(&p, end, 'n', &val, &vlen)) /* user name: ignored, the startup packet has it */
      return fail(errmsg, "malformed SCRAM message (missing n=)");
   if (!sl_scram_i_attr(&p, end, 'r', &val, &vlen))
      return fail(errmsg, "malformed SCRAM message (missing r=)");
   if (!sl_scram_i_nonce_ok(val, vlen) || vlen > SL_SCRAM_MAX_CLIENT_NONCE)
      return fail(errmsg, "malformed SCRAM message (bad nonce)");
   if ((p == end && end[-1] == ',') || !sl_scram_i_exts_ok(p, end))
      return fail(errmsg, "malformed SCRAM message (bad extension)");
   memcpy(st->nonce, val, vlen);
   st->nonce[vlen] = '\0';
   memcpy(st->client_first_bare, bare, (size_t)(end - bare));
   st->client_first_bare_len = (size_t)(end - bare);
   st->client_first_bare[st->client_first_bare_len] = '\0';
   return true;
}

bool sl_scram_server_first(sl_scram_server *st, const sl_scram_secret *secret, const char *user,
                           const char *client_first, size_t len, char *out, size_t outlen, const char **errmsg)
{
   sl_scram_i_buf b;
   char snonce[sizeof(st->server_nonce)];
   bool fixed = st->fixed_nonce && st->state == 0;

   if (st->state != 0)
      return fail(errmsg, "SCRAM exchange already started");
   memcpy(snonce, st->server_nonce, sizeof(snonce));
   memset(st, 0, sizeof(*st));
   st->state = 2; /* finished unless everything below works */
   if (!parse_client_first(st, client_first, len, errmsg))
      return false;
   if (fixed) {
      memcpy(st->server_nonce, snonce, sizeof(snonce));
   } else {
      uint8_t raw[SERVER_NONCE_BYTES];

      if (!sl_random_bytes(raw, sizeof(raw)))
         return fail(errmsg, "random generator failure");
      sl_base64_encode(raw, sizeof(raw), st->server_nonce, sizeof(st->server_nonce));
   }
   if (secret == NULL) {
      st->mock = true;
      if (!mock_secret(user ? user : "", &st->secret))
         return fail(errmsg, "random generator failure");
   } else {
      if (secret->iterations < 1 || secret->salt_len == 0 || secret->salt_len > SL_SCRAM_MAX_SALT)
         return fail(errmsg, "unusable SCRAM secret");
      st->secret = *secret;
   }
   {
      size_t cn = strlen(st->nonce), sn = strlen(st->server_nonce);

      memcpy(st->nonce + cn, st->server_nonce, sn + 1); /* fits: cn <= MAX_CLIENT_NONCE, sn < 65 */
   }
   sl_scram_i_buf_init(&b, st->server_first, sizeof(st->server_first));
   sl_scram_i_puts(&b, "r=");
   sl_scram_i_puts(&b, st->nonce);
   sl_scram_i_puts(&b, ",s=");
   sl_scram_i_put_b64(&b, st->secret.salt, st->secret.salt_len);
   sl_scram_i_puts(&b, ",i=");
   sl_scram_i_put_int(&b, st->secret.iterations);
   if (!b.ok || b.len >= outlen)
      return fail(errmsg, "output buffer too small");
   st->server_first_len = b.len;
   memcpy(out, st->server_first, b.len + 1);
   st->state = 1;
   return true;
}

bool sl_scram_server_final(sl_scram_server *st, const char *client_final, size_t len, char *out, size_t outlen,
                           const char **errmsg)
{
   const char *p = client_final, *end = client_final + len, *cb, *nonce, *proof_attr, *val;
   size_t cb_len, nonce_len, vlen, proof_len;
   const char *want_cb = st->cbind_flag == 'y' ? "eSws" : "biws";
   uint8_t proof[SL_SCRAM_KEY_LEN], client_sig[SL_SCRAM_KEY_LEN], client_key[SL_SCRAM_KEY_LEN];
   uint8_t stored[SL_SCRAM_KEY_LEN], server_sig[SL_SCRAM_KEY_LEN];
   sl_scram_i_buf b;
   bool ok;

   if (st->state != 1)
      return fail(errmsg, "SCRAM exchange in wrong state");
   st->state = 2;
   if (len == 0 || len > SL_SCRAM_MAX_MESSAGE || memchr(client_final, '\0', len))
      return fail(errmsg, "malformed SCRAM message (empty, too long or NUL byte)");
   if (!sl_scram_i_attr(&p, end, 'c', &cb, &cb_len))
      return fail(errmsg, "malformed SCRAM message (missing c=)");
   if (cb_len != 4 || memcmp(cb, want_cb, 4) != 0)
      return fail(errmsg, "SCRAM channel binding check failed");
   if (!sl_scram_i_attr(&p, end, 'r', &nonce, &nonce_len))
      return fail(errmsg, "malformed SCRAM message (missing r=)");
   if (nonce_len != strlen(st->nonce) || memcmp(nonce, st->nonce, nonce_len) != 0)
      return fail(errmsg, "SCRAM nonce mismatch");
   proof_attr = NULL;
   while (p < end) { /* extensions, then p= last */
      const char *attr = p;
      bool alpha = (p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z');

      if (!alpha || !sl_scram_i_attr(&p, end, p[0], &val, &vlen))
         return fail(errmsg, "malformed SCRAM message (bad attribute)");
      if (attr[0] == 'p') {
         proof_attr = attr;
         break;
      }
   }
   if (proof_attr == NULL || p != end || end[-1] == ',')
      return fail(errmsg, "malformed SCRAM message (missing or misplaced p=)");
   if (!sl_base64_decode(val, vlen, proof, sizeof(proof), &proof_len) || proof_len != SL_SCRAM_KEY_LEN)
      return fail(errmsg, "malformed SCRAM message (bad proof)");

   /* Same work whatever the proof: ClientSignature, ClientKey, StoredKey check and ServerSignature. */
   ok = sl_scram_i_auth_hmac(st->secret.stored_key, st->client_first_bare, st->client_first_bare_len,
                             st->server_first, st->server_first_len, client_final,
                             (size_t)(proof_attr - 1 - client_final), client_sig) &&
        sl_scram_i_auth_hmac(st->secret.server_key, st->client_first_bare, st->client_first_bare_len,
                             st->server_first, st->server_first_len, client_final,
                             (size_t)(proof_attr - 1 - client_final), server_sig);
   for (int i = 0; i < SL_SCRAM_KEY_LEN; i++)
      client_key[i] = proof[i] ^ client_sig[i];
   ok = ok && sl_scram_i_sha256(client_key, sizeof(client_key), stored);
   ok = (CRYPTO_memcmp(stored, st->secret.stored_key, SL_SCRAM_KEY_LEN) == 0) & ok & !st->mock;
   if (ok) {
      sl_scram_i_buf_init(&b, out, outlen);
      sl_scram_i_puts(&b, "v=");
      sl_scram_i_put_b64(&b, server_sig, sizeof(server_sig));
      if (b.ok) {
         memcpy(st->client_key, client_key, sizeof(client_key));
         st->have_client_key = true;
      } else {
         ok = fail(errmsg, "output buffer too small");
      }
   } else {
      fail(errmsg, "SCRAM proof verification failed");
   }
   OPENSSL_cleanse(client_key, sizeof(client_key));
   OPENSSL_cleanse(client_sig, sizeof(client_sig));
   OPENSSL_cleanse(server_sig, sizeof(server_sig));
   return ok;
}

void sl_scram_server_clear(sl_scram_server *st)
{
   OPENSSL_cleanse(st, sizeof(*st));
}

bool sl_scram_server_set_nonce(sl_scram_server *st, const char *nonce)
{
   size_t n = strlen(nonce);

   if (st->state != 0 || n >= sizeof(st->server_nonce) || !sl_scram_i_nonce_ok(nonce, n))
      return false;
   memcpy(st->server_nonce, nonce, n + 1);
   st->fixed_nonce = true;
   return true;
}
