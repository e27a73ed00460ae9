/* listen_fanout.c - LISTEN/NOTIFY in transaction pooling without a server per listener.
 *
 * A client between transactions that sends LISTEN ch, UNLISTEN ch or UNLISTEN * alone in a simple
 * Query is answered by pgsluice. Its subscription goes into the hub: one entry per database (as
 * clients name it), with the channels, each channel's subscribers (worker, slot, generation), and the
 * LISTEN / UNLISTEN commands its listener connection still has to run. The listener connection is a
 * server connection of its own (server.c logs it in with the credentials of the route that opened
 * it; it is not one of the route's servers) owned by one worker, the database's owner: only that
 * worker touches it. It LISTENs on the union of the channels and UNLISTENs a channel when its last
 * subscriber leaves; it closes when no channel is left.
 *
 * A LISTEN is answered only once the listener has run a LISTEN of that channel queued after the
 * subscription (a barrier: from then on, every notification the listener receives for the channel
 * reaches the client), so the client's LISTEN completes as it would on its own connection. Each
 * NotificationResponse the listener receives is copied to every active subscriber's worker through
 * its mailbox, in the order received; there the client gets it between two messages of its own
 * stream: at once when it is not linked to a server (or linked, pinned, and its server is idle after
 * a ReadyForQuery 'I'), else once its transaction has ended. At most listen_queue_max wait per
 * client; a client with more is disconnected.
 *
 * The listener lost (pg_terminate_backend, a restart): it reconnects with a growing delay and
 * LISTENs on every channel again; notifications sent in between are lost (docs/OPERATIONS.md).
 *
 * Locks: the hub's mutex is taken for a subscription, an unsubscription, each notification and each
 * command's answer; worker mailboxes are posted to with it held (their own lock is taken inside). */
#include "core/listen_fanout.h"
#include "core/listen_fanout_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/dispatch.h"
#include "core/msgread.h"
#include "core/proxy.h"
#include "core/proxy_ps.h"
#include "core/server.h"
#include "proto/msgtype.h"
#include "proto/stmt_class.h"
#include "util/intern.h"
#include "util/log.h"
#include "util/time.h"

/* A LISTEN longer than this is not looked at (it goes to a server, and pins). */
#define QUERY_MAX 8192u
#define NOTIFY_MSG_MAX (1u << 20)
#define BACKOFF_MIN_US 250000
#define BACKOFF_MAX_US 10000000

/* ---- the hub ---- */

typedef struct fo_sub {
    int worker;
    uint32_t slot, gen;
    bool active;      /* its LISTEN was answered: notifications go to it */
    uint64_t need;    /* the command whose answer activates it */
} fo_sub;

typedef struct fo_chan {
    char *name;
    fo_sub *subs;
    uint32_t n, cap;
} fo_chan;

typedef struct fo_cmd {
    uint64_t id;
    bool listen;
    bool failed;
    char *chan;
    char err[200];
} fo_cmd;

typedef struct fo_cmds {
    fo_cmd *v;
    uint32_t head, n, cap;
} fo_cmds;

typedef struct sl_fanout_db {
    struct sl_fanout_db *next;
    char *name;           /* the database as clients name it */
    sl_backend *backend;  /* held (sl_route_listen_backend) */
    int worker;           /* the owner */
    /* hub lock */
    fo_chan *chans;
    uint32_t nchans, chancap;
    fo_cmds todo;         /* to send */
    fo_cmds sent;         /* sent, answer awaited (in order) */
    bool kick_posted;
    /* owner only */
    sl_server *conn;
    bool ready;
    bool lost;            /* it was up and went down: say so when it is back */
    int64_t checked_at;   /* when its backend was last checked against the route's */
    int64_t retry_at, backoff;
} sl_fanout_db;

/* What a client keeps (its worker only). */
typedef struct sl_fanout_client {
    const char **chans;   /* interned */
    uint32_t n, cap;
    const char *waiting;  /* a LISTEN waiting for the listener (interned), NULL: none */
    int8_t done;          /* its answer came while the client was frozen (takeover): 1 ok, -1 failed */
    char *done_err;
    sl_pktbuf q;          /* notifications waiting for a message boundary */
    uint32_t qn;
    uint8_t *unnamed;     /* the unnamed statement parsed by listen_extended.c (its Parse body after
                             the name) while nothing the client sent went to a server since */
    uint32_t unnamed_len;
} sl_fanout_client;

static pthread_mutex_t hub_lock = PTHREAD_MUTEX_INITIALIZER;
static sl_fanout_db *dbs;
static uint64_t next_cmd_id = 1;
static int64_t n_channels, n_listeners, n_subs;
static uint64_t n_delivered, n_dropped, n_reconnects;

enum { NOTE_OK = 1, NOTE_FAILED = 0 };

static sl_fanout_db *find_db_locked(const char *name)
{
    for (sl_fanout_db *d = dbs; d; d = d->next)
        if (!strcmp(d->name, name)) return d;
    return NULL;
}

