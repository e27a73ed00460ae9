/* test_tools.c - unit tests of the operator tools' pure parts: the pool sizing rules of `pgsluice tune`,
 * the ini rewrite that keeps comments, memory/count parsing and the machine probe on fake /proc and /sys trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/ini_edit.h"
#include "tools/machine.h"
#include "tools/sizing.h"

#define GiB (1024ULL * 1024 * 1024)

static sl_sizing_input machine(int cpus, uint64_t mem)
{
    sl_sizing_input in;
    memset(&in, 0, sizeof(in));
    in.cpus = cpus;
    in.memory_bytes = mem;
    in.instances = 1;
    in.pkt_buf = 4096;
    return in;
}

static sl_sizing_server *add_server(sl_sizing_input *in, const char *name, int max_conn, int su_reserved, int n_dbs)
{
    sl_sizing_server *s = &in->servers[in->n_servers++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->limits_known = max_conn > 0;
    s->max_connections = max_conn;
    s->superuser_reserved = su_reserved;
    s->n_dbs = n_dbs;
    return s;
}

/* ---- sizing ---- */

static void test_sizing_four_cores_eight_gib_follows_the_guide(void **state)
{
    (void)state;
    sl_sizing_input in = machine(4, 8 * GiB);
    add_server(&in, "db:5432", 200, 3, 2);
    sl_sizing_result r;
    char err[256];
    assert_true(sl_sizing_compute(&in, &r, err, sizeof(err)));
    assert_int_equal(r.default_pool_size.value, 8);   /* 2 x 4 cores */
    assert_int_equal(r.max_db_connections.value, 16); /* 2 x pool */
    assert_int_equal(r.max_client_conn.value, 80);    /* 10 x pool */
    assert_non_null(strstr(r.default_pool_size.reason, "2 x 4 CPU cores"));
    assert_false(r.change_min_pool_size);
}

static void test_sizing_caps_max_db_connections_to_the_server_budget(void **state)
{
    (void)state;
    sl_sizing_input in = machine(4, 8 * GiB);
    add_server(&in, "db:5432", 50, 3, 3); /* 47 for poolers, 3 databases: 15 each */
    sl_sizing_result r;
    char err[256];
    assert_true(sl_sizing_compute(&in, &r, err, sizeof(err)));
    assert_int_equal(r.max_db_connections.value, 15);
    assert_true(3 * r.max_db_connections.value <= 47);
    assert_int_equal(r.default_pool_size.value, 8);
    assert_non_null(strstr(r.max_db_connections.reason, "capped"));
    assert_non_null(strstr(r.max_db_connections.reason, "db:5432"));
}

static void test_sizing_counts_every_instance(void **state)
{
    (void)state;
    sl_sizing_input in = machine(16, 64 * GiB);
    in.instances = 3;
    add_server(&in, "db:5432", 100, 3, 2); /* 97 / (2 dbs x 3 instances) = 16 */
    sl_sizing_result r;
    char err[256];
    assert_true(sl_sizing_compute(&in, &r, err, sizeof(err)));
    assert_int_equal(r.max_db_connections.value, 16);
    assert_true(in.instances * 2 * r.max_db_connections.value <= 97);
    /* 2 x 16 cores = 32 would exceed max_db_connections: lowered to it */
    assert_int_equal(r.default_pool_size.value, 16);
    assert_int_equal(r.max_client_conn.value, 160);
}

static void test_sizing_tightest_server_wins_and_fixed_entries_count(void **state)
{
    (void)state;
    sl_sizing_input in = machine(8, 32 * GiB);
    add_server(&in, "primary:5432", 500, 3, 1);
    sl_sizing_server *rep = add_server(&in, "replica:5432", 40, 3, 1);
    rep->fixed_db_conns = 10; /* another entry with max_db_connections = 10 */
    rep->superuser_reserved = 5;
    rep->reserved = 2; /* PostgreSQL 16 reserved_connections */
    sl_sizing_result r;
    char err[256];
    assert_true(sl_sizing_compute(&in, &r, err, sizeof(err)));
    /* replica: 40 - 5 - 2 = 33, minus 10 fixed = 23 for one database */
    assert_int_equal(r.max_db_connections.value, 23);
    assert_non_null(strstr(r.max_db_connections.reason, "replica:5432"));
    assert_non_null(strstr(r.max_db_connections.reason, "reserved_connections 2"));
}

