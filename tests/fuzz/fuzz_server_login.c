/* fuzz_server_login.c - a hostile or broken PostgreSQL server against pgsluice's server login
 * (core/server.c: connect, startup packet, AuthenticationXXX of every kind - cleartext, md5, SASL
 * with SCRAM-SHA-256 server-first and server-final through auth/scram_client.c, unknown codes -,
 * ParameterStatus, BackendKeyData, ErrorResponse, NoticeResponse, NegotiateProtocolVersion,
 * ReadyForQuery; bad lengths and garbage), through the real code: the server connection is
 * launched by sl_server_launch (counted in its route as the pool's launch decision counts it) to a
 * Unix socket the harness listens on, on a worker struct whose libuv loop the harness runs (one
 * thread: a uv_run(UV_RUN_NOWAIT) after each piece of input, then until the SCRAM key derivation
 * pgsluice runs in libuv's thread pool, if any, has called back).
 * Input: a byte that picks the database (what pgsluice knows to log in with: the cleartext
 * password, its md5 hash, or SCRAM keys passed through from a client login), a chunk byte, then
 * the bytes the server sends after the startup packet. Chunk 0: message by message (by their
 * length fields); chunk N: in pieces of N bytes.
 * Checks: pgsluice sends a startup packet for the configured user and database, then only whole
 * password messages ('p') and at the end a Terminate; the cleartext password goes out only when
 * the server asked for it (AuthenticationCleartextPassword), the stored md5 hash never; a login
 * that started SCRAM never ends logged in (the fuzzer cannot sign server-final: the nonce is
 * random) - a server that skips the exchange's end must not be trusted (libpq's rule too); and
 * afterwards the route counts no server (nothing leaked in its accounting). SCRAM iteration counts
 * above 64 are not run (PBKDF2 of the password, at most 10,000,000 iterations by design, would
 * only slow the fuzzer). */
#include "fuzz_common.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "auth/md5.h"
#include "config/config.h"
#include "core/conn.h"
#include "core/server.h"
#include "pool/pool.h"
#include "pool/pool_int.h"
#include "util/log.h"

#define FZ_PORT 5999

static const char *const dbnames[] = {"fz_plain", "fz_md5", "fz_keys"};
#define NDBS (sizeof(dbnames) / sizeof(dbnames[0]))

static sl_config *g_cfg;
static sl_route *g_route[NDBS];
static sl_worker g_worker;
static int g_listen = -1;
static char g_md5[40];

