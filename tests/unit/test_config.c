/* test_config.c - unit tests of the config layer: loader, settings table, connection strings, auth_file. */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "util/log.h"

#define DATA "data/config/"
#define SEC 1000000LL

/* ---- helpers ---- */

static sl_config *load_ok(const char *path)
{
    char err[1024] = "";
    sl_config *c = sl_config_load(path, err, sizeof(err));
    if (!c) fail_msg("loading %s failed: %s", path, err);
    return c;
}

static char g_logpath[64];

/* Send log output to a fresh temp file (quiet on stderr) so tests can count warning lines. */
static void capture_log(void)
{
    strcpy(g_logpath, "/tmp/sl_test_config_XXXXXX");
    int fd = mkstemp(g_logpath);
    assert_true(fd >= 0);
    close(fd);
    sl_log_setup(g_logpath, 0, NULL, NULL, 0, 1);
}

/* Stop capturing; return how many log lines contain needle. */
static int captured_lines_with(const char *needle)
{
    FILE *f = fopen(g_logpath, "r");
    assert_non_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static void end_capture(void)
{
    sl_log_setup(NULL, 0, NULL, NULL, 0, 0);
    unlink(g_logpath);
}

/* ---- the product guide ---- */

static void test_guide_config(void **state)
{
    (void)state;
    sl_config *c = load_ok(DATA "guide.ini");
    assert_int_equal(c->pool_mode, SL_POOL_TRANSACTION);
    assert_int_equal(c->max_client_conn, 200);
    assert_int_equal(c->default_pool_size, 25);
    assert_int_equal(c->min_pool_size, 5);
    assert_int_equal(c->reserve_pool_size, 5);
    assert_int_equal(c->max_db_connections, 50);
    assert_int_equal(c->server_lifetime, 3600 * SEC);
    assert_int_equal(c->server_idle_timeout, 600 * SEC);
    assert_int_equal(c->query_wait_timeout, 120 * SEC);
    assert_int_equal(c->client_idle_timeout, 0);
    assert_int_equal(c->tcp_keepalive, 1);
    assert_string_equal(c->server_reset_query, "DISCARD ALL");
    assert_string_equal(c->ignore_startup_parameters, "extra_float_digits,search_path");
    assert_string_equal(c->listen_addr, "0.0.0.0");
    assert_int_equal(c->auth_type, SL_AUTH_SCRAM);
    assert_int_equal(c->n_dbs, 2);
    const sl_db_def *d = sl_config_find_db(c, "appdb");
    assert_non_null(d);
    assert_string_equal(d->host, "10.0.0.5");
    assert_int_equal(d->port, 5433);
    assert_string_equal(d->dbname, "app_production");
    assert_int_equal(d->pool_size, -1);
    assert_int_equal(d->line, 3);
    d = sl_config_find_db(c, "reports");
    assert_non_null(d);
    assert_int_equal(d->pool_size, 10);
    assert_int_equal(d->pool_mode, SL_POOL_SESSION);
    assert_null(sl_config_find_db(c, "nosuchdb")); /* no "*" entry */
    assert_int_equal(c->n_userlist, 6);
    assert_true(c->workers >= 1);
    assert_string_equal(c->path, DATA "guide.ini");
    sl_config_unref(c);
}

static void test_defaults(void **state)
{
    (void)state;
    sl_config *c = load_ok(DATA "defaults.ini");
    assert_string_equal(c->listen_addr, "127.0.0.1");
    assert_int_equal(c->listen_port, 6432);
    assert_string_equal(c->unix_socket_dir, "/tmp");
    assert_int_equal(c->unix_socket_mode, 0777);
    assert_int_equal(c->pool_mode, SL_POOL_SESSION);
    assert_int_equal(c->max_client_conn, 100);
    assert_int_equal(c->default_pool_size, 20);
    assert_int_equal(c->reserve_pool_timeout, 5 * SEC);
    assert_string_equal(c->server_check_query, "select 1");
    assert_int_equal(c->server_check_delay, 30 * SEC);
    assert_int_equal(c->server_connect_timeout, 15 * SEC);
    assert_int_equal(c->server_login_retry, 15 * SEC);
    assert_int_equal(c->client_login_timeout, 60 * SEC);
    assert_int_equal(c->cancel_wait_timeout, 10 * SEC);
    assert_int_equal(c->suspend_timeout, 10 * SEC);
    assert_int_equal(c->pkt_buf, 4096);
    assert_int_equal(c->max_packet_size, 2147483647);
    assert_int_equal(c->sbuf_loopcnt, 5);
    assert_int_equal(c->tcp_backlog, 128);
    assert_int_equal(c->log_connections, 1);
    assert_int_equal(c->log_stats, 1);
    assert_int_equal(c->stats_period, 60 * SEC);
    assert_int_equal(c->max_prepared_statements, 200);
    assert_string_equal(c->http_listen_addr, "127.0.0.1");
    assert_int_equal(c->http_port, 8081);
    assert_string_equal(c->http_token, "");
    assert_string_equal(c->syslog_ident, "pgsluice");
    assert_string_equal(c->syslog_facility, "daemon");
    assert_int_equal(c->so_reuseport, 0);
    assert_string_equal(c->auth_file, "");
    /* auto: one loop per two CPUs this process may run on, at least one */
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    int want = CPU_COUNT(&set) / 2;
    assert_int_equal(c->workers, want < 1 ? 1 : want);
    sl_config_unref(c);
}

/* Time fractions and units, booleans, case-insensitive names, [pgsluice], octal mode, alias. */
static void test_value_types(void **state)
{
    (void)state;
    sl_config *c = load_ok(DATA "types.ini");
    assert_int_equal(c->auth_type, SL_AUTH_TRUST);
    assert_int_equal(c->server_lifetime, 500000);
    assert_int_equal(c->server_idle_timeout, 250000);
    assert_int_equal(c->query_timeout, 120 * SEC);
    assert_int_equal(c->client_login_timeout, 3600 * SEC);
    assert_int_equal(c->cancel_wait_timeout, 1250000);
    assert_int_equal(c->log_connections, 0);
    assert_int_equal(c->log_disconnections, 0);
    assert_int_equal(c->log_pooler_errors, 0);
    assert_int_equal(c->server_round_robin, 1);
    assert_int_equal(c->server_fast_close, 1);
    assert_int_equal(c->application_name_add_host, 1);
    assert_int_equal(c->unix_socket_mode, 0700);
    assert_int_equal(c->workers, 3);
    assert_int_equal(c->tcp_backlog, 256);
    assert_string_equal(c->auth_query, "SELECT usename, passwd FROM pg_shadow WHERE usename=$1");
    assert_true(sl_list_contains(c->admin_users, "ROOT"));
    assert_true(sl_list_contains(c->admin_users, "ops"));
    sl_config_unref(c);
}

static void test_include(void **state)
{
    (void)state;
    sl_config *c = load_ok(DATA "include_main.ini");
    assert_int_equal(c->default_pool_size, 7);
    assert_int_equal(c->min_pool_size, 2);
    assert_int_equal(c->max_client_conn, 300); /* section switched back to [pgbouncer] inside the include */
    assert_non_null(sl_config_find_db(c, "fromincl"));
    assert_non_null(sl_config_find_db(c, "main"));
    assert_int_equal(c->n_dbs, 2);
    sl_config_unref(c);
}

static void test_env(void **state)
{
    (void)state;
    setenv("SL_TEST_PORT", "7654", 1);
    setenv("SL_TEST_TOKEN", "abc", 1);
    setenv("SL_TEST_HOST", "envhost", 1);
    sl_config *c = load_ok(DATA "env.ini");
    assert_int_equal(c->listen_port, 7654);
    assert_string_equal(c->http_token, "tok-abc-end");
    assert_string_equal(c->auth_query, "SELECT $1");
    assert_string_equal(sl_config_find_db(c, "envdb")->host, "envhost");
    sl_config_unref(c);
}

/* ---- errors: file:line: reason ---- */

typedef struct err_case {
    const char *file;
    const char *expect; /* expected prefix of the error */
} err_case;

static const err_case err_cases[] = {
    {DATA "unknown_key.ini", DATA "unknown_key.ini:5: unknown setting \"not_a_real_setting\""},
    {DATA "unknown_in_include.ini", DATA "inc/bad_key.ini:2: unknown setting \"bogus_key\""},
    {DATA "bad_value.ini", DATA "bad_value.ini:3: invalid value for pool_mode: \"sometimes\""},
    {DATA "bad_int.ini", DATA "bad_int.ini:2: invalid value for max_client_conn: \"12abc\""},
    {DATA "bad_port.ini", DATA "bad_port.ini:2: invalid value for listen_port: \"70000\""},
    {DATA "bad_time.ini", DATA "bad_time.ini:2: invalid value for query_timeout: \"-1\""},
    {DATA "bad_bool.ini", DATA "bad_bool.ini:2: invalid value for tcp_keepalive: \"maybe\""},
    {DATA "bad_connstr.ini", DATA "bad_connstr.ini:3: database \"bad\": syntax error in connection string"},
    {DATA "bad_db_key.ini", DATA "bad_db_key.ini:2: database \"db1\": unknown database parameter \"colour\""},
    {DATA "bad_db_number.ini", DATA "bad_db_number.ini:4: database \"db2\": invalid number for pool_size: \"ten\""},
    {DATA "bad_db_quote.ini", DATA "bad_db_quote.ini:2: database \"db1\": unterminated quoted value"},
    {DATA "bad_user_key.ini", DATA "bad_user_key.ini:2: user \"alice\": unknown user parameter \"favourite_colour\""},
    {DATA "bad_section.ini", DATA "bad_section.ini:3: unknown section [nonsense]"},
    {DATA "bad_syntax.ini", DATA "bad_syntax.ini:3: syntax error"},
    {DATA "no_section.ini", DATA "no_section.ini:1: setting outside of any [section]"},
    {DATA "env_missing.ini", DATA "env_missing.ini:5: environment variable SL_TEST_SURELY_UNSET_VAR is not set"},
    {DATA "loop_a.ini", DATA "loop_b.ini:2: include loop"},
    {DATA "include_missing.ini", DATA "include_missing.ini:3: cannot open include file"},
    {DATA "missing_authfile.ini", DATA "no-such-userlist.txt: cannot open auth_file"},
    {DATA "bad_authfile.ini", DATA "userlist_bad.txt:3: expected a double-quoted password"},
    {DATA "no-such-file.ini", "cannot open config file \"" DATA "no-such-file.ini\""},
    /* fail closed: a login method that cannot be carried out refuses the file */
    {DATA "hba.ini", DATA "hba.ini: /etc/pgbouncer/hba.conf: cannot open auth_hba_file"},
    {DATA "peers_bad.ini", DATA "peers_bad.ini:4: [peers] peer id \"0\" is not a number from 1 to 16383"},
    {DATA "hba_nofile.ini", DATA "hba_nofile.ini: auth_type hba needs auth_hba_file"},
    {DATA "hba_badmap.ini", DATA "hba_badmap.ini: data/hba/peer_map.conf:1: map \"nosuchmap\" is used but auth_ident_file is not set"},
    {DATA "ldap_noopts.ini", DATA "ldap_noopts.ini: auth_type ldap needs auth_ldap_options"},
    {DATA "ldap_badopts.ini", DATA "ldap_badopts.ini: auth_ldap_options:1: "},
    /* primary/replica routing */
    {DATA "routing_nouser.ini", DATA "routing_nouser.ini:4: database \"app\" has roles (role_map, target_session_attrs or read_write_split) but nobody to check its hosts as"},
    {DATA "routing_hash.ini", DATA "routing_hash.ini:6: database \"app\": the health checks log in as \"alice\", whose auth_file entry is a hash"},
    {DATA "routing_badmap.ini", DATA "routing_badmap.ini:4: database \"app\": role_map names 1 role for 2 hosts"},
    {DATA "routing_badrole.ini", DATA "routing_badrole.ini:4: database \"app\": invalid role in role_map: \"leader\""},
    {DATA "routing_badtsa.ini", DATA "routing_badtsa.ini:4: database \"app\": invalid target_session_attrs: \"writable\""},
};

static void test_errors(void **state)
{
    (void)state;
    capture_log();
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        char err[1024] = "";
        sl_config *c = sl_config_load(err_cases[i].file, err, sizeof(err));
        if (c) fail_msg("%s loaded but should fail", err_cases[i].file);
        if (strncmp(err, err_cases[i].expect, strlen(err_cases[i].expect)) != 0)
            fail_msg("%s:\n  got      \"%s\"\n  expected \"%s...\"", err_cases[i].file, err, err_cases[i].expect);
    }
    end_capture();
}

