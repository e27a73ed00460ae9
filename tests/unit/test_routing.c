/* test_routing.c - the pool's decisions for databases with roles, without sockets: health check
 * results are made up and stored as the checker would, the topology is refreshed, and the routes'
 * answers are checked: writes only to the primary, reads to replicas in rotation (least outstanding
 * or round-robin), the primary as their fallback, failover (writes wait, then go to the promoted
 * replica), an old primary back in recovery or on an older timeline never written to, lagging
 * replicas out of rotation, read-your-writes, and making room in a full pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/health.h"
#include "pool/pool.h"
#include "util/time.h"

#define NWORKERS 2
#define SEC 1000000LL

static sl_config *cfg;
static uint64_t lsn_base = 1000000; /* WAL positions only grow across tests */

static int setup(void **state)
{
    (void)state;
    char err[256];
    cfg = sl_config_load("data/pool/routing.ini", err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    sl_pools_init(NWORKERS);
    return sl_topology_configure(cfg) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sl_config_unref(cfg);
    return 0;
}

static sl_host *host(int n)
{
    char name[32];
    snprintf(name, sizeof(name), "10.0.0.%d", n);
    sl_host *h = sl_host_get(name, 5432);
    assert_non_null(h);
    return h;
}

/* A check of host n as the checker stores it. */
static void check_at(int n, int state, bool recovery, uint64_t lsn, int timeline, int64_t at)
{
    sl_check_result r = {.started = at, .finished = at, .state = state, .in_recovery = recovery, .lsn = lsn,
                         .receive_lsn = lsn, .timeline = timeline, .replay_age_s = -1};
    snprintf(r.error, sizeof(r.error), "%s", state == SL_HOST_UP ? "" : "connection refused");
    sl_host_store(host(n), &r);
}
static void check(int n, int state, bool recovery, uint64_t lsn, int timeline)
{
    check_at(n, state, recovery, lsn, timeline, sl_now_us());
}

static void refresh(sl_pool_actions *act)
{
    sl_topo_events ev;
    sl_topology_refresh(sl_now_us(), act, &ev);
}

/* The usual cluster: 10.0.0.1 primary, .2 and .3 replicas, all caught up. */
static void healthy_cluster(void)
{
    lsn_base += 1000;
    check(1, SL_HOST_UP, false, lsn_base, 1);
    check(2, SL_HOST_UP, true, lsn_base, 0);
    check(3, SL_HOST_UP, true, lsn_base, 0);
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    refresh(&act);
    sl_pool_actions_free(&act);
}

static sl_pool_waiter waiter(int worker, uint32_t slot, sl_intent intent)
{
    sl_pool_waiter w = {.worker = worker, .slot = slot, .gen = slot + 1000, .intent = intent};
    sl_list_init(&w.node);
    return w;
}

static sl_route *route(const char *db, const char *user)
{
    char sqlstate[6], err[256];
    sl_route *r = sl_route_get(cfg, db, user, SL_REPL_NONE, sqlstate, err, sizeof(err));
    assert_non_null(r);
    return r;
}

static sl_pool_conn *launched(const sl_launch *l, uint8_t standby)
{
    sl_pool_conn *c = calloc(1, sizeof(*c));
    c->backend = l->backend;
    c->worker = l->worker;
    c->connect_time = sl_now_us();
    c->target_gen = l->backend->target_gen;
    c->standby = standby;
    sl_list_init(&c->idle_node);
    return c;
}

static int idx(const sl_backend *b) { return b->index; }

/* Acquire for w: must queue and launch one server; returns its backend's index. */
static int queued_launch(sl_route *r, sl_pool_waiter *w, sl_pool_actions *act)
{
    sl_acquire a;
    sl_pool_actions_init(act);
    assert_int_equal(sl_route_acquire(r, w, cfg, &a, act), SL_ACQ_QUEUED);
    assert_int_equal(act->nlaunch, 1);
    return idx(act->launch[0].backend);
}

static void test_writes_go_to_the_primary_reads_to_replicas(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *rw = route("rw", "u1"), *ro = route("ro", "u1");
    assert_true(rw->routed);
    assert_int_equal(rw->primary, 0);
    assert_int_equal(rw->n_readers, 2);
    sl_pool_waiter w = waiter(0, 1, SL_INTENT_WRITE);
    sl_pool_actions act;
    assert_int_equal(queued_launch(rw, &w, &act), 0);
    sl_pool_conn *c = launched(&act.launch[0], SL_STANDBY_OFF);
    sl_pool_actions_free(&act);
    sl_route_logged_in(c);
    sl_release rel;
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_HANDOFF);
    /* even a client that declares a read-only transaction gets the primary: no read_write_split here */
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_IDLE);
    sl_pool_waiter w2 = waiter(0, 2, SL_INTENT_READ);
    sl_acquire a;
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(rw, &w2, cfg, &a, &act), SL_ACQ_GOT);
    assert_ptr_equal(a.conn, c);
    sl_route_forget(c, NULL, &act);
    sl_pool_actions_free(&act);
    free(c);

    /* the read-only name: a replica */
    sl_pool_waiter w3 = waiter(1, 3, SL_INTENT_WRITE);
    int b = queued_launch(ro, &w3, &act);
    assert_true(b == 1 || b == 2);
    sl_pool_conn *rc = launched(&act.launch[0], SL_STANDBY_ON);
    sl_pool_actions_free(&act);
    sl_route_logged_in(rc);
    sl_route_release(rc, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_HANDOFF);
    sl_route_forget(rc, NULL, NULL);
    free(rc);
    sl_route_put(rw);
    sl_route_put(ro);
}

