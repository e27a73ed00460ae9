/* test_pool.c - the pool layer's decisions without sockets or threads: who gets an idle server,
 * who waits, when a new server is opened (pool_size, max_db_connections, reserve, min_pool_size),
 * where a released server goes, what a failed login does to the waiting clients, which servers
 * retire after a reload, which backend of a host list is used, and freeing unused routes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/pool.h"
#include "pool/snapshot.h"
#include "util/time.h"

#define NWORKERS 3

static sl_config *cfg;

static int setup(void **state)
{
    (void)state;
    char err[256];
    cfg = sl_config_load("data/pool/pool.ini", err, sizeof(err));
    if (!cfg) fprintf(stderr, "%s\n", err);
    return cfg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sl_config_unref(cfg);
    return 0;
}

/* A client as the pool sees it. */
static sl_pool_waiter waiter(int worker, uint32_t slot)
{
    sl_pool_waiter w = {.worker = worker, .slot = slot, .gen = slot + 1000};
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

/* Carry out a launch the way core does: a server object that embeds sl_pool_conn. */
static sl_pool_conn *launched(const sl_launch *l)
{
    sl_pool_conn *c = calloc(1, sizeof(*c));
    c->backend = l->backend;
    c->worker = l->worker;
    c->connect_time = sl_now_us();
    c->target_gen = l->backend->target_gen;
    sl_list_init(&c->idle_node);
    return c;
}

/* A launched server logs in and is released with nobody waiting: parked on its worker. */
static sl_pool_conn *logged_in_idle(sl_pool_conn *c)
{
    sl_route_logged_in(c);
    sl_release rel;
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_IDLE);
    return c;
}

static void test_first_client_waits_and_one_server_opens_on_its_worker(void **state)
{
    (void)state;
    sl_route *r = route("small", "u1");
    sl_pool_waiter w = waiter(1, 7);
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    assert_int_equal(sl_route_acquire(r, &w, cfg, &a, &act), SL_ACQ_QUEUED);
    assert_true(w.queued);
    assert_int_equal(act.nlaunch, 1);
    assert_int_equal(act.launch[0].worker, 1);
    assert_int_equal(r->n_servers, 1);
    assert_int_equal(act.launch[0].backend->n_connecting, 1);
    /* it logs in: handed to the waiting client, not parked */
    sl_pool_conn *c = launched(&act.launch[0]);
    sl_route_logged_in(c);
    sl_release rel;
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_HANDOFF);
    assert_int_equal(rel.worker, 1);
    assert_int_equal(rel.slot, 7);
    assert_int_equal(rel.gen, 1007);
    assert_false(w.queued);
    /* the client is done: parked; the next client of worker 1 gets it at once */
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_IDLE);
    sl_pool_waiter w2 = waiter(1, 8);
    sl_pool_actions_free(&act);
    assert_int_equal(sl_route_acquire(r, &w2, cfg, &a, &act), SL_ACQ_GOT);
    assert_ptr_equal(a.conn, c);
    assert_int_equal(act.nlaunch, 0);
    sl_route_forget(c, NULL, &act);
    assert_int_equal(r->n_servers, 0);
    sl_pool_actions_free(&act);
    sl_route_put(r);
    free(c);
}

static void test_idle_server_of_another_worker_is_stolen(void **state)
{
    (void)state;
    sl_route *r = route("small", "u2");
    sl_pool_waiter w = waiter(0, 1);
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_route_acquire(r, &w, cfg, &a, &act);
    sl_route_unqueue(r, &w);
    sl_pool_conn *c = launched(&act.launch[0]);
    c->worker = 2; /* it ended up on worker 2 */
    logged_in_idle(c);
    sl_pool_waiter w1 = waiter(0, 2);
    assert_int_equal(sl_route_acquire(r, &w1, cfg, &a, &act), SL_ACQ_STEAL);
    assert_ptr_equal(a.conn, c);
    assert_int_equal(a.conn->worker, 2);
    assert_int_equal(act.launch[0].backend->n_idle, 0);
    /* its owner, closing it before the detach message arrives, learns it must keep the object for
     * that message; once the message is handled, nothing is promised any more */
    assert_int_equal(sl_route_take_idle(c), SL_IDLE_PROMISED);
    sl_route_promise_kept(c);
    assert_int_equal(sl_route_take_idle(c), SL_IDLE_NOT_PARKED);
    sl_route_forget(c, NULL, &act);
    sl_pool_actions_free(&act);
    sl_route_put(r);
    free(c);
}

