/* session_state.c - session settings and pins in transaction pooling (see session_state.h).
 *
 * Each statement sent is classified (proto/stmt_class.c) and an entry queued for the answer that
 * ends it: a CommandComplete (or EmptyQueryResponse / PortalSuspended) per statement of a Query and
 * per Execute, and an end mark per Query / Sync / FunctionCall, consumed by its ReadyForQuery. A SET
 * of a parameter the server does not report moves into the open transaction's list when its
 * CommandComplete arrives; the list is kept at COMMIT or a ReadyForQuery 'I', dropped at ROLLBACK or
 * at the ReadyForQuery 'I' that ends a transaction an error failed (a failed block keeps it until it
 * ends: a ROLLBACK TO SAVEPOINT may revive it), and at ROLLBACK TO SAVEPOINT, which undoes an
 * unknown part of it (pinned if it held settings). Pins are taken when a statement is sent (whether or not it then
 * succeeds: when in doubt, pin); the state that ends them (pg_advisory_unlock_all(), DISCARD,
 * UNLISTEN *, ...) counts once its transaction commits. */
#include "core/session_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/listen_fanout.h"
#include "core/prepare.h"
#include "core/proxy_ps.h"
#include "proto/msgtype.h"
#include "util/intern.h"
#include "util/log.h"

/* Query and Parse messages are read whole to be classified; longer ones cannot be followed. */
#define SESS_MSG_MAX (16u * 1024 * 1024)

#define E_NONE SL_SE_NONE
#define E_END SL_SE_END
enum { E_PARAM = SL_SE_END + 1, E_RESET_ALL, E_ROLLBACK_TO, E_NAME_ADD, E_NAME_DROP };

int64_t sl_pinned_clients;
uint64_t sl_pins_total[SL_PIN_NREASONS];

/* What a refused statement is called in the error message, per pin reason. */
static const char *const feature_names[SL_PIN_NREASONS] = {
    [SL_PINR_ADVISORY_LOCK] = "a session-level advisory lock (pg_advisory_lock)",
    [SL_PINR_TEMP_TABLE] = "a temporary table",
    [SL_PINR_HOLD_CURSOR] = "a cursor WITH HOLD",
    [SL_PINR_LISTEN] = "LISTEN",
    [SL_PINR_PREPARE] = "SQL PREPARE",
    [SL_PINR_SET] = "SET of a parameter pgsluice does not track",
    [SL_PINR_ROLE] = "SET ROLE / SET SESSION AUTHORIZATION",
    [SL_PINR_UNCLASSIFIED] = "a statement pgsluice cannot read",
};

static sl_session *sess_get(sl_client *c)
{
    if (!c->sess) c->sess = sl_worker_obj_get(sl_worker_self(), SL_OBJ_SESSION, sizeof(*c->sess));
    return c->sess;
}

static bool reported(const sl_server *s, int id) { return (s->reported >> id) & 1u; }

static void entry_release(sl_sess_entry *e)
{
    if (e->value) sl_intern_release(e->value);
    e->value = NULL;
}

static sl_sess_entry entry_copy(const sl_sess_entry *e)
{
    sl_sess_entry d = *e;
    if (d.value) d.value = sl_intern_ref(d.value);
    return d;
}

/* ---- pins ---- */

static void add_pins(sl_client *c, sl_server *s, unsigned bits)
{
    sl_session *ss = c->sess;
    unsigned fresh = bits & ~ss->pins;
    if (!fresh) {
        ss->clear_pending &= (uint16_t)~bits;
        return;
    }
    if (!ss->pins) __atomic_add_fetch(&sl_pinned_clients, 1, __ATOMIC_RELAXED);
    for (int r = 0; r < SL_PIN_NREASONS; r++)
        if (fresh & SL_PIN_BIT(r)) __atomic_add_fetch(&sl_pins_total[r], 1, __ATOMIC_RELAXED);
    ss->pins |= (uint16_t)bits;
    ss->clear_pending &= (uint16_t)~bits;
    s->session_dirty = true;
    if (c->s.w->cfg->verbose) {
        char why[160];
        sl_pin_reasons_text(ss->pins, why, sizeof(why));
        sl_log_info("C-0x%llx: kept on its server S-0x%llx in transaction pooling (%s)", (unsigned long long)c->id,
                    (unsigned long long)s->id, why);
    }
}

/* Pins taken as a statement is sent outlast the requests sent before it that still wait for their
 * answers: a DISCARD, RESET ALL, UNLISTEN *, pg_advisory_unlock_all() pipelined ahead of it runs
 * first, so its commit must not end them. first: the queued entries sent before (a Query's own are
 * queued already when its pins are taken). */
static void pin_at_send(sl_client *c, sl_server *s, unsigned bits, uint32_t first)
{
    sl_session *ss = c->sess;
    for (uint32_t i = 0; i < first; i++) ss->q[(ss->qhead + i) & (ss->qcap - 1)].clears &= (uint16_t)~bits;
    add_pins(c, s, bits);
}

static void drop_pins(sl_client *c, unsigned bits)
{
    sl_session *ss = c->sess;
    /* the names that made those pins go with them */
    uint32_t k = 0;
    for (uint32_t i = 0; i < ss->nnames; i++) {
        if (bits & SL_PIN_BIT(ss->names[i].reason)) sl_intern_release(ss->names[i].name);
        else ss->names[k++] = ss->names[i];
    }
    ss->nnames = k;
    if (!(ss->pins & bits)) return;
    ss->pins &= (uint16_t)~bits;
    if (!ss->pins) __atomic_sub_fetch(&sl_pinned_clients, 1, __ATOMIC_RELAXED);
}

/* Pins made of named things (cursors WITH HOLD, channels, SQL prepared statements). */
static int named_reason(const sl_stmt_info *in)
{
    switch (in->kind) {
    case SL_SK_DECLARE: case SL_SK_CLOSE: return SL_PINR_HOLD_CURSOR;
    case SL_SK_LISTEN: case SL_SK_UNLISTEN: return SL_PINR_LISTEN;
    case SL_SK_PREPARE: case SL_SK_DEALLOCATE: return SL_PINR_PREPARE;
    default: return -1;
    }
}

/* A DEALLOCATE / UNLISTEN / CLOSE of the name sent before the statement that makes it again, answered
 * in the open transaction or still waiting for its answer, runs first: its commit must not end the
 * pin (it stays in the queue as a plain statement). */
static void names_outlast_drops(sl_session *ss, int reason, const char *interned)
{
    for (uint32_t i = 0; i < ss->qn + ss->txn; i++) {
        sl_sess_entry *e = i < ss->qn ? &ss->q[(ss->qhead + i) & (ss->qcap - 1)] : &ss->tx[i - ss->qn];
        if (e->kind != E_NAME_DROP || e->param != reason || e->value != interned) continue;
        entry_release(e);
        e->kind = E_NONE;
        e->param = -1;
        e->n = 1;
    }
}

/* A named thing made by a statement that pins (name "" when it could not be read); at_send: as the
 * statement is sent (not as its transaction commits). */
