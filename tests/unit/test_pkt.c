/* test_pkt.c - the wire-format layer: startup packet parsing, the message builder, the body reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/pgoptions.h"
#include "proto/pkt.h"

/* Build a startup-style packet from NUL-separated name/value pairs. */
static size_t make_startup(uint8_t *buf, uint32_t code, const char *const *kv, int n)
{
    size_t len = 8;
    sl_put_u32(buf + 4, code);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(kv[i]) + 1;
        memcpy(buf + len, kv[i], l);
        len += l;
    }
    if (code >> 16 == 3) buf[len++] = 0;
    sl_put_u32(buf, (uint32_t)len);
    return len;
}

static void test_startup_parses_parameters(void **state)
{
    (void)state;
    uint8_t buf[256];
    const char *kv[] = {"user", "app", "database", "appdb", "TimeZone", "UTC"};
    size_t len = make_startup(buf, SL_PROTO_V3, kv, 6);
    sl_startup st;
    assert_int_equal(sl_startup_parse(buf, len, &st), SL_STARTUP_OK);
    assert_int_equal(st.nparams, 3);
    assert_string_equal(sl_startup_get(&st, "user"), "app");
    assert_string_equal(sl_startup_get(&st, "database"), "appdb");
    assert_string_equal(sl_startup_get(&st, "TimeZone"), "UTC");
    assert_null(sl_startup_get(&st, "options"));
}

static void test_startup_rejects_bad_lengths(void **state)
{
    (void)state;
    uint8_t buf[64] = {0};
    sl_startup st;
    sl_put_u32(buf, 4); /* shorter than the minimum */
    assert_int_equal(sl_startup_parse(buf, 4, &st), SL_STARTUP_BAD_LENGTH);
    sl_put_u32(buf, 0x7fffffffu); /* 2 GB length field */
    assert_int_equal(sl_startup_parse(buf, 16, &st), SL_STARTUP_BAD_LENGTH);
    sl_put_u32(buf, 20); /* claims more than given */
    assert_int_equal(sl_startup_parse(buf, 16, &st), SL_STARTUP_BAD_LENGTH);
}

static void test_startup_rejects_unterminated_and_bad_version(void **state)
{
    (void)state;
    uint8_t buf[64];
    const char *kv[] = {"user", "app"};
    size_t len = make_startup(buf, SL_PROTO_V3, kv, 2);
    buf[len - 1] = 'x'; /* final terminator replaced */
    buf[len - 2] = 'y'; /* value terminator replaced */
    sl_startup st;
    assert_int_equal(sl_startup_parse(buf, len, &st), SL_STARTUP_MALFORMED);
    len = make_startup(buf, 2u << 16, kv, 0);
    assert_int_equal(sl_startup_parse(buf, len, &st), SL_STARTUP_BAD_VERSION);
}

static void test_startup_too_many_parameters(void **state)
{
    (void)state;
    uint8_t buf[4096];
    const char *kv[2 * (SL_STARTUP_MAX_PARAMS + 1)];
    for (int i = 0; i < 2 * (SL_STARTUP_MAX_PARAMS + 1); i++) kv[i] = i % 2 ? "v" : "k";
    size_t len = make_startup(buf, SL_PROTO_V3, kv, 2 * (SL_STARTUP_MAX_PARAMS + 1));
    sl_startup st;
    assert_int_equal(sl_startup_parse(buf, len, &st), SL_STARTUP_TOO_MANY_PARAMS);
}

static void test_ssl_and_cancel_requests(void **state)
{
    (void)state;
    uint8_t buf[16];
    sl_startup st;
    sl_put_u32(buf, 8);
    sl_put_u32(buf + 4, SL_SSL_CODE);
    assert_int_equal(sl_startup_parse(buf, 8, &st), SL_STARTUP_OK);
    assert_int_equal(st.code, SL_SSL_CODE);
    sl_put_u32(buf, 16);
    sl_put_u32(buf + 4, SL_CANCEL_CODE);
    sl_put_u32(buf + 8, 0x01000005u);
    sl_put_u32(buf + 12, 0xdeadbeefu);
    assert_int_equal(sl_startup_parse(buf, 16, &st), SL_STARTUP_OK);
    assert_int_equal(st.cancel_pid, 0x01000005u);
    assert_int_equal(st.cancel_key, 0xdeadbeefu);
    sl_put_u32(buf, 12); /* a cancel request of the wrong size */
    assert_int_equal(sl_startup_parse(buf, 12, &st), SL_STARTUP_BAD_LENGTH);
}