static void test_sizing_refuses_a_server_too_small(void **state)
{
    (void)state;
    sl_sizing_input in = machine(4, 8 * GiB);
    in.instances = 4;
    add_server(&in, "tiny:5432", 10, 3, 3); /* 7 slots for 12 database-instances */
    sl_sizing_result r;
    char err[256] = "";
    assert_false(sl_sizing_compute(&in, &r, err, sizeof(err)));
    assert_non_null(strstr(err, "tiny:5432"));
    assert_non_null(strstr(err, "max_connections"));
}

static void test_sizing_unknown_limits_warn_and_do_not_cap(void **state)
{
    (void)state;
    sl_sizing_input in = machine(2, 4 * GiB);
    add_server(&in, "far:5432", 0, 0, 5);
    sl_sizing_result r;
    char err[256];
    assert_true(sl_sizing_compute(&in, &r, err, sizeof(err)));
    assert_int_equal(r.max_db_connections.value, 8);
    assert_int_equal(r.n_warnings, 1);
    assert_non_null(strstr(r.warnings[0], "far:5432"));
}

static void test_sizing_memory_caps_clients(void **state)
{
    (void)state;
    sl_sizing_input in = machine(64, 8ULL * 1024 * 1024); /* 8 MiB: 2 MiB for clients at ~10 KiB each */
    sl_sizing_result r;
    char err[256];
    assert_true(sl_sizing_compute(&in, &r, err, sizeof(err)));
    assert_int_equal(r.default_pool_size.value, 128);
    uint64_t limit = in.memory_bytes / 4 / sl_sizing_client_cost(4096);
    assert_int_equal(r.max_client_conn.value, (int)limit);
    assert_non_null(strstr(r.max_client_conn.reason, "capped"));
}

static void test_sizing_lowers_min_pool_size_above_the_pool(void **state)
{
    (void)state;
    sl_sizing_input in = machine(1, 8 * GiB);
    in.cur_min_pool_size = 5;
    sl_sizing_result r;
    char err[256];
    assert_true(sl_sizing_compute(&in, &r, err, sizeof(err)));
    assert_int_equal(r.default_pool_size.value, 2);
    assert_true(r.change_min_pool_size);
    assert_int_equal(r.min_pool_size.value, 2);
}

static void test_sizing_rejects_bad_inputs(void **state)
{
    (void)state;
    sl_sizing_input in = machine(0, 8 * GiB);
    sl_sizing_result r;
    char err[256];
    assert_false(sl_sizing_compute(&in, &r, err, sizeof(err)));
    in = machine(4, 0);
    assert_false(sl_sizing_compute(&in, &r, err, sizeof(err)));
}

/* ---- ini rewrite ---- */

static const char *GUIDE =
    ";; the guide's pool sizing block\n"
    "[databases]\n"
    "sav3 = host=127.0.0.1 port=5432 dbname=sav3   ; default_pool_size = 99 here is not a setting\n"
    "\n"
    "[pgbouncer]\n"
    "pool_mode = transaction\n"
    "max_client_conn = 200          # Maximum client connections\n"
    "Default_Pool_Size = 25         # Connections per database/user\n"
    "min_pool_size = 5              # Always-open connections\n"
    "; max_db_connections = 7 (a comment, untouched)\n"
    "max_db_connections = 50        # Total backend connections\n"
    "server_tls_sslmode = prefer\n"
    "\n"
    "[users]\n"
    "app = pool_mode=session\n";