static void names_add(sl_client *c, int reason, const char *name, bool at_send)
{
    sl_session *ss = c->sess;
    const char *in = name[0] ? sl_intern(name) : NULL;
    if (at_send && in) names_outlast_drops(ss, reason, in);
    for (uint32_t i = 0; i < ss->nnames; i++)
        if (ss->names[i].reason == reason && ss->names[i].name == in) {
            sl_intern_release(in);
            return;
        }
    if (ss->nnames == ss->namescap) {
        uint32_t ncap = ss->namescap ? ss->namescap * 2 : 4;
        struct sl_sess_name *n = realloc(ss->names, ncap * sizeof(*n));
        if (!n) { /* kept as one that cannot be read: only the ALL form ends the pin */
            sl_intern_release(in);
            return;
        }
        ss->names = n;
        ss->namescap = ncap;
    }
    ss->names[ss->nnames++] = (struct sl_sess_name){(uint8_t)reason, in};
}

/* A CLOSE / UNLISTEN / DEALLOCATE committed: the pin ends with its last name. */
static void names_drop(sl_client *c, int reason, const char *interned)
{
    sl_session *ss = c->sess;
    bool left = false;
    uint32_t k = 0;
    for (uint32_t i = 0; i < ss->nnames; i++) {
        if (ss->names[i].reason == reason && ss->names[i].name == interned) {
            sl_intern_release(ss->names[i].name);
            continue;
        }
        if (ss->names[i].reason == reason) left = true;
        ss->names[k++] = ss->names[i];
    }
    bool had = k != ss->nnames;
    ss->nnames = k;
    if (had && !left) drop_pins(c, SL_PIN_BIT(reason));
}

/* ---- the transaction's settings ---- */

static void tx_push(sl_session *ss, const sl_sess_entry *e)
{
    if (ss->txn == ss->txcap) {
        uint32_t ncap = ss->txcap ? ss->txcap * 2 : 4;
        sl_sess_entry *n = realloc(ss->tx, ncap * sizeof(*n));
        if (!n) {
            ss->desync = true; /* cannot remember: pinned for good below */
            return;
        }
        ss->tx = n;
        ss->txcap = ncap;
    }
    ss->tx[ss->txn++] = entry_copy(e);
}

static void tx_drop(sl_session *ss)
{
    for (uint32_t i = 0; i < ss->txn; i++) entry_release(&ss->tx[i]);
    ss->txn = 0;
    ss->clear_pending = 0;
    ss->tx_failed = false;
}

/* The transaction committed: its settings are the client's (and the server's) now. */
static void tx_commit(sl_client *c, sl_server *s)
{
    sl_session *ss = c->sess;
    if (!ss->txn && !ss->clear_pending) return; /* nothing changed */
    for (uint32_t i = 0; i < ss->txn; i++) {
        const sl_sess_entry *e = &ss->tx[i];
        if (e->kind == E_PARAM) {
            sl_params p = {{0}};
            p.v[e->param] = e->value;
            sl_params_copy_one(&c->params, &p, e->param);
            sl_params_copy_one(&s->params, &p, e->param);
        } else if (e->kind == E_NAME_DROP) {
            names_drop(c, e->param, e->value);
            /* an UNLISTEN that went to the server ends the fan-out's subscription too */
            if (e->param == SL_PINR_LISTEN && c->fanout) sl_fanout_client_unlisten(c, e->value);
        } else if (e->kind == E_NAME_ADD) { /* again: a drop earlier in the transaction took it */
            names_add(c, e->param, e->value ? e->value : "", false);
            add_pins(c, s, SL_PIN_BIT(e->param));
            /* a channel LISTENed on the server: the server delivers it from now on */
            if (e->param == SL_PINR_LISTEN && e->value && c->fanout) sl_fanout_client_unlisten(c, e->value);
        } else if (e->kind == E_RESET_ALL) {
            sl_params none = {{0}};
            for (int id = 0; id < SL_NPARAMS && sl_param_names[id]; id++)
                if (!reported(s, id)) {
                    sl_params_copy_one(&c->params, &none, id);
                    sl_params_copy_one(&s->params, &none, id);
                }
        }
        entry_release(&ss->tx[i]);
    }
    ss->txn = 0;
    if ((ss->clear_pending & SL_PIN_BIT(SL_PINR_LISTEN)) && c->fanout) sl_fanout_client_unlisten(c, NULL);
    drop_pins(c, ss->clear_pending);
    ss->clear_pending = 0;
    ss->tx_failed = false;
}

/* ---- the queue of answers ---- */

#define plain sl_sess_entry_plain

static bool q_grow(sl_session *ss);

/* n plain statements (n > 0): added to the run at the tail, or a new entry for them. */
static inline bool q_push_plain(sl_session *ss, uint32_t n)
{
    if (ss->qn) { /* runs of plain statements: one entry */
        sl_sess_entry *last = &ss->q[(ss->qhead + ss->qn - 1) & (ss->qcap - 1)];
        if (plain(last)) {
            last->n += n;
            return true;
        }
    }
    if (ss->qn == ss->qcap && !q_grow(ss)) return false;
    ss->q[(ss->qhead + ss->qn) & (ss->qcap - 1)] = (sl_sess_entry){.kind = E_NONE, .param = -1, .n = n};
    ss->qn++;
    return true;
}

/* The end mark of a Query / Sync / FunctionCall. */
static inline bool q_push_end(sl_session *ss)
{
    if (ss->qn == ss->qcap && !q_grow(ss)) return false;
    ss->q[(ss->qhead + ss->qn) & (ss->qcap - 1)] = (sl_sess_entry){.kind = E_END};
    ss->qn++;
    ss->err_open = false;
    return true;
}

static bool q_push(sl_session *ss, const sl_sess_entry *e)
{
    if (plain(e)) return q_push_plain(ss, 1);
    if (ss->qn == ss->qcap && !q_grow(ss)) return false;
    sl_sess_entry *d = &ss->q[(ss->qhead + ss->qn) & (ss->qcap - 1)];
    *d = entry_copy(e);
    if (d->kind == E_NONE && d->n == 0) d->n = 1;
    ss->qn++;
    return true;
}

/* The queue's first ring, of Q_FIRST entries, comes from (and goes back to) the free list of the
 * worker the code runs on (net/worker.h): every client that sends a query makes one. */
#define Q_FIRST 8u

static void q_free(sl_worker *w, sl_sess_entry *q, uint32_t cap)
{
    if (cap == Q_FIRST) sl_worker_obj_put(w, SL_OBJ_SESSION_QUEUE, q);
    else free(q);
}

