/* auth_query.c - auth_query: the secret of a user not in auth_file, looked up on a server of the
 * (auth_dbname, auth_user) pool. The query is one extended-protocol batch: BEGIN; SET LOCAL
 * search_path TO pg_catalog, pg_temp; auth_query with the user name bound as $1; COMMIT; Sync. So the
 * name is never spliced into SQL and objects in the auth user's own search_path cannot take the place
 * of pg_catalog's (CVE-2025-12819), and the server's session settings are untouched afterwards. */
#include "core/auth_query.h"

#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/client_auth.h"
#include "core/server.h"
#include "proto/msgtype.h"
#include "util/log.h"

static const char *first_set(const char *a, const char *b) { return a && *a ? a : b && *b ? b : NULL; }

/* An unnamed statement run with the given parameter (or none), its answers expected before Sync. */
static void add_statement(sl_pktbuf *pb, const char *sql, const char *param)
{
    sl_pb_begin(pb, SL_FE_PARSE);
    sl_pb_str(pb, "");
    sl_pb_str(pb, sql);
    sl_pb_u16(pb, param ? 1 : 0);
    if (param) sl_pb_u32(pb, 0); /* type: unspecified (the query's $1) */
    sl_pb_end(pb);
    sl_pb_begin(pb, SL_FE_BIND);
    sl_pb_str(pb, "");
    sl_pb_str(pb, "");
    sl_pb_u16(pb, 0); /* parameters in text */
    sl_pb_u16(pb, param ? 1 : 0);
    if (param) {
        sl_pb_u32(pb, (uint32_t)strlen(param));
        sl_pb_bytes(pb, param, strlen(param));
    }
    sl_pb_u16(pb, 0); /* results in text */
    sl_pb_end(pb);
    sl_pb_begin(pb, SL_FE_EXECUTE);
    sl_pb_str(pb, "");
    sl_pb_u32(pb, 0);
    sl_pb_end(pb);
}

bool sl_auth_query_start(sl_client *c)
{
    const sl_config *cfg = c->s.w->cfg;
    const sl_db_def *db = sl_config_find_db(cfg, c->dbname);
    const char *auth_user = first_set(db ? db->auth_user : NULL, cfg->auth_user);
    if (!auth_user) return false;
    const char *auth_db = first_set(db ? db->auth_dbname : NULL, cfg->auth_dbname);
    if (!auth_db) auth_db = c->dbname;
    c->login->method = SL_AUTH_STEP_LOOKUP;
    char *cached = sl_pools_cached_secret(c->dbname, c->user, cfg->auth_cache_ttl);
    if (cached) {
        sl_client_auth_lookup_done(c, cached, NULL);
        explicit_bzero(cached, strlen(cached));
        free(cached);
        return true;
    }
    char sqlstate[6], err[256];
    c->route = sl_route_get(cfg, auth_db, auth_user, SL_REPL_NONE, sqlstate, err, sizeof(err));
    if (!c->route) {
        /* the client may not learn which databases exist: no such user, as far as it can tell */
        sl_log_warn("C-0x%llx: auth_query for user \"%s\" cannot run in database \"%s\": %s", (unsigned long long)c->id,
                    c->user, auth_db, err);
        sl_client_auth_lookup_done(c, NULL, NULL);
        return true;
    }
    c->request_time = c->wait_start = 0;
    sl_client_wake(c); /* a server of (auth_db, auth_user), now or later (sl_client_got_server) */
    return true;
}

void sl_auth_query_run(sl_client *c, sl_server *s)
{
    const sl_config *cfg = c->s.w->cfg;
    const sl_db_def *db = sl_config_find_db(cfg, c->dbname);
    const char *query = first_set(db ? db->auth_query : NULL, cfg->auth_query);
    s->client = c;
    c->server = s;
    free(s->found_secret);
    s->found_secret = NULL;
    s->found_rows = 0;
    s->setup = SL_SETUP_AUTH_QUERY;
    s->setup_failed = false;
    s->setup_error[0] = '\0';
    sl_pktbuf *out = &s->s.out;
    add_statement(out, "BEGIN", NULL);
    add_statement(out, "SET LOCAL search_path TO pg_catalog, pg_temp", NULL);
    add_statement(out, query, c->user);
    add_statement(out, "COMMIT", NULL);
    sl_pb_begin(out, SL_FE_SYNC);
    sl_pb_end(out);
    sl_server_set_state(s, SL_SV_SETUP);
    sl_io_status st = out->failed ? SL_IO_ERROR : sl_stream_flush(&s->s, NULL);
    if (st == SL_IO_ERROR) {
        c->server = NULL;
        s->client = NULL;
        sl_server_close(s, SL_CLOSE_SERVER_WRITE_ERROR);
        sl_route_put(c->route);
        c->route = NULL;
        sl_client_auth_lookup_done(c, NULL, "the server connection failed");
        return;
    }
    sl_stream_set_poll(&s->s, st == SL_IO_AGAIN ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

void sl_auth_query_finished(sl_server *s)
{
    sl_client *c = s->client;
    s->client = NULL;
    s->setup = SL_SETUP_NONE;
    char *secret = s->found_secret;
    s->found_secret = NULL;
    bool failed = s->setup_failed || s->found_rows > 1 || s->xact != SL_XACT_IDLE;
    char error[300];
    snprintf(error, sizeof(error), "%s", s->setup_failed ? s->setup_error : "auth_query returned more than one row");
    if (failed) {
        sl_log_warn("S-0x%llx: auth_query failed: %s", (unsigned long long)s->id, error);
        sl_server_close(s, SL_CLOSE_POOLER_QUERY_FAILED);
    } else {
        sl_server_set_state(s, SL_SV_ACTIVE);
        sl_server_release(s); /* back to the auth user's pool */
    }
    if (c) {
        c->server = NULL;
        sl_route_put(c->route);
        c->route = NULL;
        sl_client_auth_lookup_done(c, failed ? NULL : secret, failed ? error : NULL);
    }
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}