/* PgBouncer settings we do not implement load with exactly one warning each. */
static void test_pgbouncer_unimplemented(void **state)
{
    (void)state;
    capture_log();
    sl_config *c = load_ok(DATA "pgb_unimplemented.ini");
    assert_int_equal(captured_lines_with("setting resolv_conf is not implemented"), 1);
    assert_int_equal(captured_lines_with("pgb_unimplemented.ini:4: setting resolv_conf"), 1);
    assert_int_equal(captured_lines_with("setting dns_nxdomain_ttl is not implemented"), 1);
    /* implemented since: no warning */
    assert_int_equal(captured_lines_with("max_db_client_connections"), 0);
    assert_int_equal(captured_lines_with("load_balance_hosts"), 0);
    assert_int_equal(captured_lines_with("query_wait_notify"), 0);
    assert_int_equal(captured_lines_with("track_extra_parameters"), 0);
    assert_int_equal(captured_lines_with("server_lifetime"), 0);
    assert_int_equal(captured_lines_with("max_user_client_connections"), 0);
    assert_int_equal(c->max_db_client_connections, 100);
    assert_int_equal(sl_config_find_db(c, "lb2")->load_balance_hosts, SL_LB_DISABLE);
    assert_int_equal(sl_config_find_db(c, "lb2")->server_lifetime, 10000000);
    assert_int_equal(sl_config_find_user(c, "u1")->max_user_client_connections, 3);
    assert_int_equal(captured_lines_with("[peers]"), 0); /* implemented: two peers, no warning */
    assert_int_equal((int)c->n_peers, 2);
    assert_non_null(sl_config_find_peer(c, 2));
    assert_string_equal(sl_config_find_peer(c, 2)->host, "/tmp/peer2");
    assert_int_equal(sl_config_find_peer(c, 2)->port, 6432);
    assert_string_equal(sl_config_find_db(c, "lb")->host, "a,b");
    sl_config_unref(c);
    end_capture();
}