/* The queue is full: twice the room (the ring unrolled from 0). */
__attribute__((noinline)) static bool q_grow(sl_session *ss)
{
    sl_worker *w = sl_worker_self();
    uint32_t ncap = ss->qcap ? ss->qcap * 2 : Q_FIRST;
    sl_sess_entry *n = ncap == Q_FIRST ? sl_worker_obj_get(w, SL_OBJ_SESSION_QUEUE, Q_FIRST * sizeof(*n))
                                       : malloc(ncap * sizeof(*n));
    if (!n) return false;
    for (uint32_t i = 0; i < ss->qn; i++) n[i] = ss->q[(ss->qhead + i) & (ss->qcap - 1)];
    q_free(w, ss->q, ss->qcap);
    ss->q = n;
    ss->qcap = ncap;
    ss->qhead = 0;
    return true;
}

static sl_sess_entry *q_head(sl_session *ss) { return ss->qn ? &ss->q[ss->qhead] : NULL; }

static void q_pop(sl_session *ss)
{
    sl_sess_entry *h = &ss->q[ss->qhead];
    if (h->kind == E_NONE && h->n > 1) {
        h->n--;
        return;
    }
    entry_release(h);
    ss->qhead = (ss->qhead + 1) & (ss->qcap - 1);
    ss->qn--;
}

static void q_clear(sl_session *ss)
{
    while (ss->qn) {
        ss->q[ss->qhead].n = 1;
        q_pop(ss);
    }
}

/* ---- named portals ---- */

/* What an Execute of a named portal bound to a statement that does src does again: its pins (a
 * setting changed through it is not followed: pinned) and the name it makes. Not what it ends (a
 * DISCARD, CLOSE, ... through a named portal is not followed: the pin stays). */
/* Does it change a setting (SET / RESET / RESET ALL / ROLLBACK TO)? Run again later (a named
 * statement or portal, an unnamed one in doubt), that change is not followed: the client is pinned
 * for it. */
static bool changes_setting(const sl_sess_entry *e)
{
    return e->kind == E_PARAM || e->kind == E_RESET_ALL || e->kind == E_ROLLBACK_TO;
}

static sl_sess_entry portal_entry(const sl_sess_entry *src, sl_pin_mode mode)
{
    sl_sess_entry e = {.kind = E_NONE, .param = -1, .pins = src->pins};
    if (mode == SL_PIN_MODE_OFF) e.pins = 0;
    else if (changes_setting(src))
        e.pins |= SL_PIN_BIT(SL_PINR_SET);
    else if (src->kind == E_NAME_ADD && src->value) {
        e.kind = E_NAME_ADD;
        e.param = src->param;
        e.value = sl_intern_ref(src->value);
    }
    return e;
}

/* ---- the unnamed statement while its Parse may be skipped ---- */

/* What a statement that is a or b does, as far as pgsluice can count on either: the pins of both
 * (a setting it may change is not followed: pinned for it, as for a named statement), no clears. */
static sl_sess_entry unnamed_either(const sl_sess_entry *a, const sl_sess_entry *b, sl_pin_mode mode)
{
    sl_sess_entry e = {.kind = E_NONE, .param = -1, .pins = (uint16_t)(a->pins | b->pins)};
    if (mode == SL_PIN_MODE_OFF) e.pins = 0;
    else if (changes_setting(a) || changes_setting(b))
        e.pins |= SL_PIN_BIT(SL_PINR_SET);
    return e;
}

/* End marks (Query / Sync / FunctionCall) in the queue. */
static uint32_t q_ends(const sl_session *ss)
{
    uint32_t ends = 0;
    for (uint32_t i = 0; i < ss->qn; i++) ends += ss->q[(ss->qhead + i) & (ss->qcap - 1)].kind == E_END;
    return ends;
}

/* A Parse of the unnamed statement, which would do e (taken), is sent. */
static void unnamed_parsed(sl_session *ss, sl_sess_entry e, sl_pin_mode mode)
{
    if (ss->err_open) { /* the server skips it: the unnamed statement stays what it was */
        entry_release(&e);
        return;
    }
    if (ss->unnamed_watch) { /* the earlier one in doubt too: either of them, or this one */
        sl_sess_entry either = unnamed_either(&ss->unnamed_prev, &ss->unnamed_stmt, mode);
        entry_release(&ss->unnamed_prev);
        entry_release(&ss->unnamed_stmt);
        ss->unnamed_prev = either;
    } else if (!plain(&ss->unnamed_stmt) || !plain(&e)) {
        ss->unnamed_prev = ss->unnamed_stmt; /* moved */
    } else { /* plain replacing plain: nothing to doubt */
        entry_release(&ss->unnamed_stmt);
        ss->unnamed_stmt = e;
        return;
    }
    ss->unnamed_stmt = e;
    ss->unnamed_watch = 1;
    ss->unnamed_ends = q_ends(ss);
}

/* The unnamed statement as a Bind sent now finds it: in doubt when its Parse's batch, before this
 * one, is not answered yet. *tmp holds the doubtful case (released by the caller). */
static const sl_sess_entry *unnamed_now(sl_session *ss, sl_pin_mode mode, sl_sess_entry *tmp)
{
    if (!ss->unnamed_watch || q_ends(ss) <= ss->unnamed_ends) return &ss->unnamed_stmt;
    *tmp = unnamed_either(&ss->unnamed_prev, &ss->unnamed_stmt, mode);
    return tmp;
}

/* The end of the batch of the Parse in doubt was answered (the end mark it waited for popped): an
 * error in it means the Parse may have been skipped. */
static void unnamed_batch_answered(sl_session *ss, sl_pin_mode mode)
{
    if (ss->unnamed_ends) {
        ss->unnamed_ends--;
        return;
    }
    if (ss->unnamed_watch == 2) {
        sl_sess_entry either = unnamed_either(&ss->unnamed_prev, &ss->unnamed_stmt, mode);
        entry_release(&ss->unnamed_stmt);
        ss->unnamed_stmt = either;
    }
    entry_release(&ss->unnamed_prev);
    ss->unnamed_prev = (sl_sess_entry){.kind = E_NONE, .param = -1};
    ss->unnamed_watch = 0;
}

/* Records of named portals (sl_session.portals) and statements (sl_session.stmts): v, n, cap. */
static struct sl_sess_portal *rec_find(struct sl_sess_portal *v, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name)) return &v[i];
    return NULL;
}

static void rec_forget(struct sl_sess_portal *v, uint32_t *n, struct sl_sess_portal *p)
{
    sl_intern_release(p->name);
    entry_release(&p->e);
    *p = v[--*n];
}

static void rec_clear(struct sl_sess_portal *v, uint32_t *n)
{
    while (*n) rec_forget(v, n, &v[*n - 1]);
}

/* name now does e (taken; plain: nothing to record, an earlier record of the name goes). false: out of
 * memory. */
static bool rec_put(struct sl_sess_portal **v, uint32_t *n, uint32_t *cap, const char *name, uint32_t ends,
                    sl_sess_entry *e)
{
    struct sl_sess_portal *p = *n ? rec_find(*v, *n, name) : NULL;
    if (p) rec_forget(*v, n, p);
    if (plain(e)) return true;
    if (*n == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 4;
        struct sl_sess_portal *nv = realloc(*v, ncap * sizeof(*nv));
        if (!nv) {
            entry_release(e);
            return false;
        }
        *v = nv;
        *cap = ncap;
    }
    const char *in = sl_intern(name);
    if (!in) {
        entry_release(e);
        return false;
    }
    (*v)[(*n)++] = (struct sl_sess_portal){in, ends, *e};
    return true;
}

