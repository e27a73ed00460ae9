/* fuzz_client_login.c - everything a client can send before it is logged in, through the real
 * client code (core/client.c, core/client_auth.c): SSL/GSSENC requests, cancel requests, the
 * startup packet and its parameters, then the password messages of cleartext, md5 and
 * SCRAM-SHA-256 (SASLInitialResponse, SASLResponse). The client is accepted with sl_client_accept
 * on one end of a socketpair, by a worker struct whose libuv loop the harness runs (one thread: a
 * uv_run(UV_RUN_NOWAIT) after each piece of input delivers the events as the worker would).
 * auth_type hba (config/hba.c, client_auth.c's rule matching): SCRAM over TLS, a cleartext password
 * without, reject otherwise.
 * TLS (net/tls.c, net/transport_tls.c): some configs turn client TLS on (a self-signed certificate
 * made at start); the harness then plays a real TLS client with OpenSSL: an SSLRequest answered 'S'
 * and a handshake, or a direct TLS connection (PostgreSQL 17's sslnegotiation=direct, ALPN
 * "postgresql"), and the fuzzed bytes go through the encrypted channel; one config requires TLS
 * and is spoken to in plaintext.
 * The config has no [databases]: a login either names the admin console ("pgbouncer" or
 * "pgsluice"), whose login is refused after the password (admin_users is empty, so no console
 * command ever runs), or is refused as an unknown database.
 * Input: a config byte (auth_type and the stored password of user "fuzz", see configs[]), a chunk
 * byte, then the bytes the client sends. Chunk 0: they are written message by message, as a
 * client that waits for each answer sends them (startup-style packets first, then typed
 * messages); chunk N: in pieces of N bytes, so messages also arrive split and run together.
 * Checks: what pgsluice sends back is well-formed protocol ('N' answers to SSL/GSSENC requests,
 * then whole messages); a FATAL error is followed by the connection closing; AuthenticationOk is
 * never sent under md5 or SCRAM (their salt and nonce are random: the fuzzer cannot know the
 * answer) nor under cleartext unless the right password was sent, nor without TLS when the config
 * requires it; the TLS handshake succeeds where TLS is offered. */
#include "fuzz_common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "net/tls.h"
#include "core/client.h"
#include "pool/pool.h"
#include "util/log.h"

/* How the harness connects: plaintext, SSLRequest then TLS, or TLS from the first byte. */
enum { PEER_PLAIN, PEER_SSLREQUEST, PEER_DIRECT };

typedef struct login_config {
    const char *auth_type;
    int stored;          /* 0 plain "secret", 1 md5 hash of it, 2 SCRAM secret of it */
    const char *sslmode; /* client_tls_sslmode (NULL: disable) */
    int peer;            /* PEER_* */
} login_config;

/* New ones go last: a seed's first byte picks its config. */
static const login_config configs[] = {
    {"plain", 0, NULL, PEER_PLAIN},           {"md5", 1, NULL, PEER_PLAIN},
    {"scram-sha-256", 2, NULL, PEER_PLAIN},   {"md5", 2, NULL, PEER_PLAIN},
    {"plain", 2, NULL, PEER_PLAIN},           {"trust", 0, NULL, PEER_PLAIN},
    {"md5", 0, NULL, PEER_PLAIN},             {"plain", 1, NULL, PEER_PLAIN},
    {"plain", 0, "prefer", PEER_SSLREQUEST},  {"scram-sha-256", 2, "require", PEER_DIRECT},
    {"trust", 0, "require", PEER_PLAIN},      {"md5", 1, "allow", PEER_SSLREQUEST},
    {"hba", 2, "allow", PEER_SSLREQUEST},     {"hba", 2, NULL, PEER_PLAIN},
};

/* auth_type hba: SCRAM over TLS, a cleartext password without (the client's address, a socketpair's,
 * matches only "all"). */
static const char hba_rules[] = "hostssl pgbouncer,pgsluice fuzz all scram-sha-256\n"
                                "hostnossl all fuzz all password\n"
                                "host all all all reject\n";
#define NCONFIGS (sizeof(configs) / sizeof(configs[0]))

static sl_config *g_cfg[NCONFIGS];
static sl_worker g_worker;
static char g_key_file[PATH_MAX], g_cert_file[PATH_MAX];
static SSL_CTX *g_tls_client;

