/* takeover.c - zero-downtime restart: the running process hands its listening sockets and its client
 * and server connections, with their state, to a new process (`pgsluice --takeover`, or `-R`).
 *
 * The protocol, over the running process's Unix socket (the admin console):
 *  1. The new process logs in to the console as "pgbouncer" (it must run as the same OS user: the
 *     console lets that user in over the Unix socket without a password) and sends `TAKEOVER <s>`.
 *  2. The old process stops accepting (new connections wait in the listen backlog) and holds new
 *     transactions, as PAUSE does: a client that sends a query waits, its query buffered. Every tick
 *     it tries to freeze each worker (a round over the workers): a worker freezes only when each of
 *     its connections is between transactions - a client idle or waiting for a server with nothing
 *     half-sent, a session-mode client with its server idle ('I', nothing owed), a server idle in its
 *     pool - and then stops polling them all and writes their state down. Until every worker froze
 *     in the same round, frozen workers thaw and it tries again, for up to <s> seconds.
 *  3. Once all froze, a sender thread writes one message ('!', length, payload: the listening
 *     sockets, then per connection its state - user, database, parameters, cancel key and slot,
 *     prepared statements, bytes it sent that were not yet served, the backend pid/key and prepared
 *     statements of servers, pool membership) and then the descriptors in SCM_RIGHTS batches. The
 *     new process builds its connections, answers 'K', and the old process exits without touching
 *     the sockets (they stay open: the new process holds them).
 *  4. Any failure before 'K' (the new process dies or times out, a client stays in a transaction
 *     too long) thaws everything: the old process accepts and serves again, and the new one exits
 *     with the reason.
 * TLS sessions (client or server side) live in OpenSSL and cannot be handed over: such a client is
 * waited for until it is between transactions, frozen with the rest, and on success closed with
 * FATAL 57P01 (its driver reconnects, to the new process); console sessions, replication connections
 * and transaction-mode clients pinned by session state (session_state.c: that state lives in the
 * backend and is not carried) are closed the same way, a pinned client's server with it.
 * The new process adopts each connection on its worker's own thread (sl_takeover_adopt, before the
 * worker polls anything) into the same worker number and slot, so that cancel keys stay valid. */
#include "core/takeover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/client.h"
#include "core/lifecycle.h"
#include "core/proxy.h"
#include "core/server.h"
#include "core/listen_fanout.h"
#include "core/session_state.h"
#include "net/listener.h"
#include "net/tls.h"
#include "proto/msgtype.h"
#include "util/intern.h"
#include "util/log.h"
#include "util/sdnotify.h"
#include "util/time.h"

#define TK_MAGIC 0x534c544bu /* "SLTK" */
#define TK_VERSION 1u
#define TK_FDS_PER_MSG 200
#define TK_MAX_PAYLOAD (1u << 30)

/* ---- a growable byte buffer and its reader ---- */

typedef struct tk_buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
    int *fds;
    size_t nfds, fdcap;
} tk_buf;

static void tb_put(tk_buf *b, const void *d, size_t n)
{
    if (b->oom || n == 0) return; /* memcpy from NULL is undefined even for 0 bytes */
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + n) nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void tb_u8(tk_buf *b, uint8_t v) { tb_put(b, &v, 1); }
static void tb_u32(tk_buf *b, uint32_t v) { tb_put(b, &v, 4); }
static void tb_u64(tk_buf *b, uint64_t v) { tb_put(b, &v, 8); }
static void tb_bytes(tk_buf *b, const void *d, uint32_t n)
{
    tb_u32(b, n);
    tb_put(b, d, n);
}
static void tb_str(tk_buf *b, const char *s)
{
    if (!s) tb_u32(b, UINT32_MAX);
    else tb_bytes(b, s, (uint32_t)strlen(s));
}
static void tb_fd(tk_buf *b, int fd)
{
    if (b->oom) return;
    if (b->nfds == b->fdcap) {
        size_t nc = b->fdcap ? b->fdcap * 2 : 64;
        int *nf = realloc(b->fds, nc * sizeof(int));
        if (!nf) {
            b->oom = true;
            return;
        }
        b->fds = nf;
        b->fdcap = nc;
    }
    b->fds[b->nfds++] = fd;
}
static void tb_free(tk_buf *b)
{
    free(b->p);
    free(b->fds);
    memset(b, 0, sizeof(*b));
}

typedef struct tk_rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
} tk_rd;

static bool rd_get(tk_rd *r, void *d, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        memset(d, 0, n);
        return false;
    }
    memcpy(d, r->p + r->off, n);
    r->off += n;
    return true;
}
static uint8_t rd_u8(tk_rd *r)
{
    uint8_t v;
    rd_get(r, &v, 1);
    return v;
}
static uint32_t rd_u32(tk_rd *r)
{
    uint32_t v;
    rd_get(r, &v, 4);
    return v;
}
static uint64_t rd_u64(tk_rd *r)
{
    uint64_t v;
    rd_get(r, &v, 8);
    return v;
}
/* A view into the payload (not NUL-terminated); NULL data when absent. */
static const uint8_t *rd_bytes(tk_rd *r, uint32_t *n)
{
    *n = rd_u32(r);
    if (*n == UINT32_MAX || r->bad) {
        *n = 0;
        return NULL;
    }
    if (r->len - r->off < *n) {
        r->bad = true;
        *n = 0;
        return NULL;
    }
    const uint8_t *d = r->p + r->off;
    r->off += *n;
    return d;
}
/* A NUL-terminated copy into buf (truncated to fit); false when absent. */
static bool rd_str(tk_rd *r, char *buf, size_t cap)
{
    uint32_t n;
    const uint8_t *d = rd_bytes(r, &n);
    if (!d) {
        buf[0] = '\0';
        return false;
    }
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(buf, d, k);
    buf[k] = '\0';
    return true;
}

/* ---- what a connection's state is written as ---- */

static void put_params(tk_buf *b, const sl_params *p)
{
    uint32_t n = 0;
    for (int i = 0; i < SL_NPARAMS; i++)
        if (p->v[i] && sl_param_names[i]) n++;
    tb_u32(b, n);
    for (int i = 0; i < SL_NPARAMS; i++) {
        if (!p->v[i] || !sl_param_names[i]) continue;
        tb_str(b, sl_param_names[i]);
        tb_str(b, p->v[i]);
    }
}

static void put_stmt(tk_buf *b, const sl_stmt *st)
{
    tb_u64(b, st->id);
    tb_u8(b, (uint8_t)__atomic_load_n(&st->valid, __ATOMIC_RELAXED));
    tb_bytes(b, st->body, st->body_len);
}

