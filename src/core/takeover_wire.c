/* takeover_wire.c - the hand-over message's format (TK_VERSION): the old process writes each
 * connection's state (user, database, parameters, cancel key and slot, prepared statements, bytes not
 * yet served, a server's backend pid/key and pool) into a byte buffer and lists its descriptors; the
 * new process reads the payload back and builds its clients and servers from it, counted into their
 * routes and queued for their workers. No I/O here: takeover_fdpass.c moves the bytes. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/lifecycle.h"
#include "core/prepare.h"
#include "core/takeover_int.h"
#include "net/listener.h"
#include "proto/msgtype.h"
#include "util/intern.h"

/* ---- the growable byte buffer and its reader ---- */

void tb_put(tk_buf *b, const void *d, size_t n)
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
void tb_u8(tk_buf *b, uint8_t v) { tb_put(b, &v, 1); }
void tb_u32(tk_buf *b, uint32_t v) { tb_put(b, &v, 4); }
void tb_u64(tk_buf *b, uint64_t v) { tb_put(b, &v, 8); }
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
void tb_fd(tk_buf *b, int fd)
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
void tb_free(tk_buf *b)
{
    free(b->p);
    free(b->fds);
    memset(b, 0, sizeof(*b));
}

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

void put_server(tk_buf *b, sl_server *s, int64_t now)
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

void put_client(tk_buf *b, sl_client *c, int64_t now)
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

bool put_message(tk_buf *m, const tk_part *parts, int nworkers, uint32_t *nrec, int *nlisten)
{
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
    *nrec = 0;
    *nlisten = nl;
    for (int i = 0; i < nworkers; i++) {
        const tk_part *p = &parts[i];
        tb_u32(m, (uint32_t)i);
        tb_u32(m, p->nrec);
        tb_put(m, p->buf.p, p->buf.len);
        for (size_t k = 0; k < p->buf.nfds; k++) tb_fd(m, p->buf.fds[k]);
        *nrec += p->nrec;
    }
    tb_u32(m, UINT32_MAX); /* end of workers */
    return !m->oom && m->len <= TK_MAX_PAYLOAD;
}

/* ---- what a connection's state is read back as ---- */

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
        sl_mutex_lock(&rt->lock);
        if (bidx < (uint32_t)rt->nbackends) {
            sl_backend *cand = rt->backends[bidx];
            bool same_host = have_host ? cand->host && !strcmp(cand->host, host) : !cand->host;
            if (same_host && cand->port == (int)port) b = cand;
        }
        sl_mutex_unlock(&rt->lock);
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

bool parse_payload(tk_in *in, const uint8_t *p, size_t len, char *err, size_t errlen)
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