static void test_auth_warnings(void **state)
{
    (void)state;
    capture_log();
    sl_config *c = load_ok(DATA "missing_authfile_trust.ini"); /* missing auth_file is only a warning for trust */
    assert_int_equal(c->n_userlist, 0);
    assert_int_equal(captured_lines_with("cannot read auth_file"), 1);
    sl_config_unref(c);
    end_capture();
}

/* ---- [databases] and [users] ---- */

static void test_quoted_and_fallback(void **state)
{
    (void)state;
    sl_config *c = load_ok(DATA "quoted.ini");
    const sl_db_def *d = sl_config_find_db(c, "q1");
    assert_string_equal(d->password, "it's a \\ secret");
    assert_string_equal(d->connect_query, "SELECT 1; SELECT 'two'");
    d = sl_config_find_db(c, "q2");
    assert_string_equal(d->dbname, "with space # not a comment");
    assert_string_equal(d->user, "bob");
    d = sl_config_find_db(c, "q3");
    assert_string_equal(d->application_name, "");
    assert_int_equal(d->port, 6000);
    assert_int_equal(d->reserve_pool_size, 3);
    assert_int_equal(d->min_pool_size, 1);
    assert_int_equal(d->max_db_connections, 9);
    assert_int_equal(d->pool_mode, -1);
    d = sl_config_find_db(c, "q4");
    assert_non_null(d);
    assert_null(d->host);
    assert_null(d->dbname);
    assert_int_equal(d->port, 5432);
    d = sl_config_find_db(c, "unknown_db");
    assert_non_null(d);
    assert_string_equal(d->name, "*");
    assert_string_equal(d->host, "fallback");
    assert_int_equal(d->port, 5999);
    sl_config_unref(c);
}

