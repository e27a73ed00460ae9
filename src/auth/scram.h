/* scram.h - SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802 / RFC 7677) for both sides of the pooler, pure
 * functions on buffers. Channel binding as PostgreSQL does it: type tls-server-end-point only (RFC 5929: the
 * hash of the server's TLS certificate, which the caller computes, e.g. sl_stream_tls_server_end_point), gs2
 * header "p=tls-server-end-point,,", "y,," or "n,,"; no authzid. Structs are self-contained (no heap); call
 * the *_clear functions when done to wipe key material. Not thread-safe per struct. */
#ifndef SL_AUTH_SCRAM_H
#define SL_AUTH_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_SCRAM_KEY_LEN 32
#define SL_SCRAM_MAX_SALT 64
#define SL_SCRAM_DEFAULT_ITERATIONS 4096 /* PostgreSQL's default, also used for mock exchanges */
#define SL_SCRAM_DEFAULT_SALT_LEN 16
/* The most a server may ask of our client side (when pgsluice logs in to a server with a password). PostgreSQL
 * accepts scram_iterations up to INT_MAX (default 4096) and libpq computes whatever it is asked; at ~0.5 us per
 * iteration, 2,000,000,000 would keep a thread busy for a quarter of an hour per login. 10,000,000 is 2,400
 * times PostgreSQL's default and 16 times OWASP's 2023 advice for PBKDF2-HMAC-SHA256 (600,000), the same bound
 * as pgsluice's own scram_iterations setting, and still fits in the default server_connect_timeout (~5 s).
 * The derivation runs on libuv's thread pool (server.c), never on a worker's loop. */
#define SL_SCRAM_MAX_ITERATIONS 10000000
#define SL_SCRAM_CLIENT_MAX_SALT 256 /* longest salt a server may send our client side */
#define SL_SCRAM_SECRET_MAX 256           /* buffer for sl_scram_secret_format, NUL included */
#define SL_SCRAM_MAX_CLIENT_NONCE 256     /* longest client nonce the server side accepts */
#define SL_SCRAM_MAX_MESSAGE 1024         /* longest client-first-bare / client-final the server side accepts */
#define SL_SCRAM_MAX_PASSWORD 2048        /* client side password buffer, NUL included */
#define SL_SCRAM_MAX_CB_DATA 64           /* longest channel binding data (a SHA-512 certificate hash) */

/* SASL mechanism names (AuthenticationSASL, SASLInitialResponse). */
#define SL_SCRAM_MECH "SCRAM-SHA-256"
#define SL_SCRAM_MECH_PLUS "SCRAM-SHA-256-PLUS" /* with channel binding */
#define SL_SCRAM_CB_TYPE "tls-server-end-point"  /* the one channel binding type PostgreSQL knows */

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
   bool plus_chosen;                            /* the client chose SCRAM-SHA-256-PLUS */
   char cbind_flag;                             /* 'n', 'y' or 'p' from the client's gs2 header */
   uint8_t cb_data[SL_SCRAM_MAX_CB_DATA];       /* our certificate's tls-server-end-point hash */
   size_t cb_len;                               /* 0: SCRAM-SHA-256-PLUS was not offered */
   const char *sqlstate;                        /* SQLSTATE of the last failure (see below), NULL before one */
   char errbuf[96];                             /* storage for *errmsg texts quoting the client */
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

/* Order of calls for one login: [sl_scram_server_set_channel_binding] [sl_scram_server_select_mechanism]
 * sl_scram_server_first sl_scram_server_final. Every failure sets *errmsg (a static text, or one in st->errbuf
 * valid until st changes; never echoing unprintable client bytes) and st->sqlstate for the ErrorResponse:
 * "08P01" malformed message or a mechanism/gs2 header mismatch, "0A000" authzid or a mandatory extension,
 * "28000" channel binding negotiation error or a failed channel binding check, "28P01" wrong proof (or an
 * unknown user), "XX000" internal failure (random generator, output buffer). */

/* The body of AuthenticationSASL to send: the mechanism names, each NUL-terminated, then the empty name that
 * ends the list; *len counts all of it. offer_plus (TLS, and the certificate hash is known): SL_SCRAM_MECH_PLUS
 * then SL_SCRAM_MECH, and the hash must go to sl_scram_server_set_channel_binding. */
