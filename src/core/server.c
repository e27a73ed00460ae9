/* server.c - a connection to PostgreSQL: look up its backend's host, connect (every address in
 * turn, as libpq does), log in (cleartext, md5, SCRAM incl. pass-through), and close it. The
 * pooler's own queries on it live in server_setup.c; its changing hands in handoff.c. */
#include "core/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "core/cancel.h"
#include "core/client.h"
#include "core/dispatch.h"
#include "core/lifecycle.h"
#include "core/listen_fanout.h"
#include "core/msgread.h"
#include "core/proxy.h"
#include "core/proxy_ps.h"
#include "net/sockutil.h"
#include "net/tls.h"
#include "proto/msgtype.h"
#include "util/log.h"
#include "util/time.h"

#define SV_LOG(s, lvl, fmt, ...)                                                                       \
    sl_log_msg(lvl, "S-0x%llx: %s/%s@%s " fmt, (unsigned long long)(s)->id, sl_server_route(s)->db_name, \
               sl_server_route(s)->user, (s)->addr_str, ##__VA_ARGS__)

#define LOGIN_MSG_MAX (1u << 20)

static void server_on_event(sl_stream *st, int events);
static void login_input(sl_server *s);
static void scram_job_detach(sl_server *s);

/* Where a connection stands in TLS negotiation (s->tls_step). */
enum { TLS_STEP_NONE = 0, TLS_STEP_ANSWER, TLS_STEP_HANDSHAKE };

static void free_connect(sl_connect *k)
{
    if (k->res) uv_freeaddrinfo(k->res);
    k->res = k->cur = k->next = NULL;
}

void sl_server_free(sl_stream *st)
{
    sl_server *s = (sl_server *)st;
    if (s->await_detach) { /* sl_server_detach_for frees it */
        s->free_pending = true;
        return;
    }
    sl_params_clear(&s->params);
    free(s->found_secret);
    sl_ps_server_gone(s);
    free_connect(&s->conn);
    if (s->scram) {
        sl_scram_client_clear(s->scram);
        free(s->scram);
    }
    free(s);
}

void sl_server_close(sl_server *s, sl_close_reason why)
{
    if (s->state == SL_SV_CLOSING) return;
    if (s->fanout) sl_fanout_server_closed(s); /* its database reconnects */
    /* parked in the pool: another worker may have just taken it, and then a detach message is on
     * its way here; it will find the server closing, and free it */
    if (s->state == SL_SV_IDLE && sl_route_take_idle(&s->pc) == SL_IDLE_PROMISED) s->await_detach = true;
    bool quiet = s->state == SL_SV_LOGIN || s->state == SL_SV_CONNECTING; /* login failures log themselves */
    if (why != SL_CLOSE_NONE && (sl_log_verbose() >= 1 || !quiet))
        SV_LOG(s, sl_log_verbose() >= 1 ? SL_LOG_DEBUG : SL_LOG_INFO, "closing because: %s (age=%llds)",
               sl_close_reason_text(why), (long long)((sl_now_us() - s->pc.connect_time) / 1000000));
    sl_client *c = s->client;
    s->client = NULL;
    /* answers on their way to the client go first, before its error (only while forwarding: a
     * server in setup answers pgsluice's own queries) */
    bool whole = !c || c->server != s || c->state != SL_CL_ACTIVE || s->state != SL_SV_ACTIVE ||
                 sl_proxy_keep_answers(c, s);
    if (c && c->server == s) c->server = NULL;
    /* a healthy connection closed on purpose says goodbye */
    if (s->s.poll_open && sl_close_reason_polite(why)) {
        sl_pb_terminate(&s->s.out);
        (void)sl_stream_flush(&s->s, NULL);
    }
    sl_server_set_state(s, SL_SV_CLOSING);
    sl_cancel_server_gone(s);
    scram_job_detach(s);
    if (s->conn.resolve) { /* its callback still runs (cancelled or not) and frees the request */
        s->conn.resolve->data = NULL;
        uv_cancel((uv_req_t *)s->conn.resolve);
        s->conn.resolve = NULL;
    }
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_route_forget(&s->pc, &s->pend, &act);
    sl_stream_shutdown(&s->s);
    if (!s->conn.retrying) /* else the retry's detach, still to come, frees it */
        sl_stream_close(&s->s, sl_server_free);
    if (c && c->state == SL_CL_ACTIVE) sl_proxy_server_lost_client(c, whole);
    sl_carry_out(&act);
}

bool sl_server_attach(sl_server *s, sl_worker *w)
{
    if (!sl_stream_attach(&s->s, w, server_on_event)) return false;
    /* a server adopted from a takeover is already counted on w's idle list, where other workers read
     * its worker under the route lock: written only when it changes */
    if (s->pc.worker != w->id) s->pc.worker = w->id;
    return true;
}

/* ---- connect ---- */

static void login_failed(sl_server *s, const char *sqlstate, const char *msg)
{
    SV_LOG(s, SL_LOG_WARNING, "server login failed: %s", msg);
    /* server_tls_sslmode allow: a server that refuses a plaintext login (pg_hba.conf hostssl) is asked
     * for TLS from the next connection on, as libpq's allow tries again with TLS */
    if (s->tls_plan == SL_TLS_PLAN_PLAIN_THEN_TLS && !sl_stream_is_tls(&s->s) && sqlstate &&
        !strcmp(sqlstate, "28000"))
        __atomic_store_n(&s->pc.backend->tls_after_refusal, true, __ATOMIC_RELAXED);
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_route_login_failed(s->pc.backend, &s->pc, &s->pend, sqlstate, msg, &act); /* counted off here */
    sl_server_close(s, SL_CLOSE_LOGIN_FAILED);
    sl_carry_out(&act);
}

/* Unix socket directories and numeric addresses connect at once; host names are looked up in
 * libuv's thread pool (a slow DNS server must not stall the worker) and the answer is kept in the
 * backend for dns_max_ttl. */
static bool needs_lookup(const char *host)
{
    if (!host || !*host || host[0] == '/') return false;
    struct in_addr a4;
    struct in6_addr a6;
    return inet_pton(AF_INET, host, &a4) != 1 && inet_pton(AF_INET6, host, &a6) != 1;
}

static int connect_direct(const char *host, int port)
{
    if (!host || !*host || host[0] == '/') {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%d", host && *host ? host : "/var/run/postgresql", port);
        return sl_sock_connect((struct sockaddr *)&sa, sizeof(sa));
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res) {
        errno = EINVAL;
        return -1;
    }
    int fd = sl_sock_connect(res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return fd;
}

/* The socket is connecting (or failed to start): watch it, or report the failure. */
static void connect_started(sl_server *s, sl_worker *w, int fd)
{
    s->s.fd = fd;
    if (fd < 0 || !sl_server_attach(s, w)) {
        if (s->conn.name[0]) sl_backend_dns_forget(s->pc.backend);
        char msg[300];
        snprintf(msg, sizeof(msg), "could not connect to server %s: %s", s->addr_str, strerror(errno));
        login_failed(s, "08006", msg);
        return;
    }
    sl_stream_set_poll(&s->s, UV_WRITABLE);
    sl_log_debug("S-0x%llx: connecting to %s (worker %d)", (unsigned long long)s->id, s->addr_str, w->id);
}

/* Connect to the looked-up addresses in order until one connect starts (connected() comes back
 * here through retry_detached when one is refused). */
static void try_next_address(sl_server *s)
{
    int err = EHOSTUNREACH;
    while (s->conn.next) {
        struct addrinfo *ai = s->conn.next;
        s->conn.next = ai->ai_next;
        int fd = sl_sock_connect(ai->ai_addr, ai->ai_addrlen);
        if (fd >= 0) {
            s->conn.cur = ai;
            connect_started(s, s->s.w, fd);
            return;
        }
        err = errno;
    }
    errno = err;
    connect_started(s, s->s.w, -1);
}

/* The poll handle of a refused attempt is closed: close its socket and go on with the next address
 * (or finish closing, if the server was closed meanwhile). */
static void retry_detached(sl_stream *st)
{
    sl_server *s = (sl_server *)st;
    s->conn.retrying = false;
    if (s->state == SL_SV_CLOSING) {
        sl_stream_close(&s->s, sl_server_free);
        return;
    }
    sl_stream_close(&s->s, NULL); /* the refused socket */
    sl_stream_init(&s->s, -1);
    s->s.w = &sl_workers[s->pc.worker];
    try_next_address(s);
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    sl_server *s = req->data;
    free(req);
    if (!s) { /* the server was closed while its name was looked up */
        uv_freeaddrinfo(res);
        return;
    }
    s->conn.resolve = NULL;
    sl_now_refresh();
    if (status != 0 || !res) {
        char msg[400];
        snprintf(msg, sizeof(msg), "could not translate host name \"%s\" to address: %s", s->conn.name,
                 uv_strerror(status ? status : UV_EAI_NONAME));
        uv_freeaddrinfo(res);
        login_failed(s, "08006", msg);
        return;
    }
    s->conn.res = s->conn.next = res;
    try_next_address(s);
}

static sl_server *server_new(sl_worker *w, sl_backend *b)
{
    sl_server *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->id = __atomic_add_fetch(&sl_conn_counter, 1, __ATOMIC_RELAXED);
    s->state = SL_SV_CONNECTING;
    s->xact = SL_XACT_IDLE;
    s->pc.backend = b;
    s->pc.worker = w->id;
    s->pc.target_gen = __atomic_load_n(&b->target_gen, __ATOMIC_RELAXED);
    s->pc.connect_time = s->last_used = sl_now_us();
    sl_list_init(&s->pc.idle_node);
    sl_list_init(&s->cancels);
    sl_stmt_cache_init(&s->ps_cache);
    sl_stream_init(&s->s, -1);
    s->s.w = w;
    sl_list_insert_tail(&w->servers, &s->node);
    sl_backend_addr_str(b, s->addr_str, sizeof(s->addr_str));
    return s;
}

static sl_server *start_connect(sl_worker *w, sl_backend *b, sl_server *s);

sl_server *sl_server_launch(sl_worker *w, sl_backend *b, uint32_t slot, uint32_t gen)
{
    sl_server *s = server_new(w, b);
    if (s) {
        s->for_slot = slot;
        s->for_gen = gen;
    }
    if (!s) {
        sl_pool_actions act;
        sl_pool_actions_init(&act);
        sl_route_launch_failed(b, NULL);
        sl_route_login_failed(b, NULL, NULL, "53200", "out of memory", &act);
        sl_carry_out(&act);
        return NULL;
    }
    return start_connect(w, b, s);
}

void sl_server_launch_listener(sl_worker *w, sl_backend *b, struct sl_fanout_db *fanout)
{
    sl_server *s = server_new(w, b);
    if (!s) {
        sl_log_error("LISTEN fan-out: out of memory opening a listener connection");
        return;
    }
    /* not one of its route's servers: nothing to count off when it closes */
    s->pc.gone = true;
    s->pc.logged_in = true;
    s->fanout = fanout;
    sl_fanout_server_created(s);
    (void)start_connect(w, b, s);
}

static sl_server *start_connect(sl_worker *w, sl_backend *b, sl_server *s)
{
    /* host and port never change for a backend */
    if (!needs_lookup(b->host)) {
        connect_started(s, w, connect_direct(b->host, b->port));
        return s;
    }
    snprintf(s->conn.name, sizeof(s->conn.name), "%s", b->host);
    struct sockaddr_storage ss;
    socklen_t len;
    if (sl_backend_dns_get(b, w->cfg->dns_max_ttl, &ss, &len)) {
        connect_started(s, w, sl_sock_connect((struct sockaddr *)&ss, len));
        return s;
    }
    uv_getaddrinfo_t *req = malloc(sizeof(*req));
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", b->port);
    int rc = req ? uv_getaddrinfo(&w->loop, req, resolved, s->conn.name, portstr, &hints) : UV_ENOMEM;
    if (rc != 0) {
        free(req);
        char msg[400];
        snprintf(msg, sizeof(msg), "could not look up host name \"%s\": %s", s->conn.name, uv_strerror(rc));
        login_failed(s, "08006", msg);
        return NULL;
    }
    req->data = s;
    s->conn.resolve = req;
    sl_log_debug("S-0x%llx: looking up %s (worker %d)", (unsigned long long)s->id, s->conn.name, w->id);
    return s;
}

/* ---- login ---- */

static void send_startup(sl_server *s)
{
    char user[256], db[256];
    sl_route_login_target(s->pc.backend, user, sizeof(user), db, sizeof(db), NULL, NULL);
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, 0);
    sl_pb_u32(out, SL_PROTO_V3);
    sl_pb_str(out, "user");
    sl_pb_str(out, user);
    sl_pb_str(out, "database");
    sl_pb_str(out, db);
    if (s->for_gen) { /* a replication connection: the client's own parameters, as it asked */
        const sl_client *c = sl_worker_find_slot(s->s.w, s->for_slot, s->for_gen);
        sl_pb_str(out, "replication");
        sl_pb_str(out, sl_server_route(s)->replication == SL_REPL_LOGICAL ? "database" : "true");
        for (int i = 0; c && i < SL_NPARAMS; i++) {
            if (!c->params.v[i]) continue;
            sl_pb_str(out, sl_param_names[i]);
            sl_pb_str(out, c->params.v[i]);
        }
    }
    sl_pb_u8(out, 0);
    sl_pb_end(out);
    sl_server_set_state(s, SL_SV_LOGIN);
}

/* The password to log in with: the [databases] password, else the auth file's entry. */
static char *server_password(sl_server *s, char *user, size_t ulen)
{
    char db[256], *pw = NULL;
    sl_route_login_target(s->pc.backend, user, ulen, db, sizeof(db), &pw, NULL);
    if (pw) return pw;
    const sl_userlist_entry *e = sl_config_find_userlist(s->s.w->cfg, user);
    if (e) return strdup(e->password);
    return sl_route_auth_secret(sl_server_route(s), 0); /* what auth_query found for this user */
}

static void send_password_msg(sl_server *s, const void *data, size_t len)
{
    sl_pb_begin(&s->s.out, SL_FE_PASSWORD);
    sl_pb_bytes(&s->s.out, data, len);
    sl_pb_end(&s->s.out);
}

/* Channel binding towards the server, as libpq's channel_binding=prefer: bound (SCRAM-SHA-256-PLUS)
 * when the server offers it over TLS, "y" (could bind, was not offered) over TLS otherwise. */
static bool server_channel_binding(sl_server *s, sl_scram_client *sc, bool plus_offered)
{
    uint8_t cb[SL_SCRAM_MAX_CB_DATA];
    size_t cblen = 0;
    if (!sl_stream_is_tls(&s->s) || !sl_stream_tls_server_end_point(&s->s, cb, sizeof(cb), &cblen) || !cblen)
        return true; /* plaintext, or a certificate whose hash cannot bind: "n" */
    if (plus_offered) {
        if (sl_log_verbose() >= 1) SV_LOG(s, SL_LOG_DEBUG, "SCRAM-SHA-256-PLUS: bound to the server's certificate");
        return sl_scram_client_set_channel_binding(sc, SL_SCRAM_CB_BOUND, cb, cblen);
    }
    return sl_scram_client_set_channel_binding(sc, SL_SCRAM_CB_CLIENT_ONLY, NULL, 0);
}

static bool auth_sasl_start(sl_server *s, char *pw, bool plus_offered)
{
    sl_scram_client *sc = calloc(1, sizeof(*sc));
    if (!sc) return false;
    if (pw && !sl_scram_is_secret(pw) && !sl_md5_is_hash(pw)) {
        sl_scram_client_init(sc, pw, NULL, NULL);
    } else {
        uint8_t ck[32], sk[32];
        if (!sl_route_scram_keys(sl_server_route(s), ck, sk)) {
            free(sc);
            login_failed(s, "28P01",
                         "no cleartext password or SCRAM keys available to log in to the server (set password= in "
                         "[databases], or log in once with SCRAM so its keys can be passed through)");
            return false;
        }
        sl_scram_client_init(sc, NULL, ck, sk);
    }
    s->scram = sc;
    char first[512];
    if (!server_channel_binding(s, sc, plus_offered) || !sl_scram_client_first(sc, first, sizeof(first))) {
        login_failed(s, "XX000", "could not start the SCRAM exchange with the server");
        return false;
    }
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, SL_FE_PASSWORD);
    sl_pb_str(out, sl_scram_client_mechanism(sc));
    sl_pb_u32(out, (uint32_t)strlen(first));
    sl_pb_bytes(out, first, strlen(first));
    sl_pb_end(out);
    return true;
}