static fo_chan *find_chan_locked(sl_fanout_db *d, const char *name)
{
    for (uint32_t i = 0; i < d->nchans; i++)
        if (!strcmp(d->chans[i].name, name)) return &d->chans[i];
    return NULL;
}

static void kick_locked(sl_fanout_db *d)
{
    if (d->kick_posted) return;
    d->kick_posted = true;
    sl_msg m = {.type = SL_MSG_FANOUT_KICK};
    sl_worker_post(&sl_workers[d->worker], &m);
}

static void cmds_free(fo_cmds *q)
{
    for (uint32_t i = q->head; i < q->n; i++) free(q->v[i].chan);
    q->head = q->n = 0;
}

/* 0 when out of memory */
static uint64_t push_cmd_locked(sl_fanout_db *d, bool listen, const char *chan)
{
    fo_cmds *q = &d->todo;
    if (q->n == q->cap) {
        uint32_t ncap = q->cap ? q->cap * 2 : 8;
        fo_cmd *v = realloc(q->v, ncap * sizeof(*v));
        if (!v) return 0;
        q->v = v;
        q->cap = ncap;
    }
    char *c = strdup(chan);
    if (!c) return 0;
    q->v[q->n++] = (fo_cmd){.id = next_cmd_id++, .listen = listen, .chan = c};
    kick_locked(d);
    return q->v[q->n - 1].id;
}

static void post_done_locked(const fo_sub *s, bool ok, const char *err)
{
    sl_msg m = {.type = SL_MSG_FANOUT_DONE, .slot = s->slot, .gen = s->gen, .a = ok ? NOTE_OK : NOTE_FAILED};
    if (!ok) m.obj = strdup(err ? err : "could not LISTEN");
    sl_worker_post(&sl_workers[s->worker], &m);
}

static void chan_remove_locked(sl_fanout_db *d, fo_chan *ch)
{
    __atomic_sub_fetch(&n_channels, 1, __ATOMIC_RELAXED);
    free(ch->name);
    free(ch->subs);
    *ch = d->chans[--d->nchans];
}

/* Take subscriber (worker, slot, gen) off a channel; the channel goes (and is UNLISTENed) with its
 * last subscriber. */
static void unsubscribe_locked(sl_fanout_db *d, const char *chan, int worker, uint32_t slot, uint32_t gen)
{
    fo_chan *ch = find_chan_locked(d, chan);
    if (!ch) return;
    for (uint32_t i = 0; i < ch->n; i++) {
        if (ch->subs[i].worker != worker || ch->subs[i].slot != slot || ch->subs[i].gen != gen) continue;
        ch->subs[i] = ch->subs[--ch->n];
        __atomic_sub_fetch(&n_subs, 1, __ATOMIC_RELAXED);
        break;
    }
    if (ch->n) return;
    char name[SL_STMT_NAME_MAX];
    snprintf(name, sizeof(name), "%s", ch->name);
    chan_remove_locked(d, ch);
    if (d->nchans) (void)push_cmd_locked(d, false, name); /* out of memory: it stays listened on, unused */
    else kick_locked(d);                                   /* the connection is closed */
}

/* ---- the client's side ---- */

static sl_fanout_client *fc_get(sl_client *c)
{
    if (!c->fanout) {
        c->fanout = calloc(1, sizeof(*c->fanout));
        if (c->fanout) sl_pb_init(&c->fanout->q);
    }
    return c->fanout;
}

static int fc_find(const sl_fanout_client *f, const char *chan)
{
    for (uint32_t i = 0; f && i < f->n; i++)
        if (!strcmp(f->chans[i], chan)) return (int)i;
    return -1;
}

static bool fc_add(sl_fanout_client *f, const char *interned)
{
    if (f->n == f->cap) {
        uint32_t ncap = f->cap ? f->cap * 2 : 4;
        const char **v = realloc(f->chans, ncap * sizeof(*v));
        if (!v) return false;
        f->chans = v;
        f->cap = ncap;
    }
    f->chans[f->n++] = interned;
    return true;
}

bool sl_fanout_client_subscribed(const sl_client *c) { return c->fanout && (c->fanout->n || c->fanout->waiting); }

static void answer(sl_client *c, const char *tag)
{
    sl_pb_command_complete(&c->s.out, tag);
    sl_pb_ready(&c->s.out, SL_XACT_IDLE);
}

/* Subscribe: false when the fan-out cannot serve this database (several hosts without roles, no
 * primary) or memory ran out; the LISTEN then goes to a server as before. */