static void test_reads_spread_over_replicas_least_outstanding(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *ro = route("ro", "u2");
    int count[3] = {0};
    sl_pool_waiter w[4];
    sl_pool_conn *c[4];
    for (int i = 0; i < 4; i++) {
        w[i] = waiter(0, 10 + (uint32_t)i, SL_INTENT_READ);
        sl_pool_actions act;
        int b = queued_launch(ro, &w[i], &act);
        count[b]++;
        c[i] = launched(&act.launch[0], SL_STANDBY_ON);
        sl_pool_actions_free(&act);
        sl_route_logged_in(c[i]);
        sl_release rel;
        sl_route_release(c[i], NULL, &rel); /* handed to w[i]: busy */
        assert_int_equal(rel.kind, SL_REL_HANDOFF);
    }
    assert_int_equal(count[0], 0);
    assert_int_equal(count[1], 2);
    assert_int_equal(count[2], 2);
    for (int i = 0; i < 4; i++) {
        sl_route_forget(c[i], NULL, NULL);
        free(c[i]);
    }
    sl_route_put(ro);
}

static void test_reads_round_robin(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *rr = route("rr", "u1");
    assert_true(rr->routed);
    int prev = -1;
    sl_pool_conn *c[4];
    sl_pool_waiter w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = waiter(0, 20 + (uint32_t)i, SL_INTENT_READ);
        sl_pool_actions act;
        int b = queued_launch(rr, &w[i], &act);
        assert_true(b == 1 || b == 2);
        assert_int_not_equal(b, prev);
        prev = b;
        c[i] = launched(&act.launch[0], SL_STANDBY_ON);
        sl_pool_actions_free(&act);
        sl_route_logged_in(c[i]);
        sl_release rel;
        sl_route_release(c[i], NULL, &rel);
        assert_int_equal(rel.kind, SL_REL_HANDOFF);
    }
    for (int i = 0; i < 4; i++) {
        sl_route_forget(c[i], NULL, NULL);
        free(c[i]);
    }
    sl_route_put(rr);
}