/* role_map, target_session_attrs and the routing settings, resolved per database. */
static void test_routing(void **state)
{
    (void)state;
    sl_config *c = load_ok(DATA "routing.ini");
    assert_int_equal(c->health_check_period, 500000);
    assert_int_equal(c->health_check_timeout, 2 * SEC);
    assert_int_equal(c->max_replica_lag, 5 * SEC);
    assert_int_equal(c->replica_fallback, 0);
    sl_db_routing rt;
    const sl_db_def *d = sl_config_find_db(c, "rw");
    sl_db_routing_of(c, d, &rt);
    assert_true(rt.routed);
    assert_int_equal(rt.target, SL_TSA_READ_WRITE);
    assert_int_equal(d->nhosts, 3);
    assert_int_equal(d->hosts[2].port, 5434);
    assert_int_equal(d->hosts[0].role, SL_HOSTROLE_AUTO);
    assert_false(rt.read_write_split);
    assert_false(rt.replica_fallback);
    assert_int_equal(rt.max_lag_us, 5 * SEC);

    d = sl_config_find_db(c, "mapped");
    sl_db_routing_of(c, d, &rt);
    assert_true(rt.routed);
    assert_int_equal(rt.target, SL_TSA_READ_WRITE); /* roles and no target: the primary */
    assert_int_equal(d->hosts[0].role, SL_HOSTROLE_PRIMARY);
    assert_int_equal(d->hosts[1].role, SL_HOSTROLE_REPLICA);
    assert_int_equal(d->pool_size, 7);
    const char *user, *pw, *pwfile, *db;
    assert_true(sl_db_health_login(c, d, &user, &pw, &pwfile, &db));
    assert_null(pwfile);
    assert_string_equal(user, "checker");
    assert_string_equal(pw, "checkpw");
    assert_string_equal(db, "app");

    d = sl_config_find_db(c, "ro");
    sl_db_routing_of(c, d, &rt);
    assert_int_equal(rt.target, SL_TSA_READ_ONLY);
    assert_true(rt.replica_fallback);
    assert_int_equal(rt.max_lag_us, SEC / 2);
    assert_int_equal(rt.max_lag_bytes, 1000);
    assert_int_equal(rt.replica_lb, SL_REPLICA_LB_ROUND_ROBIN);
    assert_int_equal(d->pool_size, 3);

    d = sl_config_find_db(c, "split");
    sl_db_routing_of(c, d, &rt);
    assert_true(rt.routed);
    assert_true(rt.read_write_split);
    assert_int_equal(rt.target, SL_TSA_READ_WRITE);

    /* several hosts without roles, or one host: PgBouncer's behaviour */
    sl_db_routing_of(c, sl_config_find_db(c, "plain"), &rt);
    assert_false(rt.routed);
    assert_int_equal(rt.target, SL_TSA_ANY);
    sl_db_routing_of(c, sl_config_find_db(c, "single"), &rt);
    assert_false(rt.routed);

    d = sl_config_find_db(c, "anyhost");
    sl_db_routing_of(c, d, &rt);
    assert_true(rt.routed); /* a role_map makes the hosts checked, any takes whichever is up */
    assert_int_equal(rt.target, SL_TSA_ANY);
    assert_string_equal(sl_tsa_name(SL_TSA_PREFER_STANDBY), "prefer-standby");
    assert_string_equal(sl_host_role_name(SL_HOSTROLE_REPLICA), "replica");

    /* a copy keeps the roles */
    sl_config *copy = sl_config_clone(c);
    d = sl_config_find_db(copy, "mapped");
    assert_int_equal(d->hosts[1].role, SL_HOSTROLE_REPLICA);
    assert_string_equal(d->role_map, "primary,replica");
    sl_config_unref(copy);
    sl_config_unref(c);
}