static void put_server(tk_buf *b, sl_server *s, int64_t now)
{
    sl_route *r = sl_server_route(s);
    sl_backend *be = s->pc.backend;
    tb_u64(b, s->id);
    tb_str(b, r->db_name);
    tb_str(b, r->user);
    tb_u32(b, (uint32_t)be->index);
    tb_str(b, be->host);
    tb_u32(b, (uint32_t)be->port);
    tb_u32(b, s->be_pid);
    tb_u32(b, s->be_key);
    put_params(b, &s->params);
    tb_str(b, s->addr_str);
    tb_u64(b, (uint64_t)(now - s->pc.connect_time));
    tb_u8(b, s->pc.standby);
    tb_u32(b, s->ps_cache.n);
    for (sl_stmt_node *n = s->ps_cache.lru.lru_next; n && n != &s->ps_cache.lru; n = n->lru_next) put_stmt(b, n->stmt);
    tb_fd(b, s->s.fd);
}

static void put_client(tk_buf *b, sl_client *c, int64_t now)
{
    tb_u32(b, c->slot);
    tb_u32(b, c->gen);
    tb_u64(b, c->id);
    tb_u32(b, c->cancel_key);
    tb_str(b, c->user);
    tb_str(b, c->dbname);
    tb_str(b, c->route->db_name);
    tb_str(b, c->route->user);
    tb_str(b, c->addr);
    tb_u8(b, c->is_unix);
    tb_u8(b, c->state == SL_CL_ACTIVE ? 'A' : c->state == SL_CL_WELCOME ? 'W' : 'I');
    tb_u64(b, (uint64_t)(now - c->connect_time));
    tb_u64(b, (uint64_t)(now - c->last_activity));
    tb_u64(b, c->wait_us_total);
    put_params(b, &c->params);
    tb_u32(b, c->ps_map.n);
    for (uint32_t i = 0; i < c->ps_map.cap; i++) {
        const struct sl_stmt_map_entry *e = &c->ps_map.e[i];
        if (!e->name || e->name == (char *)1) continue;
        tb_str(b, e->name);
        put_stmt(b, e->stmt);
    }
    /* what it sent that was not served yet (a request held while the takeover waited) */
    tb_bytes(b, c->s.buf ? c->s.buf + c->s.parse : (const uint8_t *)"", c->s.end - c->s.parse);
    tb_fd(b, c->s.fd);
    if (c->state == SL_CL_ACTIVE) put_server(b, c->server, now);
}

/* ---- the running process: readiness, freezing, sending ---- */

enum { D_IDLE = 0, D_WAITING, D_SENDING, D_FINISHING, D_RESUMING };

typedef struct tk_part {
    tk_buf buf;      /* this worker's connections, as written down when it froze */
    uint32_t nrec;
    bool ok;         /* froze in the last round */
    int busy;        /* connections not between transactions */
    char why[160];   /* one of them, for the log and the error */
} tk_part;

static struct donor {
    int phase;                   /* D_*; changed on the home worker only */
    int home;                    /* the console client's worker */
    uint32_t slot, gen;
    sl_client *console;
    pid_t peer;
    int64_t deadline, started;
    int timeout_s;
    bool round_busy;
    unsigned attempts;
    tk_part parts[SL_MAX_WORKERS];
    tk_buf msg;                  /* what the sender thread sends */
    int result;                  /* atomic: 0 sending, 1 confirmed, -1 failed */
    char err[256];               /* the sender's failure (written before result) */
    char fail_msg[300];          /* why the takeover gives up, for the console */
} D;

static bool w_frozen[SL_MAX_WORKERS]; /* each written and read by its own worker only */

bool sl_takeover_frozen(const sl_worker *w) { return w_frozen[w->id]; }

static bool stream_quiet(const sl_stream *s)
{
    return !sl_stream_out_pending(s) && s->msg_left == 0 && s->pos == s->parse;
}

static bool server_quiet(const sl_server *s)
{
    return s->xact == SL_XACT_IDLE && s->outstanding == 0 && !s->in_batch && !s->release_pending && s->exp_n == 0 &&
           !s->ps_skip_till_sync && s->setup == SL_SETUP_NONE && sl_list_empty(&s->cancels) &&
           !s->release_after_cancel && stream_quiet(&s->s) && s->s.end == s->s.pos;
}

/* Is this client between transactions, so that it can be frozen? */
static bool client_ready(sl_client *c, char *why, size_t len)
{
    /* a replication connection (walsender) is never between transactions while it streams: it is not
     * waited for, frozen with the rest and closed on success (it reconnects to the new process) */
    if (c->replication && c->state != SL_CL_LOGIN && c->state != SL_CL_AUTH) return true;
    switch (c->state) {
    case SL_CL_IDLE:
    case SL_CL_WAITING:
    case SL_CL_WELCOME:
        if (c->server || (c->state != SL_CL_IDLE && !__atomic_load_n(&c->wt.queued, __ATOMIC_RELAXED))) {
            snprintf(why, len, "client C-0x%llx is being given a server", (unsigned long long)c->id);
            return false;
        }
        if (!stream_quiet(&c->s) || c->deferred_begin) {
            snprintf(why, len, "client C-0x%llx is in the middle of a message", (unsigned long long)c->id);
            return false;
        }
        return true;
    case SL_CL_ACTIVE:
        if (!c->server || c->server->state != SL_SV_ACTIVE || !server_quiet(c->server) || !stream_quiet(&c->s) ||
            c->s.end != c->s.pos) {
            snprintf(why, len, "client C-0x%llx is in a transaction", (unsigned long long)c->id);
            return false;
        }
        return true;
    default:
        snprintf(why, len, "client C-0x%llx is logging in", (unsigned long long)c->id);
        return false;
    }
}

static bool console_alive(sl_worker *w)
{
    sl_client *c = sl_worker_find_slot(w, D.slot, D.gen);
    return c && c == D.console && c->state != SL_CL_CLOSING;
}