const char *sl_scram_server_mechanisms(bool offer_plus, size_t *len);
/* Call before sl_scram_server_first exactly when SCRAM-SHA-256-PLUS was offered to this client: cb_data is the
 * tls-server-end-point hash of our certificate on this connection (1..SL_SCRAM_MAX_CB_DATA bytes). A client that
 * then sends gs2 flag 'y' ("I could bind but you did not offer it") is refused as a downgrade. false on bad
 * arguments or once the exchange has started. */
bool sl_scram_server_set_channel_binding(sl_scram_server *st, const uint8_t *cb_data, size_t cb_len);
/* Call before sl_scram_server_first with the mechanism name from the client's SASLInitialResponse (not calling
 * it means SL_SCRAM_MECH). SL_SCRAM_MECH_PLUS is accepted only after sl_scram_server_set_channel_binding; any
 * other name fails with "client selected an invalid SASL authentication mechanism" and the exchange is over. */
bool sl_scram_server_select_mechanism(sl_scram_server *st, const char *mech, const char **errmsg);
/* st must be zero-initialised (or passed through sl_scram_server_clear) before each exchange, before the set_*
 * and select calls. secret == NULL means "unknown user or no usable secret": a mock
 * exchange with a fake salt derived from user and a per-process random key, which fails at the final step.
 * user may be NULL. client_first is len bytes (need not be NUL-terminated). Returns false on a malformed
 * message or a channel binding mismatch, as PostgreSQL's backend decides it:
 *   SCRAM-SHA-256-PLUS chosen: the gs2 header must be "p=tls-server-end-point"; 'n' or 'y' fails with
 *     "malformed SCRAM message (the client selected SCRAM-SHA-256-PLUS, but the message has no channel
 *     binding data)", another type with "unsupported SCRAM channel-binding type \"<type>\"";
 *   SCRAM-SHA-256 chosen: 'p' fails with "malformed SCRAM message (the client selected SCRAM-SHA-256 without
 *     channel binding, but the message includes channel binding data)"; 'y' when PLUS was offered fails with
 *     "SCRAM channel binding negotiation error (the client supports channel binding and thinks the server does
 *     not, but this server offered it)"; 'n', and 'y' when PLUS was not offered, are fine;
 *   an authzid ("n,a=...,") fails with "SCRAM authorization identity is not supported".
 * On success writes the server-first-message to out (NUL-terminated). */
bool sl_scram_server_first(sl_scram_server *st, const sl_scram_secret *secret, const char *user,
                           const char *client_first, size_t len, char *out, size_t outlen, const char **errmsg);
/* Verifies client-final: c= must be the b64 of the gs2 header ("biws" for 'n', "eSws" for 'y', else "unexpected
 * SCRAM channel-binding attribute in client-final-message"), for 'p' of "p=tls-server-end-point,," followed by
 * the channel binding data (else "SCRAM channel binding check failed"); the nonce must match; the proof must
 * verify ("SCRAM proof verification failed"). The proof covers c=, so a pass-through login binds as well. On
 * success writes the server-final-message ("v=...") to out and sets have_client_key/client_key. Returns false
 * on a wrong proof, a mock exchange, or a malformed message (*errmsg set); a wrong proof costs the same work
 * as a right one. Usable once per sl_scram_server_first. */
bool sl_scram_server_final(sl_scram_server *st, const char *client_final, size_t len, char *out, size_t outlen,
                           const char **errmsg);
void sl_scram_server_clear(sl_scram_server *st);

/* ---- client side: logging in to a PostgreSQL server ---- */

/* Which gs2 header the client sends (libpq's choice): BOUND when the server offered SCRAM-SHA-256-PLUS over
 * TLS and the server certificate's hash is known; CLIENT_ONLY over TLS when it did not offer PLUS (a server
 * that does support binding then refuses: someone in the middle stripped PLUS from the list); NONE without
 * TLS or with binding disabled. channel_binding=require is the caller's policy: refuse a server that does
 * not offer PLUS before starting the exchange. */
typedef enum sl_scram_cb_mode {
   SL_SCRAM_CB_NONE = 0,    /* "n,,", SL_SCRAM_MECH (the default) */
   SL_SCRAM_CB_CLIENT_ONLY, /* "y,,", SL_SCRAM_MECH */
   SL_SCRAM_CB_BOUND,       /* "p=tls-server-end-point,,", SL_SCRAM_MECH_PLUS, c= carries the certificate hash */
} sl_scram_cb_mode;