static void drain_mailbox(uv_async_t *a)
{
    sl_worker *w = a->data;
    pthread_mutex_lock(&w->mbox_lock);
    sl_msg *m = w->mbox_head;
    w->mbox_head = w->mbox_tail = NULL;
    pthread_mutex_unlock(&w->mbox_lock);
    while (m) { /* wakes of waiting clients: there are none here */
        sl_msg *next = m->next;
        free(m);
        m = next;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1);
    sl_pools_init(1);
    const char *dir = fz_dir();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%d", dir, FZ_PORT);
    g_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (g_listen < 0 || bind(g_listen, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(g_listen, 16) != 0) abort();
    sl_md5_user_hash("secret", "fuzz", g_md5);
    char ini[2048], path[PATH_MAX], err[1024];
    snprintf(ini, sizeof(ini),
             "[databases]\n"
             "fz_plain = host=%s port=%d dbname=fz user=fuzz password=secret\n"
             "fz_md5 = host=%s port=%d dbname=fz user=fuzz password=%s\n"
             "fz_keys = host=%s port=%d dbname=fz user=fuzz\n"
             "[pgsluice]\nauth_type = trust\nlog_connections = 0\nlog_disconnections = 0\n",
             dir, FZ_PORT, dir, FZ_PORT, g_md5, dir, FZ_PORT);
    fz_write_file("server_login.ini", ini, strlen(ini), path, sizeof(path));
    g_cfg = sl_config_load(path, err, sizeof(err));
    if (!g_cfg) {
        fprintf(stderr, "config: %s\n", err);
        abort();
    }
    sl_config_set_current(g_cfg);
    for (size_t i = 0; i < NDBS; i++) {
        char sqlstate[6];
        g_route[i] = sl_route_get(g_cfg, dbnames[i], "fuzz", SL_REPL_NONE, sqlstate, err, sizeof(err));
        if (!g_route[i] || g_route[i]->nbackends < 1) {
            fprintf(stderr, "route %s: %s\n", dbnames[i], err);
            abort();
        }
    }
    /* keys as a client's SCRAM login would have left them: SCRAM towards the server without a password */
    uint8_t ck[32], sk[32];
    for (int i = 0; i < 32; i++) ck[i] = (uint8_t)(i * 7 + 1), sk[i] = (uint8_t)(i * 13 + 5);
    sl_route_set_scram_keys(g_route[2], ck, sk);

    g_worker.id = 0;
    g_worker.cfg = g_cfg;
    g_worker.buf_size = (uint32_t)g_cfg->pkt_buf;
    sl_list_init(&g_worker.clients);
    sl_list_init(&g_worker.servers);
    if (uv_loop_init(&g_worker.loop) != 0) abort();
    g_worker.loop.data = &g_worker;
    pthread_mutex_init(&g_worker.mbox_lock, NULL);
    if (uv_async_init(&g_worker.loop, &g_worker.async, drain_mailbox) != 0) abort();
    g_worker.async.data = &g_worker;
    uv_unref((uv_handle_t *)&g_worker.async);
    sl_workers = &g_worker;
    sl_nworkers = 1;
    return 0;
}

static bool server_alive(const sl_server *s)
{
    for (sl_list *n = g_worker.servers.next; n != &g_worker.servers; n = n->next)
        if (sl_container_of(n, sl_server, node) == s) return true;
    return false;
}

/* A few turns of the loop, and then until no request is outstanding: a SCRAM key derivation runs in
 * libuv's thread pool (server.c) and the login goes on only in its callback on this loop. */
static void run_loop(void)
{
    for (int i = 0; i < 4; i++) uv_run(&g_worker.loop, UV_RUN_NOWAIT);
    while (g_worker.loop.active_reqs.count > 0) uv_run(&g_worker.loop, UV_RUN_ONCE);
}

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void drain(int fd, bytes *b)
{
    for (;;) {
        if (b->cap - b->n < 4096) {
            b->cap = b->cap ? b->cap * 2 : 16384;
            b->p = realloc(b->p, b->cap);
            if (!b->p) abort();
        }
        ssize_t got = recv(fd, b->p + b->n, b->cap - b->n, MSG_DONTWAIT);
        if (got <= 0) return;
        b->n += (size_t)got;
    }
}

/* A SCRAM iteration count above 64 anywhere in the input: not run with the password (fz_plain). */
static bool many_iterations(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if (p[i] != 'i' || p[i + 1] != '=') continue;
        long v = 0;
        for (size_t k = i + 2; k < n && p[k] >= '0' && p[k] <= '9' && v <= 64; k++) v = v * 10 + (p[k] - '0');
        if (v > 64) return true;
    }
    return false;
}

/* Did the server ask for the password in cleartext (AuthenticationCleartextPassword: an 'R' whose
 * code is 3, whatever its length says)? */
static bool asks_cleartext(const uint8_t *p, size_t n)
{
    static const uint8_t code[4] = {0, 0, 0, 3};
    for (size_t i = 0; i + 9 <= n; i++)
        if (p[i] == 'R' && !memcmp(p + i + 5, code, 4)) return true;
    return false;
}

/* What pgsluice sent: the startup packet, then whole 'p' messages and at most a final Terminate.
 * Returns whether a SASLInitialResponse (SCRAM started) was among them. */