static bool subscribe(sl_client *c, const char *chan)
{
    sl_route *r = c->route;
    sl_worker *w = c->s.w;
    sl_backend *held = NULL;
    pthread_mutex_lock(&hub_lock);
    sl_fanout_db *d = find_db_locked(r->db_name);
    if (!d) { /* the backend is taken outside the hub lock (it takes the route's) */
        pthread_mutex_unlock(&hub_lock);
        held = sl_route_listen_backend(r);
        if (!held) return false;
        pthread_mutex_lock(&hub_lock);
        d = find_db_locked(r->db_name);
    }
    if (!d && held) {
        d = calloc(1, sizeof(*d));
        if (d) d->name = strdup(r->db_name);
        if (d && !d->name) {
            free(d);
            d = NULL;
        }
        if (d) {
            d->backend = held;
            held = NULL;
            d->worker = w->id;
            d->backoff = BACKOFF_MIN_US;
            d->next = dbs;
            dbs = d;
        }
    }
    bool ok = false;
    fo_chan *ch = d ? find_chan_locked(d, chan) : NULL;
    if (d && !ch && d->nchans == d->chancap) {
        uint32_t ncap = d->chancap ? d->chancap * 2 : 8;
        fo_chan *v = realloc(d->chans, ncap * sizeof(*v));
        if (v) {
            d->chans = v;
            d->chancap = ncap;
        }
    }
    if (d && !ch && d->nchans < d->chancap) {
        char *name = strdup(chan);
        if (name) {
            ch = &d->chans[d->nchans++];
            *ch = (fo_chan){.name = name};
            __atomic_add_fetch(&n_channels, 1, __ATOMIC_RELAXED);
        }
    }
    if (ch && ch->n == ch->cap) {
        uint32_t ncap = ch->cap ? ch->cap * 2 : 4;
        fo_sub *v = realloc(ch->subs, ncap * sizeof(*v));
        if (v) {
            ch->subs = v;
            ch->cap = ncap;
        }
    }
    if (ch && ch->n < ch->cap) {
        uint64_t id = push_cmd_locked(d, true, chan);
        if (id) {
            ch->subs[ch->n++] = (fo_sub){.worker = w->id, .slot = c->slot, .gen = c->gen, .need = id};
            __atomic_add_fetch(&n_subs, 1, __ATOMIC_RELAXED);
            ok = true;
        }
    }
    if (!ok && ch && !ch->n) chan_remove_locked(d, ch);
    if (d && !d->nchans) kick_locked(d); /* nobody left: the owner lets it go */
    pthread_mutex_unlock(&hub_lock);
    if (held) sl_route_listen_backend_put(held);
    return ok;
}

/* Give up one channel (chan NULL: all of them). */
static void unlisten(sl_client *c, const char *chan)
{
    sl_fanout_client *f = c->fanout;
    if (!f || !f->n || !c->route) return;
    pthread_mutex_lock(&hub_lock);
    sl_fanout_db *d = find_db_locked(c->route->db_name);
    for (uint32_t i = 0; i < f->n;) {
        if (chan && strcmp(f->chans[i], chan) != 0) {
            i++;
            continue;
        }
        if (d) unsubscribe_locked(d, f->chans[i], c->s.w->id, c->slot, c->gen);
        sl_intern_release(f->chans[i]);
        f->chans[i] = f->chans[--f->n];
    }
    pthread_mutex_unlock(&hub_lock);
}

void sl_fanout_client_unlisten(sl_client *c, const char *chan) { unlisten(c, chan); }

bool sl_fanout_client_waiting(const sl_client *c) { return c->fanout && c->fanout->waiting; }

void sl_fanout_client_gone(sl_client *c)
{
    sl_fanout_client *f = c->fanout;
    if (!f) return;
    unlisten(c, NULL);
    if (f->waiting && c->route) { /* its LISTEN's answer will find nobody: its subscription goes now */
        pthread_mutex_lock(&hub_lock);
        sl_fanout_db *d = find_db_locked(c->route->db_name);
        if (d) unsubscribe_locked(d, f->waiting, c->s.w->id, c->slot, c->gen);
        pthread_mutex_unlock(&hub_lock);
    }
    if (f->waiting) sl_intern_release(f->waiting);
    free(f->done_err);
    free(f->unnamed);
    free(f->chans);
    sl_pb_free(&f->q);
    free(f);
    c->fanout = NULL;
}

bool sl_fanout_serves(const sl_client *c)
{
    const sl_route *r = c->route;
    return c->s.w->cfg->listen_fanout && r && !r->replication &&
           sl_route_pool_mode(r) == SL_POOL_TRANSACTION && !c->deferred_begin;
}

bool sl_fanout_listen_text(const char *text, size_t len, sl_stmt_info *info)
{
    /* cheap first look: the first word (after blanks) starts with l or u, else it is no LISTEN */
    size_t k = 0;
    while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n' || text[k] == '\r')) k++;
    if (k >= len || (text[k] != 'l' && text[k] != 'L' && text[k] != 'u' && text[k] != 'U')) return false;
    sl_stmt_iter it;
    sl_stmt_info more;
    sl_stmt_iter_init(&it, text, len);
    if (!sl_stmt_next(&it, info) || it.broken) return false;
    if ((info->kind != SL_SK_LISTEN && info->kind != SL_SK_UNLISTEN) || info->ntokens != 2 || !info->name[0])
        return false;
    if (sl_stmt_next(&it, &more) || it.broken) return false; /* several statements: as before */
    return true;
}