typedef struct sl_scram_client {
   int state;        /* internal: 0 fresh, 1 client-first sent, 2 client-final sent, 3 verified, -1 bad init */
   bool passthrough; /* client_key/server_key given instead of a password */
   bool keys_set;    /* client_key/server_key derived elsewhere from the password (sl_scram_client_set_keys) */
   sl_scram_cb_mode cb_mode;
   uint8_t cb_data[SL_SCRAM_MAX_CB_DATA]; /* the server certificate's tls-server-end-point hash (BOUND) */
   size_t cb_len;
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
/* Call between sl_scram_client_init and sl_scram_client_first to change the default SL_SCRAM_CB_NONE. BOUND
 * needs cb_data (1..SL_SCRAM_MAX_CB_DATA bytes: the tls-server-end-point hash of the server's certificate, e.g.
 * from sl_stream_tls_server_end_point); the other modes take cb_data NULL and cb_len 0. false (and the struct
 * unusable: every later call fails) on bad arguments, and false after the exchange started. */
bool sl_scram_client_set_channel_binding(sl_scram_client *st, sl_scram_cb_mode mode, const uint8_t *cb_data,
                                         size_t cb_len);
/* The mechanism name to send in SASLInitialResponse along with the client-first message: SL_SCRAM_MECH_PLUS
 * for SL_SCRAM_CB_BOUND, SL_SCRAM_MECH otherwise. */
const char *sl_scram_client_mechanism(const sl_scram_client *st);
/* "<gs2 header>n=,r=<24 random bytes b64>" with the gs2 header of the channel binding mode ("n,," unless
 * set). false on RNG failure, bad init, wrong state or outlen too small. */
bool sl_scram_client_first(sl_scram_client *st, char *out, size_t outlen);
/* Parses server-first (r=, s=, i=; nonce must extend ours; 1 <= iterations <= SL_SCRAM_MAX_ITERATIONS) and
 * writes client-final (c= the b64 of the gs2 header and, when bound, the channel binding data) with the proof
 * to out. */
bool sl_scram_client_final(sl_scram_client *st, const char *server_first, size_t len, char *out, size_t outlen,
                           const char **errmsg);
/* Deriving the keys from the password elsewhere (a thread pool: PBKDF2 with a large iteration count takes
 * seconds), between receiving server-first and sl_scram_client_final:
 *   sl_scram_client_needs_keys: a password login after sl_scram_client_first, keys not derived yet (pass-through
 *     logins have their keys and need none);
 *   sl_scram_client_key_params: parses and checks server-first as sl_scram_client_final does (same errors; an
 *     iteration count above SL_SCRAM_MAX_ITERATIONS is refused, saying so) and gives its salt (up to
 *     SL_SCRAM_CLIENT_MAX_SALT bytes) and iteration count; false leaves the exchange failed;
 *   sl_scram_derive_keys: the derivation itself, thread-safe, touching no sl_scram_client (give it a copy of
 *     st->password);
 *   sl_scram_client_set_keys: the result (false in the wrong state); the password is wiped. Then
 *     sl_scram_client_final with the same server-first skips the derivation. */
bool sl_scram_client_needs_keys(const sl_scram_client *st);
bool sl_scram_client_key_params(sl_scram_client *st, const char *server_first, size_t len, uint8_t *salt,
                                size_t *salt_len, int *iterations, const char **errmsg);
bool sl_scram_derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                          uint8_t client_key[SL_SCRAM_KEY_LEN], uint8_t server_key[SL_SCRAM_KEY_LEN]);
bool sl_scram_client_set_keys(sl_scram_client *st, const uint8_t *client_key, const uint8_t *server_key);
/* Checks server-final "v=..." in constant time; "e=..." gives false with *errmsg quoting the server's error
 * (pointing into st, valid until st changes). */
bool sl_scram_client_verify(sl_scram_client *st, const char *server_final, size_t len, const char **errmsg);
/* The server's signature was verified: only then may its AuthenticationOk be believed. */
static inline bool sl_scram_client_verified(const sl_scram_client *st) { return st->state == 3; }
void sl_scram_client_clear(sl_scram_client *st);

/* ---- test-only hooks: fixed nonces for test vectors. Never use in production code. ---- */
/* Call after sl_scram_client_init and before sl_scram_client_first; user == NULL keeps "n=". */
bool sl_scram_client_set_nonce(sl_scram_client *st, const char *nonce, const char *user);
/* Call before sl_scram_server_first (which then keeps it instead of drawing a random one). */
bool sl_scram_server_set_nonce(sl_scram_server *st, const char *nonce);

#endif