static void set(sl_config *c, const char *name, const char *value)
{
    char err[256];
    if (!sl_setting_set(c, sl_setting_find(name), value, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
}

static sl_config *make_config(const login_config *lc)
{
    sl_config *c = sl_config_new_default();
    if (!c) abort();
    if (!strcmp(lc->auth_type, "hba")) {
        char path[PATH_MAX];
        fz_write_file("hba.conf", hba_rules, strlen(hba_rules), path, sizeof(path));
        set(c, "auth_hba_file", path);
    }
    set(c, "auth_type", lc->auth_type);
    set(c, "ignore_startup_parameters", "extra_float_digits, options");
    set(c, "application_name_add_host", lc->stored == 0 ? "1" : "0");
    if (lc->sslmode) {
        set(c, "client_tls_sslmode", lc->sslmode);
        set(c, "client_tls_key_file", g_key_file);
        set(c, "client_tls_cert_file", g_cert_file);
    }
    char stored[SL_SCRAM_SECRET_MAX];
    if (lc->stored == 0) {
        strcpy(stored, "secret");
    } else if (lc->stored == 1) {
        sl_md5_user_hash("secret", "fuzz", stored);
    } else {
        /* few iterations: a cleartext login against a SCRAM secret derives it for every input */
        sl_scram_secret sec;
        if (!sl_scram_secret_from_password("secret", (const uint8_t *)"fuzzsaltfuzzsalt", 16, 16, &sec) ||
            !sl_scram_secret_format(&sec, stored, sizeof(stored)))
            abort();
    }
    c->userlist = calloc(1, sizeof(*c->userlist));
    if (!c->userlist) abort();
    c->userlist[0].name = strdup("fuzz");
    c->userlist[0].password = strdup(stored);
    c->n_userlist = 1;
    char err[512];
    if (!sl_config_load_auth_rules(c, err, sizeof(err))) {
        fprintf(stderr, "auth rules: %s\n", err);
        abort();
    }
    return c;
}

/* A self-signed EC P-256 certificate for "localhost", in the fuzz directory. */
static void make_certificate(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    if (!key || !x) abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key, EVP_sha256())) abort();
    snprintf(g_key_file, sizeof(g_key_file), "%s/server.key", fz_dir());
    snprintf(g_cert_file, sizeof(g_cert_file), "%s/server.crt", fz_dir());
    FILE *kf = fopen(g_key_file, "w"), *cf = fopen(g_cert_file, "w");
    if (!kf || !cf || !PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) || !PEM_write_X509(cf, x))
        abort();
    fclose(kf);
    fclose(cf);
    X509_free(x);
    EVP_PKEY_free(key);
    /* the harness's TLS client: any certificate (this one), ALPN for direct connections */
    g_tls_client = SSL_CTX_new(TLS_client_method());
    if (!g_tls_client) abort();
    SSL_CTX_set_verify(g_tls_client, SSL_VERIFY_NONE, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1);
    sl_pools_init(1);
    make_certificate();
    for (size_t i = 0; i < NCONFIGS; i++) g_cfg[i] = make_config(&configs[i]);
    char err[512];
    /* the pooler's TLS contexts, as at start: built from a config that turns client TLS on (the
     * configs that do not refuse TLS whatever is installed) */
    if (!sl_tls_install(g_cfg[8], err, sizeof(err))) {
        fprintf(stderr, "sl_tls_install: %s\n", err);
        abort();
    }
    sl_config_set_current(sl_config_new_default());
    g_worker.id = 0;
    g_worker.buf_size = (uint32_t)g_cfg[0]->pkt_buf; /* as main.c sizes them (default 4096) */
    sl_list_init(&g_worker.clients);
    sl_list_init(&g_worker.servers);
    if (uv_loop_init(&g_worker.loop) != 0) abort();
    g_worker.loop.data = &g_worker;
    return 0;
}

static bool client_alive(const sl_client *c, uint32_t slot, uint32_t gen)
{
    return sl_worker_find_slot(&g_worker, slot, gen) == c;
}

/* Let the loop deliver what is pending: until pgsluice has read everything or stopped reading. */
static void run_loop(int fd)
{
    for (int i = 0; i < 64; i++) {
        uv_run(&g_worker.loop, UV_RUN_NOWAIT);
        int unread = 0;
        if (ioctl(fd, FIONREAD, &unread) != 0 || unread == 0) break;
    }
    uv_run(&g_worker.loop, UV_RUN_NOWAIT); /* close callbacks of a client closed in the last run */
}

typedef struct replies {
    uint8_t *p;
    size_t n, cap;
} replies;

/* The harness's end of the socketpair: plaintext, or a TLS client on it. */
typedef struct peer {
    int fd;
    SSL *ssl;
} peer;

static ssize_t peer_send(peer *pr, const uint8_t *p, size_t n)
{
    if (!pr->ssl) return send(pr->fd, p, n, MSG_NOSIGNAL);
    if (!n) return 0;
    int w = SSL_write(pr->ssl, p, (int)n);
    ERR_clear_error();
    return w > 0 ? w : -1;
}