static void freeze_each(sl_worker *w, void *arg)
{
    (void)arg;
    tk_part *p = &D.parts[w->id];
    tb_free(&p->buf);
    p->nrec = 0;
    p->ok = false;
    p->busy = 0;
    p->why[0] = '\0';
    sl_listen_freeze(w, true); /* stays frozen until the takeover ends */
    char why[160];
    sl_list *n, *t_;
    sl_list_for_each_safe(n, t_, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->admin) continue;
        if (!client_ready(c, why, sizeof(why))) {
            if (!p->busy++) snprintf(p->why, sizeof(p->why), "%s", why);
        }
    }
    sl_list_for_each_safe(n, t_, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->client) continue; /* with its client */
        if (sl_server_route(s)->replication || s->fanout) continue; /* not handed over: closed on success */
        if (s->state != SL_SV_IDLE || !server_quiet(s)) {
            if (!p->busy++)
                snprintf(p->why, sizeof(p->why), "server S-0x%llx is %s", (unsigned long long)s->id,
                         sl_server_state_name(s->state));
        }
    }
    if (p->busy) return;
    /* everything here is between transactions: freeze and write it down */
    int64_t now = sl_now_us();
    w_frozen[w->id] = true;
    sl_list_for_each_safe(n, t_, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->admin && c != D.console) continue; /* consoles go on until the end */
        sl_stream_freeze(&c->s);
        if (c == D.console) {
            c->s.handed = true; /* the sender thread's from now on */
            continue;
        }
        /* a client pinned to its server by session state (transaction mode, pin_session_state) is not
         * handed over either: that state is not carried, and its server must not be reused as if clean */
        if (sl_stream_is_tls(&c->s) || (c->server && sl_stream_is_tls(&c->server->s)) || c->replication ||
            sl_sess_pinned(c) || sl_fanout_client_subscribed(c)) {
            if (c->server) sl_stream_freeze(&c->server->s);
            continue; /* closed if the takeover succeeds */
        }
        tb_u8(&p->buf, 'C');
        put_client(&p->buf, c, now);
        p->nrec++;
        c->s.handed = true;
        if (c->server) {
            sl_stream_freeze(&c->server->s);
            c->server->s.handed = true;
        }
    }
    sl_list_for_each_safe(n, t_, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->client) continue;
        sl_stream_freeze(&s->s);
        if (sl_stream_is_tls(&s->s) || sl_server_route(s)->replication || s->fanout) continue;
        tb_u8(&p->buf, 'S');
        put_server(&p->buf, s, now);
        p->nrec++;
        s->s.handed = true;
    }
    p->ok = !p->buf.oom;
}

/* Undo a freeze on w: connections polled again; listen too when the takeover is over. */
static void thaw_worker(sl_worker *w, bool listen)
{
    sl_list *n, *t_;
    sl_list_for_each_safe(n, t_, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (!c->s.frozen) continue;
        sl_stream_thaw(&c->s);
        /* a wake it missed while frozen (dispatch.c skips them) */
        if ((c->state == SL_CL_WAITING || c->state == SL_CL_WELCOME) && !c->server &&
            !__atomic_load_n(&c->wt.queued, __ATOMIC_RELAXED))
            sl_client_wake(c);
    }
    sl_list_for_each_safe(n, t_, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->s.frozen) sl_stream_thaw(&s->s);
    }
    w_frozen[w->id] = false;
    if (listen) sl_listen_freeze(w, false);
}

static void thaw_each(sl_worker *w, void *arg)
{
    (void)arg;
    thaw_worker(w, false);
}

static void thawed(sl_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    D.round_busy = false;
}

/* The takeover is off: everything thawed, listening again, held transactions served. */
static void resume_each(sl_worker *w, void *arg)
{
    (void)arg;
    thaw_worker(w, true);
}

static void resumed(sl_worker *w, void *arg)
{
    (void)arg;
    if (console_alive(w)) {
        sl_client *c = D.console;
        c->s.handed = false;
        int fl = fcntl(c->s.fd, F_GETFL);
        if (fl >= 0) (void)fcntl(c->s.fd, F_SETFL, fl | O_NONBLOCK);
        sl_client_error(c, true, "55000", "takeover failed: %s", D.fail_msg);
    }
    for (int i = 0; i < SL_MAX_WORKERS; i++) tb_free(&D.parts[i].buf);
    tb_free(&D.msg);
    D.console = NULL;
    D.round_busy = false;
    __atomic_store_n(&D.phase, D_IDLE, __ATOMIC_RELEASE);
    sl_set_run_state(sl_run_state_get()); /* releases the hold (unless paused meanwhile) */
    sl_log_info("takeover called off, serving again: %s", D.fail_msg);
}

