/* admin.c - the admin console's sessions: login and permissions, and the wire protocol (simple
 * Query with several statements, and Parse/Bind/Describe/Execute/Sync) around the commands. */
#include "admin/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin_int.h"
#include "core/client.h"
#include "core/console.h"
#include "core/msgread.h"
#include "proto/msgtype.h"
#include "util/log.h"
#include "util/time.h"

int adm_nsessions;
uint64_t adm_nlogins;
static adm_session *sessions[SL_MAX_WORKERS]; /* per worker, touched only by that worker */

static void pump(adm_session *s);

bool sl_admin_is_db(const char *dbname)
{
    return dbname && (!strcmp(dbname, "pgbouncer") || !strcmp(dbname, "pgsluice"));
}

static adm_session *session_of(const sl_client *c)
{
    for (adm_session *s = sessions[c->s.w->id]; s; s = s->next)
        if (s->c == c) return s;
    return NULL;
}

adm_ref adm_ref_of(const adm_session *s)
{
    adm_ref r = {.worker = s->c->s.w->id, .slot = s->c->slot, .gen = s->c->gen};
    return r;
}

adm_session *adm_ref_session(sl_worker *w, const adm_ref *ref)
{
    sl_client *c = sl_worker_find_slot(w, ref->slot, ref->gen);
    if (!c || !c->admin || c->state == SL_CL_CLOSING) return NULL;
    return session_of(c);
}

int64_t adm_wall_of(int64_t mono_us, int64_t now_mono, int64_t now_wall)
{
    return mono_us ? now_wall - (now_mono - mono_us) : 0;
}

/* ---- login ---- */

static void send_welcome(adm_session *s)
{
    sl_client *c = s->c;
    sl_pktbuf *out = &c->s.out;
    const char *app = c->params.v[SL_PARAM_APPLICATION_NAME];
    sl_pb_param_status(out, "server_version", "15.0 (pgsluice " SL_VERSION ")");
    sl_pb_param_status(out, "server_encoding", "UTF8");
    sl_pb_param_status(out, "client_encoding", "UTF8");
    sl_pb_param_status(out, "DateStyle", "ISO");
    sl_pb_param_status(out, "IntervalStyle", "postgres");
    sl_pb_param_status(out, "TimeZone", "UTC");
    sl_pb_param_status(out, "integer_datetimes", "on");
    sl_pb_param_status(out, "standard_conforming_strings", "on");
    sl_pb_param_status(out, "is_superuser", s->is_admin ? "on" : "off");
    sl_pb_param_status(out, "session_authorization", c->user);
    sl_pb_param_status(out, "application_name", app ? app : "");
    sl_pb_backend_key(out, ((uint32_t)c->s.w->id << 24) | c->slot, c->cancel_key);
    sl_pb_ready(out, SL_XACT_IDLE);
}

static void flush(sl_client *c)
{
    sl_io_status st = sl_stream_flush(&c->s, NULL);
    if (st == SL_IO_ERROR) sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
    else if (st == SL_IO_AGAIN) sl_stream_set_poll(&c->s, UV_READABLE | UV_WRITABLE);
}

void sl_admin_login(sl_client *c)
{
    const sl_config *cfg = c->s.w->cfg;
    bool admin = c->console_peer_admin || sl_list_contains(cfg->admin_users, c->user);
    if (!admin && !sl_list_contains(cfg->stats_users, c->user)) {
        sl_client_error(c, true, "42501",
                        "not allowed to connect to the admin console: user \"%s\" is in neither admin_users nor "
                        "stats_users",
                        c->user);
        return;
    }
    adm_session *s = calloc(1, sizeof(*s));
    if (!s) {
        sl_client_error(c, true, "53200", "out of memory");
        return;
    }
    s->c = c;
    s->is_admin = admin;
    s->xact = SL_XACT_IDLE;
    adm_result_init(&s->res);
    int w = c->s.w->id;
    s->next = sessions[w];
    sessions[w] = s;
    __atomic_add_fetch(&adm_nsessions, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&adm_nlogins, 1, __ATOMIC_RELAXED);
    send_welcome(s);
    sl_client_set_state(c, SL_CL_IDLE);
    c->last_activity = sl_now_us();
    if (cfg->log_connections)
        sl_log_info("C-0x%llx: pgbouncer/%s@%s console login (%s)", (unsigned long long)c->id, c->user, c->addr,
                    admin ? "admin" : "stats");
    flush(c);
}