static void test_failover_writes_wait_then_go_to_the_promoted_replica(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *rw = route("rw", "f1");
    /* a server on the old primary, idle in the pool */
    sl_pool_waiter w0 = waiter(0, 30, SL_INTENT_WRITE);
    sl_pool_actions act;
    assert_int_equal(queued_launch(rw, &w0, &act), 0);
    sl_pool_conn *old = launched(&act.launch[0], SL_STANDBY_OFF);
    sl_pool_actions_free(&act);
    sl_route_logged_in(old);
    sl_release rel;
    sl_route_release(old, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_HANDOFF);
    sl_route_release(old, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_IDLE);
    sl_route_take_idle(old); /* the primary goes: its server dies with it */
    sl_route_forget(old, NULL, NULL);
    free(old);

    /* the primary is down: a write waits, nothing is opened anywhere */
    check(1, SL_HOST_DOWN, false, 0, 0);
    sl_pool_actions_init(&act);
    refresh(&act);
    assert_int_equal(act.nlaunch, 0);
    sl_pool_actions_free(&act);
    assert_int_equal(rw->primary, -1);
    sl_pool_waiter w = waiter(1, 31, SL_INTENT_WRITE);
    sl_acquire a;
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(rw, &w, cfg, &a, &act), SL_ACQ_QUEUED);
    assert_int_equal(act.nlaunch, 0);
    sl_pool_actions_free(&act);
    assert_true(sl_topology_primary_missing());

    /* .2 is promoted (a new timeline): the waiting write gets a server there */
    lsn_base += 1000;
    check(2, SL_HOST_UP, false, lsn_base, 2);
    sl_pool_actions_init(&act);
    refresh(&act);
    assert_int_equal(rw->primary, 1);
    assert_int_equal(act.nlaunch, 1);
    assert_int_equal(idx(act.launch[0].backend), 1);
    assert_int_equal(act.launch[0].worker, 1);
    sl_pool_conn *c = launched(&act.launch[0], SL_STANDBY_OFF);
    sl_pool_actions_free(&act);
    sl_route_logged_in(c);
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_HANDOFF);
    assert_int_equal(rel.slot, 31);
    assert_false(sl_topology_primary_missing());

    /* the old primary comes back as a standby: a replica, never written to */
    check(1, SL_HOST_UP, true, lsn_base, 0);
    sl_pool_actions_init(&act);
    refresh(&act);
    sl_pool_actions_free(&act);
    assert_int_equal(rw->primary, 1);
    assert_int_equal(sl_backend_role(rw->backends[0]), SL_ROLE_REPLICA);
    assert_false(rw->backends[0]->serves_write);
    assert_true(rw->backends[0]->serves_read);
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_IDLE);
    sl_pool_waiter w2 = waiter(1, 32, SL_INTENT_WRITE);
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(rw, &w2, cfg, &a, &act), SL_ACQ_GOT);
    assert_ptr_equal(a.conn->backend, rw->backends[1]);
    sl_route_forget(c, NULL, NULL);
    sl_pool_actions_free(&act);
    free(c);
    sl_route_put(rw);
}

static void test_split_brain_older_timeline_is_fenced(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *rw = route("rw", "sb");
    lsn_base += 1000;
    check(2, SL_HOST_UP, false, lsn_base, 5);
    check(1, SL_HOST_UP, false, lsn_base, 4);
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    refresh(&act);
    sl_pool_actions_free(&act);
    assert_int_equal(rw->primary, 1);
    assert_int_equal(rw->backends[0]->health, SL_BH_FENCED);
    assert_false(rw->backends[0]->serves_write);
    sl_pool_waiter w = waiter(0, 40, SL_INTENT_WRITE);
    assert_int_equal(queued_launch(rw, &w, &act), 1);
    sl_pool_conn *c = launched(&act.launch[0], SL_STANDBY_OFF);
    sl_pool_actions_free(&act);
    sl_route_forget(c, NULL, NULL);
    free(c);
    sl_route_unqueue(rw, &w);
    sl_route_put(rw);
    /* back to normal for the other tests: .2 in recovery again, .1 the primary */
    check(2, SL_HOST_UP, true, lsn_base, 0);
    healthy_cluster();
}

