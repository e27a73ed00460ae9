/* test_states.c - the connection state machines: which transitions are legal (every state may
 * close; nothing leaves CLOSING; a client is linked only from IDLE or WAITING; a server in the pool
 * is only taken, moved or closed), and the close reasons' texts and manners. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/conn.h"

static void test_every_state_may_close_and_closing_is_final(void **state)
{
    (void)state;
    for (int s = 0; s < SL_CL_NSTATES; s++) {
        assert_int_equal(sl_client_transition_ok(s, SL_CL_CLOSING), s != SL_CL_CLOSING);
        assert_false(sl_client_transition_ok(SL_CL_CLOSING, s));
    }
    for (int s = 0; s < SL_SV_NSTATES; s++) {
        assert_int_equal(sl_server_transition_ok(s, SL_SV_CLOSING), s != SL_SV_CLOSING);
        assert_false(sl_server_transition_ok(SL_SV_CLOSING, s));
    }
}

static void test_client_life(void **state)
{
    (void)state;
    /* login, then between transactions, waiting, linked */
    assert_true(sl_client_transition_ok(SL_CL_LOGIN, SL_CL_AUTH));
    assert_true(sl_client_transition_ok(SL_CL_AUTH, SL_CL_IDLE));
    assert_true(sl_client_transition_ok(SL_CL_AUTH, SL_CL_WELCOME));
    assert_true(sl_client_transition_ok(SL_CL_WELCOME, SL_CL_IDLE));
    assert_true(sl_client_transition_ok(SL_CL_IDLE, SL_CL_WAITING));
    assert_true(sl_client_transition_ok(SL_CL_WAITING, SL_CL_ACTIVE));
    assert_true(sl_client_transition_ok(SL_CL_ACTIVE, SL_CL_IDLE));
    /* a server that failed its pooler query: the client waits for another */
    assert_true(sl_client_transition_ok(SL_CL_ACTIVE, SL_CL_WAITING));
    /* never linked before it logged in, never back to login */
    assert_false(sl_client_transition_ok(SL_CL_LOGIN, SL_CL_ACTIVE));
    assert_false(sl_client_transition_ok(SL_CL_AUTH, SL_CL_ACTIVE));
    assert_false(sl_client_transition_ok(SL_CL_IDLE, SL_CL_LOGIN));
    assert_false(sl_client_transition_ok(SL_CL_WELCOME, SL_CL_ACTIVE));
    assert_false(sl_client_transition_ok(SL_CL_IDLE, SL_CL_WELCOME));
}

static void test_server_life(void **state)
{
    (void)state;
    assert_true(sl_server_transition_ok(SL_SV_CONNECTING, SL_SV_LOGIN));
    assert_true(sl_server_transition_ok(SL_SV_LOGIN, SL_SV_IDLE));
    assert_true(sl_server_transition_ok(SL_SV_LOGIN, SL_SV_SETUP));   /* connect_query */
    assert_true(sl_server_transition_ok(SL_SV_LOGIN, SL_SV_MOVING));  /* to a client of another worker */
    assert_true(sl_server_transition_ok(SL_SV_IDLE, SL_SV_ACTIVE));
    assert_true(sl_server_transition_ok(SL_SV_IDLE, SL_SV_SETUP));    /* server_check_query */
    assert_true(sl_server_transition_ok(SL_SV_IDLE, SL_SV_MOVING));   /* stolen */
    assert_true(sl_server_transition_ok(SL_SV_ACTIVE, SL_SV_SETUP));  /* reset query */
    assert_true(sl_server_transition_ok(SL_SV_SETUP, SL_SV_ACTIVE));
    assert_true(sl_server_transition_ok(SL_SV_MOVING, SL_SV_ACTIVE)); /* arrived */
    assert_false(sl_server_transition_ok(SL_SV_CONNECTING, SL_SV_IDLE)); /* not before it logged in */
    assert_false(sl_server_transition_ok(SL_SV_CONNECTING, SL_SV_ACTIVE));
    assert_false(sl_server_transition_ok(SL_SV_MOVING, SL_SV_IDLE)); /* attached first */
    assert_false(sl_server_transition_ok(SL_SV_IDLE, SL_SV_LOGIN));
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(sl_client_state_name(SL_CL_WAITING), "WAITING");
    assert_string_equal(sl_server_state_name(SL_SV_SETUP), "SETUP");
    assert_string_equal(sl_server_state_name(SL_SV_NSTATES), "?");
}

static void test_close_reasons(void **state)
{
    (void)state;
    for (int r = 1; r < SL_CLOSE_NREASONS; r++) assert_true(strlen(sl_close_reason_text(r)) > 0);
    /* healthy servers closed on purpose say Terminate; broken ones and clients' leftovers do not */
    assert_true(sl_close_reason_polite(SL_CLOSE_SERVER_LIFETIME));
    assert_true(sl_close_reason_polite(SL_CLOSE_SERVER_IDLE_TIMEOUT));
    assert_false(sl_close_reason_polite(SL_CLOSE_SERVER_EOF));
    assert_false(sl_close_reason_polite(SL_CLOSE_CLIENT_MID_TRANSACTION));
    assert_false(sl_close_reason_polite(SL_CLOSE_QUERY_TIMEOUT));
    assert_string_equal(sl_close_reason_text(SL_CLOSE_CLIENT_TERMINATE), "client close request");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_state_may_close_and_closing_is_final),
        cmocka_unit_test(test_client_life),
        cmocka_unit_test(test_server_life),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_close_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
