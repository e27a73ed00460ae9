/* route_roles.c - the decisions of a route whose database has roles (sl_route.routed): which of its
 * backends may serve a client (the primary for writes; replicas in rotation for reads, the primary
 * as their fallback; read-your-writes), which one of them (least outstanding or round-robin), who
 * gets a server that comes back (the first waiting client it suits), and making room when the pool
 * is full of servers nobody waiting can use. Routes without roles never come here (route.c). */
#include <stdio.h>
#include <string.h>

#include "pool/health.h"
#include "pool/pool.h"
#include "pool/pool_int.h"
#include "util/time.h"

/* New servers for waiting clients are not tried on a backend whose login failed within this long. */
#define WAITER_LOGIN_RETRY_US 1000000
#define MAXB 64

typedef enum { WANT_WRITE, WANT_READ, WANT_ANY } want_t;

static want_t want_of(const sl_route *r, sl_intent intent)
{
    switch (r->target) {
    case SL_TSA_READ_ONLY:
    case SL_TSA_STANDBY:
    case SL_TSA_PREFER_STANDBY: return WANT_READ;
    case SL_TSA_ANY: return intent == SL_INTENT_READ && r->rw_split ? WANT_READ : WANT_ANY;
    default: return intent == SL_INTENT_READ && r->rw_split ? WANT_READ : WANT_WRITE;
    }
}

static bool fallback_allowed(const sl_route *r)
{
    if (r->target == SL_TSA_STANDBY) return false;
    if (r->target == SL_TSA_PREFER_STANDBY) return true;
    return r->fallback;
}

static int nb(const sl_route *r) { return r->nbackends < MAXB ? r->nbackends : MAXB; }

static uint64_t writers(const sl_route *r)
{
    uint64_t m = 0;
    for (int i = 0; i < nb(r); i++)
        if (r->backends[i]->serves_write) m |= 1ull << i;
    return m;
}

static uint64_t readers(const sl_route *r)
{
    uint64_t m = 0;
    for (int i = 0; i < nb(r); i++)
        if (r->backends[i]->serves_read) m |= 1ull << i;
    return m;
}

/* target_session_attrs=any: every host that answers (or is not checked yet), whatever its role. */
static uint64_t reachable(const sl_route *r)
{
    uint64_t m = 0;
    for (int i = 0; i < nb(r); i++) {
        int h = r->backends[i]->health;
        if (h != SL_BH_DOWN && h != SL_BH_FENCED) m |= 1ull << i;
    }
    return m;
}

/* Read-your-writes: of the replicas in m, those that have replayed the primary's position as of a
 * check that began after the client's last write. None known yet: none. */
static uint64_t ryw_filter_locked(sl_route *r, sl_pool_waiter *w, uint64_t m)
{
    if (!w->ryw_after || r->primary < 0 || !r->backends[r->primary]->hostrec) return m;
    uint64_t need;
    if (!sl_host_lsn_after(r->backends[r->primary]->hostrec, w->ryw_after, &need)) return 0;
    uint64_t out = 0;
    bool all = true;
    for (int i = 0; i < nb(r); i++) {
        sl_backend *b = r->backends[i];
        if (sl_backend_role(b) != SL_ROLE_REPLICA || !b->hostrec) continue;
        bool has = sl_host_replayed(b->hostrec) >= need;
        if (has && (m >> i & 1)) out |= 1ull << i;
        all = all && has;
    }
    if (all) w->ryw_after = 0; /* every replica has it: nothing left to wait for */
    return out;
}

/* The backends that may serve this waiter now (bit i: backends[i]). */
static uint64_t eligible_locked(sl_route *r, sl_pool_waiter *w, want_t want)
{
    if (want == WANT_WRITE) return writers(r);
    if (want == WANT_ANY) return reachable(r);
    uint64_t rd = readers(r);
    uint64_t m = w ? ryw_filter_locked(r, w, rd) : rd;
    if (m) return m;
    if (rd) return writers(r); /* replicas have not replayed its writes yet: the primary has them */
    return fallback_allowed(r) ? writers(r) : 0;
}

static bool login_failing(const sl_backend *b, int64_t now, int64_t holdoff)
{
    return b->last_login_failure && now - b->last_login_failure < holdoff;
}

static int busy(const sl_backend *b) { return b->n_servers - b->n_idle; }

/* The eligible backends in the order they should be tried: least busy first (ties: round-robin
 * position), or round-robin from the route's position. */