/* ---- SCRAM key derivation off the worker's loop ----
 * PBKDF2 with the server's iteration count (up to SL_SCRAM_MAX_ITERATIONS: seconds) runs in libuv's thread
 * pool on copies of the password, salt and server-first; the login waits (its server's input is neither read
 * nor parsed meanwhile) and goes on in scram_keys_done on the worker. A server closed meanwhile (timeout,
 * shutdown, ...) detaches the job first (scram_job_detach): the callback then only frees it. */

typedef struct scram_job {
    uv_work_t req;
    sl_server *s;                /* NULL once detached: the server is gone */
    uint64_t server_id;          /* for the log, once detached */
    char *password;
    uint8_t salt[SL_SCRAM_CLIENT_MAX_SALT];
    size_t salt_len;
    int iterations;
    char *server_first;          /* the message the keys are for: client-final is computed from it */
    size_t len;
    uint8_t client_key[SL_SCRAM_KEY_LEN], server_key[SL_SCRAM_KEY_LEN];
    bool ok;
} scram_job;

static void scram_job_free(scram_job *j)
{
    if (j->password) {
        explicit_bzero(j->password, strlen(j->password));
        free(j->password);
    }
    free(j->server_first);
    explicit_bzero(j, sizeof(*j));
    free(j);
}