static void test_ini_edit_keeps_comments_and_alignment(void **state)
{
    (void)state;
    sl_ini_change ch[] = {
        {.key = "default_pool_size", .value = "8"},
        {.key = "max_client_conn", .value = "80"},
        {.key = "max_db_connections", .value = "1600"},
    };
    char err[128];
    char *out = sl_ini_edit(GUIDE, ch, 3, err, sizeof(err));
    assert_non_null(out);
    const char *want =
        ";; the guide's pool sizing block\n"
        "[databases]\n"
        "sav3 = host=127.0.0.1 port=5432 dbname=sav3   ; default_pool_size = 99 here is not a setting\n"
        "\n"
        "[pgbouncer]\n"
        "pool_mode = transaction\n"
        "max_client_conn = 80           # Maximum client connections\n"
        "Default_Pool_Size = 8          # Connections per database/user\n"
        "min_pool_size = 5              # Always-open connections\n"
        "; max_db_connections = 7 (a comment, untouched)\n"
        "max_db_connections = 1600      # Total backend connections\n"
        "server_tls_sslmode = prefer\n"
        "\n"
        "[users]\n"
        "app = pool_mode=session\n";
    assert_string_equal(out, want);
    assert_int_equal(ch[0].line, 8);
    assert_string_equal(ch[0].old_line, "Default_Pool_Size = 25         # Connections per database/user");
    assert_string_equal(ch[0].new_line, "Default_Pool_Size = 8          # Connections per database/user");
    assert_int_equal(ch[2].line, 11);
    sl_ini_changes_free(ch, 3);
    free(out);
}

static void test_ini_edit_adds_missing_keys_at_the_end_of_the_section(void **state)
{
    (void)state;
    const char *in = "[pgbouncer]\nlisten_port = 6432\n\n[databases]\nx = host=h\n";
    sl_ini_change ch[] = {{.key = "max_client_conn", .value = "80"}};
    char err[128];
    char *out = sl_ini_edit(in, ch, 1, err, sizeof(err));
    assert_non_null(out);
    assert_string_equal(out, "[pgbouncer]\nlisten_port = 6432\nmax_client_conn = 80   ; added by pgsluice tune\n"
                             "\n[databases]\nx = host=h\n");
    assert_int_equal(ch[0].line, 0);
    assert_null(ch[0].old_line);
    assert_string_equal(ch[0].new_line, "max_client_conn = 80");
    sl_ini_changes_free(ch, 1);
    free(out);
}

static void test_ini_edit_adds_a_section_when_there_is_none_and_keeps_crlf(void **state)
{
    (void)state;
    const char *in = "[databases]\r\nx = host=h";
    sl_ini_change ch[] = {{.key = "default_pool_size", .value = "4"}};
    char err[128];
    char *out = sl_ini_edit(in, ch, 1, err, sizeof(err));
    assert_non_null(out);
    assert_string_equal(out, "[databases]\r\nx = host=h\r\n\r\n[pgbouncer]\r\ndefault_pool_size = 4   ; added by "
                             "pgsluice tune\r\n");
    sl_ini_changes_free(ch, 1);
    free(out);
}

static void test_ini_edit_changes_every_occurrence_and_pgsluice_sections(void **state)
{
    (void)state;
    const char *in = "[pgsluice]\nmax_client_conn=1\n[databases]\n[PgBouncer]\n  max_client_conn\t=\t2\t# tab\n";
    sl_ini_change ch[] = {{.key = "max_client_conn", .value = "300"}};
    char err[128];
    char *out = sl_ini_edit(in, ch, 1, err, sizeof(err));
    assert_non_null(out);
    assert_string_equal(out, "[pgsluice]\nmax_client_conn=300\n[databases]\n[PgBouncer]\n  max_client_conn\t=\t300\t# tab\n");
    assert_int_equal(ch[0].line, 5);
    sl_ini_changes_free(ch, 1);
    free(out);
}