static void free_stmts(adm_session *s)
{
    while (s->stmts) {
        adm_stmt *n = s->stmts->next;
        free(s->stmts->name);
        free(s->stmts->query);
        free(s->stmts);
        s->stmts = n;
    }
}

static void free_portal(adm_portal *p)
{
    free(p->name);
    free(p->query);
    free(p->fmts);
    free(p);
}

static void free_portals(adm_session *s)
{
    while (s->portals) {
        adm_portal *n = s->portals->next;
        free_portal(s->portals);
        s->portals = n;
    }
}

void sl_admin_closed(sl_client *c)
{
    adm_session **pp = &sessions[c->s.w->id];
    while (*pp && (*pp)->c != c) pp = &(*pp)->next;
    adm_session *s = *pp;
    if (!s) return;
    *pp = s->next;
    adm_session_left(s);
    free_stmts(s);
    free_portals(s);
    free(s->query);
    free(s->xfmts);
    adm_result_free(&s->res);
    free(s);
    __atomic_sub_fetch(&adm_nsessions, 1, __ATOMIC_RELAXED);
}

void sl_admin_cancel(sl_client *c)
{
    adm_session *s = c->admin ? session_of(c) : NULL;
    if (s) adm_cancel(s);
}

void sl_admin_tick(sl_worker *w, int64_t now)
{
    for (adm_session *s = sessions[w->id]; s; s = s->next)
        if (s->wait != ADM_WAIT_NONE) adm_wait_tick(s);
    if (w->id == 0) adm_stats_tick(w, now);
}

/* ---- running statements ---- */

/* Parse and run one statement into s->res. */
static adm_status run_statement(adm_session *s, const char *text, size_t len)
{
    adm_cmd cmd;
    char err[256];
    adm_result_reset(&s->res);
    if (!adm_parse(text, len, &cmd, err, sizeof(err))) {
        adm_error(&s->res, "42601", "%s", err);
        return ADM_DONE;
    }
    sl_log_debug("C-0x%llx: console: %s", (unsigned long long)s->c->id, cmd.text);
    adm_status st = adm_execute(s, &cmd, &s->res);
    if (st == ADM_DONE && s->res.failed)
        sl_log_info("C-0x%llx: console command failed: %s: %s", (unsigned long long)s->c->id, cmd.text, s->res.message);
    return st;
}

static void ready(adm_session *s)
{
    sl_pb_ready(&s->c->s.out, s->xact);
}

/* Simple Query: answer the statements one after the other; an error ends the query. */
static void run_simple(adm_session *s)
{
    size_t start, len;
    while (adm_next_statement(s->query, &s->qoff, &start, &len)) {
        s->qran++;
        if (run_statement(s, s->query + start, len) == ADM_ASYNC) {
            s->busy = true;
            return;
        }
        adm_send_simple(&s->c->s.out, &s->res);
        if (s->res.failed) break;
    }
    if (s->qran == 0) {
        sl_pb_begin(&s->c->s.out, SL_BE_EMPTY_QUERY);
        sl_pb_end(&s->c->s.out);
    }
    free(s->query);
    s->query = NULL;
    ready(s);
}

static void on_query(adm_session *s, const uint8_t *body, uint32_t blen)
{
    sl_rd r;
    sl_rd_init(&r, body, blen);
    const char *q = sl_rd_str(&r);
    if (!q) {
        adm_send_error(&s->c->s.out, "08P01", "malformed Query message");
        ready(s);
        return;
    }
    s->query = strdup(q);
    if (!s->query) {
        adm_send_error(&s->c->s.out, "53200", "out of memory");
        ready(s);
        return;
    }
    s->qoff = 0;
    s->qran = 0;
    s->simple = true;
    run_simple(s);
}