static void scram_derive(uv_work_t *req)
{
    scram_job *j = req->data;
    j->ok = sl_scram_derive_keys(j->password, j->salt, j->salt_len, j->iterations, j->client_key, j->server_key);
}

static void scram_keys_done(uv_work_t *req, int status)
{
    scram_job *j = req->data;
    sl_server *s = j->s;
    if (!s) { /* closed meanwhile (uv_cancel may have stopped it before it ran: status UV_ECANCELED) */
        if (sl_log_verbose() >= 1)
            sl_log_msg(SL_LOG_DEBUG, "S-0x%llx: SCRAM key derivation %s after its server connection closed",
                       (unsigned long long)j->server_id, status == UV_ECANCELED ? "cancelled" : "finished");
        scram_job_free(j);
        return;
    }
    s->scram_job = NULL;
    char out[1024];
    const char *errmsg = NULL;
    if (status != 0 || !j->ok) {
        login_failed(s, "XX000", "SCRAM key derivation failed");
    } else if (!sl_scram_client_set_keys(s->scram, j->client_key, j->server_key) ||
               !sl_scram_client_final(s->scram, j->server_first, j->len, out, sizeof(out), &errmsg)) {
        login_failed(s, "28000", errmsg ? errmsg : "SCRAM exchange failed");
    } else {
        send_password_msg(s, out, strlen(out));
        explicit_bzero(out, sizeof(out));
        sl_stream_set_poll(&s->s, UV_READABLE);
        login_input(s); /* what the server sent meanwhile, if anything; sends client-final */
    }
    scram_job_free(j);
}

