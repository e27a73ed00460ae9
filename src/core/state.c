/* state.c - the only place connection states change: each change is checked against the table of
 * legal transitions (a bug otherwise: asserted in debug builds, logged in release builds) and keeps
 * the lists and counts that go with a state. */
#include <assert.h>

#include "core/conn.h"
#include "net/worker.h"
#include "util/log.h"

#define SL_STATE_NAME(s) #s,
static const char *const client_state_names[] = {SL_CLIENT_STATES(SL_STATE_NAME)};
static const char *const server_state_names[] = {SL_SERVER_STATES(SL_STATE_NAME)};
#undef SL_STATE_NAME

const char *sl_client_state_name(sl_client_state s)
{
    return s < SL_CL_NSTATES ? client_state_names[s] : "?";
}
const char *sl_server_state_name(sl_server_state s)
{
    return s < SL_SV_NSTATES ? server_state_names[s] : "?";
}

#define B(s) (1u << SL_CL_##s)
/* client: from -> the states it may go to (CLOSING is reachable from every state but itself) */
const unsigned sl_client_next[SL_CL_NSTATES] = {
    [SL_CL_LOGIN] = B(AUTH),
    [SL_CL_AUTH] = B(WELCOME) | B(IDLE),
    [SL_CL_WELCOME] = B(IDLE),
    [SL_CL_IDLE] = B(WAITING) | B(ACTIVE),
    [SL_CL_WAITING] = B(ACTIVE) | B(IDLE),
    [SL_CL_ACTIVE] = B(IDLE) | B(WAITING),
    [SL_CL_CLOSING] = 0,
};
#undef B

#define B(s) (1u << SL_SV_##s)
const unsigned sl_server_next[SL_SV_NSTATES] = {
    [SL_SV_CONNECTING] = B(LOGIN),
    [SL_SV_LOGIN] = B(IDLE) | B(SETUP) | B(ACTIVE) | B(MOVING),
    [SL_SV_IDLE] = B(ACTIVE) | B(SETUP) | B(MOVING),
    [SL_SV_SETUP] = B(SETUP) | B(ACTIVE) | B(IDLE) | B(MOVING),
    [SL_SV_ACTIVE] = B(ACTIVE) | B(IDLE) | B(SETUP) | B(MOVING),
    [SL_SV_MOVING] = B(ACTIVE),
    [SL_SV_CLOSING] = 0,
};
#undef B

bool sl_client_transition_ok(sl_client_state from, sl_client_state to)
{
    if (from >= SL_CL_NSTATES || to >= SL_CL_NSTATES) return false;
    if (to == SL_CL_CLOSING) return from != SL_CL_CLOSING;
    return (sl_client_next[from] >> to) & 1u;
}

bool sl_server_transition_ok(sl_server_state from, sl_server_state to)
{
    if (from >= SL_SV_NSTATES || to >= SL_SV_NSTATES) return false;
    if (to == SL_SV_CLOSING) return from != SL_SV_CLOSING;
    return (sl_server_next[from] >> to) & 1u;
}

void sl_client_set_state_slow(sl_client *c, sl_client_state to)
{
    sl_client_state from = c->state;
    if (from == to) return;
    if (!sl_client_transition_ok(from, to)) {
        sl_log_error("C-0x%llx: illegal client state change %s -> %s", (unsigned long long)c->id,
                     sl_client_state_name(from), sl_client_state_name(to));
        assert(!"illegal client state change");
    }
    c->state = to;
    if (to == SL_CL_CLOSING) sl_list_remove(&c->node);
}

void sl_server_set_state_slow(sl_server *s, sl_server_state to)
{
    sl_server_state from = s->state;
    if (from == to) return;
    if (!sl_server_transition_ok(from, to)) {
        sl_log_error("S-0x%llx: illegal server state change %s -> %s", (unsigned long long)s->id,
                     sl_server_state_name(from), sl_server_state_name(to));
        assert(!"illegal server state change");
    }
    s->state = to;
    if (from == SL_SV_SETUP) sl_route_conn_testing(&s->pc, false);
    if (to == SL_SV_SETUP) sl_route_conn_testing(&s->pc, true);
    if (to == SL_SV_MOVING || to == SL_SV_CLOSING) sl_list_remove(&s->node);
    if (from == SL_SV_MOVING) sl_list_insert_tail(&s->s.w->servers, &s->node);
}