void adm_async_done(adm_session *s)
{
    s->busy = false;
    sl_client *c = s->c;
    if (s->simple) {
        adm_send_simple(&c->s.out, &s->res);
        if (s->res.failed) s->qoff = strlen(s->query);
        run_simple(s);
    } else {
        adm_send_execute(&c->s.out, &s->res, s->xfmts, s->nxfmts);
        if (s->res.failed) s->ext_skip = true;
    }
    if (c->state == SL_CL_CLOSING) return;
    sl_stream_set_poll(&c->s, UV_READABLE);
    pump(s);
}

/* ---- extended protocol ---- */

static adm_stmt *find_stmt(adm_session *s, const char *name)
{
    for (adm_stmt *st = s->stmts; st; st = st->next)
        if (!strcmp(st->name, name)) return st;
    return NULL;
}

static adm_portal **find_portal(adm_session *s, const char *name)
{
    adm_portal **pp = &s->portals;
    while (*pp && strcmp((*pp)->name, name) != 0) pp = &(*pp)->next;
    return pp;
}

static void ext_error(adm_session *s, const char *sqlstate, const char *msg)
{
    adm_send_error(&s->c->s.out, sqlstate, "%s", msg);
    s->ext_skip = true;
}

/* A statement for Parse: at most one, and a known command. */
static bool check_statement(const char *q, char *err, size_t errlen)
{
    size_t off = 0, start, len, s2, l2;
    if (!adm_next_statement(q, &off, &start, &len)) return true;
    if (adm_next_statement(q, &off, &s2, &l2)) {
        snprintf(err, errlen, "cannot insert multiple commands into a prepared statement");
        return false;
    }
    adm_cmd cmd;
    return adm_parse(q + start, len, &cmd, err, errlen);
}

static void on_parse(adm_session *s, sl_rd *r)
{
    const char *name = sl_rd_str(r), *q = sl_rd_str(r);
    char err[256];
    if (!name || !q) return ext_error(s, "08P01", "malformed Parse message");
    if (!check_statement(q, err, sizeof(err))) return ext_error(s, "42601", err);
    adm_stmt *st = find_stmt(s, name);
    if (st && *name) return ext_error(s, "42P05", "prepared statement already exists");
    if (!st) {
        st = calloc(1, sizeof(*st));
        if (!st || !(st->name = strdup(name))) {
            free(st);
            return ext_error(s, "53200", "out of memory");
        }
        st->next = s->stmts;
        s->stmts = st;
    }
    free(st->query);
    st->query = strdup(q);
    if (!st->query) return ext_error(s, "53200", "out of memory");
    sl_pb_begin(&s->c->s.out, SL_BE_PARSE_COMPLETE);
    sl_pb_end(&s->c->s.out);
}

/* Skip Bind's parameters; read its result formats. */
static bool read_bind_formats(sl_rd *r, int16_t **fmts, int *nfmts)
{
    uint16_t npf = sl_rd_u16(r);
    sl_rd_bytes(r, (size_t)npf * 2);
    uint16_t np = sl_rd_u16(r);
    for (int i = 0; i < np && !r->failed; i++) {
        uint32_t l = sl_rd_u32(r);
        if (l != 0xffffffffu) sl_rd_bytes(r, l);
    }
    uint16_t n = sl_rd_u16(r);
    if (r->failed) return false;
    *nfmts = n;
    *fmts = n ? calloc(n, sizeof(int16_t)) : NULL;
    if (n && !*fmts) return false;
    for (int i = 0; i < n; i++) (*fmts)[i] = (int16_t)sl_rd_u16(r);
    return !r->failed;
}