static int order_locked(sl_route *r, uint64_t m, want_t want, int *order)
{
    int n = 0, total = nb(r);
    int start = total ? r->next_backend % total : 0;
    for (int k = 0; k < total; k++) {
        int i = (start + k) % total;
        if (m >> i & 1) order[n++] = i;
    }
    if (want == WANT_READ && r->replica_lb == SL_REPLICA_LB_ROUND_ROBIN) return n;
    for (int a = 1; a < n; a++) { /* insertion sort by busy servers, stable */
        int x = order[a], k = a;
        while (k > 0 && busy(r->backends[order[k - 1]]) > busy(r->backends[x])) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = x;
    }
    return n;
}

/* A backend was chosen: round-robin goes on after it. */
static void chosen_locked(sl_route *r, const sl_backend *b)
{
    if (r->nbackends) r->next_backend = (b->index + 1) % r->nbackends;
}

/* Off the idle list and closed by its owner's next tick: it holds a place in the pool. */
static void retire_idle_locked(sl_pool_conn *c)
{
    __atomic_store_n(&c->retire, true, __ATOMIC_RELAXED);
}

static sl_pool_conn *pop_fit_locked(sl_backend *b, int worker, want_t want)
{
    for (;;) {
        sl_list *n = sl_list_pop_head(&b->idle[worker]);
        if (!n) return NULL;
        b->n_idle--;
        sl_pool_conn *c = sl_container_of(n, sl_pool_conn, idle_node);
        /* never a write on a connection whose server said it is a standby */
        if (want == WANT_WRITE && c->standby == SL_STANDBY_ON) {
            retire_idle_locked(c);
            continue;
        }
        return c;
    }
}

static sl_pool_conn *take_from_locked(sl_route *r, sl_backend *b, int me, bool own, want_t want, bool *stolen)
{
    for (int j = own ? 0 : 1; j < (own ? 1 : sl_pool_nworkers) && b->n_idle; j++) {
        sl_pool_conn *c = pop_fit_locked(b, (me + j) % sl_pool_nworkers, want);
        if (c) {
            *stolen = j != 0;
            chosen_locked(r, b);
            return c;
        }
    }
    return NULL;
}

/* The pool is full and its servers sit on some replicas while another (back in rotation, or just
 * added) has few: one idle server of the most served closes (its owner's tick), so the next read
 * can open one on the least served. Two servers of difference at least, so it never swings. */
static void rebalance_locked(sl_route *r, const int *order, int n)
{
    int64_t now = sl_now_fast();
    sl_backend *lo = NULL, *hi = NULL;
    for (int k = 0; k < n; k++) {
        sl_backend *b = r->backends[order[k]];
        if (!login_failing(b, now, WAITER_LOGIN_RETRY_US) && (!lo || b->n_servers < lo->n_servers)) lo = b;
        if (b->n_idle && (!hi || b->n_servers > hi->n_servers)) hi = b;
    }
    if (!lo || !hi || hi->n_servers < lo->n_servers + 2) return;
    for (int w = 0; w < sl_pool_nworkers; w++) {
        sl_list *node = sl_list_pop_head(&hi->idle[w]);
        if (!node) continue;
        hi->n_idle--;
        retire_idle_locked(sl_container_of(node, sl_pool_conn, idle_node));
        return;
    }
}

/* An idle server for a client of worker `me`, among the backends in m. Reads are balanced: the
 * least busy replicas' idle servers first (this worker's, then another's); when they have none and
 * the pool may grow, NULL, so that a server opens there (balance), else any idle server. */
static sl_pool_conn *find_idle_locked(sl_route *r, int me, uint64_t m, want_t want, bool balance, bool *stolen)
{
    int order[MAXB];
    int n = order_locked(r, m, want, order);
    if (!n) return NULL;
    sl_pool_conn *c;
    if (balance && want != WANT_WRITE && n > 1) {
        int least = busy(r->backends[order[0]]), k = 0;
        if (r->replica_lb == SL_REPLICA_LB_ROUND_ROBIN) least = -1; /* the rotation decides, not the load */
        int tied = 1;
        while (least >= 0 && tied < n && busy(r->backends[order[tied]]) == least) tied++;
        for (k = 0; k < tied; k++)
            if ((c = take_from_locked(r, r->backends[order[k]], me, true, want, stolen))) return c;
        for (k = 0; k < tied; k++)
            if ((c = take_from_locked(r, r->backends[order[k]], me, false, want, stolen))) return c;
        /* open one there, unless its logins are failing (then any idle server will do) */
        bool can_launch = false;
        int64_t now = sl_now_fast();
        for (k = 0; k < tied && !can_launch; k++)
            can_launch = !login_failing(r->backends[order[k]], now, WAITER_LOGIN_RETRY_US);
        bool can_open = sl_route_can_open_locked(r, false);
        if (can_launch && can_open) return NULL;
        if (!can_open) rebalance_locked(r, order, n);
    }
    for (int k = 0; k < n; k++)
        if ((c = take_from_locked(r, r->backends[order[k]], me, true, want, stolen))) return c;
    for (int k = 0; k < n; k++)
        if ((c = take_from_locked(r, r->backends[order[k]], me, false, want, stolen))) return c;
    return NULL;
}