static void test_pool_size_bounds_the_servers_opened_for_waiters(void **state)
{
    (void)state;
    sl_route *r = route("small", "u3"); /* pool_size=2 */
    sl_pool_waiter w[4] = {waiter(0, 1), waiter(1, 2), waiter(2, 3), waiter(0, 4)};
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    for (int i = 0; i < 4; i++) assert_int_equal(sl_route_acquire(r, &w[i], cfg, &a, &act), SL_ACQ_QUEUED);
    assert_int_equal(act.nlaunch, 2);
    assert_int_equal(r->n_servers, 2);
    assert_int_equal(r->n_waiting, 4);
    sl_route_kick(r, &act); /* nothing more: the limit holds */
    assert_int_equal(act.nlaunch, 2);
    /* first come, first served */
    sl_pool_conn *c = launched(&act.launch[0]);
    sl_route_logged_in(c);
    sl_release rel;
    sl_route_release(c, NULL, &rel);
    assert_int_equal(rel.kind, SL_REL_HANDOFF);
    assert_int_equal(rel.slot, 1);
    for (int i = 1; i < 4; i++) sl_route_unqueue(r, &w[i]);
    sl_route_forget(c, NULL, &act);
    sl_pool_conn *c2 = launched(&act.launch[1]);
    sl_route_forget(c2, NULL, &act);
    assert_int_equal(r->n_servers, 0);
    sl_pool_actions_free(&act);
    sl_route_put(r);
    free(c);
    free(c2);
}

static void test_max_db_connections_is_shared_by_the_users_of_a_database(void **state)
{
    (void)state;
    sl_route *a1 = route("limited", "ua"), *b1 = route("limited", "ub"); /* max_db_connections=3 */
    sl_pool_waiter w[5] = {waiter(0, 1), waiter(0, 2), waiter(0, 3), waiter(0, 4), waiter(0, 5)};
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_route_acquire(a1, &w[0], cfg, &a, &act);
    sl_route_acquire(a1, &w[1], cfg, &a, &act);
    sl_route_acquire(b1, &w[2], cfg, &a, &act);
    sl_route_acquire(b1, &w[3], cfg, &a, &act);
    sl_route_acquire(b1, &w[4], cfg, &a, &act);
    assert_int_equal(act.nlaunch, 3);
    assert_int_equal(a1->n_servers + b1->n_servers, 3);
    /* one of them goes away: the next waiter of either user may have a server */
    sl_pool_conn *c = launched(&act.launch[0]);
    int before = act.nlaunch;
    sl_route_forget(c, NULL, &act);
    assert_int_equal(act.nlaunch, before + 1);
    for (int i = 0; i < 5; i++) sl_route_unqueue(w[i].slot <= 2 ? a1 : b1, &w[i]);
    for (int i = 1; i < act.nlaunch; i++) {
        sl_pool_conn *x = launched(&act.launch[i]);
        sl_route_forget(x, NULL, NULL);
        free(x);
    }
    sl_pool_actions_free(&act);
    sl_route_put(a1);
    sl_route_put(b1);
    free(c);
}

static void test_failed_login_wakes_the_waiting_clients_then_new_ones_fail_fast(void **state)
{
    (void)state;
    sl_route *r = route("small", "u4");
    sl_pool_waiter w1 = waiter(0, 1), w2 = waiter(1, 2);
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_route_acquire(r, &w1, cfg, &a, &act);
    sl_route_acquire(r, &w2, cfg, &a, &act);
    assert_int_equal(act.nlaunch, 2);
    sl_pool_conn *c1 = launched(&act.launch[0]), *c2 = launched(&act.launch[1]);
    sl_backend *b = c1->backend;
    sl_route_login_failed(b, c1, NULL, "28P01", "password authentication failed", &act);
    assert_int_equal(act.nwake, 0); /* another server is still logging in */
    assert_int_equal(act.nlaunch, 2); /* and no new one is tried at once */
    sl_route_login_failed(b, c2, NULL, "28P01", "password authentication failed", &act);
    assert_int_equal(act.nwake, 2);
    assert_int_equal(r->n_servers, 0);
    assert_false(w1.queued);
    assert_false(w2.queued);
    assert_int_equal(sl_route_acquire(r, &w1, cfg, &a, &act), SL_ACQ_FAIL);
    assert_string_equal(a.sqlstate, "28P01");
    assert_non_null(strstr(a.err, "password authentication failed"));
    sl_pool_actions_free(&act);
    sl_route_put(r);
    free(c1);
    free(c2);
}