static void test_users(void **state)
{
    (void)state;
    sl_config *c = load_ok(DATA "users.ini");
    const sl_user_def *u = sl_config_find_user(c, "alice");
    assert_non_null(u);
    assert_int_equal(u->pool_mode, SL_POOL_TRANSACTION);
    assert_int_equal(u->max_user_connections, 10);
    assert_int_equal(u->pool_size, -1);
    u = sl_config_find_user(c, "bob");
    assert_int_equal(u->pool_size, 5);
    assert_int_equal(u->reserve_pool_size, 2);
    assert_int_equal(u->pool_mode, -1);
    u = sl_config_find_user(c, "carol");
    assert_non_null(u);
    assert_int_equal(u->max_user_connections, -1);
    assert_null(sl_config_find_user(c, "Alice")); /* user names are case-sensitive */
    sl_config_unref(c);
}

/* ---- auth_file ---- */

static void test_userlist(void **state)
{
    (void)state;
    sl_userlist_entry *e = NULL;
    size_t n = 0;
    char err[512];
    assert_true(sl_userlist_load(DATA "userlist.txt", &e, &n, err, sizeof(err)));
    assert_int_equal(n, 6);
    static const char *const names[] = {"alice", "bob", "carol", "dave \"the quote\" jones", "empty", "eve"};
    for (size_t i = 0; i < n; i++) assert_string_equal(e[i].name, names[i]);
    assert_string_equal(e[0].password, "alice again: the later line wins");
    assert_string_equal(e[1].password, "md5a1b2c3d4e5f60718293a4b5c6d7e8f90");
    assert_true(strncmp(e[2].password, "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$", 36) == 0);
    assert_string_equal(e[3].password, "pa\"ss");
    assert_string_equal(e[4].password, "");
    assert_string_equal(e[5].password, "tab separated");
    sl_userlist_free(e, n);

    assert_false(sl_userlist_load(DATA "userlist_unquoted.txt", &e, &n, err, sizeof(err)));
    assert_string_equal(err, DATA "userlist_unquoted.txt:2: expected a double-quoted user name");

    sl_config *c = load_ok(DATA "guide.ini");
    const sl_userlist_entry *u = sl_config_find_userlist(c, "bob");
    assert_non_null(u);
    assert_string_equal(u->password, "md5a1b2c3d4e5f60718293a4b5c6d7e8f90");
    assert_null(sl_config_find_userlist(c, "mallory"));
    sl_config_unref(c);
}