/* The backend a new server for these eligible backends goes to. */
static sl_backend *pick_launch_locked(sl_route *r, uint64_t m, want_t want, int64_t now, int64_t holdoff)
{
    int order[MAXB];
    int n = order_locked(r, m, want, order);
    for (int k = 0; k < n; k++) {
        sl_backend *b = r->backends[order[k]];
        if (login_failing(b, now, holdoff)) continue;
        chosen_locked(r, b);
        return b;
    }
    return NULL;
}

sl_backend *sl_route_pick_routed_locked(sl_route *r, sl_intent intent, int64_t now, int64_t holdoff)
{
    want_t want = want_of(r, intent);
    return pick_launch_locked(r, eligible_locked(r, NULL, want), want, now, holdoff);
}

/* The pool is full and nobody waiting can use an idle server of the backends outside m: one of
 * them closes (its owner's tick), so that a server of the right role can open. */
static void make_room_locked(sl_route *r, uint64_t m)
{
    sl_backend *victim = NULL;
    for (int i = 0; i < nb(r); i++) {
        sl_backend *b = r->backends[i];
        if (!(m >> i & 1) && b->n_idle && (!victim || b->n_idle > victim->n_idle)) victim = b;
    }
    for (int w = 0; victim && w < sl_pool_nworkers; w++) {
        sl_list *n = sl_list_pop_head(&victim->idle[w]);
        if (!n) continue;
        victim->n_idle--;
        retire_idle_locked(sl_container_of(n, sl_pool_conn, idle_node));
        return;
    }
}

void sl_route_kick_routed_locked(sl_route *r, sl_pool_actions *act, bool reserve)
{
    if (sl_route_held_locked(r) || r->disabled) return;
    int64_t now = sl_now_fast();
    int pend[MAXB];
    for (int i = 0; i < nb(r); i++) pend[i] = r->backends[i]->n_connecting;
    uint64_t unserved = 0;
    for (sl_list *n = r->waiting.next; n != &r->waiting; n = n->next) {
        sl_pool_waiter *w = sl_container_of(n, sl_pool_waiter, node);
        want_t want = want_of(r, w->intent);
        uint64_t m = eligible_locked(r, w, want);
        if (!m) continue; /* nothing can serve it now: it waits for the topology to change */
        bool covered = false;
        for (int i = 0; i < nb(r) && !covered; i++)
            if ((m >> i & 1) && pend[i] > 0) pend[i]--, covered = true;
        if (covered) continue;
        if (!sl_route_can_open_locked(r, reserve)) {
            unserved |= m;
            break;
        }
        sl_backend *b = pick_launch_locked(r, m, want, now, WAITER_LOGIN_RETRY_US);
        if (!b) continue;
        if (!sl_route_add_launch_locked(b, w->worker, act)) break;
        if (r->replication) sl_route_launch_for(act, w);
    }
    if (unserved) make_room_locked(r, unserved);
}

void sl_route_serve_routed_locked(sl_route *r, sl_pool_actions *act)
{
    if (sl_route_held_locked(r) || r->disabled) return;
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &r->waiting)
    {
        sl_pool_waiter *w = sl_container_of(n, sl_pool_waiter, node);
        want_t want = want_of(r, w->intent);
        uint64_t m = eligible_locked(r, w, want);
        bool stolen;
        sl_pool_conn *c = m ? find_idle_locked(r, w->worker, m, want, false, &stolen) : NULL;
        if (!c) continue;
        if (!sl_pool_add_handover(act, c, w->worker, w->slot, w->gen)) {
            sl_list_insert_head(&c->backend->idle[c->worker], &c->idle_node);
            c->backend->n_idle++;
            break;
        }
        sl_route_take_waiter_locked(r, w);
    }
    sl_route_kick_routed_locked(r, act, false);
}