static void test_lagging_replica_leaves_rotation_and_reads_fall_back(void **state)
{
    (void)state;
    healthy_cluster();
    int64_t t = sl_now_us();
    uint64_t l = lsn_base;
    check_at(1, SL_HOST_UP, false, l + 100, 1, t - 8 * SEC);
    check_at(1, SL_HOST_UP, false, l + 200, 1, t - 1 * SEC);
    check_at(2, SL_HOST_UP, true, l, 0, t);       /* missing what the primary had 8 s ago */
    check_at(3, SL_HOST_UP, true, l + 200, 0, t); /* caught up */
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    refresh(&act);
    sl_pool_actions_free(&act);
    sl_route *ro = route("ro", "lag"), *sb = route("standby", "lag");
    assert_int_equal(ro->backends[1]->health, SL_BH_LAGGING);
    assert_true(ro->backends[1]->lag_us >= 7 * SEC);
    assert_int_equal(ro->backends[1]->lag_bytes, 200);
    assert_int_equal(ro->backends[2]->lag_us, 0);
    assert_int_equal(ro->n_readers, 1);
    sl_pool_waiter w = waiter(0, 50, SL_INTENT_READ);
    assert_int_equal(queued_launch(ro, &w, &act), 2);
    sl_pool_actions_free(&act);
    sl_route_unqueue(ro, &w);

    /* no replica in rotation: reads fall back to the primary (replica_fallback), standby waits */
    check(3, SL_HOST_DOWN, true, 0, 0);
    sl_pool_actions_init(&act);
    refresh(&act);
    sl_pool_actions_free(&act);
    assert_int_equal(ro->n_readers, 0);
    sl_pool_waiter w2 = waiter(0, 51, SL_INTENT_READ);
    assert_int_equal(queued_launch(ro, &w2, &act), 0);
    sl_pool_actions_free(&act);
    sl_route_unqueue(ro, &w2);
    sl_pool_waiter w3 = waiter(0, 52, SL_INTENT_READ);
    sl_acquire a;
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(sb, &w3, cfg, &a, &act), SL_ACQ_QUEUED);
    assert_int_equal(act.nlaunch, 0);
    sl_pool_actions_free(&act);

    /* the replica catches up and comes back: the standby client gets a server there */
    check(3, SL_HOST_UP, true, l + 200, 0);
    sl_pool_actions_init(&act);
    refresh(&act);
    assert_int_equal(act.nlaunch, 1);
    assert_ptr_equal(act.launch[0].backend->hostrec, host(3));
    sl_pool_conn *c = launched(&act.launch[0], SL_STANDBY_ON);
    sl_pool_actions_free(&act);
    sl_route_forget(c, NULL, NULL);
    free(c);
    sl_route_unqueue(sb, &w3);
    sl_route_put(ro);
    sl_route_put(sb);
}

static void test_standby_at_login_never_serves_writes(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *rw = route("rw", "misfit");
    sl_pool_waiter w = waiter(0, 60, SL_INTENT_WRITE);
    sl_pool_actions act;
    assert_int_equal(queued_launch(rw, &w, &act), 0);
    /* the host was taken for the primary, but its server says in_hot_standby = on */
    sl_pool_conn *c = launched(&act.launch[0], SL_STANDBY_ON);
    sl_pool_actions_free(&act);
    sl_route_logged_in(c);
    sl_release rel;
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_CLOSE);
    sl_pool_actions_init(&act);
    sl_route_forget(c, NULL, &act);
    sl_pool_actions_free(&act);
    free(c);
    sl_route_unqueue(rw, &w);
    sl_route_put(rw);
}

static void test_unreachable_host_keeps_clients_waiting(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *rw = route("rw", "refused");
    sl_pool_waiter w = waiter(0, 70, SL_INTENT_WRITE);
    sl_pool_actions act;
    assert_int_equal(queued_launch(rw, &w, &act), 0);
    sl_pool_conn *c = launched(&act.launch[0], SL_STANDBY_UNKNOWN);
    sl_pool_actions_free(&act);
    sl_pool_actions_init(&act);
    sl_route_login_failed(c->backend, c, NULL, "08006", "could not connect: connection refused", &act);
    assert_int_equal(act.nwake, 0); /* a failover may be under way: it keeps waiting */
    assert_true(w.queued);
    sl_pool_actions_free(&act);
    free(c);
    /* a refused password is said at once */
    sl_pool_conn *c2 = NULL;
    sl_route *rw2 = route("rw", "badpw");
    sl_pool_waiter w2 = waiter(0, 71, SL_INTENT_WRITE);
    assert_int_equal(queued_launch(rw2, &w2, &act), 0);
    c2 = launched(&act.launch[0], SL_STANDBY_UNKNOWN);
    sl_pool_actions_free(&act);
    sl_pool_actions_init(&act);
    sl_route_login_failed(c2->backend, c2, NULL, "28P01", "password authentication failed", &act);
    assert_int_equal(act.nwake, 1);
    sl_pool_actions_free(&act);
    free(c2);
    sl_pool_waiter w3 = waiter(0, 72, SL_INTENT_WRITE);
    sl_acquire a;
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(rw2, &w3, cfg, &a, &act), SL_ACQ_FAIL);
    assert_string_equal(a.sqlstate, "28P01");
    sl_pool_actions_free(&act);
    sl_route_unqueue(rw, &w);
    sl_route_put(rw);
    sl_route_put(rw2);
}