bool sl_fanout_unnamed_set(sl_client *c, const uint8_t *body, uint32_t len)
{
    sl_fanout_client *f = fc_get(c);
    uint8_t *copy = f ? malloc(len ? len : 1) : NULL;
    if (!copy) return false;
    memcpy(copy, body, len);
    free(f->unnamed);
    f->unnamed = copy;
    f->unnamed_len = len;
    return true;
}

const uint8_t *sl_fanout_unnamed_get(const sl_client *c, uint32_t *len)
{
    if (!c->fanout || !c->fanout->unnamed) return NULL;
    *len = c->fanout->unnamed_len;
    return c->fanout->unnamed;
}

void sl_fanout_client_forwarding(sl_client *c)
{
    sl_fanout_client *f = c->fanout;
    if (!f || !f->unnamed) return;
    free(f->unnamed);
    f->unnamed = NULL;
    f->unnamed_len = 0;
}

bool sl_fanout_has(const sl_client *c, const char *chan) { return fc_find(c->fanout, chan) >= 0; }

bool sl_fanout_start_listen(sl_client *c, const char *chan)
{
    sl_fanout_client *f = fc_get(c);
    const char *name = f ? sl_intern(chan) : NULL;
    if (!name || !subscribe(c, chan)) {
        sl_intern_release(name);
        return false;
    }
    f->waiting = name;
    sl_stream_set_poll(&c->s, 0); /* nothing more is read until it is answered */
    return true;
}

sl_fanout_result sl_fanout_client_query(sl_client *c, uint32_t len)
{
    if (!sl_fanout_serves(c) || len > QUERY_MAX || len < 5) return SL_FANOUT_NO;
    sl_stream *in = &c->s;
    uint32_t have = in->end - in->parse;
    if (have < len + 1) return sl_stream_make_room(in, len + 1 - have, QUERY_MAX + 8) ? SL_FANOUT_NEED_MORE : SL_FANOUT_NO;
    const char *text = (const char *)in->buf + in->parse + 5;
    sl_stmt_info info;
    if (!sl_fanout_listen_text(text, len - 4, &info)) return SL_FANOUT_NO;
    bool star = info.kind == SL_SK_UNLISTEN && !strcmp(info.name, "*");
    sl_fanout_client_forwarding(c); /* a Query ends the unnamed statement, as on the server */
    if (info.kind == SL_SK_LISTEN && !sl_fanout_has(c, info.name)) {
        if (!sl_fanout_start_listen(c, info.name)) return SL_FANOUT_NO;
        in->parse += len + 1;
        in->pos = in->parse;
        return SL_FANOUT_WAIT;
    }
    in->parse += len + 1;
    in->pos = in->parse;
    if (info.kind == SL_SK_UNLISTEN) unlisten(c, star ? NULL : info.name);
    answer(c, info.kind == SL_SK_LISTEN ? "LISTEN" : "UNLISTEN");
    return SL_FANOUT_DONE;
}

/* The listener ran the LISTEN the client waited for (or could not). */
static void listen_done(sl_client *c, bool ok, const char *err)
{
    sl_fanout_client *f = c->fanout;
    if (!f || !f->waiting) return;
    const char *name = f->waiting;
    f->waiting = NULL;
    if (ok && !fc_add(f, name)) {
        ok = false;
        err = "out of memory";
    }
    if (!ok) {
        /* nothing of it stays in the hub */
        if (c->route) {
            pthread_mutex_lock(&hub_lock);
            sl_fanout_db *d = find_db_locked(c->route->db_name);
            if (d) unsubscribe_locked(d, name, c->s.w->id, c->slot, c->gen);
            pthread_mutex_unlock(&hub_lock);
        }
        sl_intern_release(name);
        sl_client_error(c, false, "08006", "pgsluice could not LISTEN through its listener connection: %s",
                        err ? err : "unknown error");
    } else {
        answer(c, "LISTEN");
    }
    if (c->state != SL_CL_IDLE) return;
    sl_fanout_client_flush(c);
    sl_io_status st = sl_stream_flush(&c->s, NULL);
    if (st == SL_IO_ERROR) {
        sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
        return;
    }
    sl_stream_set_poll(&c->s, st == SL_IO_AGAIN ? UV_WRITABLE : UV_READABLE);
    if (st != SL_IO_AGAIN && c->s.end > c->s.parse) sl_client_idle_input(c); /* what it sent meanwhile */
}