static void on_bind(adm_session *s, sl_rd *r)
{
    const char *pname = sl_rd_str(r), *sname = sl_rd_str(r);
    if (!pname || !sname) return ext_error(s, "08P01", "malformed Bind message");
    adm_stmt *st = find_stmt(s, sname);
    if (!st) return ext_error(s, "26000", "prepared statement does not exist");
    adm_portal *p = calloc(1, sizeof(*p));
    if (!p || !read_bind_formats(r, &p->fmts, &p->nfmts) || !(p->name = strdup(pname)) ||
        !(p->query = strdup(st->query))) {
        if (p) free_portal(p);
        return ext_error(s, "08P01", "malformed Bind message");
    }
    adm_portal **old = find_portal(s, pname);
    if (*old) {
        adm_portal *o = *old;
        *old = o->next;
        free_portal(o);
    }
    p->next = s->portals;
    s->portals = p;
    sl_pb_begin(&s->c->s.out, SL_BE_BIND_COMPLETE);
    sl_pb_end(&s->c->s.out);
}

/* The columns a statement would return, without running it. */
static void describe_query(adm_session *s, const char *q, const int16_t *fmts, int nfmts)
{
    size_t off = 0, start, len;
    adm_result r;
    adm_result_init(&r);
    adm_cmd cmd;
    char err[256];
    if (adm_next_statement(q, &off, &start, &len) && adm_parse(q + start, len, &cmd, err, sizeof(err)))
        adm_describe(&cmd, &r);
    if (r.failed) ext_error(s, r.sqlstate, r.message);
    else adm_send_rowdesc(&s->c->s.out, &r, fmts, nfmts);
    adm_result_free(&r);
}

static void on_describe(adm_session *s, sl_rd *r)
{
    uint8_t what = sl_rd_u8(r);
    const char *name = sl_rd_str(r);
    if (!name || (what != SL_TARGET_STATEMENT && what != SL_TARGET_PORTAL)) return ext_error(s, "08P01", "malformed Describe message");
    if (what == SL_TARGET_STATEMENT) {
        adm_stmt *st = find_stmt(s, name);
        if (!st) return ext_error(s, "26000", "prepared statement does not exist");
        sl_pb_begin(&s->c->s.out, SL_BE_PARAM_DESCRIPTION); /* no parameters */
        sl_pb_u16(&s->c->s.out, 0);
        sl_pb_end(&s->c->s.out);
        describe_query(s, st->query, NULL, 0);
        return;
    }
    adm_portal *p = *find_portal(s, name);
    if (!p) return ext_error(s, "34000", "portal does not exist");
    describe_query(s, p->query, p->fmts, p->nfmts);
}

static void on_execute(adm_session *s, sl_rd *r)
{
    const char *name = sl_rd_str(r);
    if (!name) return ext_error(s, "08P01", "malformed Execute message");
    adm_portal *p = *find_portal(s, name);
    if (!p) return ext_error(s, "34000", "portal does not exist");
    size_t off = 0, start, len;
    if (!adm_next_statement(p->query, &off, &start, &len)) {
        sl_pb_begin(&s->c->s.out, SL_BE_EMPTY_QUERY);
        sl_pb_end(&s->c->s.out);
        return;
    }
    free(s->xfmts);
    s->xfmts = NULL;
    s->nxfmts = p->nfmts;
    if (p->nfmts) {
        s->xfmts = malloc((size_t)p->nfmts * sizeof(int16_t));
        if (!s->xfmts) return ext_error(s, "53200", "out of memory");
        memcpy(s->xfmts, p->fmts, (size_t)p->nfmts * sizeof(int16_t));
    }
    s->simple = false;
    if (run_statement(s, p->query + start, len) == ADM_ASYNC) {
        s->busy = true;
        return;
    }
    adm_send_execute(&s->c->s.out, &s->res, s->xfmts, s->nxfmts);
    if (s->res.failed) s->ext_skip = true;
}