static void give_up(sl_worker *home, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void give_up(sl_worker *home, const char *fmt, ...)
{
    char msg[sizeof(D.fail_msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); /* fmt's arguments may be D.fail_msg itself */
    va_end(ap);
    memcpy(D.fail_msg, msg, sizeof(msg));
    sl_log_warn("takeover failed: %s", D.fail_msg);
    __atomic_store_n(&D.phase, D_RESUMING, __ATOMIC_RELEASE);
    D.round_busy = true;
    if (!sl_workers_round(home, resume_each, resumed, NULL)) {
        /* out of memory: thaw this worker at least; the others retry at their next freeze check */
        resume_each(home, NULL);
        resumed(home, NULL);
    }
}

static int write_all(int fd, const void *d, size_t n)
{
    const uint8_t *p = d;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void *sender_main(void *arg)
{
    (void)arg;
    int fd = D.console->s.fd;
    char err[256] = "";
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint8_t hdr[5] = {'!'};
    uint32_t len = (uint32_t)(D.msg.len + 8), nfds = (uint32_t)D.msg.nfds;
    hdr[1] = (uint8_t)(len >> 24);
    hdr[2] = (uint8_t)(len >> 16);
    hdr[3] = (uint8_t)(len >> 8);
    hdr[4] = (uint8_t)len;
    if (write_all(fd, hdr, 5) < 0 || write_all(fd, &nfds, 4) < 0 || write_all(fd, D.msg.p, D.msg.len) < 0) {
        snprintf(err, sizeof(err), "sending the connections' state: %s", strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < D.msg.nfds; i += TK_FDS_PER_MSG) {
        size_t k = D.msg.nfds - i < TK_FDS_PER_MSG ? D.msg.nfds - i : TK_FDS_PER_MSG;
        char byte = '#';
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
            char buf[CMSG_SPACE(sizeof(int) * TK_FDS_PER_MSG)];
            struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof(u));
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                            .msg_controllen = CMSG_SPACE(sizeof(int) * k)};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * k);
        memcpy(CMSG_DATA(cm), D.msg.fds + i, sizeof(int) * k);
        ssize_t rc;
        do rc = sendmsg(fd, &mh, MSG_NOSIGNAL);
        while (rc < 0 && errno == EINTR);
        if (rc != 1) {
            snprintf(err, sizeof(err), "sending the sockets: %s", rc < 0 ? strerror(errno) : "short write");
            goto out;
        }
    }
    char ack = 0;
    ssize_t rc;
    do rc = recv(fd, &ack, 1, 0);
    while (rc < 0 && errno == EINTR);
    if (rc != 1 || ack != 'K')
        snprintf(err, sizeof(err), "the new process did not confirm (%s)",
                 rc == 0 ? "it closed the connection" : rc < 0 ? strerror(errno) : "unexpected answer");
out:
    snprintf(D.err, sizeof(D.err), "%s", err);
    __atomic_store_n(&D.result, err[0] ? -1 : 1, __ATOMIC_RELEASE);
    return NULL;
}

static void freeze_done(sl_worker *home, void *arg)
{
    (void)arg;
    int busy = 0, nok = 0;
    const char *why = NULL;
    for (int i = 0; i < sl_nworkers; i++) {
        if (D.parts[i].ok) nok++;
        busy += D.parts[i].busy;
        if (D.parts[i].busy && !why) why = D.parts[i].why;
    }
    D.attempts++;
    if (sl_run_state_get() != SL_RUN_NORMAL) { /* SIGINT, SHUTDOWN...: the sockets may be shut down */
        give_up(home, "the running process is %s", sl_run_state_label(sl_run_state_get()));
        return;
    }
    if (nok < sl_nworkers || !console_alive(home)) {
        if (D.attempts == 1 || D.attempts % 50 == 0)
            sl_log_info("takeover: waiting for %d connection%s to get between transactions (%s)", busy,
                        busy == 1 ? "" : "s", why ? why : "out of memory");
        snprintf(D.fail_msg, sizeof(D.fail_msg), "%d connection%s still not between transactions after %d s (%s)",
                 busy, busy == 1 ? "" : "s", D.timeout_s, why ? why : "out of memory");
        if (!sl_workers_round(home, thaw_each, thawed, NULL)) {
            thaw_each(home, NULL);
            D.round_busy = false;
        }
        return;
    }
    /* all frozen: the message is the listening sockets, then each worker's connections */
    tk_buf *m = &D.msg;
    tb_free(m);
    tb_u32(m, TK_MAGIC);
    tb_u32(m, TK_VERSION);
    tb_u64(m, __atomic_load_n(&sl_conn_counter, __ATOMIC_RELAXED));
    int lfds[SL_MAX_LISTEN];
    bool lunix[SL_MAX_LISTEN];
    int nl = sl_listen_fds(lfds, lunix, SL_MAX_LISTEN);
    tb_u32(m, (uint32_t)nl);
    for (int i = 0; i < nl; i++) {
        tb_u8(m, lunix[i]);
        tb_fd(m, lfds[i]);
    }
    uint32_t nrec = 0;
    for (int i = 0; i < sl_nworkers; i++) {
        tk_part *p = &D.parts[i];
        tb_u32(m, (uint32_t)i);
        tb_u32(m, p->nrec);
        tb_put(m, p->buf.p, p->buf.len);
        for (size_t k = 0; k < p->buf.nfds; k++) tb_fd(m, p->buf.fds[k]);
        nrec += p->nrec;
    }
    tb_u32(m, UINT32_MAX); /* end of workers */
    if (m->oom || m->len > TK_MAX_PAYLOAD) {
        give_up(home, "out of memory writing the connections' state");
        return;
    }
    sl_log_info("takeover: every connection is between transactions; handing %u connections and %d listening "
                "sockets (%zu descriptors, %zu bytes) to process %d",
                nrec, nl, m->nfds, m->len, (int)D.peer);
    __atomic_store_n(&D.result, 0, __ATOMIC_RELAXED);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &at, sender_main, NULL);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        give_up(home, "cannot start the sender thread: %s", strerror(rc));
        return;
    }
    __atomic_store_n(&D.phase, D_SENDING, __ATOMIC_RELEASE);
    D.round_busy = false;
}

/* Confirmed: what stayed behind (TLS connections, consoles) is closed with a word, then exit. */
static void finish_each(sl_worker *w, void *arg)
{
    (void)arg;
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->s.handed) continue;
        if (c->s.frozen) {
            c->s.frozen = false;
            if (c->server) c->server->s.frozen = false;
        }
        sl_client_error(c, true, "57P01",
                        "pgsluice was restarted (takeover) and this connection could not be handed over%s; "
                        "please reconnect",
                        c->admin               ? " (console sessions are not)"
                        : c->replication       ? " (replication connections are not)"
                        : sl_sess_pinned(c)    ? " (session state pinned to its server is not: advisory locks, "
                                                 "temporary tables, WITH HOLD cursors, LISTEN, SQL PREPARE)"
                        : sl_fanout_client_subscribed(c) ? " (LISTEN subscriptions are not)"
                                               : " (TLS sessions are not)");
    }
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->s.handed) continue;
        s->s.frozen = false;
        sl_server_close(s, SL_CLOSE_TAKEOVER);
    }
}

static void finished(sl_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    sl_log_info("takeover: process %d took over in %.1f s; exiting", (int)D.peer,
                (double)(sl_now_us() - D.started) / 1e6);
    /* under systemd the new process is the service from now on (it runs in the service's cgroup
     * when UPGRADE started it) */
    if (D.peer > 0) sl_sd_mainpid((long)D.peer, "handed over to the new process");
    _exit(0);
}