/* The client's output is between two messages and it is not in a transaction. */
static bool at_boundary(const sl_client *c)
{
    if (c->s.frozen || (c->fanout && c->fanout->waiting)) return false;
    if (c->state == SL_CL_IDLE) return !c->deferred_begin;
    if (c->state != SL_CL_ACTIVE || !c->server) return false;
    const sl_server *s = c->server;
    return s->state == SL_SV_ACTIVE && s->outstanding == 0 && !s->in_batch && s->xact == SL_XACT_IDLE &&
           s->s.msg_left == 0 && sl_stream_fwd_pending(&s->s) == 0 && (!s->ps_active || sl_ps_idle(s));
}

void sl_fanout_client_flush(sl_client *c)
{
    sl_fanout_client *f = c->fanout;
    if (!f || !f->qn || !at_boundary(c)) return;
    sl_pb_bytes(&c->s.out, f->q.data, f->q.len);
    __atomic_add_fetch(&n_delivered, f->qn, __ATOMIC_RELAXED);
    sl_pb_reset(&f->q);
    f->qn = 0;
    if (c->state == SL_CL_ACTIVE) {
        sl_proxy_update_poll(c, c->server); /* the link writes it out */
        return;
    }
    sl_io_status st = sl_stream_flush(&c->s, NULL);
    if (st == SL_IO_ERROR) sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
    else if (st == SL_IO_AGAIN) sl_stream_set_poll(&c->s, UV_WRITABLE);
}

/* A notification for a client of this worker. */
static void notify_client(sl_worker *w, sl_client *c, const uint8_t *msg, uint32_t mlen)
{
    sl_fanout_client *f = c->fanout;
    /* its channel: right after the header, the sender's PID */
    const char *chan = mlen > 9 ? (const char *)msg + 9 : "";
    if (!f || mlen <= 9 || !memchr(chan, 0, mlen - 9) || fc_find(f, chan) < 0) return; /* UNLISTENed since */
    if (f->qn >= (uint32_t)w->cfg->listen_queue_max) {
        __atomic_add_fetch(&n_dropped, 1, __ATOMIC_RELAXED);
        sl_log_warn("C-0x%llx: %s/%s@%s dropped: more than listen_queue_max (%d) notifications waiting for it",
                       (unsigned long long)c->id, c->dbname, c->user, c->addr, w->cfg->listen_queue_max);
        if (at_boundary(c) && c->state == SL_CL_IDLE)
            sl_client_error(c, true, "54000", "too many notifications are waiting for this client (listen_queue_max)");
        else
            sl_client_close(c, SL_CLOSE_ERROR_SENT);
        return;
    }
    sl_pb_bytes(&f->q, msg, mlen);
    if (f->q.failed) {
        sl_client_close(c, SL_CLOSE_OUT_OF_MEMORY);
        return;
    }
    f->qn++;
    sl_fanout_client_flush(c);
}

/* ---- the listener connection (its owner's worker) ---- */