static void scram_job_detach(sl_server *s)
{
    scram_job *j = s->scram_job;
    if (!j) return;
    j->s = NULL;
    s->scram_job = NULL;
    uv_cancel((uv_req_t *)&j->req); /* not started yet: it never runs; scram_keys_done frees it either way */
}

/* server-first arrived for a password login: derive the keys in the thread pool. false + *errmsg: refused
 * (malformed, too many iterations, out of memory); the exchange is over. */
static bool scram_derive_start(sl_server *s, const char *server_first, size_t len, const char **errmsg)
{
    scram_job *j = calloc(1, sizeof(*j));
    if (!j) {
        *errmsg = "out of memory";
        return false;
    }
    sl_scram_client *sc = s->scram;
    if (!sl_scram_client_key_params(sc, server_first, len, j->salt, &j->salt_len, &j->iterations, errmsg)) {
        scram_job_free(j);
        return false;
    }
    j->password = strdup(sc->password);
    j->server_first = malloc(len ? len : 1);
    if (!j->password || !j->server_first) {
        scram_job_free(j);
        *errmsg = "out of memory";
        return false;
    }
    memcpy(j->server_first, server_first, len);
    j->len = len;
    j->s = s;
    j->server_id = s->id;
    j->req.data = j;
    if (uv_queue_work(&s->s.w->loop, &j->req, scram_derive, scram_keys_done) != 0) {
        scram_job_free(j);
        *errmsg = "could not start the SCRAM key derivation";
        return false;
    }
    s->scram_job = j;
    if (sl_log_verbose() >= 1)
        SV_LOG(s, SL_LOG_DEBUG, "SCRAM: deriving the keys (%d iterations) in the thread pool", j->iterations);
    /* nothing from the server is read until the keys are there (what it says meanwhile waits in its socket) */
    sl_stream_set_poll(&s->s, sl_stream_out_pending(&s->s) ? UV_WRITABLE : 0);
    return true;
}