/* A Bind of the named portal name to a statement whose Execute does e again (taken). false: out of
 * memory. */
static bool portal_bound(sl_session *ss, const char *name, sl_sess_entry *e)
{
    /* the transaction the portal lives in ends at a ReadyForQuery after these */
    uint32_t ends = plain(e) ? 0 : q_ends(ss);
    return rec_put(&ss->portals, &ss->nportals, &ss->portalscap, name, ends, e);
}

/* A ReadyForQuery answered a Query / Sync / FunctionCall: the portals bound after it was sent are gone
 * when it ends their transaction (status 'I'); it comes before the transactions of those bound
 * earlier. */
static void portals_ready(sl_session *ss, char status)
{
    for (uint32_t i = ss->nportals; i-- > 0;) {
        if (ss->portals[i].ends) ss->portals[i].ends--;
        else if (status == SL_XACT_IDLE) rec_forget(ss->portals, &ss->nportals, &ss->portals[i]);
    }
}

/* ---- classification ---- */

/* What a classified statement will do on this server. */
static sl_sess_entry entry_of(const sl_server *s, const sl_stmt_info *in, sl_pin_mode mode)
{
    sl_sess_entry e = {.kind = E_NONE, .param = -1, .pins = (uint16_t)in->pins, .clears = (uint16_t)in->clears};
    int id;
    switch (in->kind) {
    case SL_SK_SET:
    case SL_SK_RESET:
        if (!in->name[0]) break; /* the classifier pinned it already */
        id = sl_param_lookup(in->name);
        if (id < 0) {
            e.pins |= SL_PIN_BIT(SL_PINR_SET); /* a parameter pgsluice does not track */
            break;
        }
        if (reported(s, id)) break; /* the server's ParameterStatus tells */
        if (in->kind == SL_SK_SET && !in->value_ok) {
            e.pins |= SL_PIN_BIT(SL_PINR_SET);
            break;
        }
        e.kind = E_PARAM;
        e.param = (int8_t)id;
        e.value = in->kind == SL_SK_SET && !in->is_default ? sl_intern(in->value) : NULL;
        if (in->kind == SL_SK_SET && !in->is_default && !e.value) {
            e.kind = E_NONE;
            e.pins |= SL_PIN_BIT(SL_PINR_SET); /* out of memory */
        }
        break;
    case SL_SK_RESET_ALL:
    case SL_SK_DISCARD_ALL: e.kind = E_RESET_ALL; break;
    case SL_SK_ROLLBACK_TO: e.kind = E_ROLLBACK_TO; break;
    case SL_SK_DECLARE:
    case SL_SK_LISTEN:
    case SL_SK_PREPARE:
        if (in->name[0] && mode != SL_PIN_MODE_OFF && (e.pins & SL_PIN_BIT(named_reason(in)))) {
            e.kind = E_NAME_ADD;
            e.param = (int8_t)named_reason(in);
            e.value = sl_intern(in->name);
            if (!e.value) e.kind = E_NONE;
        }
        break;
    case SL_SK_CLOSE:
    case SL_SK_UNLISTEN:
    case SL_SK_DEALLOCATE:
        if (in->name[0] && strcmp(in->name, "*") != 0 && mode != SL_PIN_MODE_OFF) {
            e.kind = E_NAME_DROP;
            e.param = (int8_t)named_reason(in);
            e.value = sl_intern(in->name);
            if (!e.value) e.kind = E_NONE;
        }
        break;
    default: break;
    }
    if (mode == SL_PIN_MODE_OFF) e.pins = 0;
    return e;
}

/* The first reason in bits, for the refusal's words. */
static const char *feature_of(unsigned bits)
{
    for (int r = 0; r < SL_PIN_NREASONS; r++)
        if (bits & SL_PIN_BIT(r)) return feature_names[r];
    return "this statement";
}

/* The statement that makes the server refuse in the client's place, in order with everything else
 * the client sent (the server's transaction state then follows as on any error). */
static void refusal_sql(char *buf, size_t len, unsigned pins)
{
    snprintf(buf, len,
             "DO $sl_refuse$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'pgsluice: %s is not "
             "supported in transaction pooling (pin_session_state = error)', HINT = 'Set pin_session_state = on to "
             "keep such a client on its server connection, or use pool_mode = session.'; END$sl_refuse$",
             feature_of(pins));
}

/* Replace the client's message at parse (old_total bytes with its header) by msg: what was marked
 * for forwarding before it goes to the server's out queue first. */
static bool replace_message(sl_client *c, sl_server *s, const uint8_t *msg, uint32_t mlen, uint32_t old_total)
{
    sl_stream *in = &c->s;
    if (in->parse > in->pos) {
        sl_pb_bytes(&s->s.out, in->buf + in->pos, in->parse - in->pos);
        in->pos = in->parse;
    }
    if (mlen <= old_total) {
        uint32_t start = in->parse + (old_total - mlen);
        memcpy(in->buf + start, msg, mlen);
        in->pos = in->parse = start;
        return true;
    }
    uint32_t extra = mlen - old_total;
    if (!sl_stream_make_room(in, extra, SESS_MSG_MAX * 2)) return false;
    memmove(in->buf + in->parse + mlen, in->buf + in->parse + old_total, in->end - (in->parse + old_total));
    in->end += extra;
    memcpy(in->buf + in->parse, msg, mlen);
    return true;
}

__attribute__((noinline)) static sl_sess_result refuse_query(sl_client *c, sl_server *s, uint32_t len, unsigned pins)
{
    char sql[512];
    refusal_sql(sql, sizeof(sql), pins);
    sl_pktbuf pb;
    sl_pb_init(&pb);
    sl_pb_query(&pb, sql);
    bool ok = !pb.failed && replace_message(c, s, pb.data, (uint32_t)pb.len, len + 1);
    sl_pb_free(&pb);
    return ok ? SL_SESS_REPLACED : SL_SESS_FAILED;
}

/* A Parse refused: the same statement name, the refusal as its text, and as many parameters as the
 * original used (types the client left open become text) so that its Bind still fits. */
__attribute__((noinline)) static sl_sess_result refuse_parse(sl_client *c, sl_server *s, uint32_t len,
                                                             const char *name, int max_param, const uint8_t *types,
                                                             uint16_t ntypes, unsigned pins)
{
    char sql[512];
    refusal_sql(sql, sizeof(sql), pins);
    uint16_t n = ntypes > max_param ? ntypes : (uint16_t)max_param;
    sl_pktbuf pb;
    sl_pb_init(&pb);
    sl_pb_begin(&pb, SL_FE_PARSE);
    sl_pb_str(&pb, name);
    sl_pb_str(&pb, sql);
    sl_pb_u16(&pb, n);
    for (uint16_t i = 0; i < n; i++) {
        uint32_t oid = i < ntypes ? sl_get_u32(types + 4 * i) : 0;
        sl_pb_u32(&pb, oid ? oid : 25);
    }
    sl_pb_end(&pb);
    bool ok = !pb.failed && replace_message(c, s, pb.data, (uint32_t)pb.len, len + 1);
    sl_pb_free(&pb);
    return ok ? SL_SESS_REPLACED : SL_SESS_FAILED;
}