static void on_close(adm_session *s, sl_rd *r)
{
    uint8_t what = sl_rd_u8(r);
    const char *name = sl_rd_str(r);
    if (!name) return ext_error(s, "08P01", "malformed Close message");
    if (what == SL_TARGET_STATEMENT) {
        for (adm_stmt **pp = &s->stmts; *pp; pp = &(*pp)->next) {
            if (strcmp((*pp)->name, name) != 0) continue;
            adm_stmt *st = *pp;
            *pp = st->next;
            free(st->name);
            free(st->query);
            free(st);
            break;
        }
    } else {
        adm_portal **pp = find_portal(s, name);
        if (*pp) {
            adm_portal *p = *pp;
            *pp = p->next;
            free_portal(p);
        }
    }
    sl_pb_begin(&s->c->s.out, SL_BE_CLOSE_COMPLETE);
    sl_pb_end(&s->c->s.out);
}

/* ---- message loop ---- */

static void handle_msg(adm_session *s, char type, const uint8_t *body, uint32_t blen)
{
    sl_rd r;
    sl_rd_init(&r, body, blen);
    if (type == SL_FE_TERMINATE) {
        sl_client_close(s->c, SL_CLOSE_CLIENT_TERMINATE);
        return;
    }
    if (type == SL_FE_SYNC) {
        s->ext_skip = false;
        free_portals(s);
        ready(s);
        return;
    }
    if (s->ext_skip) return;
    switch (type) {
    case SL_FE_QUERY: on_query(s, body, blen); break;
    case SL_FE_PARSE: on_parse(s, &r); break;
    case SL_FE_BIND: on_bind(s, &r); break;
    case SL_FE_DESCRIBE: on_describe(s, &r); break;
    case SL_FE_EXECUTE: on_execute(s, &r); break;
    case SL_FE_CLOSE: on_close(s, &r); break;
    case SL_FE_FLUSH: break; /* Flush: everything is flushed after each batch anyway */
    default: {
        char msg[96];
        snprintf(msg, sizeof(msg), "message type '%c' is not supported by the admin console", type);
        if (type == SL_FE_FUNCTION_CALL) { /* a FunctionCall waits for ReadyForQuery like a Query */
            adm_send_error(&s->c->s.out, "0A000", "%s", msg);
            ready(s);
        } else {
            ext_error(s, "0A000", msg);
        }
        break;
    }
    }
}

/* Run complete messages while no command is waiting for the pooler; then flush. */
static void pump(adm_session *s)
{
    sl_client *c = s->c;
    sl_stream *st = &c->s;
    while (!s->busy) {
        sl_wire_msg m;
        sl_take_status ts = sl_take_msg(st, ADM_MAX_MSG, &m);
        if (ts == SL_TAKE_MORE) break;
        if (ts == SL_TAKE_NOMEM) {
            sl_client_close(c, SL_CLOSE_OUT_OF_MEMORY);
            return;
        }
        if (ts == SL_TAKE_BAD_LENGTH) {
            sl_client_error(c, true, "08P01", "invalid message length %u (type '%c')", sl_get_u32(st->buf + st->pos + 1),
                            (char)st->buf[st->pos]);
            return;
        }
        handle_msg(s, m.type, m.body, m.len);
        if (c->state == SL_CL_CLOSING) return;
    }
    if (c->state == SL_CL_CLOSING) return;
    /* waiting for the pooler: keep reading (bounded) so a disconnect is noticed */
    if (s->busy && st->buf && st->end == st->cap && !sl_stream_make_room(st, 4096, ADM_MAX_MSG + 1)) {
        sl_client_close(c, SL_CLOSE_CLIENT_TOO_MUCH_INPUT);
        return;
    }
    flush(c);
}

void sl_admin_input(sl_client *c)
{
    adm_session *s = session_of(c);
    if (!s) {
        sl_client_error(c, true, "08P01", "no console session");
        return;
    }
    pump(s);
}

static const sl_console_ops console_ops = {
    .is_console_db = sl_admin_is_db,
    .login = sl_admin_login,
    .input = sl_admin_input,
    .closed = sl_admin_closed,
    .cancel = sl_admin_cancel,
    .tick = sl_admin_tick,
};

void sl_admin_register(void) { sl_console_register(&console_ops); }