static bool check_sent(const bytes *b, bool logged_in)
{
    FZ_CHECK(b->n >= 8, "no startup packet (%zu bytes)", b->n);
    uint32_t len = sl_get_u32(b->p);
    FZ_CHECK(len >= 8 && len <= b->n && sl_get_u32(b->p + 4) == SL_PROTO_V3, "bad startup packet");
    static const char params[] = "user\0fuzz\0database\0fz\0";
    FZ_CHECK(len == 8 + sizeof(params) && !memcmp(b->p + 8, params, sizeof(params)), "startup parameters");
    bool sasl = false, terminated = false;
    for (size_t i = len; i < b->n;) {
        FZ_CHECK(!terminated, "bytes after Terminate");
        FZ_CHECK(b->n - i >= 5, "a partial message header at the end");
        char type = (char)b->p[i];
        uint32_t mlen = sl_get_u32(b->p + i + 1);
        FZ_CHECK(mlen >= 4 && b->n - i >= 1 + (size_t)mlen, "message '%c' with length %u cut short", type, mlen);
        FZ_CHECK(type == 'p' || type == 'X', "unexpected message '%c' to a server during login", type);
        if (type == 'X') {
            FZ_CHECK(logged_in, "Terminate to a server that is not logged in");
            terminated = true;
        }
        const uint8_t *body = b->p + i + 5;
        if (type == 'p' && mlen >= 4 + 14 && !memcmp(body, "SCRAM-SHA-256", 13)) sasl = true;
        i += 1 + mlen;
    }
    return sasl;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    size_t db = fz_u8(&in) % NDBS;
    size_t chunk = fz_u8(&in);
    if (db == 0 && many_iterations(in.p, in.n)) return 0;
    sl_route *r = g_route[db];
    sl_backend *b = r->backends[0];

    /* the launch decision's accounting, then the launch */
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_mutex_lock(&r->lock);
    bool counted = sl_route_add_launch_locked(b, 0, &act);
    sl_mutex_unlock(&r->lock);
    sl_pool_actions_free(&act);
    FZ_CHECK(counted, "launch not counted");
    sl_server *s = sl_server_launch(&g_worker, b, 0, 0);
    FZ_CHECK(s, "launch failed");
    int fd = -1;
    for (int i = 0; i < 100 && fd < 0; i++) {
        run_loop();
        fd = accept4(g_listen, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK) abort();
    }
    FZ_CHECK(fd >= 0, "pgsluice did not connect");
    bytes sent = {0};
    run_loop();
    drain(fd, &sent);

    bool writes_ok = true;
    while (in.n && server_alive(s) && writes_ok) {
        size_t n, want = chunk;
        if (!want) want = in.n >= 5 ? (size_t)sl_get_u32(in.p + 1) + 1 : in.n;
        if (want < 1) want = 1;
        const uint8_t *p = fz_bytes(&in, want, &n);
        size_t off = 0;
        while (off < n) { /* the socket buffer may fill: let pgsluice read between pieces */
            ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && server_alive(s)) {
                run_loop();
                drain(fd, &sent);
                continue;
            }
            if (w < 0) {
                writes_ok = false; /* pgsluice closed its end */
                break;
            }
            off += (size_t)w;
        }
        run_loop();
        drain(fd, &sent);
    }
    bool logged_in = server_alive(s) && s->state == SL_SV_IDLE;
    if (server_alive(s)) sl_server_close(s, logged_in ? SL_CLOSE_SHUTDOWN : SL_CLOSE_SERVER_EOF);
    run_loop();
    drain(fd, &sent);
    FZ_CHECK(sl_list_empty(&g_worker.servers), "a server is left on the worker");

    bool sasl = check_sent(&sent, logged_in);
    FZ_CHECK(!(logged_in && sasl), "logged in after SCRAM started, without the server's signature");
    if (memmem(sent.p, sent.n, "secret", 6))
        FZ_CHECK(db == 0 && asks_cleartext(data, size), "the cleartext password sent unasked");
    FZ_CHECK(!memmem(sent.p, sent.n, g_md5, strlen(g_md5)), "the stored md5 hash sent to the server");
    sl_mutex_lock(&r->lock);
    int left = r->n_servers, connecting = b->n_connecting;
    sl_mutex_unlock(&r->lock);
    FZ_CHECK(left == 0 && connecting == 0, "the route still counts %d servers (%d connecting)", left, connecting);
    FZ_LOG("db %s, chunk %zu: %zu bytes sent by pgsluice, %s%s", dbnames[db], chunk, sent.n,
           logged_in ? "logged in" : "not logged in", sasl ? ", SCRAM started" : "");
    free(sent.p);
    close(fd);
    return 0;
}