/* Is message [parse, parse + len + 1) whole? 1 yes, 0 read more (room made), -1 it cannot be held
 * (too long, or no memory for it): not followed. */
static int whole(sl_stream *in, uint32_t len)
{
    uint32_t have = in->end - in->parse;
    if (have >= (uint64_t)len + 1) return 1;
    if (len > SESS_MSG_MAX) return -1;
    return sl_stream_make_room(in, len + 1 - have, SESS_MSG_MAX + 8) ? 0 : -1;
}

/* A request that cannot be followed: pinned for the rest of the client's session. */
__attribute__((noinline)) static void lose_track(sl_client *c, sl_server *s)
{
    sl_session *ss = c->sess;
    ss->desync = true;
    q_clear(ss);
    tx_drop(ss);
    add_pins(c, s, SL_PIN_BIT(SL_PINR_UNCLASSIFIED));
}

__attribute__((noinline)) static sl_sess_result on_query(sl_client *c, sl_server *s, uint32_t len, sl_pin_mode mode)
{
    sl_session *ss = c->sess;
    int w = whole(&c->s, len);
    if (w == 0) return SL_SESS_NEED_MORE;
    if (w < 0) {
        if (mode != SL_PIN_MODE_OFF) lose_track(c, s);
        return SL_SESS_FORWARD;
    }
    const char *text = (const char *)c->s.buf + c->s.parse + 5;
    int maxp, nplain = sl_stmt_plain_count(text, len - 4, &maxp);
    if (nplain >= 0) { /* nothing in it acts on the session: one answer each, then the end mark */
        if ((nplain && !q_push_plain(ss, (uint32_t)nplain)) || !q_push_end(ss))
            lose_track(c, s);
        return SL_SESS_FORWARD;
    }
    sl_stmt_iter it;
    sl_stmt_info info;
    /* first pass: would anything pin? (refused whole in error mode, before anything is queued) */
    unsigned pins = 0;
    uint32_t queued_before = ss->qn;
    sl_stmt_iter_init(&it, text, len - 4);
    bool ok = true;
    while (sl_stmt_next(&it, &info)) {
        sl_sess_entry e = entry_of(s, &info, mode == SL_PIN_MODE_OFF ? SL_PIN_MODE_OFF : SL_PIN_MODE_ON);
        pins |= e.pins;
        if (info.recheck & SL_PIN_BIT(SL_PINR_ADVISORY_LOCK)) ss->advisory_check = true;
        int nr = named_reason(&info);
        if (mode == SL_PIN_MODE_ON && nr >= 0 && (e.pins & SL_PIN_BIT(nr))) names_add(c, nr, info.name, true);
        /* a channel the client has through the fan-out and LISTENs on its (pinned) server is
         * delivered by that server once the LISTEN commits (tx_commit): until then, and for good
         * if it rolls back, the fan-out goes on delivering it */
        if (mode != SL_PIN_MODE_ERROR && ok) ok = q_push(ss, &e);
        entry_release(&e);
    }
    if (mode == SL_PIN_MODE_ERROR && pins) {
        /* nothing was queued: the replacement is read (and queued) next */
        return refuse_query(c, s, len, pins);
    }
    if (mode == SL_PIN_MODE_ERROR) { /* nothing pins: queue for real */
        sl_stmt_iter_init(&it, text, len - 4);
        while (ok && sl_stmt_next(&it, &info)) {
            sl_sess_entry e = entry_of(s, &info, SL_PIN_MODE_OFF);
            ok = q_push(ss, &e);
            entry_release(&e);
        }
    }
    if (!ok || !q_push_end(ss)) {
        lose_track(c, s);
        return SL_SESS_FORWARD;
    }
    if (pins) pin_at_send(c, s, pins, queued_before);
    return SL_SESS_FORWARD;
}

/* SL_SESS_MEMO_MAX: longer texts are classified each time (the shortcut's one pass). */
#define SL_SESS_MEMO_MAX 2048u

/* Does the text at sql (room bytes up to the end of the message) start with the remembered one
 * and end there? */
static inline bool memo_hit(const sl_session *ss, const char *sql, size_t room)
{
    return ss->memo && ss->memo_len < room && sql[ss->memo_len] == '\0' && !memcmp(ss->memo, sql, ss->memo_len);
}

/* Is a Parse's text one statement that does nothing to the session? Remembered when it is. */
__attribute__((noinline)) static bool plain_parse(sl_session *ss, const char *sql, size_t len)
{
    int maxp, n = sl_stmt_plain_count(sql, len, &maxp);
    if (n != 0 && n != 1) return false;
    if (len <= SL_SESS_MEMO_MAX) {
        if (ss->memo_cap < len + 1) {
            uint32_t cap = (uint32_t)len + 1 < 128 ? 128 : (uint32_t)len + 1;
            char *m = realloc(ss->memo, cap);
            if (!m) return true; /* not remembered: looked at again next time */
            ss->memo = m;
            ss->memo_cap = cap;
        }
        memcpy(ss->memo, sql, len);
        ss->memo_len = (uint32_t)len;
    }
    return true;
}