static void test_a_server_of_a_moved_database_retires(void **state)
{
    (void)state;
    sl_route *r = route("small", "u5"), *t = route("twohosts", "u5");
    sl_pool_waiter w = waiter(0, 1), w2 = waiter(0, 2);
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_route_acquire(r, &w, cfg, &a, &act);
    sl_route_acquire(t, &w2, cfg, &a, &act);
    sl_route_unqueue(r, &w);
    sl_route_unqueue(t, &w2);
    sl_pool_conn *c = logged_in_idle(launched(&act.launch[0]));
    sl_pool_conn *d = logged_in_idle(launched(&act.launch[1]));
    assert_false(sl_route_conn_retire_due(c, sl_now_us()));
    char err[256];
    sl_config *moved = sl_config_load("data/pool/moved.ini", err, sizeof(err));
    assert_non_null(moved);
    sl_pools_reconfigure(moved, &act);
    /* small: new host, a new backend; twohosts: same hosts, another database */
    assert_true(sl_route_conn_retire_due(c, sl_now_us()));
    assert_true(c->backend->retired);
    assert_true(sl_route_conn_retire_due(d, sl_now_us()));
    assert_false(d->backend->retired);
    assert_string_equal(r->backends[0]->host, "127.0.0.9");
    sl_route_take_idle(c);
    sl_route_forget(c, NULL, &act);
    sl_route_take_idle(d);
    sl_route_forget(d, NULL, &act);
    sl_pools_reconfigure(cfg, &act);
    sl_config_unref(moved);
    sl_pool_actions_free(&act);
    sl_route_put(r);
    sl_route_put(t);
    free(c);
    free(d);
}

static void test_a_failing_first_host_sends_new_servers_to_the_next(void **state)
{
    (void)state;
    sl_route *r = route("twohosts", "u6");
    assert_int_equal(r->nbackends, 2);
    assert_int_equal(r->backends[1]->port, 5433);
    sl_pool_waiter w = waiter(0, 1);
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_route_login_failed(r->backends[0], NULL, NULL, "08006", "connection refused", &act);
    assert_int_equal(sl_route_acquire(r, &w, cfg, &a, &act), SL_ACQ_QUEUED);
    assert_int_equal(act.nlaunch, 1);
    assert_ptr_equal(act.launch[0].backend, r->backends[1]);
    sl_route_unqueue(r, &w);
    sl_pool_conn *c = launched(&act.launch[0]);
    sl_route_forget(c, NULL, NULL);
    sl_pool_actions_free(&act);
    sl_route_put(r);
    free(c);
}

static void test_round_robin_hosts_start_with_the_first_and_alternate(void **state)
{
    (void)state;
    sl_route *r = route("rrhosts", "u6b");
    assert_int_equal(r->nbackends, 2);
    sl_pool_waiter w[3] = {waiter(0, 1), waiter(0, 2), waiter(0, 3)};
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    for (int i = 0; i < 3; i++) assert_int_equal(sl_route_acquire(r, &w[i], cfg, &a, &act), SL_ACQ_QUEUED);
    assert_int_equal(act.nlaunch, 3);
    assert_ptr_equal(act.launch[0].backend, r->backends[0]); /* the first host is not skipped */
    assert_ptr_equal(act.launch[1].backend, r->backends[1]);
    assert_ptr_equal(act.launch[2].backend, r->backends[0]);
    sl_pool_conn *c[3];
    for (int i = 0; i < 3; i++) {
        sl_route_unqueue(r, &w[i]);
        c[i] = launched(&act.launch[i]);
    }
    for (int i = 0; i < 3; i++) {
        sl_route_forget(c[i], NULL, NULL);
        free(c[i]);
    }
    sl_pool_actions_free(&act);
    sl_route_put(r);
}

static void test_reserve_opens_after_reserve_pool_timeout(void **state)
{
    (void)state;
    sl_route *r = route("reserve", "u7"); /* pool_size=1 reserve_pool_size=1, timeout 1 s */
    sl_pool_waiter w1 = waiter(0, 1), w2 = waiter(0, 2);
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_route_acquire(r, &w1, cfg, &a, &act);
    sl_route_acquire(r, &w2, cfg, &a, &act);
    assert_int_equal(act.nlaunch, 1);
    sl_pools_tick(cfg, sl_now_us(), &act); /* not waited long enough */
    assert_int_equal(act.nlaunch, 1);
    sl_pools_tick(cfg, sl_now_us() + 2000000, &act);
    assert_int_equal(act.nlaunch, 2);
    assert_int_equal(r->n_servers, 2);
    sl_route_unqueue(r, &w1);
    sl_route_unqueue(r, &w2);
    for (int i = 0; i < 2; i++) {
        sl_pool_conn *c = launched(&act.launch[i]);
        sl_route_forget(c, NULL, NULL);
        free(c);
    }
    sl_pool_actions_free(&act);
    sl_route_put(r);
}

