/* scram_server.c - SCRAM-SHA-256(-PLUS) server side: verifying clients that log in to the pooler, with
 * channel binding negotiated as PostgreSQL's backend does. */
#include "auth/scram_int.h"

#include <pthread.h>
#include <stdio.h>
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

static bool fail(sl_scram_server *st, const char **errmsg, const char *sqlstate, const char *why)
{
   st->sqlstate = sqlstate;
   if (errmsg)
      *errmsg = why;
   return false;
}

/* A protocol violation: the message does not parse, or contradicts the mechanism the client chose. */
static bool malformed(sl_scram_server *st, const char **errmsg, const char *why)
{
   return fail(st, errmsg, "08P01", why);
}

const char *sl_scram_server_mechanisms(bool offer_plus, size_t *len)
{
   static const char plus[] = SL_SCRAM_MECH_PLUS "\0" SL_SCRAM_MECH "\0";
   static const char plain[] = SL_SCRAM_MECH "\0";

   *len = offer_plus ? sizeof(plus) : sizeof(plain); /* the literal's own NUL ends the list */
   return offer_plus ? plus : plain;
}

bool sl_scram_server_set_channel_binding(sl_scram_server *st, const uint8_t *cb_data, size_t cb_len)
{
   if (st->state != 0 || cb_data == NULL || cb_len == 0 || cb_len > SL_SCRAM_MAX_CB_DATA)
      return false;
   memcpy(st->cb_data, cb_data, cb_len);
   st->cb_len = cb_len;
   return true;
}

bool sl_scram_server_select_mechanism(sl_scram_server *st, const char *mech, const char **errmsg)
{
   if (st->state != 0)
      return malformed(st, errmsg, "SCRAM exchange in wrong state");
   if (mech != NULL && strcmp(mech, SL_SCRAM_MECH_PLUS) == 0 && st->cb_len > 0) {
      st->plus_chosen = true;
      return true;
   }
   if (mech != NULL && strcmp(mech, SL_SCRAM_MECH) == 0) {
      st->plus_chosen = false;
      return true;
   }
   st->state = 2; /* fail closed: no exchange on this struct */
   return malformed(st, errmsg, "client selected an invalid SASL authentication mechanism");
}

/* Printable ASCII only, and short: the text goes into logs and an ErrorResponse. */
static void quote_client_text(char *dst, size_t cap, const char *s, size_t n)
{
   size_t i;

   if (cap == 0)
      return;
   for (i = 0; i < n && i + 1 < cap; i++)
      dst[i] = (s[i] >= 0x20 && s[i] <= 0x7e && s[i] != '"') ? s[i] : '?';
   dst[i] = '\0';
}

/* The gs2-cbind-flag at *pp and the ',' after it; the rules of PostgreSQL's backend for which flag goes with
 * which mechanism. */
static bool parse_cbind_flag(sl_scram_server *st, const char **pp, const char *end, const char **errmsg)
{
   const char *p = *pp, *name, *comma;
   char quoted[40];

   switch (p[0]) {
   case 'n':
   case 'y':
      if (st->plus_chosen)
         return malformed(st, errmsg,
                          "malformed SCRAM message (the client selected " SL_SCRAM_MECH_PLUS
                          ", but the message has no channel binding data)");
      if (p[0] == 'y' && st->cb_len > 0)
         return fail(st, errmsg, "28000",
                     "SCRAM channel binding negotiation error (the client supports channel binding and thinks the "
                     "server does not, but this server offered it)");
      if (end - p < 2 || p[1] != ',')
         return malformed(st, errmsg, "malformed SCRAM message (bad GS2 header)");
      *pp = p + 2;
      break;
   case 'p':
      if (!st->plus_chosen)
         return malformed(st, errmsg,
                          "malformed SCRAM message (the client selected " SL_SCRAM_MECH
                          " without channel binding, but the message includes channel binding data)");
      comma = memchr(p, ',', (size_t)(end - p));
      if (end - p < 3 || p[1] != '=' || comma == NULL || comma == p + 2)
         return malformed(st, errmsg, "malformed SCRAM message (bad GS2 header)");
      name = p + 2;
      if ((size_t)(comma - name) != strlen(SL_SCRAM_CB_TYPE) ||
          memcmp(name, SL_SCRAM_CB_TYPE, strlen(SL_SCRAM_CB_TYPE)) != 0) {
         quote_client_text(quoted, sizeof(quoted), name, (size_t)(comma - name));
         snprintf(st->errbuf, sizeof(st->errbuf), "unsupported SCRAM channel-binding type \"%s\"", quoted);
         return malformed(st, errmsg, st->errbuf);
      }
      *pp = comma + 1;
      break;
   default:
      return malformed(st, errmsg, "malformed SCRAM message (bad GS2 header)");
   }
   st->cbind_flag = p[0];
   return true;
}