/* AuthenticationXXX from the server. Returns false when the server was closed. */
static bool handle_auth(sl_server *s, const uint8_t *body, uint32_t len)
{
    sl_rd r;
    sl_rd_init(&r, body, len);
    uint32_t code = sl_rd_u32(&r);
    if (code == SL_AUTH_REQ_OK) {
        /* once SCRAM has started, only a server that proved it knows the password (its signature in
         * server-final) is believed; one that skips to AuthenticationOk may be anyone in the middle
         * (libpq refuses it too). Found by fuzz_server_login. */
        if (s->scram && !sl_scram_client_verified(s->scram)) {
            login_failed(s, "28000", "server sent AuthenticationOk before completing the SCRAM exchange");
            return false;
        }
        s->auth_ok = true;
        return true;
    }
    char user[256];
    char *pw = server_password(s, user, sizeof(user));
    const char *errmsg = NULL;
    bool ok = true;
    if (code == SL_AUTH_REQ_CLEARTEXT) {
        if (!pw || sl_md5_is_hash(pw) || sl_scram_is_secret(pw)) ok = false, errmsg = "server asks for a cleartext password, none is known";
        else send_password_msg(s, pw, strlen(pw) + 1);
    } else if (code == SL_AUTH_REQ_MD5) {
        const uint8_t *salt = sl_rd_bytes(&r, 4);
        char hash[36], ans[36];
        if (!salt || !pw || sl_scram_is_secret(pw)) {
            ok = false, errmsg = "server asks for an md5 password, none is known";
        } else {
            if (sl_md5_is_hash(pw)) snprintf(hash, sizeof(hash), "%s", pw);
            else sl_md5_user_hash(pw, user, hash);
            sl_md5_salted(hash, salt, ans);
            send_password_msg(s, ans, strlen(ans) + 1);
        }
    } else if (code == SL_AUTH_REQ_SASL) {
        bool has = false, plus = false;
        const char *m;
        while ((m = sl_rd_str(&r)) && *m) {
            if (!strcmp(m, SL_SCRAM_MECH)) has = true;
            if (!strcmp(m, SL_SCRAM_MECH_PLUS)) plus = true;
        }
        if (s->scram) ok = false, errmsg = "server started a second SASL exchange"; /* found by fuzz_server_login: the first one leaked */
        else if (!has && !plus) ok = false, errmsg = "server offers no SASL mechanism pgsluice supports";
        else if (!has && !sl_stream_is_tls(&s->s)) /* -PLUS needs TLS to bind to: a server that offers only
                                                     that over plaintext is lying (libpq refuses too) */
            ok = false, errmsg = "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection";
        else if (!auth_sasl_start(s, pw, plus)) {
            free(pw);
            return false;
        }
    } else if (code == SL_AUTH_REQ_SASL_CONTINUE || code == SL_AUTH_REQ_SASL_FINAL) {
        char out[1024];
        size_t n = sl_rd_left(&r);
        const char *data = (const char *)sl_rd_bytes(&r, n);
        if (!s->scram) ok = false, errmsg = "unexpected SASL message";
        else if (code == SL_AUTH_REQ_SASL_CONTINUE && sl_scram_client_needs_keys(s->scram)) {
            if (!scram_derive_start(s, data ? data : "", n, &errmsg)) ok = false;
        } else if (code == SL_AUTH_REQ_SASL_CONTINUE) {
            if (!sl_scram_client_final(s->scram, data, n, out, sizeof(out), &errmsg)) ok = false;
            else send_password_msg(s, out, strlen(out));
        } else if (!sl_scram_client_verify(s->scram, data, n, &errmsg)) ok = false;
    } else {
        ok = false, errmsg = "server asks for an authentication method pgsluice does not support";
    }
    free(pw);
    if (!ok) {
        login_failed(s, "28000", errmsg ? errmsg : "authentication with the server failed");
        return false;
    }
    return true;
}