static void test_full_pool_of_primary_servers_makes_room_for_a_read(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *sp = route("split", "room"); /* pool_size 2 */
    assert_true(sl_route_rw_split(sp));
    sl_pool_conn *c[2];
    sl_pool_waiter w[2];
    sl_release rel;
    for (int i = 0; i < 2; i++) {
        w[i] = waiter(0, 80 + (uint32_t)i, SL_INTENT_WRITE);
        sl_pool_actions act;
        assert_int_equal(queued_launch(sp, &w[i], &act), 0);
        c[i] = launched(&act.launch[0], SL_STANDBY_OFF);
        sl_pool_actions_free(&act);
        sl_route_logged_in(c[i]);
        sl_route_release(c[i], NULL, &rel);
        assert_int_equal(rel.kind, SL_REL_HANDOFF);
    }
    /* a read-only transaction waits: the pool is full of busy primary servers */
    sl_pool_waiter rd = waiter(1, 90, SL_INTENT_READ);
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(sp, &rd, cfg, &a, &act), SL_ACQ_QUEUED);
    assert_int_equal(act.nlaunch, 0);
    sl_pool_actions_free(&act);
    /* a primary server comes back: it cannot serve the read, so it closes and a replica server opens */
    sl_route_release(c[0], NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_CLOSE);
    sl_pool_actions_init(&act);
    sl_route_forget(c[0], NULL, &act);
    assert_int_equal(act.nlaunch, 1);
    assert_int_equal(sl_backend_role(act.launch[0].backend), SL_ROLE_REPLICA);
    sl_pool_conn *rc = launched(&act.launch[0], SL_STANDBY_ON);
    sl_pool_actions_free(&act);
    sl_route_logged_in(rc);
    sl_route_release(rc, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_HANDOFF);
    assert_int_equal(rel.slot, 90);
    sl_route_forget(rc, NULL, NULL);
    sl_route_forget(c[1], NULL, NULL);
    free(c[0]);
    free(c[1]);
    free(rc);
    sl_route_put(sp);
}