/* ---- lists, table, SET/SHOW ---- */

static void test_list_contains(void **state)
{
    (void)state;
    static const struct { const char *list, *item; bool want; } cases[] = {
        {"admin", "admin", true},          {"a,b,c", "b", true},       {"a, b ,c", "c", true},
        {"a b\tc", "c", true},             {"a,,b", "b", true},        {"Admin", "ADMIN", true},
        {"a,b", "ab", false},              {"abc", "ab", false},       {"", "a", false},
        {"*", "anyone", true},             {"x, *", "y", true},        {"x*", "y", false},
        {NULL, "a", false},                {"a", NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (sl_list_contains(cases[i].list, cases[i].item) != cases[i].want)
            fail_msg("sl_list_contains(\"%s\", \"%s\") != %d", cases[i].list ? cases[i].list : "(null)",
                     cases[i].item ? cases[i].item : "(null)", cases[i].want);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Every field of sl_config's settings part appears exactly once in the table. */
static void test_table_complete(void **state)
{
    (void)state;
    assert_int_equal(sl_settings_count, 114); /* = number of fields before dbs in sl_config */
    size_t offs[128];
    for (size_t i = 0; i < sl_settings_count; i++) {
        offs[i] = sl_settings[i].offset;
        assert_true(offs[i] < offsetof(sl_config, dbs));
        assert_non_null(sl_settings[i].description);
        assert_ptr_equal(sl_setting_find(sl_settings[i].name), &sl_settings[i]);
    }
    qsort(offs, sl_settings_count, sizeof(offs[0]), cmp_size);
    for (size_t i = 1; i < sl_settings_count; i++) assert_true(offs[i] > offs[i - 1]);
    assert_ptr_equal(sl_setting_find("LISTEN_PORT"), sl_setting_find("listen_port"));
    assert_ptr_equal(sl_setting_find("listen_backlog"), sl_setting_find("tcp_backlog"));
    assert_null(sl_setting_find("client_tls_no_such_thing"));
    const sl_setting *tls = sl_setting_find("server_tls_sslmode");
    assert_non_null(tls);
    assert_int_equal(tls->type, SL_T_ENUM);
    assert_string_equal(tls->default_value, "prefer"); /* PgBouncer 1.25's default */
    assert_int_equal(tls->apply, SL_APPLY_NEW);
    assert_string_equal(sl_tls_mode_name(SL_TLS_VERIFY_FULL), "verify-full");
    assert_string_equal(sl_pool_mode_name(SL_POOL_STATEMENT), "statement");
    assert_string_equal(sl_auth_type_name(SL_AUTH_SCRAM), "scram-sha-256");
    assert_string_equal(sl_auth_type_name(SL_AUTH_PAM), "pam");
}

/* Formatting any value and setting it back gives the same text, for every setting. */
static void test_set_format_roundtrip(void **state)
{
    (void)state;
    sl_config *c = sl_config_new_default();
    assert_non_null(c);
    char a[512], b[512], err[256];
    for (size_t i = 0; i < sl_settings_count; i++) {
        const sl_setting *s = &sl_settings[i];
        sl_setting_format(c, s, a, sizeof(a));
        assert_true(sl_setting_set(c, s, a, err, sizeof(err)));
        assert_string_equal(sl_setting_format(c, s, b, sizeof(b)), a);
    }
    static const struct { const char *name, *in, *out; } cases[] = {
        {"query_timeout", "0.5", "0.5"},        {"query_timeout", "1500ms", "1.5"},
        {"server_lifetime", "0.000001", "0.000001"}, {"stats_period", "2min", "120"},
        {"unix_socket_mode", "0755", "0755"},   {"tcp_keepalive", "off", "0"},
        {"log_stats", "Yes", "1"},              {"pool_mode", "STATEMENT", "statement"},
        {"auth_type", "scram-sha-256", "scram-sha-256"}, {"max_client_conn", " 42 ", "42"},
        {"admin_users", "a, b", "a, b"},        {"listen_addr", "", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const sl_setting *s = sl_setting_find(cases[i].name);
        assert_non_null(s);
        if (!sl_setting_set(c, s, cases[i].in, err, sizeof(err))) fail_msg("%s = %s: %s", s->name, cases[i].in, err);
        assert_string_equal(sl_setting_format(c, s, a, sizeof(a)), cases[i].out);
    }
    static const struct { const char *name, *in; } bad[] = {
        {"query_timeout", "soon"}, {"query_timeout", "5 parsecs"}, {"listen_port", "0"}, {"listen_port", "65536"},
        {"pool_mode", "sometimes"}, {"tcp_keepalive", "2"}, {"max_client_conn", ""}, {"unix_socket_mode", "0999"},
        {"workers", "-1"}, {"pkt_buf", "0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const sl_setting *s = sl_setting_find(bad[i].name);
        if (sl_setting_set(c, s, bad[i].in, err, sizeof(err))) fail_msg("%s = \"%s\" accepted", s->name, bad[i].in);
        char want[128];
        snprintf(want, sizeof(want), "invalid value for %s: \"%s\"", s->name, bad[i].in);
        assert_true(strncmp(err, want, strlen(want)) == 0);
    }
    sl_config_unref(c);
}

/* Clone is deep, refcounting frees at zero, acquire/set_current hand out references. */
static void test_clone_and_current(void **state)
{
    (void)state;
    sl_config *c = load_ok(DATA "quoted.ini");
    sl_config *k = sl_config_clone(c);
    assert_non_null(k);
    char err[128];
    assert_true(sl_setting_set(k, sl_setting_find("server_reset_query"), "SELECT 2", err, sizeof(err)));
    assert_string_equal(c->server_reset_query, "DISCARD ALL");
    assert_int_equal(k->n_dbs, c->n_dbs);
    assert_ptr_not_equal(k->dbs[0].name, c->dbs[0].name);
    assert_string_equal(sl_config_find_db(k, "q1")->password, "it's a \\ secret");
    assert_string_equal(sl_config_find_db(k, "nothing")->name, "*");
    assert_int_equal(k->refcount, 1);

    assert_null(sl_config_acquire());
    sl_config_set_current(c); /* takes c's reference */
    sl_config *a = sl_config_acquire();
    assert_ptr_equal(a, c);
    assert_int_equal(c->refcount, 2);
    sl_config_set_current(k); /* c now only held by a */
    assert_int_equal(c->refcount, 1);
    sl_config_unref(a);
    a = sl_config_acquire();
    assert_ptr_equal(a, k);
    sl_config_unref(a);
    sl_config_set_current(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guide_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_pgbouncer_unimplemented),
        cmocka_unit_test(test_auth_warnings),
        cmocka_unit_test(test_quoted_and_fallback),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_userlist),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_list_contains),
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_set_format_roundtrip),
        cmocka_unit_test(test_clone_and_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