static void login_complete(sl_server *s, const sl_pktbuf *other_params)
{
    if (s->scram) {
        sl_scram_client_clear(s->scram);
        free(s->scram);
        s->scram = NULL;
    }
    sl_route_logged_in(&s->pc);
    if (sl_log_verbose() >= 1) SV_LOG(s, SL_LOG_DEBUG, "logged in, backend pid %u", s->be_pid);
    sl_backend_set_welcome(s->pc.backend, &s->params, other_params);
    s->pc.idle_since = sl_now_us();
    if (s->fanout) { /* a database's LISTEN connection: its own, never pooled */
        sl_server_set_state(s, SL_SV_ACTIVE);
        sl_fanout_server_ready(s);
        return;
    }
    if (s->for_gen) { /* a replication route's: to the client it was opened for, or closed */
        sl_client *c = sl_worker_find_slot(s->s.w, s->for_slot, s->for_gen);
        if (c && c->route == sl_server_route(s) && sl_route_claim_waiter(c->route, &c->wt)) {
            sl_server_set_state(s, SL_SV_ACTIVE);
            sl_client_got_server(c, s);
        } else {
            sl_server_close(s, SL_CLOSE_REPLICATION_CLIENT_GONE);
        }
        return;
    }
    s->setup = SL_SETUP_CONNECT_QUERY;
    if (sl_server_begin_setup(s)) return;
    sl_server_release(s);
}

/* Server messages during login, each one whole. */
static void login_input(sl_server *s)
{
    sl_stream *st = &s->s;
    sl_pktbuf others;
    sl_pb_init(&others);
    while (s->state == SL_SV_LOGIN && !s->scram_job) { /* with a key derivation running: its callback goes on */
        sl_wire_msg m;
        sl_take_status ts = sl_take_msg(st, LOGIN_MSG_MAX, &m);
        if (ts == SL_TAKE_MORE) break;
        if (ts != SL_TAKE_OK) {
            login_failed(s, ts == SL_TAKE_NOMEM ? "53200" : "08P01",
                         ts == SL_TAKE_NOMEM ? "out of memory" : "server sent a message with an invalid length during login");
            break;
        }
        sl_rd r;
        sl_rd_init(&r, m.body, m.len);
        if (m.type == SL_BE_AUTH) {
            if (!handle_auth(s, m.body, m.len)) break;
        } else if (m.type == SL_BE_PARAM_STATUS) {
            const char *name = sl_rd_str(&r), *val = sl_rd_str(&r);
            if (!name || !val) continue;
            /* what the server is (PostgreSQL 14+): a route with roles never gives a standby a write */
            if (!strcmp(name, "in_hot_standby")) s->pc.standby = !strcmp(val, "on") ? SL_STANDBY_ON : SL_STANDBY_OFF;
            int id = sl_param_lookup(name);
            if (id >= 0) {
                sl_params_set(&s->params, id, val);
                s->reported |= 1u << id;
            } else {
                sl_pb_param_status(&others, name, val);
            }
        } else if (m.type == SL_BE_BACKEND_KEY) {
            s->be_pid = sl_rd_u32(&r);
            s->be_key = sl_rd_u32(&r);
        } else if (m.type == SL_BE_ERROR) {
            const char *text = sl_error_field(m.body, m.len, 'M');
            const char *code = sl_error_field(m.body, m.len, 'C');
            char msg[300];
            snprintf(msg, sizeof(msg), "%s", text ? text : "server refused login");
            login_failed(s, code ? code : "08006", msg);
            break;
        } else if (m.type == SL_BE_READY) {
            /* a server that never said AuthenticationOk has not logged us in (found by
             * fuzz_server_login: it was taken as logged in, whatever exchange it had started) */
            if (!s->auth_ok) login_failed(s, "08P01", "server sent ReadyForQuery before AuthenticationOk");
            else login_complete(s, &others);
            break;
        } /* notices and NegotiateProtocolVersion are ignored */
    }
    sl_pb_free(&others);
    if (s->state != SL_SV_CLOSING && st->pos == st->end) sl_stream_recycle_buf(st);
    if (s->state == SL_SV_LOGIN && sl_stream_out_pending(st)) {
        if (sl_stream_flush(st, NULL) == SL_IO_AGAIN)
            sl_stream_set_poll(st, s->scram_job ? UV_WRITABLE : UV_READABLE | UV_WRITABLE);
    }
}