static void send_commands(sl_fanout_db *d)
{
    sl_server *s = d->conn;
    pthread_mutex_lock(&hub_lock);
    if (d->sent.n > d->sent.head || d->todo.n == d->todo.head) {
        pthread_mutex_unlock(&hub_lock);
        return;
    }
    char sql[2 * SL_STMT_NAME_MAX + 16];
    for (uint32_t i = d->todo.head; i < d->todo.n; i++) {
        const fo_cmd *cmd = &d->todo.v[i];
        size_t k = (size_t)snprintf(sql, sizeof(sql), "%s \"", cmd->listen ? "LISTEN" : "UNLISTEN");
        for (const char *p = cmd->chan; *p && k < sizeof(sql) - 3; p++) { /* a quoted identifier */
            if (*p == '"') sql[k++] = '"';
            sql[k++] = *p;
        }
        sql[k++] = '"';
        sql[k] = '\0';
        sl_pb_query(&s->s.out, sql);
    }
    /* todo becomes sent (swap the arrays: sent is empty) */
    fo_cmds t = d->sent;
    d->sent = d->todo;
    d->todo = t;
    d->todo.head = d->todo.n = 0;
    pthread_mutex_unlock(&hub_lock);
    sl_io_status st = sl_stream_flush(&s->s, NULL);
    if (st == SL_IO_ERROR) {
        sl_server_close(s, SL_CLOSE_SERVER_WRITE_ERROR);
        return;
    }
    sl_stream_set_poll(&s->s, st == SL_IO_AGAIN ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* Unlink d (no channel left), close its connection, free it. */
static void retire_db(sl_fanout_db *d)
{
    pthread_mutex_lock(&hub_lock);
    if (d->nchans) {
        pthread_mutex_unlock(&hub_lock);
        return;
    }
    for (sl_fanout_db **p = &dbs; *p; p = &(*p)->next)
        if (*p == d) {
            *p = d->next;
            break;
        }
    cmds_free(&d->todo);
    cmds_free(&d->sent);
    pthread_mutex_unlock(&hub_lock);
    sl_server *s = d->conn;
    d->conn = NULL;
    if (s) {
        s->fanout = NULL;
        __atomic_sub_fetch(&n_listeners, 1, __ATOMIC_RELAXED);
        sl_server_close(s, SL_CLOSE_LISTEN_UNUSED);
    }
    sl_log_debug("LISTEN fan-out: no channel left in database %s, listener connection closed", d->name);
    sl_route_listen_backend_put(d->backend);
    free(d->todo.v);
    free(d->sent.v);
    free(d->chans);
    free(d->name);
    free(d);
}

/* Should the listener connection be replaced: RECONNECT of its database, or a RELOAD that changed
 * what its route logs in with (user, password, database name)? server_lifetime is not applied: a
 * new connection means a gap in which notifications are lost (docs/OPERATIONS.md). */
static const char *retire_reason(const sl_server *s)
{
    if (sl_route_conn_retire_why(&s->pc, sl_now_fast()) == SL_RETIRE_TARGET)
        return "the database's login settings changed at RELOAD";
    const sl_route *r = s->pc.backend->route;
    if (s->pc.connect_time <= __atomic_load_n(&r->db_group->reconnect_before, __ATOMIC_RELAXED)) return "RECONNECT";
    return NULL;
}

/* Whatever d needs now: its connection opened, its commands sent, or it let go. */
static void service(sl_worker *w, sl_fanout_db *d, int64_t now)
{
    pthread_mutex_lock(&hub_lock);
    bool empty = d->nchans == 0;
    pthread_mutex_unlock(&hub_lock);
    if (empty) {
        retire_db(d);
        return;
    }
    if (d->conn && d->conn->s.frozen) return; /* a takeover is handing connections over */
    if (!d->conn) {
        if (now < d->retry_at) return;
        if (!sl_route_listen_backend_current(d->backend)) { /* a reload moved the database, or a failover */
            sl_backend *b = sl_route_listen_backend(d->backend->route);
            if (b) {
                sl_route_listen_backend_put(d->backend);
                d->backend = b;
            }
        }
        sl_server_launch_listener(w, d->backend, d);
        return;
    }
    if (d->ready && now - d->checked_at >= 1000000) { /* once a second: still the right server? */
        d->checked_at = now;
        if (!sl_route_listen_backend_current(d->backend)) {
            sl_log_info("LISTEN fan-out: database %s now lives elsewhere (reload or failover): its listener "
                        "connection moves", d->name);
            sl_server_close(d->conn, SL_CLOSE_SERVER_RETIRED);
            return;
        }
        const char *why = retire_reason(d->conn);
        if (why) {
            sl_log_info("LISTEN fan-out: listener connection S-0x%llx for database %s is replaced (%s)",
                        (unsigned long long)d->conn->id, d->name, why);
            sl_server_close(d->conn, SL_CLOSE_SERVER_RETIRED);
            return;
        }
    }
    if (d->ready) send_commands(d);
}

static void service_worker(sl_worker *w, int64_t now)
{
    sl_fanout_db *few[16], **mine = few;
    size_t n = 0, cap = sizeof(few) / sizeof(few[0]);
    pthread_mutex_lock(&hub_lock);
    for (sl_fanout_db *d = dbs; d; d = d->next) {
        if (d->worker != w->id) continue;
        if (n == cap) { /* many databases on this worker: the rest wait for the next tick if out of memory */
            sl_fanout_db **more = malloc(2 * cap * sizeof(*more));
            if (!more) break;
            memcpy(more, mine, n * sizeof(*more));
            if (mine != few) free(mine);
            mine = more;
            cap *= 2;
        }
        d->kick_posted = false;
        mine[n++] = d;
    }
    pthread_mutex_unlock(&hub_lock);
    /* only this worker frees its entries: the pointers stay valid */
    for (size_t i = 0; i < n; i++) service(w, mine[i], now);
    if (mine != few) free(mine);
}

void sl_fanout_server_created(sl_server *s)
{
    sl_fanout_db *d = s->fanout;
    d->conn = s;
    d->ready = false;
    __atomic_add_fetch(&n_listeners, 1, __ATOMIC_RELAXED);
}

void sl_fanout_server_ready(sl_server *s)
{
    sl_fanout_db *d = s->fanout;
    d->ready = true;
    d->backoff = BACKOFF_MIN_US;
    pthread_mutex_lock(&hub_lock);
    uint32_t nchans = d->nchans;
    pthread_mutex_unlock(&hub_lock);
    if (d->lost) {
        d->lost = false;
        sl_log_info("LISTEN fan-out: listener connection S-0x%llx for database %s is back (backend pid %u); "
                    "LISTENing again on %u channel(s)",
                    (unsigned long long)s->id, d->name, s->be_pid, nchans);
    } else {
        sl_log_debug("LISTEN fan-out: listener connection S-0x%llx for database %s logged in (backend pid %u)",
                     (unsigned long long)s->id, d->name, s->be_pid);
    }
    sl_stream_set_poll(&s->s, UV_READABLE);
    send_commands(d);
}

void sl_fanout_server_closed(sl_server *s)
{
    sl_fanout_db *d = s->fanout;
    if (!d) return;
    s->fanout = NULL;
    __atomic_sub_fetch(&n_listeners, 1, __ATOMIC_RELAXED);
    bool was_ready = d->ready;
    d->conn = NULL;
    d->ready = false;
    int64_t now = sl_now_us();
    pthread_mutex_lock(&hub_lock);
    cmds_free(&d->todo);
    cmds_free(&d->sent);
    uint32_t nchans = d->nchans;
    /* every channel is LISTENed again on the next connection; subscribers still waiting for their
     * answer wait for that one (or, when no connection could be made, are told so) */
    for (uint32_t i = 0; i < d->nchans;) {
        fo_chan *ch = &d->chans[i];
        uint64_t id = 0;
        for (uint32_t j = 0; j < ch->n;) {
            fo_sub *sub = &ch->subs[j];
            if (!sub->active && !was_ready) {
                post_done_locked(sub, false, "the listener connection to the server could not be opened");
                *sub = ch->subs[--ch->n];
                __atomic_sub_fetch(&n_subs, 1, __ATOMIC_RELAXED);
                continue;
            }
            j++;
        }
        if (!ch->n) {
            chan_remove_locked(d, ch);
            continue;
        }
        id = push_cmd_locked(d, true, ch->name);
        for (uint32_t j = 0; j < ch->n; j++)
            if (!ch->subs[j].active) ch->subs[j].need = id;
        i++;
    }
    kick_locked(d);
    pthread_mutex_unlock(&hub_lock);
    if (was_ready && nchans) {
        d->lost = true;
        d->retry_at = now;
        d->backoff = BACKOFF_MIN_US;
        __atomic_add_fetch(&n_reconnects, 1, __ATOMIC_RELAXED);
        sl_log_warn("LISTEN fan-out: listener connection S-0x%llx for database %s lost; reconnecting to LISTEN "
                       "again on %u channel(s) (notifications sent until then are not delivered)",
                       (unsigned long long)s->id, d->name, nchans);
    } else if (!was_ready) {
        d->retry_at = now + d->backoff;
        d->backoff = d->backoff * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : d->backoff * 2;
    }
}

/* A NotificationResponse: to every active subscriber of its channel, in order. */
static void fan_out(sl_fanout_db *d, const sl_wire_msg *m)
{
    sl_rd r;
    sl_rd_init(&r, m->body, m->len);
    (void)sl_rd_u32(&r);
    const char *chan = sl_rd_str(&r);
    if (!chan || r.failed) return;
    uint32_t mlen = m->len + 5;
    pthread_mutex_lock(&hub_lock);
    fo_chan *ch = find_chan_locked(d, chan);
    for (uint32_t i = 0; ch && i < ch->n; i++) {
        const fo_sub *sub = &ch->subs[i];
        if (!sub->active) continue;
        uint8_t *copy = malloc(mlen);
        if (!copy) continue;
        copy[0] = SL_BE_NOTIFICATION;
        sl_put_u32(copy + 1, m->len + 4);
        memcpy(copy + 5, m->body, m->len);
        sl_msg msg = {.type = SL_MSG_FANOUT_NOTIFY, .obj = copy, .a = mlen, .slot = sub->slot, .gen = sub->gen};
        sl_worker_post(&sl_workers[sub->worker], &msg);
    }
    pthread_mutex_unlock(&hub_lock);
}

/* The answer to the oldest command sent (its ReadyForQuery). */
static void command_done(sl_fanout_db *d)
{
    pthread_mutex_lock(&hub_lock);
    if (d->sent.head == d->sent.n) {
        pthread_mutex_unlock(&hub_lock);
        return;
    }
    fo_cmd *cmd = &d->sent.v[d->sent.head++];
    fo_chan *ch = cmd->listen ? find_chan_locked(d, cmd->chan) : NULL;
    for (uint32_t j = 0; ch && j < ch->n;) {
        fo_sub *sub = &ch->subs[j];
        if (sub->active || sub->need > cmd->id) {
            j++;
            continue;
        }
        if (cmd->failed) {
            post_done_locked(sub, false, cmd->err);
            *sub = ch->subs[--ch->n];
            __atomic_sub_fetch(&n_subs, 1, __ATOMIC_RELAXED);
            continue;
        }
        sub->active = true;
        post_done_locked(sub, true, NULL);
        j++;
    }
    if (ch && !ch->n) chan_remove_locked(d, ch);
    free(cmd->chan);
    cmd->chan = NULL;
    if (d->sent.head == d->sent.n) d->sent.head = d->sent.n = 0;
    pthread_mutex_unlock(&hub_lock);
}

void sl_fanout_server_event(sl_server *s, int events)
{
    sl_fanout_db *d = s->fanout;
    sl_stream *st = &s->s;
    if (events & UV_WRITABLE) {
        sl_io_status rc = sl_stream_flush(st, NULL);
        if (rc == SL_IO_ERROR) {
            sl_server_close(s, SL_CLOSE_SERVER_WRITE_ERROR);
            return;
        }
        sl_stream_set_poll(st, rc == SL_IO_AGAIN ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    }
    if (!(events & UV_READABLE)) return;
    sl_io_status rc = sl_stream_read(st);
    if (rc == SL_IO_EOF || rc == SL_IO_ERROR) {
        sl_server_close(s, rc == SL_IO_EOF ? SL_CLOSE_SERVER_EOF : SL_CLOSE_SERVER_READ_ERROR);
        return;
    }
    bool answered = false;
    for (;;) {
        sl_wire_msg m;
        sl_take_status ts = sl_take_msg(st, NOTIFY_MSG_MAX, &m);
        if (ts == SL_TAKE_MORE) break;
        if (ts != SL_TAKE_OK) {
            sl_server_close(s, ts == SL_TAKE_NOMEM ? SL_CLOSE_OUT_OF_MEMORY : SL_CLOSE_SERVER_BAD_MESSAGE);
            return;
        }
        if (m.type == SL_BE_NOTIFICATION) {
            fan_out(d, &m);
        } else if (m.type == SL_BE_ERROR) {
            const char *text = sl_error_field(m.body, m.len, 'M');
            const char *sev = sl_error_field(m.body, m.len, 'V');
            if (sev && (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC"))) continue; /* the end of file follows */
            pthread_mutex_lock(&hub_lock);
            if (d->sent.head < d->sent.n) {
                fo_cmd *cmd = &d->sent.v[d->sent.head];
                cmd->failed = true;
                snprintf(cmd->err, sizeof(cmd->err), "%s", text ? text : "error");
            }
            pthread_mutex_unlock(&hub_lock);
            sl_log_warn("LISTEN fan-out: listener connection S-0x%llx for database %s: %s", (unsigned long long)s->id,
                           d->name, text ? text : "error");
        } else if (m.type == SL_BE_READY) {
            command_done(d);
            answered = true;
        } /* CommandComplete, notices, ParameterStatus: nothing to do */
    }
    if (st->pos == st->end) sl_stream_recycle_buf(st);
    if (answered) service(s->s.w, d, sl_now_fast()); /* more to send, or nothing left to listen to */
}

/* ---- messages and ticks ---- */

void sl_fanout_message(sl_worker *w, sl_msg *m)
{
    switch (m->type) {
    case SL_MSG_FANOUT_KICK: service_worker(w, sl_now_fast()); break;
    case SL_MSG_FANOUT_DONE: {
        sl_client *c = sl_worker_find_slot(w, m->slot, m->gen);
        if (c && c->state != SL_CL_CLOSING && c->s.frozen && c->fanout && !c->fanout->done) {
            /* a takeover holds it: answered when it thaws (the tick), or closed if the takeover ends */
            c->fanout->done = m->a == NOTE_OK ? 1 : -1;
            c->fanout->done_err = m->obj;
            break;
        }
        if (c && c->state != SL_CL_CLOSING) listen_done(c, m->a == NOTE_OK, m->obj);
        free(m->obj);
        break;
    }
    case SL_MSG_FANOUT_NOTIFY: {
        sl_client *c = sl_worker_find_slot(w, m->slot, m->gen);
        if (c && c->state != SL_CL_CLOSING) notify_client(w, c, m->obj, m->a);
        free(m->obj);
        break;
    }
    default: break;
    }
}

void sl_fanout_tick(sl_worker *w, int64_t now)
{
    service_worker(w, now);
    /* notifications held while a client was busy: a boundary that came without a release */
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->fanout && c->fanout->done && !c->s.frozen) {
            char *err = c->fanout->done_err;
            bool ok = c->fanout->done > 0;
            c->fanout->done = 0;
            c->fanout->done_err = NULL;
            listen_done(c, ok, err);
            free(err);
            if (c->state == SL_CL_CLOSING) continue;
        }
        if (c->fanout && c->fanout->qn) sl_fanout_client_flush(c);
    }
}

void sl_fanout_get_stats(sl_fanout_stats *out)
{
    out->channels = __atomic_load_n(&n_channels, __ATOMIC_RELAXED);
    out->listeners = __atomic_load_n(&n_listeners, __ATOMIC_RELAXED);
    out->subscriptions = __atomic_load_n(&n_subs, __ATOMIC_RELAXED);
    out->delivered = __atomic_load_n(&n_delivered, __ATOMIC_RELAXED);
    out->dropped_clients = __atomic_load_n(&n_dropped, __ATOMIC_RELAXED);
    out->reconnects = __atomic_load_n(&n_reconnects, __ATOMIC_RELAXED);
}
