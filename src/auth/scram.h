/* scram.h - SCRAM-SHA-256 (RFC 5802 / RFC 7677) for both sides of the pooler, pure functions on buffers.
 * No channel binding: gs2 header "n,," or "y,,"; "p=" is rejected. Structs are self-contained (no heap);
 * call the *_clear functions when done to wipe key material. Not thread-safe per struct. */
#ifndef SL_AUTH_SCRAM_H
#define SL_AUTH_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_SCRAM_KEY_LEN 32
#define SL_SCRAM_MAX_SALT 64
#define SL_SCRAM_DEFAULT_ITERATIONS 4096 /* PostgreSQL's default, also used for mock exchanges */
#define SL_SCRAM_DEFAULT_SALT_LEN 16
#define SL_SCRAM_MAX_ITERATIONS 10000000 /* the most a server may ask of our client side */
#define SL_SCRAM_SECRET_MAX 256           /* buffer for sl_scram_secret_format, NUL included */
#define SL_SCRAM_MAX_CLIENT_NONCE 256     /* longest client nonce the server side accepts */
#define SL_SCRAM_MAX_MESSAGE 1024         /* longest client-first-bare / client-final the server side accepts */
#define SL_SCRAM_MAX_PASSWORD 2048        /* client side password buffer, NUL included */

typedef struct sl_scram_secret {
   int iterations;
   uint8_t salt[SL_SCRAM_MAX_SALT];
   size_t salt_len;
   uint8_t stored_key[SL_SCRAM_KEY_LEN];
   uint8_t server_key[SL_SCRAM_KEY_LEN];
} sl_scram_secret;

/* "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>" (iter 1..INT_MAX, salt 1..64 bytes). */
bool sl_scram_is_secret(const char *s);
bool sl_scram_parse_secret(const char *s, sl_scram_secret *out);
/* Write the secret in the pg_authid text form; false if outlen is too small (SL_SCRAM_SECRET_MAX is enough). */
bool sl_scram_secret_format(const sl_scram_secret *secret, char *out, size_t outlen);
/* Derive a secret from a password (SASLprep'd, see saslprep.h). salt == NULL: SL_SCRAM_DEFAULT_SALT_LEN random
 * bytes (salt_len ignored). false on bad arguments (iterations < 1, salt_len 0 or > 64) or crypto failure. */
bool sl_scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                                   sl_scram_secret *out);

/* ---- server side: verifying a client that logs in to us ---- */
typedef struct sl_scram_server {
   int state;                                   /* internal: 0 fresh, 1 server-first sent, 2 finished */
   bool fixed_nonce;                            /* test hook: server_nonce preset */
   bool mock;                                   /* unknown user: the exchange must fail at the end */
   char cbind_flag;                             /* 'n' or 'y' from the client's gs2 header */
   sl_scram_secret secret;                      /* copy of the real secret, or the fake one when mock */
   char server_nonce[65];                       /* our part of the nonce (b64 of 18 random bytes) */
   char nonce[SL_SCRAM_MAX_CLIENT_NONCE + 65]; /* client nonce + server nonce */
   char client_first_bare[SL_SCRAM_MAX_MESSAGE + 1];
   size_t client_first_bare_len;
   char server_first[SL_SCRAM_MAX_CLIENT_NONCE + 256];
   size_t server_first_len;
   bool have_client_key;
   uint8_t client_key[SL_SCRAM_KEY_LEN]; /* recovered from the proof on success: proof XOR ClientSignature */
} sl_scram_server;

/* st must be zero-initialised (or passed through sl_scram_server_clear) before each exchange.
 * secret == NULL means "unknown user or no usable secret": a mock
 * exchange with a fake salt derived from user and a per-process random key, which fails at the final step.
 * user may be NULL. client_first is len bytes (need not be NUL-terminated). Returns false on a malformed
 * message (*errmsg: short reason); on success writes the server-first-message to out (NUL-terminated).
 * Accepting gs2 flag 'y' is only correct when the caller did not offer SCRAM-SHA-256-PLUS. */
bool sl_scram_server_first(sl_scram_server *st, const sl_scram_secret *secret, const char *user,
                           const char *client_first, size_t len, char *out, size_t outlen, const char **errmsg);
/* Verifies client-final (c= must be the b64 of the gs2 header: "biws" or "eSws"; nonce must match; proof must
 * verify). On success writes the server-final-message ("v=...") to out and sets have_client_key/client_key.
 * Returns false on a wrong proof, a mock exchange, or a malformed message (*errmsg set); a wrong proof costs
 * the same work as a right one. Usable once per sl_scram_server_first. */
bool sl_scram_server_final(sl_scram_server *st, const char *client_final, size_t len, char *out, size_t outlen,
                           const char **errmsg);
void sl_scram_server_clear(sl_scram_server *st);

/* ---- client side: logging in to a PostgreSQL server ---- */
typedef struct sl_scram_client {
   int state;        /* internal: 0 fresh, 1 client-first sent, 2 client-final sent, 3 verified, -1 bad init */
   bool passthrough; /* client_key/server_key given instead of a password */
   char password[SL_SCRAM_MAX_PASSWORD];
   uint8_t client_key[SL_SCRAM_KEY_LEN];
   uint8_t server_key[SL_SCRAM_KEY_LEN];
   char nonce[65];                              /* our client nonce */
   char user[65];                               /* n= value, "" normally (the server ignores it) */
   char client_first_bare[160];
   size_t client_first_bare_len;
   uint8_t server_signature[SL_SCRAM_KEY_LEN]; /* expected in server-final */
   char errbuf[160];                            /* storage for *errmsg texts quoting the server */
} sl_scram_client;

/* Either password != NULL (at most SL_SCRAM_MAX_PASSWORD - 1 bytes, else every later call fails), or
 * client_key + server_key (32 bytes each: "pass-through" login with a client's recovered ClientKey and the
 * stored secret's ServerKey; only works when the server's salt/iterations equal the secret's). */
void sl_scram_client_init(sl_scram_client *st, const char *password, const uint8_t *client_key,
                          const uint8_t *server_key);
/* "n,,n=,r=<24 random bytes b64>". false on RNG failure, bad init, wrong state or outlen too small. */
bool sl_scram_client_first(sl_scram_client *st, char *out, size_t outlen);
/* Parses server-first (r=, s=, i=; nonce must extend ours; 1 <= iterations <= SL_SCRAM_MAX_ITERATIONS) and
 * writes client-final with the proof to out. */
bool sl_scram_client_final(sl_scram_client *st, const char *server_first, size_t len, char *out, size_t outlen,
                           const char **errmsg);
/* Checks server-final "v=..." in constant time; "e=..." gives false with *errmsg quoting the server's error
 * (pointing into st, valid until st changes). */
bool sl_scram_client_verify(sl_scram_client *st, const char *server_final, size_t len, const char **errmsg);
void sl_scram_client_clear(sl_scram_client *st);

/* ---- test-only hooks: fixed nonces for test vectors. Never use in production code. ---- */
/* Call after sl_scram_client_init and before sl_scram_client_first; user == NULL keeps "n=". */
bool sl_scram_client_set_nonce(sl_scram_client *st, const char *nonce, const char *user);
/* Call before sl_scram_server_first (which then keeps it instead of drawing a random one). */
bool sl_scram_server_set_nonce(sl_scram_server *st, const char *nonce);

#endif