static void test_builder_writes_lengths_and_error_fields(void **state)
{
    (void)state;
    sl_pktbuf pb;
    sl_pb_init(&pb);
    sl_pb_error(&pb, false, "3D000", "no such database: %s", "nope");
    sl_pb_ready(&pb, 'I');
    assert_false(pb.failed);
    assert_int_equal(pb.data[0], 'E');
    uint32_t elen = sl_get_u32(pb.data + 1);
    assert_int_equal(pb.len, 1 + elen + 6);
    assert_string_equal(sl_error_field(pb.data + 5, elen - 4, 'C'), "3D000");
    assert_string_equal(sl_error_field(pb.data + 5, elen - 4, 'M'), "no such database: nope");
    assert_string_equal(sl_error_field(pb.data + 5, elen - 4, 'S'), "ERROR");
    assert_null(sl_error_field(pb.data + 5, elen - 4, 'D'));
    const uint8_t *z = pb.data + 1 + elen;
    assert_int_equal(z[0], 'Z');
    assert_int_equal(sl_get_u32(z + 1), 5);
    assert_int_equal(z[5], 'I');
    sl_pb_free(&pb);
}

static void test_builder_grows_for_large_messages(void **state)
{
    (void)state;
    static char big[100000];
    memset(big, 'a', sizeof(big) - 1);
    sl_pktbuf pb;
    sl_pb_init(&pb);
    sl_pb_query(&pb, big);
    assert_false(pb.failed);
    assert_int_equal(pb.len, 1 + 4 + sizeof(big));
    assert_int_equal(sl_get_u32(pb.data + 1), 4 + sizeof(big));
    sl_pb_reset(&pb);
    assert_int_equal(pb.len, 0);
    sl_pb_free(&pb);
}

/* A ParameterStatus message is what the protocol says; the welcome's batch of them is byte for byte
 * what one call per parameter writes, skips unset values, and (past 32 names) still writes every one. */
static void test_param_statuses_match_one_at_a_time(void **state)
{
    (void)state;
    const char *names[40], *values[40];
    char nbuf[40][24], vbuf[40][24];
    for (int i = 0; i < 40; i++) {
        snprintf(nbuf[i], sizeof(nbuf[i]), "param_%d", i);
        snprintf(vbuf[i], sizeof(vbuf[i]), "value %d", i * 7);
        names[i] = nbuf[i];
        values[i] = i % 3 == 1 ? NULL : vbuf[i];
    }
    values[0] = ""; /* an empty value is still sent */
    {   /* one message, byte for byte as the protocol has it */
        sl_pktbuf pb;
        sl_pb_init(&pb);
        sl_pb_param_status(&pb, "TimeZone", "UTC");
        static const uint8_t want[] = {'S', 0, 0, 0, 17, 'T', 'i', 'm', 'e', 'Z', 'o', 'n', 'e', 0, 'U', 'T', 'C', 0};
        assert_int_equal(pb.len, sizeof(want));
        assert_memory_equal(pb.data, want, sizeof(want));
        sl_pb_free(&pb);
    }
    for (int n = 0; n <= 40; n += 5) {
        sl_pktbuf one, batch;
        sl_pb_init(&one);
        sl_pb_init(&batch);
        sl_pb_ready(&one, 'I'); /* after something already in the buffer */
        sl_pb_ready(&batch, 'I');
        for (int i = 0; i < n; i++)
            if (values[i]) sl_pb_param_status(&one, names[i], values[i]);
        sl_pb_param_statuses(&batch, names, values, n);
        sl_pb_backend_key(&one, 7, 9);
        sl_pb_backend_key(&batch, 7, 9);
        assert_false(batch.failed);
        assert_int_equal(batch.len, one.len);
        assert_memory_equal(batch.data, one.data, one.len);
        sl_pb_free(&one);
        sl_pb_free(&batch);
    }
}

static void test_reader_stops_at_the_end(void **state)
{
    (void)state;
    const uint8_t body[] = {'a', 'b', 0, 0, 1, 0, 0, 0, 2, 'c'};
    sl_rd r;
    sl_rd_init(&r, body, sizeof(body));
    assert_string_equal(sl_rd_str(&r), "ab");
    assert_int_equal(sl_rd_u16(&r), 1);
    assert_int_equal(sl_rd_u32(&r), 2);
    assert_false(r.failed);
    assert_null(sl_rd_str(&r)); /* 'c' has no terminator */
    assert_true(r.failed);
    assert_int_equal(sl_rd_u32(&r), 0); /* sticky */
}