static void test_min_pool_size_opens_servers_on_the_tick(void **state)
{
    (void)state;
    sl_route *r = route("minpool", "u8");
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_pools_tick(cfg, sl_now_us(), &act);
    int mine = 0;
    for (int i = 0; i < act.nlaunch; i++) mine += act.launch[i].backend->route == r;
    assert_int_equal(mine, 2);
    for (int i = 0; i < act.nlaunch; i++) {
        sl_pool_conn *c = launched(&act.launch[i]);
        sl_route_forget(c, NULL, NULL);
        free(c);
    }
    sl_pool_actions_free(&act);
    sl_route_put(r);
}

static void test_held_routes_give_no_server_and_open_none(void **state)
{
    (void)state;
    sl_route *r = route("small", "u9");
    sl_pool_waiter w = waiter(0, 1);
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_pools_set_hold(true);
    assert_int_equal(sl_route_acquire(r, &w, cfg, &a, &act), SL_ACQ_QUEUED);
    assert_int_equal(act.nlaunch, 0);
    sl_pools_set_hold(false);
    sl_pools_resume(&act);
    assert_int_equal(act.nlaunch, 1);
    sl_route_unqueue(r, &w);
    sl_pool_conn *c = launched(&act.launch[0]);
    sl_route_forget(c, NULL, NULL);
    free(c);
    sl_pool_actions_free(&act);
    sl_route_put(r);
}

static void test_unused_routes_are_freed_and_snapshots_see_the_rest(void **state)
{
    (void)state;
    int before = sl_pools_count();
    sl_route *r = route("small", "short-lived");
    assert_int_equal(sl_pools_count(), before + 1);
    sl_pools_snap snap;
    assert_true(sl_pools_snapshot(&snap, 0));
    bool seen = false;
    for (int i = 0; i < snap.n; i++) seen |= !strcmp(snap.v[i].user, "short-lived");
    assert_true(seen);
    sl_pools_snapshot_free(&snap);
    sl_route_put(r);
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_pools_tick(cfg, sl_now_us() + 1, &act); /* autodb_idle_timeout = 0 */
    sl_pool_actions_free(&act);
    assert_true(sl_pools_count() < before + 1);
}

/* A latency goes to the first bucket whose bound is at or above it (a walk of the bounds), for
 * every bound and its neighbours, every power of two and its neighbours, and negative values. */
static int walk_bucket(int64_t us)
{
    if (us < 0) us = 0;
    int i = 0;
    while (i < SL_HIST_NBOUNDS && us > sl_hist_bounds_us[i]) i++;
    return i;
}

static void check_bucket(int64_t us)
{
    sl_hist h;
    memset(&h, 0, sizeof(h));
    sl_hist_add(&h, us);
    int want = walk_bucket(us);
    assert_int_equal(h.count[want], 1);
    assert_int_equal(h.touched, 1u << want);
    assert_int_equal(h.sum_us, (uint64_t)(us < 0 ? 0 : us));
}

static void test_latency_histogram_bucket_is_the_first_bound_at_or_above(void **state)
{
    (void)state;
    for (int64_t us = -3; us <= 70000; us++) check_bucket(us);
    for (int i = 0; i < SL_HIST_NBOUNDS; i++)
        for (int64_t d = -2; d <= 2; d++) check_bucket(sl_hist_bounds_us[i] + d);
    for (int b = 0; b < 63; b++)
        for (int64_t d = -1; d <= 1; d++) check_bucket(((int64_t)1 << b) + d);
    check_bucket(INT64_MAX);
}

int main(void)
{
    sl_pools_init(NWORKERS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_client_waits_and_one_server_opens_on_its_worker),
        cmocka_unit_test(test_idle_server_of_another_worker_is_stolen),
        cmocka_unit_test(test_pool_size_bounds_the_servers_opened_for_waiters),
        cmocka_unit_test(test_max_db_connections_is_shared_by_the_users_of_a_database),
        cmocka_unit_test(test_failed_login_wakes_the_waiting_clients_then_new_ones_fail_fast),
        cmocka_unit_test(test_a_server_of_a_moved_database_retires),
        cmocka_unit_test(test_a_failing_first_host_sends_new_servers_to_the_next),
        cmocka_unit_test(test_round_robin_hosts_start_with_the_first_and_alternate),
        cmocka_unit_test(test_reserve_opens_after_reserve_pool_timeout),
        cmocka_unit_test(test_min_pool_size_opens_servers_on_the_tick),
        cmocka_unit_test(test_held_routes_give_no_server_and_open_none),
        cmocka_unit_test(test_unused_routes_are_freed_and_snapshots_see_the_rest),
        cmocka_unit_test(test_latency_histogram_bucket_is_the_first_bound_at_or_above),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