bool sl_takeover_donor_begin(sl_client *c, int timeout_s, char *err, size_t errlen)
{
    if (!c->is_unix || !c->console_peer_admin) {
        snprintf(err, errlen, "TAKEOVER is only allowed to user pgbouncer over the Unix socket from pgsluice's own OS "
                              "user");
        return false;
    }
    if (__atomic_load_n(&D.phase, __ATOMIC_ACQUIRE) != D_IDLE) {
        snprintf(err, errlen, "a takeover is already under way");
        return false;
    }
    if (sl_run_state_get() != SL_RUN_NORMAL) {
        snprintf(err, errlen, "TAKEOVER needs the pooler running (not %s)", sl_run_state_label(sl_run_state_get()));
        return false;
    }
    struct ucred cr;
    socklen_t cl = sizeof(cr);
    D.peer = getsockopt(c->s.fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 ? cr.pid : 0;
    __atomic_store_n(&D.home, c->s.w->id, __ATOMIC_RELAXED);
    D.slot = c->slot;
    D.gen = c->gen;
    D.console = c;
    D.timeout_s = timeout_s > 0 ? timeout_s : 60;
    D.started = sl_now_us();
    D.deadline = D.started + (int64_t)D.timeout_s * 1000000;
    D.attempts = 0;
    D.round_busy = false;
    D.fail_msg[0] = '\0';
    __atomic_store_n(&D.phase, D_WAITING, __ATOMIC_RELEASE); /* other workers' ticks look at it */
    sl_pools_set_hold(true);
    sl_log_info("takeover requested by process %d: holding new transactions, waiting up to %d s for clients to get "
                "between transactions",
                (int)D.peer, D.timeout_s);
    return true;
}

void sl_takeover_tick(sl_worker *w, int64_t now)
{
    if (__atomic_load_n(&D.phase, __ATOMIC_ACQUIRE) == D_IDLE || w->id != __atomic_load_n(&D.home, __ATOMIC_RELAXED) ||
        D.round_busy)
        return;
    switch (__atomic_load_n(&D.phase, __ATOMIC_RELAXED)) {
    case D_WAITING:
        if (!console_alive(w)) {
            D.console = NULL;
            give_up(w, "the new process went away");
            return;
        }
        if (now > D.deadline) {
            give_up(w, "%s", D.fail_msg[0] ? D.fail_msg : "timed out");
            return;
        }
        D.round_busy = true;
        if (!sl_workers_round(w, freeze_each, freeze_done, NULL)) D.round_busy = false;
        break;
    case D_SENDING: {
        int r = __atomic_load_n(&D.result, __ATOMIC_ACQUIRE);
        if (r == 0) return;
        if (r < 0) {
            give_up(w, "%s", D.err);
            return;
        }
        __atomic_store_n(&D.phase, D_FINISHING, __ATOMIC_RELEASE);
        D.round_busy = true;
        if (!sl_workers_round(w, finish_each, finished, NULL)) finished(w, NULL);
        break;
    }
    default: break;
    }
}

/* ---- UPGRADE: start the new process from here ---- */

static char *g_exe, *g_config;

void sl_takeover_set_exec(const char *exe_path, const char *config_path)
{
    free(g_exe);
    free(g_config);
    g_exe = exe_path ? strdup(exe_path) : NULL;
    g_config = config_path ? strdup(config_path) : NULL;
}

bool sl_takeover_spawn(int timeout_s, char *err, size_t errlen)
{
    if (!g_exe || !g_config) {
        snprintf(err, errlen, "the path of the pgsluice binary is unknown");
        return false;
    }
    if (access(g_exe, X_OK) != 0) {
        snprintf(err, errlen, "cannot run %s: %s", g_exe, strerror(errno));
        return false;
    }
    char secs[16];
    snprintf(secs, sizeof(secs), "%d", timeout_s);
    char *const argv[] = {g_exe, "--takeover", "--takeover-timeout", secs, g_config, NULL};
    /* twice forked: the new process is nobody's zombie, and stays in this process's cgroup */
    pid_t mid = fork();
    if (mid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return false;
    }
    if (mid == 0) {
        setsid();
        if (fork() != 0) _exit(0);
        /* only stdin/out/err go along: every socket of this process stays here until handed over */
        for (int fd = 3; fd < 65536; fd++) close(fd);
        execv(argv[0], argv);
        fprintf(stderr, "pgsluice: UPGRADE: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {}
    sl_log_info("UPGRADE: started %s --takeover", g_exe);
    return true;
}

/* ---- the new process: receiving ---- */

/* A connection received for a worker, adopted on its thread (sl_takeover_adopt). */
typedef struct tk_adopt {
    struct tk_adopt *next;
    sl_client *c;            /* NULL: an idle server */
    sl_server *s;            /* the idle server, or the client's linked server (session mode) */
    int old_worker;
    uint8_t *pending;        /* bytes the client sent that were not served yet */
    uint32_t npending;
    bool claimed;
    char reject_state[6];    /* non-empty: it cannot go on here; told so (FATAL) and closed */
    char reject[512];
} tk_adopt;

static tk_adopt *adopt_head[SL_MAX_WORKERS]; /* written before the workers start; each then its worker's */

static int deadline_wait(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = (deadline - sl_now_us()) / 1000;
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = ev};
        int rc = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (rc > 0) return 1;
        if (rc < 0 && errno != EINTR) return -1;
    }
}

static bool read_full(int fd, void *d, size_t n, int64_t deadline, char *err, size_t errlen)
{
    uint8_t *p = d;
    while (n) {
        int w = deadline_wait(fd, POLLIN, deadline);
        if (w <= 0) {
            snprintf(err, errlen, "%s", w == 0 ? "timed out waiting for the running process" : strerror(errno));
            return false;
        }
        ssize_t k = recv(fd, p, n, 0);
        if (k == 0) {
            snprintf(err, errlen, "the running process closed the connection");
            return false;
        }
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            snprintf(err, errlen, "%s", strerror(errno));
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* One message from the console: type, body (malloc'd; free it). */
static bool read_msg(int fd, char *type, uint8_t **body, uint32_t *len, int64_t deadline, char *err, size_t errlen)
{
    uint8_t h[5];
    if (!read_full(fd, h, 5, deadline, err, errlen)) return false;
    *type = (char)h[0];
    uint32_t n = ((uint32_t)h[1] << 24) | ((uint32_t)h[2] << 16) | ((uint32_t)h[3] << 8) | h[4];
    if (n < 4 || n - 4 > TK_MAX_PAYLOAD) {
        snprintf(err, errlen, "bad message length %u from the running process", n);
        return false;
    }
    *len = n - 4;
    *body = malloc(*len + 1);
    if (!*body) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    (*body)[*len] = 0;
    if (!read_full(fd, *body, *len, deadline, err, errlen)) {
        free(*body);
        *body = NULL;
        return false;
    }
    return true;
}

/* The M field of an ErrorResponse / NoticeResponse body. */
static const char *field_msg(const uint8_t *b, uint32_t len)
{
    uint32_t i = 0;
    while (i < len && b[i]) {
        char f = (char)b[i++];
        const char *v = (const char *)b + i;
        i += (uint32_t)strnlen(v, len - i) + 1;
        if (f == 'M') return v;
    }
    return "(no message)";
}

static bool send_simple(int fd, char type, const void *body, uint32_t n)
{
    uint8_t h[5] = {(uint8_t)type, (uint8_t)((n + 4) >> 24), (uint8_t)((n + 4) >> 16), (uint8_t)((n + 4) >> 8),
                    (uint8_t)(n + 4)};
    return write_all(fd, h, 5) == 0 && write_all(fd, body, n) == 0;
}

static int console_login(const sl_config *cfg, int64_t deadline, char *err, size_t errlen)
{
    if (!cfg->unix_socket_dir || !*cfg->unix_socket_dir) {
        snprintf(err, errlen, "takeover needs unix_socket_dir: the running process is reached through its Unix socket");
        return -1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "cannot connect to the running pgsluice at %s: %s", sa.sun_path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    static const char params[] = "user\0pgbouncer\0database\0pgbouncer\0application_name\0pgsluice takeover\0";
    uint8_t pkt[8 + sizeof(params)];
    uint32_t n = (uint32_t)sizeof(pkt);
    pkt[0] = (uint8_t)(n >> 24);
    pkt[1] = (uint8_t)(n >> 16);
    pkt[2] = (uint8_t)(n >> 8);
    pkt[3] = (uint8_t)n;
    pkt[4] = 0;
    pkt[5] = 3;
    pkt[6] = 0;
    pkt[7] = 0;
    memcpy(pkt + 8, params, sizeof(params)); /* ends with the terminating NUL */
    if (write_all(fd, pkt, n) < 0) {
        snprintf(err, errlen, "cannot talk to the running pgsluice: %s", strerror(errno));
        close(fd);
        return -1;
    }
    for (;;) {
        char type;
        uint8_t *b;
        uint32_t len;
        if (!read_msg(fd, &type, &b, &len, deadline, err, errlen)) {
            close(fd);
            return -1;
        }
        bool bad = false;
        if (type == 'E') {
            snprintf(err, errlen, "the running pgsluice refused the console login: %s", field_msg(b, len));
            bad = true;
        } else if (type == 'R' && (len < 4 || b[0] || b[1] || b[2] || b[3])) {
            snprintf(err, errlen, "the running pgsluice asks for a password: run the new process as the same OS user "
                                  "as the running one (its console lets that user in over the Unix socket)");
            bad = true;
        }
        free(b);
        if (bad) {
            close(fd);
            return -1;
        }
        if (type == 'Z') return fd;
    }
}

static void get_params(tk_rd *r, sl_params *p)
{
    uint32_t n = rd_u32(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        char name[128], value[1024];
        rd_str(r, name, sizeof(name));
        bool have = rd_str(r, value, sizeof(value));
        int id = sl_param_lookup(name);
        if (id >= 0 && have) sl_params_set(p, id, value);
    }
}

static sl_stmt *get_stmt(tk_rd *r)
{
    uint64_t id = rd_u64(r);
    bool valid = rd_u8(r) != 0;
    uint32_t n;
    const uint8_t *body = rd_bytes(r, &n);
    if (r->bad) return NULL;
    return sl_stmt_adopt(id, body ? body : (const uint8_t *)"", n, valid);
}

typedef struct tk_in {
    const sl_config *cfg;
    int *fds;
    uint32_t nfds, next;
    int nworkers;
    int64_t now;
    unsigned clients, servers, dropped;
} tk_in;

static int take_fd(tk_in *in, tk_rd *r)
{
    if (in->next >= in->nfds) {
        r->bad = true;
        return -1;
    }
    return in->fds[in->next++];
}

/* A server record: the server, counted in its pool (idle: on worker's idle list); NULL when it
 * cannot go on here (its database or host is no longer configured): its descriptor is closed. */
static sl_server *get_server(tk_in *in, tk_rd *r, int worker, bool idle, char *why, size_t whylen)
{
    uint64_t id = rd_u64(r);
    char db[256], user[256], host[256], addr[64];
    rd_str(r, db, sizeof(db));
    rd_str(r, user, sizeof(user));
    uint32_t bidx = rd_u32(r);
    bool have_host = rd_str(r, host, sizeof(host));
    uint32_t port = rd_u32(r);
    sl_server *s = calloc(1, sizeof(*s));
    if (!s) {
        r->bad = true;
        return NULL;
    }
    s->id = id;
    s->be_pid = rd_u32(r);
    s->be_key = rd_u32(r);
    get_params(r, &s->params);
    rd_str(r, addr, sizeof(addr));
    snprintf(s->addr_str, sizeof(s->addr_str), "%s", addr);
    int64_t age = (int64_t)rd_u64(r);
    s->pc.standby = rd_u8(r);
    sl_list_init(&s->pc.idle_node);
    sl_list_init(&s->cancels);
    sl_stmt_cache_init(&s->ps_cache);
    uint32_t nst = rd_u32(r);
    bool stmts_ok = true;
    for (uint32_t i = 0; i < nst && !r->bad; i++) {
        sl_stmt *st = get_stmt(r);
        if (!st) stmts_ok = false;
        else if (!sl_stmt_cache_add(&s->ps_cache, st)) {
            sl_stmt_unref(st);
            stmts_ok = false;
        }
    }
    int fd = take_fd(in, r);
    sl_stream_init(&s->s, fd);
    s->xact = SL_XACT_IDLE;
    s->pc.connect_time = in->now - age;
    s->last_used = s->pc.idle_since = in->now;
    char sqlstate[6], err[256];
    sl_route *rt = r->bad ? NULL : sl_route_get(in->cfg, db, user, SL_REPL_NONE, sqlstate, err, sizeof(err));
    sl_backend *b = NULL;
    if (rt) {
        pthread_mutex_lock(&rt->lock);
        if (bidx < (uint32_t)rt->nbackends) {
            sl_backend *cand = rt->backends[bidx];
            bool same_host = have_host ? cand->host && !strcmp(cand->host, host) : !cand->host;
            if (same_host && cand->port == (int)port) b = cand;
        }
        pthread_mutex_unlock(&rt->lock);
    } else {
        snprintf(why, whylen, "%s", err);
    }
    if (!b || !stmts_ok || r->bad) {
        if (rt && !b) snprintf(why, whylen, "its server %s is no longer configured for database \"%.100s\"", addr, db);
        else if (!stmts_ok) snprintf(why, whylen, "its server's prepared statements could not be carried over");
        if (rt) sl_route_put(rt);
        sl_stmt_cache_clear(&s->ps_cache);
        sl_params_clear(&s->params);
        if (fd >= 0) close(fd);
        free(s);
        in->dropped++;
        return NULL;
    }
    s->pc.backend = b;
    s->state = idle ? SL_SV_IDLE : SL_SV_ACTIVE;
    sl_route_adopt_conn(&s->pc, worker, idle);
    sl_route_put(rt); /* the route stays: it counts this server */
    in->servers++;
    return s;
}

static void queue_adopt(int worker, tk_adopt *a)
{
    a->next = adopt_head[worker];
    adopt_head[worker] = a;
}

static void get_client(tk_in *in, tk_rd *r, int worker, int old_worker)
{
    tk_adopt *a = calloc(1, sizeof(*a));
    sl_client *c = calloc(1, sizeof(*c));
    if (!a || !c) {
        free(a);
        free(c);
        r->bad = true;
        return;
    }
    a->c = c;
    a->old_worker = old_worker;
    c->slot = rd_u32(r);
    c->gen = rd_u32(r);
    c->id = rd_u64(r);
    c->cancel_key = rd_u32(r);
    char user[256], db[256], rdb[256], ruser[256];
    rd_str(r, user, sizeof(user));
    rd_str(r, db, sizeof(db));
    rd_str(r, rdb, sizeof(rdb));
    rd_str(r, ruser, sizeof(ruser));
    rd_str(r, c->addr, sizeof(c->addr));
    c->is_unix = rd_u8(r) != 0;
    char st = (char)rd_u8(r);
    c->connect_time = in->now - (int64_t)rd_u64(r);
    c->last_activity = in->now - (int64_t)rd_u64(r);
    c->wait_us_total = rd_u64(r);
    get_params(r, &c->params);
    uint32_t nmap = rd_u32(r);
    bool stmts_ok = true;
    for (uint32_t i = 0; i < nmap && !r->bad; i++) {
        char name[1024];
        rd_str(r, name, sizeof(name));
        sl_stmt *stmt = get_stmt(r);
        if (!stmt) stmts_ok = false;
        else if (!sl_stmt_map_put(&c->ps_map, name, stmt)) {
            sl_stmt_unref(stmt);
            stmts_ok = false;
        }
    }
    uint32_t np;
    const uint8_t *pend = rd_bytes(r, &np);
    if (np) {
        a->pending = malloc(np);
        if (!a->pending) r->bad = true;
        else memcpy(a->pending, pend, np);
        a->npending = np;
    }
    sl_stream_init(&c->s, take_fd(in, r));
    c->user = sl_intern(user);
    c->dbname = sl_intern(db);
    c->state = st == 'W' ? SL_CL_WELCOME : st == 'A' ? SL_CL_ACTIVE : SL_CL_IDLE;
    char why[300] = "";
    if (st == 'A') {
        c->server = get_server(in, r, worker, false, why, sizeof(why));
        if (c->server) {
            c->server->client = c;
            c->server->link_time = in->now;
        } else {
            snprintf(a->reject_state, sizeof(a->reject_state), "57P01");
            snprintf(a->reject, sizeof(a->reject), "pgsluice was restarted (takeover) and this session's server "
                                                   "connection could not be carried over: %s", why);
        }
    }
    char sqlstate[6], err[256];
    if (!r->bad) c->route = sl_route_get(in->cfg, rdb, ruser, SL_REPL_NONE, sqlstate, err, sizeof(err));
    if (!c->route && !a->reject_state[0]) {
        snprintf(a->reject_state, sizeof(a->reject_state), "%s", r->bad ? "08P01" : sqlstate);
        snprintf(a->reject, sizeof(a->reject), "pgsluice was restarted (takeover) and cannot serve this connection "
                                               "any more: %s", r->bad ? "bad state" : err);
    }
    if (!stmts_ok && !a->reject_state[0]) {
        snprintf(a->reject_state, sizeof(a->reject_state), "57P01");
        snprintf(a->reject, sizeof(a->reject), "pgsluice was restarted (takeover) and could not carry this "
                                               "connection's prepared statements over");
    }
    if (c->route && !a->reject_state[0]) {
        const char *which = NULL;
        c->logged_in = sl_route_client_login(c->route, &which);
    }
    a->s = c->server;
    if (!c->user || !c->dbname) r->bad = true;
    queue_adopt(worker, a);
    in->clients++;
}

static bool parse_payload(tk_in *in, const uint8_t *p, size_t len, char *err, size_t errlen)
{
    tk_rd r = {.p = p, .len = len};
    if (rd_u32(&r) != TK_MAGIC || rd_u32(&r) != TK_VERSION) {
        snprintf(err, errlen, "the running process speaks another takeover protocol version (pgsluice versions too "
                              "far apart)");
        return false;
    }
    uint64_t counter = rd_u64(&r);
    uint64_t cur = __atomic_load_n(&sl_conn_counter, __ATOMIC_RELAXED);
    if (counter > cur) __atomic_store_n(&sl_conn_counter, counter, __ATOMIC_RELAXED);
    uint32_t nl = rd_u32(&r);
    if (nl > SL_MAX_LISTEN) r.bad = true;
    int lfds[SL_MAX_LISTEN];
    bool lunix[SL_MAX_LISTEN];
    for (uint32_t i = 0; i < nl && !r.bad; i++) {
        lunix[i] = rd_u8(&r) != 0;
        lfds[i] = take_fd(in, &r);
    }
    for (;;) {
        uint32_t old_worker = rd_u32(&r);
        if (r.bad || old_worker == UINT32_MAX) break;
        uint32_t nrec = rd_u32(&r);
        int worker = (int)(old_worker % (uint32_t)in->nworkers);
        for (uint32_t i = 0; i < nrec && !r.bad; i++) {
            uint8_t kind = rd_u8(&r);
            if (kind == 'C') {
                get_client(in, &r, worker, (int)old_worker);
            } else if (kind == 'S') {
                char why[300];
                sl_server *s = get_server(in, &r, worker, true, why, sizeof(why));
                if (s) {
                    tk_adopt *a = calloc(1, sizeof(*a));
                    if (!a) {
                        r.bad = true;
                        break;
                    }
                    a->s = s;
                    queue_adopt(worker, a);
                }
            } else {
                r.bad = true;
            }
        }
    }
    if (r.bad || in->next != in->nfds) {
        snprintf(err, errlen, "the running process's state could not be read (%s)",
                 r.bad ? "malformed" : "descriptor count differs");
        return false;
    }
    sl_listen_adopt(lfds, lunix, (int)nl);
    return true;
}

bool sl_takeover_receive(const sl_config *cfg, int timeout_s, char *err, size_t errlen)
{
    sl_now_refresh();
    int64_t deadline = sl_now_us() + 30 * 1000000LL;
    int fd = console_login(cfg, deadline, err, errlen);
    if (fd < 0) return false;
    char q[64];
    int n = snprintf(q, sizeof(q), "TAKEOVER %d", timeout_s);
    if (!send_simple(fd, 'Q', q, (uint32_t)n + 1)) {
        snprintf(err, errlen, "cannot talk to the running pgsluice: %s", strerror(errno));
        close(fd);
        return false;
    }
    sl_log_info("takeover: asked the running pgsluice to hand over (waiting up to %d s for its clients to get "
                "between transactions)",
                timeout_s);
    /* its answer comes once every client is between transactions */
    deadline = sl_now_us() + ((int64_t)timeout_s + 60) * 1000000;
    uint8_t *body = NULL;
    uint32_t len = 0;
    for (;;) {
        char type;
        if (!read_msg(fd, &type, &body, &len, deadline, err, errlen)) {
            close(fd);
            return false;
        }
        if (type == '!') break;
        if (type == 'E') {
            snprintf(err, errlen, "the running pgsluice did not hand over: %s", field_msg(body, len));
            free(body);
            close(fd);
            return false;
        }
        if (type == 'N') sl_log_info("takeover: the running pgsluice says: %s", field_msg(body, len));
        free(body);
    }
    tk_in in = {.cfg = cfg, .now = sl_now_us()};
    in.nworkers = cfg->workers < 1 ? 1 : cfg->workers > SL_MAX_WORKERS ? SL_MAX_WORKERS : cfg->workers;
    uint32_t want = 0;
    if (len >= 4) memcpy(&want, body, 4);
    in.fds = want ? calloc(want, sizeof(int)) : NULL;
    if (len < 4 || (want && !in.fds)) {
        snprintf(err, errlen, "bad hand-over message");
        free(body);
        close(fd);
        return false;
    }
    const char *exit_after = getenv("PGSLUICE_TAKEOVER_TEST_EXIT_AFTER_FDS"); /* tests: die halfway */
    long die_at = exit_after && *exit_after ? strtol(exit_after, NULL, 10) : -1;
    bool ok = true;
    while (in.nfds < want) {
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
            char buf[CMSG_SPACE(sizeof(int) * TK_FDS_PER_MSG)];
            struct cmsghdr align;
        } u;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
        if (deadline_wait(fd, POLLIN, deadline) <= 0) {
            snprintf(err, errlen, "timed out receiving the sockets");
            ok = false;
            break;
        }
        ssize_t rc = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (rc < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (rc <= 0 || (mh.msg_flags & MSG_CTRUNC)) {
            snprintf(err, errlen, "receiving the sockets: %s", rc < 0 ? strerror(errno) : "connection closed");
            ok = false;
            break;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *got = (int *)CMSG_DATA(cm);
            for (size_t i = 0; i < k; i++) {
                if (in.nfds < want) in.fds[in.nfds++] = got[i];
                else close(got[i]);
            }
        }
        if (die_at >= 0 && in.nfds >= (uint32_t)die_at) {
            fprintf(stderr, "pgsluice: PGSLUICE_TAKEOVER_TEST_EXIT_AFTER_FDS: exiting after %u descriptors\n", in.nfds);
            _exit(3);
        }
    }
    if (ok) ok = parse_payload(&in, body + 4, len - 4, err, errlen);
    free(body);
    if (!ok) {
        /* nothing is taken over: our copies go, the running process keeps serving */
        for (uint32_t i = 0; i < in.nfds; i++) close(in.fds[i]);
        free(in.fds);
        close(fd);
        return false;
    }
    free(in.fds);
    if (write_all(fd, "K", 1) < 0) {
        snprintf(err, errlen, "cannot confirm the hand-over: %s", strerror(errno));
        close(fd);
        return false;
    }
    close(fd);
    sl_log_info("takeover: took over %u clients and %u server connections (%u server connections dropped)",
                in.clients, in.servers, in.dropped);
    return true;
}

/* ---- the new process: adopting, on each worker's thread ---- */

void sl_takeover_adopt(sl_worker *w)
{
    tk_adopt *list = adopt_head[w->id];
    adopt_head[w->id] = NULL;
    if (!list) return;
    /* same worker, same slot: the cancel key the client holds still names it */
    for (tk_adopt *a = list; a; a = a->next)
        if (a->c && a->old_worker == w->id) a->claimed = sl_worker_claim_slot(w, a->c->slot, a->c, a->c->gen);
    sl_worker_claim_slots_done(w);
    while (list) {
        tk_adopt *a = list;
        list = a->next;
        sl_server *s = a->s;
        if (s) {
            s->s.w = w;
            sl_list_insert_tail(&w->servers, &s->node);
            if (!sl_server_attach(s, w)) {
                if (a->c) a->c->server = NULL;
                s->client = NULL;
                sl_server_close(s, SL_CLOSE_ATTACH_FAILED);
                if (a->c && !a->reject_state[0]) {
                    snprintf(a->reject_state, sizeof(a->reject_state), "57P01");
                    snprintf(a->reject, sizeof(a->reject), "pgsluice was restarted (takeover) and this session's "
                                                           "server connection could not be carried over");
                }
            } else if (!a->c) {
                sl_stream_set_poll(&s->s, UV_READABLE);
            }
        }
        sl_client *c = a->c;
        if (c) {
            if (!a->claimed) {
                c->slot = sl_worker_add_slot(w, c, c->gen);
                if (c->slot == UINT32_MAX) {
                    snprintf(a->reject_state, sizeof(a->reject_state), "53300");
                    snprintf(a->reject, sizeof(a->reject), "out of connection slots");
                }
            }
            c->s.w = w;
            if (a->npending && !a->reject_state[0] && sl_stream_make_room(&c->s, a->npending, a->npending + w->buf_size)) {
                memcpy(c->s.buf + c->s.end, a->pending, a->npending);
                c->s.end += a->npending;
            }
            if (c->slot == UINT32_MAX) {
                /* cannot even be named on this worker: hang up */
                if (c->server) {
                    c->server->client = NULL;
                    sl_server_close(c->server, SL_CLOSE_OUT_OF_MEMORY);
                    c->server = NULL;
                }
                if (c->logged_in) sl_route_client_logout(c->route);
                if (c->route) sl_route_put(c->route);
                close(c->s.fd);
                sl_params_clear(&c->params);
                sl_stmt_map_clear(&c->ps_map);
                sl_intern_release(c->user);
                sl_intern_release(c->dbname);
                sl_stream_free_buf(&c->s);
                free(c);
            } else if (a->reject_state[0]) {
                if (c->server) {
                    c->server->client = NULL;
                    sl_server_close(c->server, SL_CLOSE_TAKEOVER);
                    c->server = NULL;
                }
                c->state = SL_CL_IDLE;
                sl_client_adopt(w, c, a->reject_state, a->reject);
            } else {
                sl_client_adopt(w, c, NULL, NULL);
            }
        }
        free(a->pending);
        free(a);
    }
}