static void test_data_row_and_row_description(void **state)
{
    (void)state;
    sl_pktbuf pb;
    sl_pb_init(&pb);
    const char *names[] = {"database", "count"};
    const uint32_t oids[] = {25, 20};
    sl_pb_row_description(&pb, 2, names, oids);
    const char *vals[] = {"appdb", NULL};
    size_t off = pb.len;
    sl_pb_data_row(&pb, 2, vals);
    sl_rd r;
    sl_rd_init(&r, pb.data + off + 5, pb.len - off - 5);
    assert_int_equal(sl_rd_u16(&r), 2);
    assert_int_equal(sl_rd_u32(&r), 5);
    assert_memory_equal(sl_rd_bytes(&r, 5), "appdb", 5);
    assert_int_equal(sl_rd_u32(&r), 0xffffffffu); /* NULL */
    assert_int_equal(sl_rd_left(&r), 0);
    sl_pb_free(&pb);
}

/* ---- the options startup parameter ---- */

static sl_pgopt_status opt(const char **pos, char *name, char *value)
{
    char err[128];
    return sl_pgoptions_next(pos, name, 64, value, 64, err, sizeof(err));
}

static void test_pgoptions_forms(void **state)
{
    (void)state;
    const char *pos = "  -c search_path=app  -cTimeZone=UTC\t--statement-timeout=5s -c a=b\\ c  ";
    char name[64], value[64];
    assert_int_equal(opt(&pos, name, value), SL_PGOPT_SETTING);
    assert_string_equal(name, "search_path");
    assert_string_equal(value, "app");
    assert_int_equal(opt(&pos, name, value), SL_PGOPT_SETTING);
    assert_string_equal(name, "TimeZone");
    assert_string_equal(value, "UTC");
    assert_int_equal(opt(&pos, name, value), SL_PGOPT_SETTING);
    assert_string_equal(name, "statement_timeout"); /* --name: dashes become underscores */
    assert_string_equal(value, "5s");
    assert_int_equal(opt(&pos, name, value), SL_PGOPT_SETTING);
    assert_string_equal(name, "a");
    assert_string_equal(value, "b c"); /* a backslash keeps the blank */
    assert_int_equal(opt(&pos, name, value), SL_PGOPT_DONE);
    /* -c too, as PostgreSQL (PGOPTIONS='-c statement-timeout=7s' sets statement_timeout there) */
    pos = "-c statement-timeout=7s -capplication-name=a-b";
    assert_int_equal(opt(&pos, name, value), SL_PGOPT_SETTING);
    assert_string_equal(name, "statement_timeout");
    assert_string_equal(value, "7s");
    assert_int_equal(opt(&pos, name, value), SL_PGOPT_SETTING);
    assert_string_equal(name, "application_name");
    assert_string_equal(value, "a-b"); /* values keep theirs */
    pos = "";
    assert_int_equal(opt(&pos, name, value), SL_PGOPT_DONE);
}

static void test_pgoptions_refusals(void **state)
{
    (void)state;
    const char *bad[] = {"-B 100", "-c", "-c noequals", "--=x", "-c =x", "plain", "-c name=0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *pos = bad[i];
        char name[64], value[64];
        assert_int_equal(opt(&pos, name, value), SL_PGOPT_ERROR);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_parses_parameters),
        cmocka_unit_test(test_startup_rejects_bad_lengths),
        cmocka_unit_test(test_startup_rejects_unterminated_and_bad_version),
        cmocka_unit_test(test_startup_too_many_parameters),
        cmocka_unit_test(test_ssl_and_cancel_requests),
        cmocka_unit_test(test_builder_writes_lengths_and_error_fields),
        cmocka_unit_test(test_builder_grows_for_large_messages),
        cmocka_unit_test(test_param_statuses_match_one_at_a_time),
        cmocka_unit_test(test_reader_stops_at_the_end),
        cmocka_unit_test(test_data_row_and_row_description),
        cmocka_unit_test(test_pgoptions_forms),
        cmocka_unit_test(test_pgoptions_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