static sl_acquire_kind fail_locked(sl_acquire *out, const sl_backend *b)
{
    out->kind = SL_ACQ_FAIL;
    snprintf(out->sqlstate, sizeof(out->sqlstate), "%s", b->last_login_sqlstate[0] ? b->last_login_sqlstate : "08006");
    snprintf(out->err, sizeof(out->err), "server login has been failing, try again later (server_login_retry): %s",
             b->last_login_error);
    return SL_ACQ_FAIL;
}

/* A failure that says nothing about the server being reachable (a refused password, an unknown
 * database): clients learn it at once instead of waiting for a failover that will not help. */
static bool login_refused(const sl_backend *b) { return b->last_login_sqlstate[0] && !b->last_login_transient; }

sl_acquire_kind sl_route_acquire_routed_locked(sl_route *r, sl_pool_waiter *w, const sl_config *cfg,
                                               sl_acquire *out, sl_pool_actions *act)
{
    int64_t now = sl_now_fast();
    want_t want = want_of(r, w->intent);
    if (r->rw_split && r->ryw) {
        /* its previous transaction was a write and ended before now */
        if (w->last_write) w->ryw_after = now;
        w->last_write = want != WANT_READ;
    }
    uint64_t m = eligible_locked(r, w, want);
    if (m && !sl_route_held_locked(r)) {
        /* an idle server is one nobody waiting can use (they would have been given it), so a client
         * may take one even when others wait */
        bool stolen = false;
        sl_pool_conn *c = find_idle_locked(r, w->worker, m, want, true, &stolen);
        if (c) {
            r->assignments++;
            if (stolen) c->promised = true;
            out->conn = c;
            out->kind = stolen ? SL_ACQ_STEAL : SL_ACQ_GOT;
            return out->kind;
        }
    }
    out->conn = NULL;
    if (m && r->n_servers == 0) {
        /* every eligible host refuses our logins (not: cannot be reached): say so now */
        const sl_backend *refusing = NULL;
        bool all = true;
        for (int i = 0; i < nb(r) && all; i++) {
            if (!(m >> i & 1)) continue;
            const sl_backend *b = r->backends[i];
            if (login_failing(b, now, cfg->server_login_retry) && login_refused(b)) refusing = b;
            else all = false;
        }
        if (all && refusing) return fail_locked(out, refusing);
    }
    w->queued_at = now;
    __atomic_store_n(&w->queued, true, __ATOMIC_RELAXED);
    sl_list_insert_tail(&r->waiting, &w->node);
    r->n_waiting++;
    sl_route_kick_routed_locked(r, act, false);
    out->kind = SL_ACQ_QUEUED;
    return SL_ACQ_QUEUED;
}

bool sl_route_conn_role_fits_locked(const sl_pool_conn *c)
{
    const sl_backend *b = c->backend;
    if (!b->hostrec) return true;
    int role = sl_backend_role(b);
    if (c->standby == SL_STANDBY_ON && role == SL_ROLE_PRIMARY) return false;
    if (c->standby == SL_STANDBY_OFF && role == SL_ROLE_REPLICA) return false;
    return true;
}

void sl_route_release_routed_locked(sl_pool_conn *c, int64_t now, sl_release *out)
{
    sl_backend *b = c->backend;
    sl_route *r = b->route;
    if (sl_route_conn_retire_due(c, now) || r->disabled || r->replication || !sl_route_conn_role_fits_locked(c) ||
        b->health == SL_BH_FENCED) {
        out->kind = SL_REL_CLOSE;
        return;
    }
    if (!sl_list_empty(&r->waiting) && !sl_route_held_locked(r)) {
        bool someone = false;
        for (sl_list *n = r->waiting.next; n != &r->waiting; n = n->next) {
            sl_pool_waiter *w = sl_container_of(n, sl_pool_waiter, node);
            want_t want = want_of(r, w->intent);
            uint64_t m = eligible_locked(r, w, want);
            if (m) someone = true;
            if (!(m >> b->index & 1) || (want == WANT_WRITE && c->standby == SL_STANDBY_ON)) continue;
            sl_route_take_waiter_locked(r, w);
            out->kind = SL_REL_HANDOFF;
            out->worker = w->worker;
            out->slot = w->slot;
            out->gen = w->gen;
            return;
        }
        if (someone && !sl_route_can_open_locked(r, false)) {
            /* nobody waiting can use it and the pool is full: its place goes to one they can use */
            out->kind = SL_REL_CLOSE;
            return;
        }
    }
    out->kind = SL_REL_IDLE;
    c->idle_since = now;
    if (r->round_robin) sl_list_insert_tail(&b->idle[c->worker], &c->idle_node);
    else sl_list_insert_head(&b->idle[c->worker], &c->idle_node);
    b->n_idle++;
}