/* ---- events ---- */

static void connected(sl_server *s)
{
    int err = sl_stream_connect_result(&s->s);
    if (err) {
        if (s->conn.next) { /* the name has more addresses: try the next one, as libpq does */
            s->conn.retrying = true;
            sl_stream_detach(&s->s, retry_detached);
            return;
        }
        if (s->conn.name[0]) sl_backend_dns_forget(s->pc.backend); /* look the name up again next time */
        char msg[300];
        snprintf(msg, sizeof(msg), "could not connect to server %s: %s", s->addr_str, strerror(err));
        login_failed(s, "08006", msg);
        return;
    }
    if (s->conn.res) { /* remember the address that answered */
        sl_backend_dns_store(s->pc.backend, s->conn.cur->ai_addr, s->conn.cur->ai_addrlen);
        free_connect(&s->conn);
    }
    sl_sock_tune(s->s.fd, s->s.w->cfg, true);
    if (s->s.w->cfg->log_connections) { /* PgBouncer's line: "new connection to server (from addr:port)" */
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char local[80] = "unix socket";
        if (getsockname(s->s.fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family != AF_UNIX) {
            char host[64] = "?";
            const void *a = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                                     : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
            int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port);
            inet_ntop(ss.ss_family, a, host, sizeof(host));
            snprintf(local, sizeof(local), "%s:%d", host, port);
        }
        SV_LOG(s, SL_LOG_INFO, "new connection to server (from %s)", local);
    }
    sl_backend *b = s->pc.backend;
    bool is_unix = !b->host || !*b->host || b->host[0] == '/';
    s->tls_plan = (uint8_t)sl_tls_server_plan((sl_tls_mode)s->s.w->cfg->server_tls_sslmode, is_unix);
    if (s->tls_plan == SL_TLS_PLAN_PLAIN_THEN_TLS && __atomic_load_n(&b->tls_after_refusal, __ATOMIC_RELAXED))
        s->tls_plan = SL_TLS_PLAN_TLS_OR_PLAIN;
    if (s->tls_plan == SL_TLS_PLAN_TLS_OR_PLAIN || s->tls_plan == SL_TLS_PLAN_TLS_ONLY) {
        sl_stream_request_encryption(&s->s);
        s->tls_step = TLS_STEP_ANSWER;
        sl_server_set_state(s, SL_SV_LOGIN);
        return;
    }
    send_startup(s);
}