static sl_sess_result on_parse(sl_client *c, sl_server *s, uint32_t len, sl_pin_mode mode)
{
    sl_session *ss = c->sess;
    int w = whole(&c->s, len);
    if (w == 0) return SL_SESS_NEED_MORE;
    if (w < 0) {
        if (mode != SL_PIN_MODE_OFF) lose_track(c, s);
        return SL_SESS_FORWARD;
    }
    /* name, text, parameter types; malformed: the server says so */
    const uint8_t *b = c->s.buf + c->s.parse + 5, *bend = b + (len - 4);
    const uint8_t *z1 = memchr(b, 0, (size_t)(bend - b));
    if (!z1) return SL_SESS_FORWARD;
    const char *name = (const char *)b, *sql = (const char *)z1 + 1;
    size_t room = (size_t)(bend - (z1 + 1)), sqllen;
    bool same = memo_hit(ss, sql, room); /* the same text as last time: its NUL is at memo_len */
    if (same) sqllen = ss->memo_len;
    else {
        const uint8_t *z2 = memchr(z1 + 1, 0, room);
        if (!z2) return SL_SESS_FORWARD;
        sqllen = (size_t)(z2 - (z1 + 1));
    }
    const uint8_t *tp = (const uint8_t *)sql + sqllen + 1;
    if (bend - tp < 2) return SL_SESS_FORWARD;
    uint16_t ntypes = sl_get_u16(tp);
    const uint8_t *types = tp + 2;
    if ((size_t)(bend - types) < 4u * ntypes) return SL_SESS_FORWARD;
    if (same || plain_parse(ss, sql, sqllen)) { /* most statements: nothing to follow */
        if (!name[0]) {
            unnamed_parsed(ss, (sl_sess_entry){.kind = E_NONE, .param = -1}, mode);
        } else if (ss->nstmts) {
            struct sl_sess_portal *r = rec_find(ss->stmts, ss->nstmts, name);
            if (r) rec_forget(ss->stmts, &ss->nstmts, r);
        }
        return SL_SESS_FORWARD;
    }
    sl_stmt_info info;
    sl_stmt_classify_one(sql, sqllen, &info);
    if (info.recheck & SL_PIN_BIT(SL_PINR_ADVISORY_LOCK)) ss->advisory_check = true;
    sl_sess_entry e = entry_of(s, &info, mode == SL_PIN_MODE_OFF ? SL_PIN_MODE_OFF : SL_PIN_MODE_ON);
    /* max_prepared_statements = 0: what its Binds do again is recorded here (bind_recorded) */
    sl_sess_entry se = {.kind = E_NONE, .param = -1};
    if (name[0] && !sl_ps_enabled_for(c)) se = portal_entry(&e, mode);
    if (name[0] && e.kind != E_NONE) {
        /* a named statement may run any number of times later: its settings are not followed (and
         * a CLOSE / UNLISTEN / DEALLOCATE through it does not end a pin) */
        if (mode != SL_PIN_MODE_OFF && changes_setting(&e))
            e.pins |= SL_PIN_BIT(SL_PINR_SET);
        entry_release(&e);
        e.kind = E_NONE;
    }
    if (mode == SL_PIN_MODE_ERROR && e.pins) { /* refused below: it does nothing */
        entry_release(&se);
        se = (sl_sess_entry){.kind = E_NONE, .param = -1};
    }
    if (name[0] && (ss->nstmts || !plain(&se)) && !rec_put(&ss->stmts, &ss->nstmts, &ss->stmtscap, name, 0, &se)) {
        entry_release(&e);
        lose_track(c, s);
        return SL_SESS_FORWARD;
    }
    if (mode == SL_PIN_MODE_ERROR && e.pins) {
        unsigned pins = e.pins;
        entry_release(&e);
        return refuse_parse(c, s, len, name, info.max_param, types, ntypes, pins);
    }
    if (mode == SL_PIN_MODE_ERROR) e.pins = 0;
    int nr = named_reason(&info);
    if (mode == SL_PIN_MODE_ON && nr >= 0 && (e.pins & SL_PIN_BIT(nr))) names_add(c, nr, info.name, true);
    unsigned pins = e.pins;
    if (!name[0]) unnamed_parsed(ss, e, mode);
    else entry_release(&e);
    if (pins) pin_at_send(c, s, pins, ss->qn);
    return SL_SESS_FORWARD;
}

/* The portal and statement names at the start of a Bind: only they are waited for (a Bind with
 * large parameter values keeps streaming). 1 found, 0 read more (room made), -1 not readable (names
 * longer than 64 KB, a malformed message, no memory). */
#define BIND_NAMES_MAX (64u * 1024)
static int bind_names(sl_stream *in, uint32_t len, const char **portal, const char **stmt)
{
    uint32_t have = in->end - in->parse, body = len - 4;
    uint32_t avail = have > 5 ? have - 5 : 0;
    if (avail > body) avail = body;
    const char *b = (const char *)in->buf + in->parse + 5;
    if (avail >= 2 && !b[0] && !b[1]) { /* the unnamed portal of the unnamed statement */
        *portal = *stmt = b;
        return 1;
    }
    const char *z1 = avail ? memchr(b, 0, avail) : NULL;
    const char *z2 = z1 ? memchr(z1 + 1, 0, avail - (uint32_t)(z1 + 1 - b)) : NULL;
    if (z2) {
        *portal = b;
        *stmt = z1 + 1;
        return 1;
    }
    if (avail >= body || avail >= BIND_NAMES_MAX) return -1;
    uint32_t want = len + 1 < 5 + BIND_NAMES_MAX ? len + 1 : 5 + BIND_NAMES_MAX;
    return sl_stream_make_room(in, want - have, SESS_MSG_MAX + 8) ? 0 : -1;
}

/* pin_session_state = error, a Bind of the client's statement name whose text pins (st, its text
 * sqllen bytes long), which was never refused: its Parse was answered without a look at it (by
 * pgsluice: a text another client prepared, or listen_extended.c's LISTEN). The name now stands for
 * the refusal, as after a refused Parse (refuse_parse: the same parameter count, so the Bind still
 * fits): proxy_ps.c binds that in its place, and the Execute fails with 0A000 in order. false: out of
 * memory (the caller pins instead: when in doubt, pin). */
__attribute__((noinline)) static bool refuse_bound(sl_client *c, const char *name, const sl_stmt *st, size_t sqllen,
                                                   int max_param, unsigned pins)
{
    const uint8_t *tp = st->body + sqllen + 1, *end = st->body + st->body_len;
    uint16_t ntypes = end - tp >= 2 ? sl_get_u16(tp) : 0;
    if ((size_t)(end - tp) < 2u + 4u * ntypes) ntypes = 0;
    uint16_t n = ntypes > max_param ? ntypes : (uint16_t)max_param;
    char sql[512];
    refusal_sql(sql, sizeof(sql), pins);
    sl_pktbuf pb;
    sl_pb_init(&pb);
    sl_pb_str(&pb, sql);
    sl_pb_u16(&pb, n);
    for (uint16_t i = 0; i < n; i++) {
        uint32_t oid = i < ntypes ? sl_get_u32(tp + 2 + 4 * i) : 0;
        sl_pb_u32(&pb, oid ? oid : 25);
    }
    sl_stmt *r = pb.failed ? NULL : sl_stmt_intern(pb.data, (uint32_t)pb.len);
    sl_pb_free(&pb);
    if (!r) return false;
    if (!sl_stmt_map_put(&c->ps_map, name, r)) { /* (takes r's reference; replaces and unrefs st) */
        sl_stmt_unref(r);
        return false;
    }
    if (c->s.w->cfg->verbose)
        sl_log_info("C-0x%llx: statement \"%s\" refused at its Bind (pin_session_state = error)",
                    (unsigned long long)c->id, name);
    return true;
}

/* A Bind of a named statement the client prepared earlier: its Parse may never have been looked at
 * here (answered by pgsluice: proxy_ps.c for a text another client prepared, listen_extended.c for a
 * LISTEN), so what it does is taken from the statement's text now, and pins (or, under
 * pin_session_state = error, is refused) as a named Parse would. pe (a named portal's Bind): what the
 * portal's Execute does again (portal_entry). */
