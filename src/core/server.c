/* server.c - a connection to PostgreSQL: connect, log in (cleartext, md5, SCRAM incl. pass-through),
 * and the pooler's own queries run on it (server_check_query, SET of client parameters,
 * server_reset_query, connect_query) before it serves a client or goes back to the pool. */
#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "core/pooler.h"
#include "core/proxy_ps.h"
#include "net/sockutil.h"
#include "pool/pool.h"
#include "util/log.h"
#include "util/time.h"

#define SV_LOG(s, lvl, fmt, ...)                                                                        \
    sl_log_msg(lvl, "S-%llu %s/%s@%s " fmt, (unsigned long long)(s)->id, (s)->pool->db_name, (s)->pool->user, \
               (s)->addr_str, ##__VA_ARGS__)

#define LOGIN_MSG_MAX (1u << 20)

static void server_free(uv_handle_t *h)
{
    sl_server *s = h->data;
    if (s->s.fd >= 0) close(s->s.fd); /* only now that libuv no longer polls it */
    sl_stream_free_buf(&s->s);
    sl_pb_free(&s->s.out);
    sl_params_clear(&s->params);
    sl_ps_server_gone(s);
    if (s->dns_res) uv_freeaddrinfo(s->dns_res);
    if (s->scram) {
        sl_scram_client_clear(s->scram);
        free(s->scram);
    }
    free(s);
}

void sl_server_close(sl_server *s, const char *reason)
{
    if (s->state == SL_SV_CLOSING) return;
    if (s->state == SL_SV_IDLE && !sl_pool_take_idle(s)) {
        /* another worker took it from the idle list and a detach message is on its way: it will
         * find the server closing */
    }
    if (reason && sl_log_verbose() >= 1) SV_LOG(s, SL_LOG_DEBUG, "closing because: %s", reason);
    else if (reason && s->state != SL_SV_IDLE && s->state != SL_SV_LOGIN && s->state != SL_SV_CONNECTING)
        SV_LOG(s, SL_LOG_INFO, "closing because: %s", reason);
    sl_client *c = s->client;
    s->client = NULL;
    if (c && c->server == s) c->server = NULL;
    s->state = SL_SV_CLOSING;
    if (s->resolve) { /* its callback still runs (cancelled or not) and frees the request */
        s->resolve->data = NULL;
        uv_cancel((uv_req_t *)s->resolve);
        s->resolve = NULL;
    }
    sl_pool_forget_server(s);
    if (s->s.fd >= 0 && s->s.poll_open) {
        /* polite goodbye when the connection is healthy */
        if (!reason || strstr(reason, "lifetime") || strstr(reason, "idle")) {
            sl_pktbuf pb;
            sl_pb_init(&pb);
            sl_pb_terminate(&pb);
            ssize_t r = send(s->s.fd, pb.data, pb.len, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)r;
            sl_pb_free(&pb);
        }
    }
    sl_list_remove(&s->node);
    if (s->s.fd >= 0) shutdown(s->s.fd, SHUT_RDWR);
    if (s->s.poll_open)
        sl_stream_detach(&s->s, server_free);
    else if (!s->retrying) /* else retry_detached, still to come, frees it */
        server_free((uv_handle_t *)&(uv_poll_t){.data = s});
    if (c && c->state == SL_CL_ACTIVE) sl_proxy_server_lost_client(c);
}

bool sl_server_attach(sl_server *s, sl_worker *w)
{
    if (!sl_stream_attach(&s->s, w, NULL, s)) return false;
    sl_list_insert_tail(&w->servers, &s->node);
    return true;
}

/* ---- connect ---- */

static void login_failed(sl_server *s, const char *sqlstate, const char *msg);

/* Unix socket directories and numeric addresses connect at once; host names are looked up in
 * libuv's thread pool (a slow DNS server must not stall the worker) and the answer is kept in the
 * pool for dns_max_ttl. */
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

static bool dns_cached(sl_pool *p, const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    sl_config *cfg = sl_config_acquire();
    int64_t ttl = cfg->dns_max_ttl;
    sl_config_unref(cfg);
    pthread_mutex_lock(&p->lock);
    bool hit = p->dns_at && sl_now_us() - p->dns_at < ttl && p->dns_port == port && p->dns_host &&
               !strcmp(p->dns_host, host);
    if (hit) {
        memcpy(ss, &p->dns_addr, p->dns_len);
        *len = p->dns_len;
    }
    pthread_mutex_unlock(&p->lock);
    return hit;
}

static void dns_store(sl_pool *p, const char *host, int port, const struct sockaddr *sa, socklen_t len)
{
    if (len > sizeof(p->dns_addr)) return;
    pthread_mutex_lock(&p->lock);
    if (!p->dns_host || strcmp(p->dns_host, host)) {
        free(p->dns_host);
        p->dns_host = strdup(host);
    }
    memcpy(&p->dns_addr, sa, len);
    p->dns_len = len;
    p->dns_port = port;
    p->dns_at = p->dns_host ? sl_now_us() : 0;
    pthread_mutex_unlock(&p->lock);
}

static void dns_forget(sl_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->dns_at = 0;
    pthread_mutex_unlock(&p->lock);
}

/* The socket is connecting (or failed to start): watch it, or report the failure. */
static void connect_started(sl_server *s, sl_worker *w, int fd)
{
    s->s.fd = fd;
    if (fd < 0 || !sl_stream_attach(&s->s, w, NULL, s)) {
        if (s->dns_name[0]) dns_forget(s->pool);
        char msg[300];
        snprintf(msg, sizeof(msg), "could not connect to server %s: %s", s->addr_str, strerror(errno));
        login_failed(s, "08006", msg);
        return;
    }
    sl_stream_set_poll(&s->s, UV_WRITABLE);
    SV_LOG(s, SL_LOG_DEBUG, "connecting (worker %d)", w->id);
}

/* Connect to the looked-up addresses in order until one connect starts (connected() comes back
 * here through retry_detached when one is refused). */
static void try_next_address(sl_server *s)
{
    int err = EHOSTUNREACH;
    while (s->dns_next) {
        struct addrinfo *ai = s->dns_next;
        s->dns_next = ai->ai_next;
        int fd = sl_sock_connect(ai->ai_addr, ai->ai_addrlen);
        if (fd >= 0) {
            s->dns_cur = ai;
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
static void retry_detached(uv_handle_t *h)
{
    sl_server *s = h->data;
    s->retrying = false;
    if (s->state == SL_SV_CLOSING) {
        server_free(h);
        return;
    }
    close(s->s.fd);
    s->s.fd = -1;
    try_next_address(s);
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    sl_server *s = req->data;
    if (!s) { /* the server was closed while its name was looked up */
        uv_freeaddrinfo(res);
        free(req);
        return;
    }
    s->resolve = NULL;
    free(req);
    sl_now_refresh();
    if (status != 0 || !res) {
        char msg[400];
        snprintf(msg, sizeof(msg), "could not translate host name \"%s\" to address: %s", s->dns_name,
                 uv_strerror(status ? status : UV_EAI_NONAME));
        uv_freeaddrinfo(res);
        login_failed(s, "08006", msg);
        return;
    }
    s->dns_res = s->dns_next = res;
    try_next_address(s);
}

sl_server *sl_server_launch(sl_worker *w, sl_pool *p)
{
    sl_server *s = calloc(1, sizeof(*s));
    if (!s) {
        sl_pool_login_failed(p, "53200", "out of memory");
        return NULL;
    }
    s->pool = p;
    s->id = __atomic_add_fetch(&sl_conn_counter, 1, __ATOMIC_RELAXED);
    s->state = SL_SV_CONNECTING;
    s->xact = 'I';
    sl_list_init(&s->pool_node);
    sl_stmt_cache_init(&s->ps_cache);
    sl_stream_init(&s->s, SL_KIND_SERVER, -1);
    s->s.w = w;
    sl_list_insert_tail(&w->servers, &s->node);
    s->connect_time = s->last_used = sl_now_us();
    pthread_mutex_lock(&p->lock);
    char *host = p->host ? strdup(p->host) : NULL;
    int port = p->port;
    pthread_mutex_unlock(&p->lock);
    if (!host || !*host || host[0] == '/') snprintf(s->addr_str, sizeof(s->addr_str), "unix:%d", port);
    else snprintf(s->addr_str, sizeof(s->addr_str), "%s:%d", host, port);
    if (!needs_lookup(host)) {
        connect_started(s, w, connect_direct(host, port));
        free(host);
        return s;
    }
    snprintf(s->dns_name, sizeof(s->dns_name), "%s", host);
    s->dns_port = port;
    free(host);
    struct sockaddr_storage ss;
    socklen_t len;
    if (dns_cached(p, s->dns_name, port, &ss, &len)) {
        connect_started(s, w, sl_sock_connect((struct sockaddr *)&ss, len));
        return s;
    }
    uv_getaddrinfo_t *req = malloc(sizeof(*req));
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = req ? uv_getaddrinfo(&w->loop, req, resolved, s->dns_name, portstr, &hints) : UV_ENOMEM;
    if (rc != 0) {
        free(req);
        char msg[400];
        snprintf(msg, sizeof(msg), "could not look up host name \"%s\": %s", s->dns_name, uv_strerror(rc));
        login_failed(s, "08006", msg);
        return NULL;
    }
    req->data = s;
    s->resolve = req;
    SV_LOG(s, SL_LOG_DEBUG, "looking up %s (worker %d)", s->dns_name, w->id);
    return s;
}

static void send_startup(sl_server *s)
{
    sl_pool *p = s->pool;
    sl_pktbuf *out = &s->s.out;
    pthread_mutex_lock(&p->lock);
    sl_pb_begin(out, 0);
    sl_pb_u32(out, SL_PROTO_V3);
    sl_pb_str(out, "user");
    sl_pb_str(out, p->server_user);
    sl_pb_str(out, "database");
    sl_pb_str(out, p->server_db);
    pthread_mutex_unlock(&p->lock);
    sl_pb_u8(out, 0);
    sl_pb_end(out);
    s->state = SL_SV_LOGIN;
}

static void login_failed(sl_server *s, const char *sqlstate, const char *msg)
{
    SV_LOG(s, SL_LOG_WARNING, "server login failed: %s", msg);
    sl_pool *p = s->pool;
    sl_server_close(s, "login failed");
    sl_pool_login_failed(p, sqlstate, msg);
}

/* The password to log in with: the [databases] password, else the auth file's entry. */
static char *server_password(sl_server *s)
{
    sl_pool *p = s->pool;
    char *pw = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->server_password) pw = strdup(p->server_password);
    pthread_mutex_unlock(&p->lock);
    if (pw) return pw;
    sl_config *cfg = sl_config_acquire();
    const sl_userlist_entry *e = sl_config_find_userlist(cfg, p->server_user);
    if (e) pw = strdup(e->password);
    sl_config_unref(cfg);
    return pw;
}

static void send_password_msg(sl_server *s, const void *data, size_t len)
{
    sl_pb_begin(&s->s.out, 'p');
    sl_pb_bytes(&s->s.out, data, len);
    sl_pb_end(&s->s.out);
}

static bool auth_sasl_start(sl_server *s, char *pw)
{
    sl_pool *p = s->pool;
    sl_scram_client *sc = calloc(1, sizeof(*sc));
    if (!sc) return false;
    if (pw && !sl_scram_is_secret(pw) && !sl_md5_is_hash(pw)) {
        sl_scram_client_init(sc, pw, NULL, NULL);
    } else {
        uint8_t ck[32], sk[32];
        pthread_mutex_lock(&p->lock);
        bool have = p->have_scram_keys;
        memcpy(ck, p->scram_client_key, 32);
        memcpy(sk, p->scram_server_key, 32);
        pthread_mutex_unlock(&p->lock);
        if (!have) {
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
    if (!sl_scram_client_first(sc, first, sizeof(first))) return false;
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, 'p');
    sl_pb_str(out, "SCRAM-SHA-256");
    sl_pb_u32(out, (uint32_t)strlen(first));
    sl_pb_bytes(out, first, strlen(first));
    sl_pb_end(out);
    return true;
}

/* AuthenticationXXX from the server. Returns false when the server was closed. */
static bool handle_auth(sl_server *s, const uint8_t *body, uint32_t len)
{
    sl_rd r;
    sl_rd_init(&r, body, len);
    uint32_t code = sl_rd_u32(&r);
    if (code == 0) return true;
    char *pw = server_password(s);
    const char *errmsg = NULL;
    bool ok = true;
    if (code == 3) {
        if (!pw || sl_md5_is_hash(pw) || sl_scram_is_secret(pw)) ok = false, errmsg = "server asks for a cleartext password, none is known";
        else send_password_msg(s, pw, strlen(pw) + 1);
    } else if (code == 5) {
        const uint8_t *salt = sl_rd_bytes(&r, 4);
        char hash[36], ans[36];
        if (!salt || !pw || sl_scram_is_secret(pw)) {
            ok = false, errmsg = "server asks for an md5 password, none is known";
        } else {
            if (sl_md5_is_hash(pw)) snprintf(hash, sizeof(hash), "%s", pw);
            else sl_md5_user_hash(pw, s->pool->server_user, hash);
            sl_md5_salted(hash, salt, ans);
            send_password_msg(s, ans, strlen(ans) + 1);
        }
    } else if (code == 10) {
        bool has = false;
        const char *m;
        while ((m = sl_rd_str(&r)) && *m)
            if (!strcmp(m, "SCRAM-SHA-256")) has = true;
        if (!has) ok = false, errmsg = "server offers no SASL mechanism pgsluice supports";
        else if (!auth_sasl_start(s, pw)) {
            free(pw);
            return false;
        }
    } else if (code == 11 || code == 12) {
        char out[1024];
        size_t n = sl_rd_left(&r);
        const char *data = (const char *)sl_rd_bytes(&r, n);
        if (!s->scram) ok = false, errmsg = "unexpected SASL message";
        else if (code == 11) {
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
    sl_pool *p = s->pool;
    pthread_mutex_lock(&p->lock);
    p->n_connecting--;
    s->logged_in = true;
    p->stats.server_connects++;
    p->last_login_failure = 0;
    bool cq = p->connect_query && *p->connect_query;
    pthread_mutex_unlock(&p->lock);
    if (sl_log_verbose() >= 1) SV_LOG(s, SL_LOG_DEBUG, "logged in, backend pid %u", s->be_pid);
    sl_pool_set_welcome(p, s, other_params);
    s->idle_since = sl_now_us();
    s->state = SL_SV_IDLE; /* SETUP below, or IDLE via release */
    if (cq) {
        s->setup = SL_SETUP_CONNECT_QUERY;
        if (sl_server_begin_setup(s)) return;
    }
    sl_pool_release(s);
}

/* Server messages during login; each one complete in the buffer. */
static void login_input(sl_server *s)
{
    sl_stream *st = &s->s;
    sl_pktbuf others;
    sl_pb_init(&others);
    while (s->state == SL_SV_LOGIN) {
        uint32_t have = st->end - st->pos;
        if (have < 5) break;
        char type = (char)st->buf[st->pos];
        uint32_t len = sl_get_u32(st->buf + st->pos + 1);
        if (len < 4 || len > LOGIN_MSG_MAX) {
            login_failed(s, "08P01", "server sent a message with an invalid length during login");
            break;
        }
        if (have < len + 1) {
            if (!sl_stream_make_room(st, len + 1 - have, LOGIN_MSG_MAX + 1)) login_failed(s, "53200", "out of memory");
            break;
        }
        const uint8_t *body = st->buf + st->pos + 5;
        st->pos += len + 1;
        st->parse = st->pos;
        uint32_t blen = len - 4;
        if (type == 'R') {
            if (!handle_auth(s, body, blen)) break;
        } else if (type == 'S') {
            sl_rd r;
            sl_rd_init(&r, body, blen);
            const char *name = sl_rd_str(&r), *val = sl_rd_str(&r);
            if (!name || !val) continue;
            int id = sl_param_lookup(name);
            if (id >= 0) sl_params_set(&s->params, id, val);
            else sl_pb_param_status(&others, name, val);
        } else if (type == 'K') {
            sl_rd r;
            sl_rd_init(&r, body, blen);
            s->be_pid = sl_rd_u32(&r);
            s->be_key = sl_rd_u32(&r);
        } else if (type == 'E') {
            const char *m = sl_error_field(body, blen, 'M');
            const char *code = sl_error_field(body, blen, 'C');
            char msg[300];
            snprintf(msg, sizeof(msg), "%s", m ? m : "server refused login");
            login_failed(s, code ? code : "08006", msg);
            break;
        } else if (type == 'Z') {
            login_complete(s, &others);
            break;
        } /* 'N' notices and 'v' (NegotiateProtocolVersion) are ignored */
    }
    sl_pb_free(&others);
    if (s->state != SL_SV_CLOSING && st->pos == st->end) sl_stream_recycle_buf(st);
    if (s->state == SL_SV_LOGIN && sl_stream_out_pending(st)) {
        if (sl_stream_flush(st, NULL) == SL_IO_AGAIN) sl_stream_set_poll(st, UV_READABLE | UV_WRITABLE);
    }
}

/* ---- pooler queries ---- */

static void append_quoted(sl_pktbuf *pb, const char *v)
{
    sl_pb_bytes(pb, "E'", 2);
    for (const char *p = v; *p; p++) {
        if (*p == '\'' || *p == '\\') sl_pb_u8(pb, (uint8_t)*p);
        sl_pb_u8(pb, (uint8_t)*p);
    }
    sl_pb_u8(pb, '\'');
}

/* SET for every tracked parameter where the client's value differs from the server's. */
static bool build_param_sets(sl_server *s, sl_pktbuf *q)
{
    sl_client *c = s->client;
    bool any = false;
    for (int i = 0; c && i < SL_NPARAMS; i++) {
        const char *want = c->params.v[i];
        if (!want || want == s->params.v[i]) continue; /* interned: equal values are equal pointers */
        sl_pb_bytes(q, "SET ", 4);
        sl_pb_bytes(q, sl_param_names[i], strlen(sl_param_names[i]));
        sl_pb_bytes(q, " TO ", 4);
        append_quoted(q, want);
        sl_pb_bytes(q, ";", 1);
        any = true;
    }
    return any;
}

static bool send_setup_query(sl_server *s, const char *sql)
{
    if (!sql || !*sql) return false;
    sl_pb_query(&s->s.out, sql);
    s->state = SL_SV_SETUP;
    s->setup_failed = false;
    s->setup_error[0] = 0;
    return true;
}

/* Run the next pooler query this server needs, if any. s->setup names the first step to try. */
bool sl_server_begin_setup(sl_server *s)
{
    const sl_config *cfg = s->client ? s->client->cfg : NULL;
    sl_config *own = NULL;
    if (!cfg) cfg = own = sl_config_acquire();
    bool started = false;
    while (!started && s->setup != SL_SETUP_NONE) {
        sl_setup_step step = s->setup;
        switch (step) {
        case SL_SETUP_CHECK:
            s->setup = SL_SETUP_PARAMS;
            if (cfg->server_check_delay >= 0 && sl_now_fast() - s->last_used >= cfg->server_check_delay)
                started = send_setup_query(s, cfg->server_check_query);
            if (started) s->setup = SL_SETUP_CHECK;
            break;
        case SL_SETUP_PARAMS: {
            sl_pktbuf q;
            sl_pb_init(&q);
            if (build_param_sets(s, &q)) {
                sl_pb_u8(&q, 0);
                started = !q.failed && send_setup_query(s, (const char *)q.data);
            }
            sl_pb_free(&q);
            if (!started) s->setup = SL_SETUP_NONE;
            break;
        }
        case SL_SETUP_RESET:
            started = send_setup_query(s, cfg->server_reset_query);
            if (!started) s->setup = SL_SETUP_NONE;
            break;
        case SL_SETUP_ROLLBACK:
            started = send_setup_query(s, "ROLLBACK");
            break;
        case SL_SETUP_CONNECT_QUERY: {
            pthread_mutex_lock(&s->pool->lock);
            char *q = s->pool->connect_query ? strdup(s->pool->connect_query) : NULL;
            pthread_mutex_unlock(&s->pool->lock);
            started = send_setup_query(s, q);
            free(q);
            if (!started) s->setup = SL_SETUP_NONE;
            break;
        }
        default: s->setup = SL_SETUP_NONE; break;
        }
    }
    if (own) sl_config_unref(own);
    if (started) {
        sl_io_status st = sl_stream_flush(&s->s, NULL);
        if (st == SL_IO_ERROR) {
            sl_server_close(s, "write error");
            return true;
        }
        sl_stream_set_poll(&s->s, st == SL_IO_AGAIN ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    }
    return started;
}

/* A pooler query finished (ReadyForQuery). Decide what comes next. */
static void setup_finished(sl_server *s)
{
    sl_setup_step step = s->setup;
    sl_client *c = s->client;
    if (s->setup_failed) {
        if (step == SL_SETUP_PARAMS && c) {
            /* the client's own startup parameters are invalid: tell it */
            char msg[300];
            snprintf(msg, sizeof(msg), "%s", s->setup_error);
            s->setup = SL_SETUP_NONE;
            s->client = NULL;
            c->server = NULL;
            s->state = SL_SV_ACTIVE;
            sl_proxy_unlink_release(s);
            sl_client_error(c, true, "22023", "%s", msg);
            return;
        }
        SV_LOG(s, SL_LOG_WARNING, "pooler query failed: %s", s->setup_error);
        if (c) {
            c->server = NULL;
            s->client = NULL;
            c->state = SL_CL_WAITING;
        }
        sl_server_close(s, "pooler query failed");
        if (c) sl_client_wake(c);
        return;
    }
    if (step == SL_SETUP_PARAMS && c) {
        /* adopt the server's spelling of the values (e.g. utf8 -> UTF8) */
        for (int i = 0; i < SL_NPARAMS; i++)
            if (c->params.v[i] && s->params.v[i]) sl_params_set_interned(&c->params, i, s->params.v[i]);
    }
    s->setup = step == SL_SETUP_CHECK ? SL_SETUP_PARAMS : SL_SETUP_NONE;
    s->last_used = sl_now_us();
    if (s->setup != SL_SETUP_NONE && sl_server_begin_setup(s)) return;
    s->setup = SL_SETUP_NONE;
    if (c) {
        s->state = SL_SV_ACTIVE;
        sl_proxy_start(c, s);
    } else {
        s->state = SL_SV_ACTIVE;
        sl_pool_release(s);
    }
}

static void setup_input(sl_server *s)
{
    sl_stream *st = &s->s;
    while (s->state == SL_SV_SETUP) {
        uint32_t have = st->end - st->pos;
        if (have < 5) break;
        char type = (char)st->buf[st->pos];
        uint32_t len = sl_get_u32(st->buf + st->pos + 1);
        if (len < 4 || len > LOGIN_MSG_MAX) {
            sl_server_close(s, "invalid message length from server");
            return;
        }
        if (have < len + 1) {
            if (!sl_stream_make_room(st, len + 1 - have, LOGIN_MSG_MAX + 1)) sl_server_close(s, "out of memory");
            return;
        }
        const uint8_t *body = st->buf + st->pos + 5;
        uint32_t blen = len - 4;
        st->pos += len + 1;
        st->parse = st->pos;
        if (type == 'S') {
            sl_rd r;
            sl_rd_init(&r, body, blen);
            const char *name = sl_rd_str(&r), *val = sl_rd_str(&r);
            int id = name && val ? sl_param_lookup(name) : -1;
            if (id >= 0) sl_params_set(&s->params, id, val);
        } else if (type == 'C') {
            /* DISCARD ALL / DEALLOCATE ALL (server_reset_query) drop every prepared statement */
            if (blen && (!strncmp((const char *)body, "DISCARD ALL", 11) || !strncmp((const char *)body, "DEALLOCATE ALL", 14)))
                sl_stmt_cache_clear(&s->ps_cache);
        } else if (type == 'E') {
            const char *m = sl_error_field(body, blen, 'M');
            snprintf(s->setup_error, sizeof(s->setup_error), "%s", m ? m : "error");
            s->setup_failed = true;
        } else if (type == 'Z') {
            s->xact = blen >= 1 ? (char)body[0] : 'I';
            setup_finished(s);
        }
    }
    if (s->state != SL_SV_CLOSING) sl_stream_recycle_buf(st);
}

/* ---- events ---- */

static void connected(sl_server *s)
{
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(s->s.fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
    if (err) {
        if (s->dns_next) { /* the name has more addresses: try the next one, as libpq does */
            s->retrying = true;
            sl_stream_detach(&s->s, retry_detached);
            return;
        }
        if (s->dns_name[0]) dns_forget(s->pool); /* look the name up again next time */
        char msg[300];
        snprintf(msg, sizeof(msg), "could not connect to server %s: %s", s->addr_str, strerror(err));
        login_failed(s, "08006", msg);
        return;
    }
    if (s->dns_res) { /* remember the address that answered */
        dns_store(s->pool, s->dns_name, s->dns_port, s->dns_cur->ai_addr, s->dns_cur->ai_addrlen);
        uv_freeaddrinfo(s->dns_res);
        s->dns_res = s->dns_cur = s->dns_next = NULL;
    }
    sl_config *cfg = sl_config_acquire();
    sl_sock_tune(s->s.fd, cfg, true);
    sl_config_unref(cfg);
    send_startup(s);
}

void sl_server_on_event(sl_server *s, int events)
{
    sl_stream *st = &s->s;
    if (s->state == SL_SV_CONNECTING) {
        if (!(events & (UV_WRITABLE | UV_DISCONNECT | UV_READABLE))) return;
        connected(s);
        if (s->state != SL_SV_LOGIN) return;
        events = UV_WRITABLE;
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
            else sl_server_close(s, "write error");
            return;
        }
        sl_stream_set_poll(st, rc == SL_IO_AGAIN ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    }
    if (!(events & UV_READABLE)) return;
    sl_io_status rc = sl_stream_read(st);
    if (rc == SL_IO_EOF || rc == SL_IO_ERROR) {
        if (s->state == SL_SV_LOGIN) login_failed(s, "08006", "server closed the connection during login");
        else sl_server_close(s, rc == SL_IO_EOF ? "server closed the connection" : "read error");
        return;
    }
    if (rc == SL_IO_AGAIN) return;
    switch (s->state) {
    case SL_SV_LOGIN: login_input(s); break;
    case SL_SV_SETUP: setup_input(s); break;
    case SL_SV_IDLE:
        /* an idle server only speaks to say goodbye (FATAL) or to report async notices: drop them */
        st->pos = st->parse = st->end;
        sl_stream_recycle_buf(st);
        break;
    default: break;
    }
}

/* Lifetime and idle timeouts of an idle server. */
void sl_server_tick(sl_server *s, int64_t now)
{
    if (s->state == SL_SV_CONNECTING || s->state == SL_SV_LOGIN) {
        sl_config *cfg = sl_config_acquire();
        int64_t limit = cfg->server_connect_timeout;
        sl_config_unref(cfg);
        if (limit > 0 && now - s->connect_time > limit)
            login_failed(s, "08006", "server_connect_timeout: no answer from the server in time");
        return;
    }
    if (s->state != SL_SV_IDLE) return;
    sl_config *cfg = sl_config_acquire();
    const char *why = NULL;
    if (cfg->server_lifetime > 0 && now - s->connect_time > cfg->server_lifetime) why = "server_lifetime";
    else if (cfg->server_idle_timeout > 0 && now - s->idle_since > cfg->server_idle_timeout) why = "server_idle_timeout";
    if (why) {
        pthread_mutex_lock(&s->pool->lock);
        bool keep = s->pool->n_servers <= s->pool->min_pool_size && !strcmp(why, "server_idle_timeout");
        pthread_mutex_unlock(&s->pool->lock);
        if (!keep && sl_pool_take_idle(s)) {
            s->state = SL_SV_ACTIVE;
            sl_server_close(s, why);
        }
    }
    sl_config_unref(cfg);
}