static void test_read_your_writes(void **state)
{
    (void)state;
    healthy_cluster();
    sl_route *sp = route("split", "ryw");
    sl_pool_waiter w = waiter(0, 100, SL_INTENT_WRITE);
    sl_pool_actions act;
    assert_int_equal(queued_launch(sp, &w, &act), 0);
    sl_pool_conn *pc = launched(&act.launch[0], SL_STANDBY_OFF);
    sl_pool_actions_free(&act);
    sl_route_logged_in(pc);
    sl_release rel;
    sl_route_release(pc, NULL, &rel); /* the write runs */
    assert_int_equal(rel.kind, SL_REL_HANDOFF);
    sl_route_release(pc, NULL, &rel); /* and commits */
    assert_int_equal(rel.kind, SL_REL_IDLE);

    /* its next read: no check of the primary since the write: the primary */
    w.intent = SL_INTENT_READ;
    sl_acquire a;
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(sp, &w, cfg, &a, &act), SL_ACQ_GOT);
    assert_ptr_equal(a.conn, pc);
    sl_pool_actions_free(&act);
    sl_route_release(pc, NULL, &rel);
    int64_t after = w.ryw_after;
    assert_true(after > 0);

    /* the primary is checked (its position moved past what the replicas replayed): still the primary */
    lsn_base += 500;
    check_at(1, SL_HOST_UP, false, lsn_base, 1, after + 1);
    check(2, SL_HOST_UP, true, lsn_base - 100, 0);
    check(3, SL_HOST_UP, true, lsn_base - 100, 0);
    sl_pool_actions_init(&act);
    refresh(&act);
    sl_pool_actions_free(&act);
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(sp, &w, cfg, &a, &act), SL_ACQ_GOT);
    assert_ptr_equal(a.conn, pc);
    sl_pool_actions_free(&act);
    sl_route_release(pc, NULL, &rel);

    /* replica .3 has replayed it: the read goes there */
    check(3, SL_HOST_UP, true, lsn_base, 0);
    sl_pool_actions_init(&act);
    refresh(&act);
    sl_pool_actions_free(&act);
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(sp, &w, cfg, &a, &act), SL_ACQ_QUEUED);
    assert_int_equal(act.nlaunch, 1);
    assert_ptr_equal(act.launch[0].backend->hostrec, host(3));
    sl_pool_conn *rc = launched(&act.launch[0], SL_STANDBY_ON);
    sl_pool_actions_free(&act);
    sl_route_forget(rc, NULL, NULL);
    sl_route_unqueue(sp, &w);
    sl_route_take_idle(pc);
    sl_route_forget(pc, NULL, NULL);
    free(pc);
    free(rc);
    sl_route_put(sp);
}

static void test_database_without_roles_is_not_routed(void **state)
{
    (void)state;
    sl_route *p = route("plain", "u1");
    assert_false(p->routed);
    assert_null(p->backends[0]->hostrec);
    assert_false(sl_route_rw_split(p));
    sl_pool_waiter w = waiter(0, 110, SL_INTENT_READ);
    sl_pool_actions act;
    int b = queued_launch(p, &w, &act); /* load_balance_hosts as before: either host, whatever it is */
    assert_true(b == 0 || b == 1);
    sl_pool_conn *c = launched(&act.launch[0], SL_STANDBY_ON);
    sl_pool_actions_free(&act);
    sl_route_forget(c, NULL, NULL);
    free(c);
    sl_route_unqueue(p, &w);
    sl_route_put(p);
}

static void test_snapshot_shows_roles_and_lag(void **state)
{
    (void)state;
    healthy_cluster();
    sl_topo_snap s;
    assert_true(sl_topology_snapshot(&s, sl_now_us()));
    const sl_topo_snap_db *d = NULL;
    for (int i = 0; i < s.n; i++)
        if (!strcmp(s.dbs[i].name, "ro")) d = &s.dbs[i];
    assert_non_null(d);
    assert_int_equal(d->n, 3);
    assert_int_equal(d->primary, 0);
    assert_int_equal(d->nreaders, 2);
    assert_string_equal(d->hosts[0].addr, "10.0.0.1:5432");
    assert_int_equal(d->hosts[0].role, SL_ROLE_PRIMARY);
    assert_true(d->hosts[0].writes);
    assert_int_equal(d->hosts[1].health, SL_BH_UP);
    assert_int_equal(d->hosts[1].lag_bytes, 0);
    assert_int_equal(d->rt.target, SL_TSA_READ_ONLY);
    sl_topology_snapshot_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_go_to_the_primary_reads_to_replicas),
        cmocka_unit_test(test_reads_spread_over_replicas_least_outstanding),
        cmocka_unit_test(test_reads_round_robin),
        cmocka_unit_test(test_failover_writes_wait_then_go_to_the_promoted_replica),
        cmocka_unit_test(test_split_brain_older_timeline_is_fenced),
        cmocka_unit_test(test_lagging_replica_leaves_rotation_and_reads_fall_back),
        cmocka_unit_test(test_standby_at_login_never_serves_writes),
        cmocka_unit_test(test_unreachable_host_keeps_clients_waiting),
        cmocka_unit_test(test_full_pool_of_primary_servers_makes_room_for_a_read),
        cmocka_unit_test(test_read_your_writes),
        cmocka_unit_test(test_database_without_roles_is_not_routed),
        cmocka_unit_test(test_snapshot_shows_roles_and_lag),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