__attribute__((noinline)) static void bind_named(sl_client *c, sl_server *s, const char *name, sl_pin_mode mode,
                                                 sl_sess_entry *pe)
{
    if (mode == SL_PIN_MODE_OFF || !sl_ps_enabled_for(c)) return;
    sl_stmt *st = sl_stmt_map_get(&c->ps_map, name);
    if (!st || __atomic_load_n(&st->sess_plain, __ATOMIC_RELAXED) > 0) return;
    const char *sql = (const char *)st->body;
    const uint8_t *z = memchr(st->body, 0, st->body_len);
    if (!z) return;
    size_t sqllen = (size_t)(z - st->body);
    int maxp;
    int n = sl_stmt_plain_count(sql, sqllen, &maxp);
    if (n == 0 || n == 1) {
        __atomic_store_n(&st->sess_plain, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_store_n(&st->sess_plain, -1, __ATOMIC_RELAXED);
    sl_stmt_info info;
    sl_stmt_classify_one(sql, sqllen, &info);
    if (info.recheck & SL_PIN_BIT(SL_PINR_ADVISORY_LOCK)) c->sess->advisory_check = true;
    sl_sess_entry e = entry_of(s, &info, SL_PIN_MODE_ON);
    /* its settings are not followed (it may run any number of times) */
    if (changes_setting(&e)) e.pins |= SL_PIN_BIT(SL_PINR_SET);
    unsigned pins = e.pins;
    if (pins && mode == SL_PIN_MODE_ERROR && refuse_bound(c, name, st, sqllen, info.max_param, pins)) {
        entry_release(&e);
        return; /* (st may be gone) */
    }
    if (pe) *pe = portal_entry(&e, mode);
    entry_release(&e);
    if (!pins) return;
    int nr = named_reason(&info);
    if (nr >= 0 && (pins & SL_PIN_BIT(nr))) names_add(c, nr, info.name, true);
    if (nr == SL_PINR_LISTEN && info.kind == SL_SK_LISTEN && c->fanout && info.name[0])
        sl_fanout_client_unlisten(c, info.name);
    pin_at_send(c, s, pins, c->sess->qn);
}

/* max_prepared_statements = 0: a Bind of a named statement whose Parse pinned (recorded then) pins
 * again, as bind_named does (a DISCARD may have ended the pins since). */
__attribute__((noinline)) static void bind_recorded(sl_client *c, sl_server *s, const char *name, sl_sess_entry *pe)
{
    sl_session *ss = c->sess;
    const struct sl_sess_portal *r = rec_find(ss->stmts, ss->nstmts, name);
    if (!r) return;
    if (r->e.kind == E_NAME_ADD) names_add(c, r->e.param, r->e.value, true);
    if (r->e.pins) pin_at_send(c, s, r->e.pins, ss->qn);
    if (pe) *pe = entry_copy(&r->e);
}

void sl_sess_advisory_checked(sl_client *c, bool held)
{
    sl_session *ss = c->sess;
    if (!ss) return;
    ss->advisory_check = false;
    if (held || ss->desync || !(ss->pins & SL_PIN_BIT(SL_PINR_ADVISORY_LOCK))) return;
    drop_pins(c, SL_PIN_BIT(SL_PINR_ADVISORY_LOCK));
    if (c->s.w->cfg->verbose)
        sl_log_info("C-0x%llx: holds no advisory lock any more%s", (unsigned long long)c->id,
                    ss->pins ? "" : ": no longer kept on its server");
}

static sl_sess_result on_bind(sl_client *c, sl_server *s, uint32_t len, sl_pin_mode mode)
{
    sl_session *ss = c->sess;
    const char *portal = "?", *stmt = "?";
    int w = len >= 4 ? bind_names(&c->s, len, &portal, &stmt) : -1;
    if (w == 0) return SL_SESS_NEED_MORE;
    sl_sess_entry pe = {.kind = E_NONE, .param = -1}; /* a named portal's: what its Execute does again */
    sl_sess_entry either = {.kind = E_NONE, .param = -1};
    const sl_sess_entry *us = unnamed_now(ss, mode, &either); /* the unnamed statement */
    if (w != 1) { /* too long to read: whichever portal it makes, it is not followed */
        entry_release(&ss->unnamed_portal);
        ss->unnamed_portal = (sl_sess_entry){.kind = E_NONE};
        unsigned again = us->kind != E_NONE ? us->pins | SL_PIN_BIT(SL_PINR_SET) : us->pins;
        if (again && mode != SL_PIN_MODE_OFF) pin_at_send(c, s, again, ss->qn);
    } else if (!portal[0]) {
        entry_release(&ss->unnamed_portal);
        ss->unnamed_portal = !stmt[0] ? entry_copy(us) : (sl_sess_entry){.kind = E_NONE};
    } else if (!stmt[0]) {
        if (us->kind != E_NONE && mode != SL_PIN_MODE_OFF)
            pin_at_send(c, s, SL_PIN_BIT(SL_PINR_SET), ss->qn); /* a named portal's settings are not followed */
        pe = portal_entry(us, mode);
    }
    entry_release(&either);
    if (w == 1 && stmt[0] && sl_ps_enabled_for(c)) bind_named(c, s, stmt, mode, portal[0] ? &pe : NULL);
    else if (w == 1 && stmt[0] && ss->nstmts) bind_recorded(c, s, stmt, portal[0] ? &pe : NULL);
    /* a named portal runs its statement at its Execute, maybe after a DISCARD / RESET ALL / ... that
     * ended the pins its Parse or Bind took: the Execute takes them again */
    if (w == 1 && portal[0] && !portal_bound(ss, portal, &pe)) lose_track(c, s);
    return SL_SESS_FORWARD;
}

/* An Execute of a named portal bound to a statement that pins: the pins are taken again as it is sent
 * (a DISCARD pipelined ahead of it, or answered earlier in its transaction, does not end them) and
 * the name it makes counts again (a DEALLOCATE of it ahead does not end the pin). */
__attribute__((noinline)) static sl_sess_result execute_portal(sl_client *c, sl_server *s,
                                                               const struct sl_sess_portal *p)
{
    sl_session *ss = c->sess;
    uint32_t before = ss->qn;
    if (p->e.kind == E_NAME_ADD) names_add(c, p->e.param, p->e.value, true);
    if (!q_push(ss, &p->e)) return SL_SESS_FAILED;
    if (p->e.pins) pin_at_send(c, s, p->e.pins, before);
    return SL_SESS_FORWARD;
}

static sl_sess_result on_execute(sl_client *c, sl_server *s, uint32_t len)
{
    sl_session *ss = c->sess;
    int w = whole(&c->s, len);
    if (w == 0) return SL_SESS_NEED_MORE;
    const char *portal = (const char *)c->s.buf + c->s.parse + 5;
    bool unnamed = w == 1 && len >= 5 && !portal[0];
    if (w == 1 && len >= 5 && !unnamed && ss->nportals && memchr(portal, 0, len - 4)) {
        const struct sl_sess_portal *p = rec_find(ss->portals, ss->nportals, portal);
        if (p) return execute_portal(c, s, p);
    }
    if (unnamed && !plain(&ss->unnamed_portal)) {
        /* its pins taken again as it is sent, as a named portal's: the statement may run in a later
         * batch than its Parse, after a DISCARD / RESET ALL / ... ended the pins the Parse took */
        uint32_t before = ss->qn;
        if (!q_push(ss, &ss->unnamed_portal)) return SL_SESS_FAILED;
        if (ss->unnamed_portal.pins) pin_at_send(c, s, ss->unnamed_portal.pins, before);
        return SL_SESS_FORWARD;
    }
    return q_push_plain(ss, 1) ? SL_SESS_FORWARD : SL_SESS_FAILED;
}

sl_sess_result sl_sess_client_msg_full(sl_client *c, sl_server *s, char type, uint32_t len)
{
    if (type != SL_FE_QUERY && type != SL_FE_PARSE && type != SL_FE_BIND && type != SL_FE_EXECUTE &&
        type != SL_FE_SYNC && type != SL_FE_FUNCTION_CALL)
        return SL_SESS_FORWARD;
    sl_session *ss = sess_get(c);
    if (!ss) return SL_SESS_FAILED;
    if (ss->desync) return SL_SESS_FORWARD;
    sl_pin_mode mode = (sl_pin_mode)c->s.w->cfg->pin_session_state;
    switch (type) {
    case SL_FE_QUERY: return on_query(c, s, len, mode);
    case SL_FE_PARSE: return on_parse(c, s, len, mode);
    case SL_FE_BIND: return on_bind(c, s, len, mode);
    case SL_FE_EXECUTE: return on_execute(c, s, len);
    default: /* Sync, FunctionCall */
        if (!q_push_end(ss)) lose_track(c, s);
        return SL_SESS_FORWARD;
    }
}

/* ---- answers ---- */

static void on_command_complete(sl_client *c, sl_server *s, const char *tag)
{
    sl_session *ss = c->sess;
    sl_sess_entry *h = q_head(ss);
    if (!h || h->kind == E_END) return; /* nothing expected: not followed */
    if (!strcmp(tag, "COMMIT")) {
        q_pop(ss);
        tx_commit(c, s);
        return;
    }
    if (!strcmp(tag, "ROLLBACK")) {
        /* ROLLBACK TO SAVEPOINT: part of the transaction undone: which settings survive is not known
         * (pinned), nor whether a DISCARD / UNLISTEN / ... that would end a pin still does (the pin
         * stays) */
        if (h->kind == E_ROLLBACK_TO && ss->txn && c->s.w->cfg->pin_session_state != SL_PIN_MODE_OFF)
            add_pins(c, s, SL_PIN_BIT(SL_PINR_SET));
        tx_drop(ss);
        q_pop(ss);
        return;
    }
    ss->clear_pending &= (uint16_t)~h->pins;
    ss->clear_pending |= h->clears;
    if (h->kind == E_PARAM || h->kind == E_RESET_ALL || h->kind == E_NAME_DROP || h->kind == E_NAME_ADD)
        tx_push(ss, h);
    q_pop(ss);
}

void sl_sess_server_msg_full(sl_client *c, sl_server *s, char type, const uint8_t *body, uint32_t blen)
{
    sl_session *ss = c->sess;
    if (!ss || ss->desync) return;
    switch (type) {
    case SL_BE_COMMAND_COMPLETE: {
        sl_sess_entry *h = q_head(ss);
        if (h && plain(h) && !ss->txn && !ss->clear_pending) {
            /* a plain statement with nothing pending: whatever its tag (even COMMIT or ROLLBACK),
             * nothing changes but the queue */
            q_pop(ss);
            break;
        }
        char tag[32];
        uint32_t n = blen < sizeof(tag) - 1 ? blen : sizeof(tag) - 1;
        memcpy(tag, body, n);
        tag[n] = '\0';
        on_command_complete(c, s, tag);
        break;
    }
    case SL_BE_EMPTY_QUERY:
    case SL_BE_PORTAL_SUSPENDED:
        if (q_head(ss) && q_head(ss)->kind != E_END) q_pop(ss);
        break;
    case SL_BE_ERROR:
        /* the transaction (implicit or not) fails; the rest up to the end mark is skipped. Its list
         * goes at the transaction's end: a failed block may come back to a savepoint made before */
        if (ss->txn || ss->clear_pending) ss->tx_failed = true;
        while (q_head(ss) && q_head(ss)->kind != E_END) {
            q_head(ss)->n = 1;
            q_pop(ss);
        }
        if (ss->unnamed_watch && !ss->unnamed_ends) ss->unnamed_watch = 2; /* its batch failed */
        if (!ss->qn) ss->err_open = true; /* skipping until a Sync not sent yet */
        break;
    case SL_BE_READY: {
        while (q_head(ss) && q_head(ss)->kind != E_END) {
            q_head(ss)->n = 1;
            q_pop(ss);
        }
        char st = blen ? (char)body[0] : SL_XACT_IDLE;
        if (q_head(ss)) {
            q_pop(ss);
            if (ss->nportals) portals_ready(ss, st);
            if (ss->unnamed_watch) unnamed_batch_answered(ss, (sl_pin_mode)c->s.w->cfg->pin_session_state);
        }
        if (!ss->txn && !ss->clear_pending) break; /* nothing to keep or drop */
        if (st == SL_XACT_IDLE && ss->tx_failed) tx_drop(ss); /* rolled back */
        else if (st == SL_XACT_IDLE) tx_commit(c, s);
        break;
    }
    default: break;
    }
    if (ss->desync) lose_track(c, s);
}

void sl_sess_link_end_full(sl_client *c)
{
    sl_session *ss = c->sess;
    if (!ss) return;
    if (ss->qn) q_clear(ss);
    if (ss->txn || ss->clear_pending) tx_drop(ss);
    if (ss->unnamed_portal.value) entry_release(&ss->unnamed_portal);
    ss->unnamed_portal = (sl_sess_entry){.kind = E_NONE};
    rec_clear(ss->portals, &ss->nportals); /* they lived in the link's transactions */
    if (ss->unnamed_watch) { /* a batch never answered: its Parse of the unnamed statement in doubt */
        ss->unnamed_watch = 2;
        ss->unnamed_ends = 0;
        unnamed_batch_answered(ss, (sl_pin_mode)c->s.w->cfg->pin_session_state);
    }
    ss->err_open = false;
}

void sl_sess_free(sl_client *c)
{
    sl_session *ss = c->sess;
    if (!ss) return;
    if (ss->pins) __atomic_sub_fetch(&sl_pinned_clients, 1, __ATOMIC_RELAXED);
    sl_sess_link_end(c);
    entry_release(&ss->unnamed_stmt);
    entry_release(&ss->unnamed_prev);
    for (uint32_t i = 0; i < ss->nnames; i++) sl_intern_release(ss->names[i].name);
    free(ss->names);
    rec_clear(ss->stmts, &ss->nstmts);
    free(ss->stmts);
    free(ss->portals);
    free(ss->memo);
    sl_worker *w = sl_worker_self();
    q_free(w, ss->q, ss->qcap);
    free(ss->tx);
    sl_worker_obj_put(w, SL_OBJ_SESSION, ss);
    c->sess = NULL;
}