static void test_ini_edit_keeps_a_quoted_hash_in_a_value(void **state)
{
    (void)state;
    const char *in = "[pgbouncer]\nserver_reset_query = 'SELECT 1 # not a comment'   # comment\n";
    sl_ini_change ch[] = {{.key = "server_reset_query", .value = "DISCARD ALL"}};
    char err[128];
    char *out = sl_ini_edit(in, ch, 1, err, sizeof(err));
    assert_non_null(out);
    assert_string_equal(out, "[pgbouncer]\nserver_reset_query = DISCARD ALL                  # comment\n");
    sl_ini_changes_free(ch, 1);
    free(out);
}

static void test_ini_edit_refuses_a_value_with_a_line_break(void **state)
{
    (void)state;
    sl_ini_change ch[] = {{.key = "max_client_conn", .value = "1\n[databases]"}};
    char err[128] = "";
    assert_null(sl_ini_edit("[pgbouncer]\n", ch, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "max_client_conn"));
}

/* ---- parsing and the machine probe ---- */

static void test_parse_memory_units(void **state)
{
    (void)state;
    uint64_t b;
    assert_true(sl_parse_memory("8GiB", &b));
    assert_true(b == 8 * GiB);
    assert_true(sl_parse_memory("512MiB", &b));
    assert_true(b == 512ULL << 20);
    assert_true(sl_parse_memory("8G", &b));
    assert_true(b == 8 * GiB);
    assert_true(sl_parse_memory("1048576", &b));
    assert_true(b == 1048576);
    assert_false(sl_parse_memory("0", &b));
    assert_false(sl_parse_memory("-1G", &b));
    assert_false(sl_parse_memory("8 parsecs", &b));
    assert_false(sl_parse_memory("", &b));
    assert_false(sl_parse_memory("99999999999999999999T", &b));
    int n;
    assert_true(sl_parse_count("4", 1, 10, &n));
    assert_int_equal(n, 4);
    assert_false(sl_parse_count("4x", 1, 10, &n));
    assert_false(sl_parse_count("0", 1, 10, &n));
    assert_false(sl_parse_count("", 1, 10, &n));
}

static void test_machine_reads_proc_and_cgroup_limits(void **state)
{
    (void)state;
    sl_machine m;
    sl_machine_detect(&m, "data/machine/plain");
    assert_int_equal(m.cpus, 4);
    assert_true(m.memory_bytes == 8 * GiB);
    sl_machine_detect(&m, "data/machine/cg2");
    assert_int_equal(m.cpus, 2); /* cpu.max 200000/100000 below the 16 online CPUs */
    assert_true(m.memory_bytes == 512ULL << 20);
    assert_string_equal(m.memory_source, "cgroup memory.max");
    sl_machine_detect(&m, NULL); /* the real machine */
    assert_true(m.cpus >= 1);
    assert_true(m.memory_bytes > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizing_four_cores_eight_gib_follows_the_guide),
        cmocka_unit_test(test_sizing_caps_max_db_connections_to_the_server_budget),
        cmocka_unit_test(test_sizing_counts_every_instance),
        cmocka_unit_test(test_sizing_tightest_server_wins_and_fixed_entries_count),
        cmocka_unit_test(test_sizing_refuses_a_server_too_small),
        cmocka_unit_test(test_sizing_unknown_limits_warn_and_do_not_cap),
        cmocka_unit_test(test_sizing_memory_caps_clients),
        cmocka_unit_test(test_sizing_lowers_min_pool_size_above_the_pool),
        cmocka_unit_test(test_sizing_rejects_bad_inputs),
        cmocka_unit_test(test_ini_edit_keeps_comments_and_alignment),
        cmocka_unit_test(test_ini_edit_adds_missing_keys_at_the_end_of_the_section),
        cmocka_unit_test(test_ini_edit_adds_a_section_when_there_is_none_and_keeps_crlf),
        cmocka_unit_test(test_ini_edit_changes_every_occurrence_and_pgsluice_sections),
        cmocka_unit_test(test_ini_edit_keeps_a_quoted_hash_in_a_value),
        cmocka_unit_test(test_ini_edit_refuses_a_value_with_a_line_break),
        cmocka_unit_test(test_parse_memory_units),
        cmocka_unit_test(test_machine_reads_proc_and_cgroup_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