static void drain(peer *pr, replies *r)
{
    for (;;) {
        if (r->cap - r->n < 4096) {
            r->cap = r->cap ? r->cap * 2 : 16384;
            r->p = realloc(r->p, r->cap);
            if (!r->p) abort();
        }
        ssize_t got = pr->ssl ? SSL_read(pr->ssl, r->p + r->n, (int)(r->cap - r->n))
                              : recv(pr->fd, r->p + r->n, r->cap - r->n, MSG_DONTWAIT);
        if (got <= 0) {
            ERR_clear_error();
            return;
        }
        r->n += (size_t)got;
    }
}

/* Connect with TLS as a client would: SSLRequest, 'S', handshake; or (direct) a handshake from the
 * first byte with ALPN "postgresql". false: pgsluice did not go along. */
static bool tls_connect(peer *pr, bool direct, int pooler_fd)
{
    if (!direct) {
        static const uint8_t ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
        if (send(pr->fd, ssl_request, sizeof(ssl_request), MSG_NOSIGNAL) != (ssize_t)sizeof(ssl_request)) return false;
        run_loop(pooler_fd);
        uint8_t answer = 0;
        if (recv(pr->fd, &answer, 1, MSG_DONTWAIT) != 1 || answer != 'S') return false;
    }
    pr->ssl = SSL_new(g_tls_client);
    if (!pr->ssl || !SSL_set_fd(pr->ssl, pr->fd)) abort();
    if (direct && SSL_set_alpn_protos(pr->ssl, (const uint8_t *)"\012postgresql", 11) != 0) abort();
    for (int i = 0; i < 100; i++) {
        int rc = SSL_connect(pr->ssl);
        if (rc == 1) return true;
        int e = SSL_get_error(pr->ssl, rc);
        ERR_clear_error();
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
        run_loop(pooler_fd);
    }
    return false;
}

/* The replies: single 'N' bytes may come first (one per SSL/GSSENC request), then whole messages;
 * or an 'S' (tls_possible only), after which TLS records follow that the fuzzed bytes cannot
 * answer: nothing more is checked. Returns whether AuthenticationOk was among them. */