/* Parse client-first-message; sets cbind_flag, client_first_bare and the client nonce (into st->nonce). */
static bool parse_client_first(sl_scram_server *st, const char *msg, size_t len, const char **errmsg)
{
   const char *p = msg, *end = msg + len, *val, *bare;
   size_t vlen;

   if (len == 0 || memchr(msg, '\0', len))
      return malformed(st, errmsg, "malformed SCRAM message (empty or NUL byte)");
   if (!parse_cbind_flag(st, &p, end, errmsg))
      return false;
   if (p < end && p[0] == 'a')
      return fail(st, errmsg, "0A000", "SCRAM authorization identity is not supported");
   if (p >= end || p[0] != ',')
      return malformed(st, errmsg, "malformed SCRAM message (bad GS2 header)");
   bare = ++p;
   if ((size_t)(end - bare) > SL_SCRAM_MAX_MESSAGE)
      return malformed(st, errmsg, "SCRAM message too long");
   if (end - p >= 2 && p[0] == 'm' && p[1] == '=')
      return fail(st, errmsg, "0A000", "SCRAM mandatory extension is not supported");
   if (!sl_scram_i_attr(&p, end, 'n', &val, &vlen)) /* user name: ignored, the startup packet has it */
      return malformed(st, errmsg, "malformed SCRAM message (missing n=)");
   if (!sl_scram_i_attr(&p, end, 'r', &val, &vlen))
      return malformed(st, errmsg, "malformed SCRAM message (missing r=)");
   if (!sl_scram_i_nonce_ok(val, vlen) || vlen > SL_SCRAM_MAX_CLIENT_NONCE)
      return malformed(st, errmsg, "malformed SCRAM message (bad nonce)");
   if ((p == end && end[-1] == ',') || !sl_scram_i_exts_ok(p, end))
      return malformed(st, errmsg, "malformed SCRAM message (bad extension)");
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
   uint8_t cb_data[SL_SCRAM_MAX_CB_DATA];
   size_t cb_len = st->cb_len;
   bool fixed = st->fixed_nonce, plus_chosen = st->plus_chosen;

   if (st->state != 0)
      return malformed(st, errmsg, "SCRAM exchange in wrong state");
   /* start from a clean struct, keeping what the set_* calls said */
   memcpy(snonce, st->server_nonce, sizeof(snonce));
   memcpy(cb_data, st->cb_data, sizeof(cb_data));
   memset(st, 0, sizeof(*st));
   memcpy(st->cb_data, cb_data, sizeof(cb_data));
   st->cb_len = cb_len <= SL_SCRAM_MAX_CB_DATA ? cb_len : 0;
   st->plus_chosen = plus_chosen && st->cb_len > 0;
   st->state = 2; /* finished unless everything below works */
   if (!parse_client_first(st, client_first, len, errmsg))
      return false;
   if (fixed) {
      memcpy(st->server_nonce, snonce, sizeof(snonce));
   } else {
      uint8_t raw[SERVER_NONCE_BYTES];

      if (!sl_random_bytes(raw, sizeof(raw)))
         return fail(st, errmsg, "XX000", "random generator failure");
      sl_base64_encode(raw, sizeof(raw), st->server_nonce, sizeof(st->server_nonce));
   }
   if (secret == NULL) {
      st->mock = true;
      if (!mock_secret(user ? user : "", &st->secret))
         return fail(st, errmsg, "XX000", "random generator failure");
   } else {
      if (secret->iterations < 1 || secret->salt_len == 0 || secret->salt_len > SL_SCRAM_MAX_SALT)
         return fail(st, errmsg, "XX000", "unusable SCRAM secret");
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
      return fail(st, errmsg, "XX000", "output buffer too small");
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
   char want_cb[SL_SCRAM_I_CBIND_B64_MAX];
   uint8_t proof[SL_SCRAM_KEY_LEN], client_sig[SL_SCRAM_KEY_LEN], client_key[SL_SCRAM_KEY_LEN];
   uint8_t stored[SL_SCRAM_KEY_LEN], server_sig[SL_SCRAM_KEY_LEN];
   sl_scram_i_buf b;
   bool ok;

   if (st->state != 1)
      return malformed(st, errmsg, "SCRAM exchange in wrong state");
   st->state = 2;
   if (len == 0 || len > SL_SCRAM_MAX_MESSAGE || memchr(client_final, '\0', len))
      return malformed(st, errmsg, "malformed SCRAM message (empty, too long or NUL byte)");
   if (!sl_scram_i_attr(&p, end, 'c', &cb, &cb_len))
      return malformed(st, errmsg, "malformed SCRAM message (missing c=)");
   if (!sl_scram_i_cbind_b64(st->cbind_flag, st->cb_data, st->cbind_flag == 'p' ? st->cb_len : 0, want_cb))
      return fail(st, errmsg, "XX000", "SCRAM channel binding data unusable");
   if (cb_len != strlen(want_cb) || memcmp(cb, want_cb, cb_len) != 0) {
      if (st->cbind_flag == 'p')
         return fail(st, errmsg, "28000", "SCRAM channel binding check failed");
      return malformed(st, errmsg, "unexpected SCRAM channel-binding attribute in client-final-message");
   }
   if (!sl_scram_i_attr(&p, end, 'r', &nonce, &nonce_len))
      return malformed(st, errmsg, "malformed SCRAM message (missing r=)");
   if (nonce_len != strlen(st->nonce) || memcmp(nonce, st->nonce, nonce_len) != 0)
      return malformed(st, errmsg, "SCRAM nonce mismatch");
   proof_attr = NULL;
   while (p < end) { /* extensions, then p= last */
      const char *attr = p;
      bool alpha = (p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z');

      if (!alpha || !sl_scram_i_attr(&p, end, p[0], &val, &vlen))
         return malformed(st, errmsg, "malformed SCRAM message (bad attribute)");
      if (attr[0] == 'p') {
         proof_attr = attr;
         break;
      }
   }
   if (proof_attr == NULL || p != end || end[-1] == ',')
      return malformed(st, errmsg, "malformed SCRAM message (missing or misplaced p=)");
   if (!sl_base64_decode(val, vlen, proof, sizeof(proof), &proof_len) || proof_len != SL_SCRAM_KEY_LEN)
      return malformed(st, errmsg, "malformed SCRAM message (bad proof)");

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
         ok = fail(st, errmsg, "XX000", "output buffer too small");
      }
   } else {
      fail(st, errmsg, "28P01", "SCRAM proof verification failed");
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