/* The TLS handshake with the server is over or waits for the socket. Over: the startup packet goes. */
static void server_handshake(sl_server *s)
{
    sl_io_status st = sl_stream_handshake(&s->s);
    if (st == SL_IO_AGAIN) return;
    if (st != SL_IO_OK) {
        char msg[400];
        snprintf(msg, sizeof(msg), "TLS handshake with server failed: %s",
                 *sl_stream_tls_error(&s->s) ? sl_stream_tls_error(&s->s) : "connection closed");
        login_failed(s, "08006", msg);
        return;
    }
    s->tls_step = TLS_STEP_NONE;
    send_startup(s);
    sl_io_status rc = sl_stream_flush(&s->s, NULL);
    if (rc == SL_IO_ERROR) login_failed(s, "08006", "lost connection to server during login");
    else sl_stream_set_poll(&s->s, rc == SL_IO_AGAIN ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* The server's one-byte answer to our SSLRequest. */
static void tls_answer_input(sl_server *s)
{
    char err[256];
    switch (sl_stream_encryption_answer(&s->s)) {
    case SL_TLS_ANSWER_NEED_MORE: return;
    case SL_TLS_ANSWER_YES: {
        sl_tls_ctx *ctx = sl_tls_acquire(SL_TLS_CONNECT);
        bool ok = sl_stream_start_tls_client(&s->s, ctx, s->pc.backend->host, err, sizeof(err));
        sl_tls_ctx_unref(ctx);
        if (!ok) {
            char msg[320];
            snprintf(msg, sizeof(msg), "could not start TLS with server: %s", err);
            login_failed(s, "08006", msg);
            return;
        }
        s->tls_step = TLS_STEP_HANDSHAKE;
        server_handshake(s);
        return;
    }
    case SL_TLS_ANSWER_NO:
        if (s->tls_plan == SL_TLS_PLAN_TLS_ONLY) {
            login_failed(s, "08006", "server does not support SSL, but SSL was required (server_tls_sslmode)");
            return;
        }
        s->tls_step = TLS_STEP_NONE;
        send_startup(s);
        if (sl_stream_flush(&s->s, NULL) == SL_IO_AGAIN) sl_stream_set_poll(&s->s, UV_READABLE | UV_WRITABLE);
        return;
    case SL_TLS_ANSWER_ERROR: /* an old or refusing server: its ErrorResponse is read as a login error */
        s->tls_step = TLS_STEP_NONE;
        login_input(s);
        return;
    case SL_TLS_ANSWER_BAD:
        login_failed(s, "08P01", "server sent an invalid answer to the SSL request (or data after it)");
        return;
    }
}

static void server_on_event(sl_stream *st, int events)
{
    sl_server *s = (sl_server *)st;
    if (s->state == SL_SV_CONNECTING) {
        if (!(events & (UV_WRITABLE | UV_DISCONNECT | UV_READABLE))) return;
        connected(s);
        if (s->state != SL_SV_LOGIN) return;
        events = UV_WRITABLE;
    }
    if (s->tls_step == TLS_STEP_HANDSHAKE) {
        server_handshake(s);
        return;
    }
    if (s->fanout && s->state == SL_SV_ACTIVE) {
        sl_fanout_server_event(s, events);
        return;
    }
    if (s->state == SL_SV_ACTIVE && s->client) {
        if (events & UV_WRITABLE) sl_proxy_server_writable(s);
        if ((events & UV_READABLE) && s->state == SL_SV_ACTIVE) sl_proxy_server_input(s);
        return;
    }
    if (events & UV_WRITABLE) {
        sl_io_status rc = sl_stream_flush(st, NULL);
        if (rc == SL_IO_ERROR) {
            if (s->state == SL_SV_LOGIN) login_failed(s, "08006", "lost connection to server during login");
            else if (s->state == SL_SV_SETUP) sl_server_setup_lost(s, SL_CLOSE_SERVER_WRITE_ERROR);
            else sl_server_close(s, SL_CLOSE_SERVER_WRITE_ERROR);
            return;
        }
        int more = rc == SL_IO_AGAIN ? UV_WRITABLE : 0;
        sl_stream_set_poll(st, s->scram_job ? more : more | UV_READABLE);
    }
    if (!(events & UV_READABLE) || s->scram_job) return; /* SCRAM keys being derived: read afterwards */
    sl_io_status rc = sl_stream_read(st);
    if (rc == SL_IO_EOF || rc == SL_IO_ERROR) {
        sl_close_reason why = rc == SL_IO_EOF ? SL_CLOSE_SERVER_EOF : SL_CLOSE_SERVER_READ_ERROR;
        if (s->state == SL_SV_LOGIN) login_failed(s, "08006", "server closed the connection during login");
        else if (s->state == SL_SV_SETUP) sl_server_setup_lost(s, why);
        else sl_server_close(s, why);
        return;
    }
    if (rc == SL_IO_AGAIN) return;
    switch (s->state) {
    case SL_SV_LOGIN:
        if (s->tls_step == TLS_STEP_ANSWER) tls_answer_input(s);
        else login_input(s);
        break;
    case SL_SV_SETUP: sl_server_setup_input(s); break;
    case SL_SV_IDLE:
        /* an error while idle is PostgreSQL's goodbye (FATAL: terminating connection ...): the end
         * of file follows, but no client should be given it meanwhile */
        if (st->end > st->parse && st->buf[st->parse] == SL_BE_ERROR) {
            sl_server_close(s, SL_CLOSE_SERVER_DEAD_IN_POOL);
            return;
        }
        /* fall through */
    case SL_SV_ACTIVE: /* not linked: held for a cancel in flight */
        /* an idle server only speaks to say goodbye (FATAL) or to report async notices: drop them */
        st->pos = st->parse = st->end;
        sl_stream_recycle_buf(st);
        break;
    default: break;
    }
}

/* Connect timeout, lifetime and idle timeout, with the worker's current settings. */
void sl_server_tick(sl_server *s, int64_t now)
{
    const sl_config *cfg = s->s.w->cfg;
    if (s->state == SL_SV_CONNECTING || s->state == SL_SV_LOGIN) {
        int64_t limit = cfg->server_connect_timeout;
        if (limit > 0 && now - s->pc.connect_time > limit)
            login_failed(s, "08006", "server_connect_timeout: no answer from the server in time");
        return;
    }
    if (!sl_list_empty(&s->cancels)) sl_cancel_tick(s, now, cfg->cancel_wait_timeout);
    if (s->state != SL_SV_IDLE) return;
    sl_close_reason why = SL_CLOSE_NONE;
    sl_retire_why retire = sl_route_conn_retire_why(&s->pc, now);
    if (retire == SL_RETIRE_LIFETIME) why = SL_CLOSE_SERVER_LIFETIME;
    else if (retire != SL_RETIRE_NO) why = SL_CLOSE_SERVER_RETIRED;
    else if (sl_route_conn_surplus(&s->pc, &s->pend)) /* a pool made smaller gives its surplus back now */
        why = SL_CLOSE_SERVER_RETIRED;
    else if (cfg->server_idle_timeout > 0 && now - s->pc.idle_since > cfg->server_idle_timeout) {
        sl_route *r = sl_server_route(s);
        sl_mutex_lock(&r->lock);
        bool keep = r->n_servers <= r->min_pool_size;
        sl_mutex_unlock(&r->lock);
        if (!keep) why = SL_CLOSE_SERVER_IDLE_TIMEOUT;
    }
    if (why != SL_CLOSE_NONE) sl_server_close(s, why);
}