static bool check_replies(const replies *r, int ssl_requests, bool closed, bool tls_possible)
{
    size_t i = 0;
    for (; i < r->n && (r->p[i] == 'N' || r->p[i] == 'S') && ssl_requests-- > 0; i++) {
        if (r->p[i] == 'S') {
            FZ_CHECK(tls_possible, "'S' to an SSLRequest without TLS");
            return false;
        }
    }
    bool auth_ok = false, fatal = false;
    while (i < r->n) {
        FZ_CHECK(r->n - i >= 5, "a partial message header at the end (%zu bytes)", r->n - i);
        char type = (char)r->p[i];
        uint32_t len = sl_get_u32(r->p + i + 1);
        FZ_CHECK(len >= 4 && len <= 1u << 20, "message '%c' with length %u", type, len);
        FZ_CHECK(r->n - i >= 1 + (size_t)len, "message '%c' cut short", type);
        FZ_CHECK(strchr("RESKZNv", type) && type, "unexpected message type '%c' before login ends", type);
        const uint8_t *body = r->p + i + 5;
        if (type == 'v') { /* NegotiateProtocolVersion: newest minor version, then the options not known */
            FZ_CHECK(len >= 12, "short NegotiateProtocolVersion");
            uint32_t n = sl_get_u32(body + 4);
            const uint8_t *p = body + 8, *end = body + len - 4;
            for (uint32_t k = 0; k < n; k++) {
                const uint8_t *nul = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
                FZ_CHECK(nul, "NegotiateProtocolVersion names fewer options than it counts");
                FZ_CHECK(!strncmp((const char *)p, "_pq_.", 5), "NegotiateProtocolVersion names \"%s\"", p);
                p = nul + 1;
            }
            FZ_CHECK(p == end, "NegotiateProtocolVersion longer than its options");
        }
        if (type == 'R') {
            FZ_CHECK(len >= 8, "short authentication request");
            uint32_t code = sl_get_u32(body);
            FZ_CHECK(code == 0 || code == 3 || code == 5 || code == 10 || code == 11 || code == 12, "auth code %u", code);
            if (code == 0) auth_ok = true;
        }
        if (type == 'E' || type == 'N') {
            const char *sev = sl_error_field(body, len - 4, 'S');
            FZ_CHECK(sev && sl_error_field(body, len - 4, 'C') && sl_error_field(body, len - 4, 'M'),
                     "error without severity, code or message");
            FZ_CHECK(body[len - 5] == 0, "error fields not terminated");
            if (type == 'E' && !strcmp(sev, "FATAL")) fatal = true;
        }
        i += 1 + len;
    }
    if (fatal) FZ_CHECK(closed, "FATAL error but the connection stays open");
    return auth_ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    const login_config *lc = &configs[fz_u8(&in) % NCONFIGS];
    sl_config *cfg = g_cfg[lc - configs];
    size_t chunk = fz_u8(&in);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    g_worker.cfg = cfg; /* the worker's config snapshot */
    sl_client_accept(&g_worker, sv[0], "127.0.0.1", false);
    FZ_CHECK(!sl_list_empty(&g_worker.clients), "client not accepted");
    sl_client *c = sl_container_of(g_worker.clients.prev, sl_client, node);
    uint32_t slot = c->slot, gen = c->gen;
    int pooler_fd = sv[0];
    peer pr = {.fd = sv[1]};
    /* TLS is offered on this (plaintext) connection: the pooler's answers to fuzzed bytes that
     * start TLS are TLS records */
    bool tls_possible = lc->sslmode && lc->peer == PEER_PLAIN;
    if (lc->peer != PEER_PLAIN)
        FZ_CHECK(tls_connect(&pr, lc->peer == PEER_DIRECT, pooler_fd), "TLS handshake with pgsluice failed (%s)",
                 lc->peer == PEER_DIRECT ? "direct" : "after SSLRequest");
    bool direct_hello = tls_possible && sl_tls_is_direct_hello(in.p, in.n);

    /* count SSL/GSSENC requests the way the client sends them: only as the first packets */
    int ssl_requests = 0;
    for (size_t off = 0; off + 8 <= in.n; off += 8) {
        uint32_t len = sl_get_u32(in.p + off), code = sl_get_u32(in.p + off + 4);
        if (len != 8 || (code != 80877103u && code != 80877104u)) break;
        ssl_requests++;
    }

    replies r = {0};
    bool closed = false;
    bool startup_phase = true;
    while (in.n && client_alive(c, slot, gen)) {
        size_t n, want = chunk;
        if (!want) { /* the next message */
            want = in.n;
            if (startup_phase && in.n >= 8) {
                uint32_t len = sl_get_u32(in.p), code = sl_get_u32(in.p + 4);
                if (len >= 8) want = len;
                startup_phase = len == 8 && (code == 80877103u || code == 80877104u);
            } else if (!startup_phase && in.n >= 5) {
                want = (size_t)sl_get_u32(in.p + 1) + 1;
            }
            if (want < 1) want = 1;
        }
        const uint8_t *p = fz_bytes(&in, want, &n);
        ssize_t w = peer_send(&pr, p, n);
        if (w < 0) break; /* the pooler closed its end */
        run_loop(pooler_fd);
        drain(&pr, &r);
    }
    if (client_alive(c, slot, gen)) {
        sl_client_close(c, SL_CLOSE_CLIENT_EOF); /* the test is over: the client hangs up */
        uv_run(&g_worker.loop, UV_RUN_NOWAIT);
    } else {
        closed = true;
    }
    FZ_CHECK(sl_list_empty(&g_worker.clients), "a client is left on the worker");
    drain(&pr, &r);
    bool auth_ok = !direct_hello && check_replies(&r, ssl_requests, closed, tls_possible);
    if (lc->sslmode && !strcmp(lc->sslmode, "require") && lc->peer == PEER_PLAIN)
        FZ_CHECK(!auth_ok, "AuthenticationOk without TLS under client_tls_sslmode require");
    if (auth_ok) {
        /* cleartext: plain, or the hba file's hostnossl rule */
        bool cleartext = !strcmp(lc->auth_type, "plain") || (!strcmp(lc->auth_type, "hba") && !pr.ssl);
        bool may = !strcmp(lc->auth_type, "trust") || (cleartext && memmem(data, size, "secret", 6) != NULL);
        FZ_CHECK(may, "AuthenticationOk under auth_type %s", lc->auth_type);
    }
    FZ_LOG("config %s/%d, TLS %s (%s): %zu reply bytes, %s, auth %s", lc->auth_type, lc->stored,
           lc->sslmode ? lc->sslmode : "disable", pr.ssl ? SSL_get_version(pr.ssl) : "plaintext", r.n,
           closed ? "closed by pgsluice" : "open at the end", auth_ok ? "ok" : "not ok");
    free(r.p);
    SSL_free(pr.ssl);
    close(sv[1]);
    return 0;
}
