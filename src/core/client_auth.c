/* client_auth.c - authenticating a client: the method (auth_type, or the first matching rule of
 * auth_hba_file), then the exchange: cleartext, md5 or SCRAM-SHA-256 against the auth file (a wrong
 * password costs the same work as a right one and ends with 28P01), trust, cert, peer, or a
 * cleartext password handed to PAM or LDAP (auth_external.c). */
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/md5.h"
#include "auth/random.h"
#include "auth/scram.h"
#include "core/client_auth.h"
#include "core/auth_query.h"
#include "core/client.h"
#include "core/msgread.h"
#include "config/hba.h"
#include "config/ident.h"
#include "core/auth_external.h"
#include "net/tls.h"
#include "proto/msgtype.h"
#include "util/log.h"
#include "util/time.h"

#define AUTH_MSG_MAX (65535 + 1024) /* a cleartext password of up to 65,535 bytes, as PgBouncer takes */
#define METHOD_PEER 100 /* a method only rules have (next to sl_auth_type's values) */

#define CA_LOG(c, lvl, fmt, ...) \
    sl_log_msg(lvl, "C-0x%llx: %s/%s@%s " fmt, (unsigned long long)(c)->id, (c)->dbname, (c)->user, (c)->addr, ##__VA_ARGS__)

/* The user's secret: auth_file's entry, else what auth_query found. */
static const char *stored_password(sl_client *c)
{
    const sl_userlist_entry *e = sl_config_find_userlist(c->s.w->cfg, c->user);
    return e ? e->password : c->login->secret;
}

/* A refused login: logged with the address; answered now, or after auth_failure_delay (the client
 * waits without being read; its worker's tick answers it, see sl_client_tick). */
static void auth_failed(sl_client *c, const char *sqlstate, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void auth_failed(sl_client *c, const char *sqlstate, const char *fmt, ...)
{
    char msg[sizeof(c->login->fail_msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int64_t delay = c->s.w->cfg->auth_failure_delay;
    if (delay <= 0) {
        sl_client_error(c, true, sqlstate, "%s", msg);
        return;
    }
    CA_LOG(c, SL_LOG_WARNING, "login failed: %s (answered in %lld ms: auth_failure_delay)", msg,
           (long long)(delay / 1000));
    snprintf(c->login->fail_msg, sizeof(c->login->fail_msg), "%s", msg);
    snprintf(c->login->fail_sqlstate, sizeof(c->login->fail_sqlstate), "%s", sqlstate);
    c->login->fail_at = sl_now_fast() + delay;
    sl_stream_set_poll(&c->s, 0);
}

static void fail_password(sl_client *c)
{
    auth_failed(c, "28P01", "password authentication failed for user \"%s\"", c->user);
}

static void flush(sl_client *c)
{
    if (sl_stream_flush(&c->s, NULL) == SL_IO_AGAIN) sl_stream_set_poll(&c->s, UV_READABLE | UV_WRITABLE);
}

/* ---- which method: auth_type, or the first matching rule of auth_hba_file ---- */

static void refuse(sl_client *c, const char *method_words)
{
    auth_failed(c, "28000", "%s authentication failed for user \"%s\"", method_words, c->user);
}

/* The connection as the rules see it. */
static void describe_client(const sl_client *c, sl_hba_client *hc, struct sockaddr_storage *ss)
{
    memset(hc, 0, sizeof(*hc));
    hc->unix_socket = c->is_unix;
    hc->tls = sl_stream_is_tls(&c->s);
    hc->database = c->dbname;
    hc->user = c->user;
    socklen_t len = sizeof(*ss);
    if (!c->is_unix && getpeername(c->s.fd, (struct sockaddr *)ss, &len) == 0 &&
        (ss->ss_family == AF_INET || ss->ss_family == AF_INET6))
        hc->addr = (const struct sockaddr *)ss;
}

/* The rule for this login, kept with its snapshot until the login ends; NULL: refused (told). */
static const sl_hba_rule *match_rule(sl_client *c, const sl_config *cfg)
{
    sl_hba_client hc;
    struct sockaddr_storage ss;
    describe_client(c, &hc, &ss);
    const sl_hba_rule *rule = cfg->hba ? sl_hba_match(cfg->hba, &hc) : NULL;
    if (!rule || rule->method == SL_HBA_REJECT) {
        char msg[512];
        auth_failed(c, "28000", "%s", sl_hba_refusal_message(&hc, rule != NULL, msg, sizeof(msg)));
        return NULL;
    }
    if (c->login->cfg != cfg) {
        sl_config_unref(c->login->cfg);
        sl_config_ref((sl_config *)cfg);
        c->login->cfg = (sl_config *)cfg;
    }
    c->login->rule = rule;
    return rule;
}

static int method_of(const sl_hba_rule *rule)
{
    switch (rule->method) {
    case SL_HBA_TRUST: return SL_AUTH_TRUST;
    case SL_HBA_PASSWORD: return SL_AUTH_PLAIN;
    case SL_HBA_MD5: return SL_AUTH_MD5;
    case SL_HBA_SCRAM: return SL_AUTH_SCRAM;
    case SL_HBA_CERT: return SL_AUTH_CERT;
    case SL_HBA_PEER: return METHOD_PEER;
    case SL_HBA_PAM: return SL_AUTH_PAM;
    case SL_HBA_LDAP: return SL_AUTH_LDAP;
    case SL_HBA_REJECT: break;
    }
    return -1;
}

/* The client certificate's CN, if the certificate verified against client_tls_ca_file. */
static bool verified_cn(sl_client *c, char *cn, size_t len)
{
    bool verified = false;
    return sl_stream_is_tls(&c->s) && sl_stream_tls_peer_cn(&c->s, cn, len, &verified) && verified;
}

/* May the authenticated system user (certificate CN, the peer's OS user) log in as c->user? */
static bool system_user_allowed(sl_client *c, const sl_config *cfg, const sl_hba_rule *rule, const char *sysuser)
{
    if (rule && rule->map) return sl_ident_allows(cfg->ident, rule->map, sysuser, c->user);
    return strcmp(sysuser, c->user) == 0;
}

/* cert (auth_type cert, or a cert rule): a verified client certificate whose CN is the user name or
 * maps to it (map=). */
static bool cert_matches(sl_client *c, const sl_config *cfg, const sl_hba_rule *rule)
{
    char cn[256];
    return verified_cn(c, cn, sizeof(cn)) && system_user_allowed(c, cfg, rule, cn);
}

/* clientcert=verify-ca / verify-full on a rule of another method. */
static bool clientcert_ok(sl_client *c, const sl_config *cfg, const sl_hba_rule *rule)
{
    if (rule->clientcert == SL_HBA_CLIENTCERT_OFF) return true;
    char cn[256];
    if (!verified_cn(c, cn, sizeof(cn))) return false;
    return rule->clientcert != SL_HBA_CLIENTCERT_VERIFY_FULL || system_user_allowed(c, cfg, rule, cn);
}

/* peer: the OS user at the other end of the Unix socket (SO_PEERCRED), mapped or equal. */
static bool peer_matches(sl_client *c, const sl_config *cfg, const sl_hba_rule *rule)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (!c->is_unix || getsockopt(c->s.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
    char buf[4096];
    struct passwd pw, *found = NULL;
    if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &found) != 0 || !found) {
        CA_LOG(c, SL_LOG_WARNING, "peer authentication: no OS user with uid %u", (unsigned)cred.uid);
        return false;
    }
    return system_user_allowed(c, cfg, rule, found->pw_name);
}

/* Logged in by something other than a password pgsluice checks (trust, cert, peer): auth_query
 * may still know the secret its servers are logged in with. */
static void accept_without_password(sl_client *c, const char *pw)
{
    if (!pw && c->login->method != SL_AUTH_STEP_LOOKUP && !c->admin && sl_auth_query_start(c)) return;
    sl_client_auth_done(c, NULL, NULL);
}

/* As PgBouncer: the user "pgbouncer" on the console, over the Unix socket, from a process of the OS
 * user pgsluice runs as, is an admin without a password (operators and tools rely on it). */
static bool console_same_user(const sl_client *c)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    return c->admin && c->is_unix && !strcmp(c->user, "pgbouncer") &&
           getsockopt(c->s.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid();
}

/* AuthenticationSASL: SCRAM-SHA-256, and SCRAM-SHA-256-PLUS first over TLS (channel binding to
 * pgsluice's certificate, tls-server-end-point, as PostgreSQL offers it). false: the client was told
 * why not (out of memory). */
static bool offer_scram(sl_client *c)
{
    free(c->login->scram);
    c->login->scram = calloc(1, sizeof(sl_scram_server));
    if (!c->login->scram) {
        sl_client_error(c, true, "53200", "out of memory");
        return false;
    }
    uint8_t cb[SL_SCRAM_MAX_CB_DATA];
    size_t cblen = 0;
    bool plus = sl_stream_is_tls(&c->s) && sl_stream_tls_server_end_point(&c->s, cb, sizeof(cb), &cblen) &&
                cblen > 0 && sl_scram_server_set_channel_binding(c->login->scram, cb, cblen);
    size_t len;
    const char *mechs = sl_scram_server_mechanisms(plus, &len);
    c->login->method = SL_AUTH_STEP_SCRAM_FIRST;
    sl_pb_auth(&c->s.out, 10, mechs, len);
    return true;
}

void sl_client_auth_start(sl_client *c)
{
    const sl_config *cfg = c->s.w->cfg;
    if (console_same_user(c)) {
        c->console_peer_admin = true;
        sl_client_auth_done(c, NULL, NULL);
        return;
    }
    int type = cfg->auth_type;
    const char *pw = stored_password(c);
    const sl_hba_rule *rule = NULL;
    if (type == SL_AUTH_HBA || type == SL_AUTH_LDAP) {
        if (!(rule = match_rule(c, cfg))) return;
        type = method_of(rule);
        /* (a cert line checks the certificate itself, with its own words) */
        if (type != SL_AUTH_CERT && !clientcert_ok(c, cfg, rule)) {
            auth_failed(c, "28000", "certificate validation (clientcert=%s) failed for user \"%s\"",
                            rule->clientcert == SL_HBA_CLIENTCERT_VERIFY_FULL ? "verify-full" : "verify-ca",
                            c->user);
            return;
        }
    }
    switch (type) {
    case SL_AUTH_ANY: /* the user name is not checked: every database logs in as its forced user */
        sl_client_auth_done(c, NULL, NULL);
        return;
    case SL_AUTH_CERT:
        if (!cert_matches(c, cfg, rule)) refuse(c, "certificate");
        else accept_without_password(c, pw);
        return;
    case METHOD_PEER:
        if (!peer_matches(c, cfg, rule)) refuse(c, "Peer");
        else accept_without_password(c, pw);
        return;
    case SL_AUTH_PAM:
    case SL_AUTH_LDAP:
        if (c->login->method == SL_AUTH_STEP_EXTERNAL || c->login->method == SL_AUTH_STEP_EXTERNAL_WAIT) return;
        c->login->method = SL_AUTH_STEP_EXTERNAL;
        c->login->external_ldap = type == SL_AUTH_LDAP;
        sl_pb_auth(&c->s.out, 3, NULL, 0);
        flush(c);
        return;
    default: break;
    }
    /* a user auth_file does not know: auth_query may (once per login) */
    if (!pw && c->login->method != SL_AUTH_STEP_LOOKUP && !c->admin && sl_auth_query_start(c)) return;
    if (type == SL_AUTH_TRUST) {
        /* no password, but the user must be one pgsluice knows (PgBouncer: "the user name must still
         * exist in auth_file", or be found by auth_query) */
        if (!pw) {
            auth_failed(c, "28000", "\"trust\" authentication failed for user \"%s\": no such user in auth_file",
                            c->user);
            return;
        }
        sl_client_auth_done(c, NULL, NULL);
        return;
    }
    if (type == SL_AUTH_MD5 && pw && sl_scram_is_secret(pw)) type = SL_AUTH_SCRAM;
    if (type == SL_AUTH_PLAIN) {
        c->login->method = SL_AUTH_STEP_PLAIN;
        sl_pb_auth(&c->s.out, 3, NULL, 0);
    } else if (type == SL_AUTH_MD5) {
        c->login->method = SL_AUTH_STEP_MD5;
        sl_random_bytes(c->login->md5_salt, 4);
        sl_pb_auth(&c->s.out, 5, c->login->md5_salt, 4);
    } else if (!offer_scram(c)) {
        return;
    }
    flush(c);
}

/* Does a cleartext password match what the auth file stores (plain, md5 hash or SCRAM secret)? */
static bool plain_matches(sl_client *c, const char *stored, const char *given)
{
    if (!stored) return false;
    if (sl_md5_is_hash(stored)) {
        char h[36];
        sl_md5_user_hash(given, c->user, h);
        return strcmp(h, stored) == 0;
    }
    if (sl_scram_is_secret(stored)) {
        sl_scram_secret sec, mine;
        if (!sl_scram_parse_secret(stored, &sec)) return false;
        if (!sl_scram_secret_from_password(given, sec.salt, sec.salt_len, sec.iterations, &mine)) return false;
        return memcmp(sec.stored_key, mine.stored_key, sizeof(sec.stored_key)) == 0;
    }
    return strlen(stored) == strlen(given) && memcmp(stored, given, strlen(given)) == 0;
}

static void send_sasl(sl_client *c, uint32_t code, const char *data)
{
    sl_pb_auth(&c->s.out, code, data, strlen(data));
    flush(c);
}

static void scram_first(sl_client *c, sl_rd *r)
{
    const char *mech = sl_rd_str(r);
    uint32_t n = sl_rd_u32(r);
    const uint8_t *data = n == 0xffffffffu ? NULL : sl_rd_bytes(r, n);
    if (r->failed || !mech || !data) {
        sl_client_error(c, true, "08P01", "malformed SASLInitialResponse");
        return;
    }
    const char *errmsg = NULL;
    if (!c->login->scram || !sl_scram_server_select_mechanism(c->login->scram, mech, &errmsg)) {
        sl_client_error(c, true, c->login->scram && c->login->scram->sqlstate ? c->login->scram->sqlstate : "28000", "%s",
                        errmsg ? errmsg : "client selected an invalid SASL authentication mechanism");
        return;
    }
    const char *pw = stored_password(c);
    sl_scram_secret sec;
    bool have = false;
    if (pw && sl_scram_is_secret(pw)) have = sl_scram_parse_secret(pw, &sec);
    else if (pw && !sl_md5_is_hash(pw)) have = sl_scram_secret_from_password(pw, NULL, 0, c->s.w->cfg->scram_iterations, &sec);
    char out[1024];
    sl_scram_server *scram = c->login->scram;
    if (!sl_scram_server_first(scram, have ? &sec : NULL, c->user, (const char *)data, n, out, sizeof(out), &errmsg)) {
        /* 08P01 a malformed message, 28000 a channel binding negotiation error, 0A000 authzid */
        sl_client_error(c, true, scram->sqlstate ? scram->sqlstate : "08P01", "%s",
                        errmsg ? errmsg : "malformed SCRAM message");
        return;
    }
    c->login->method = SL_AUTH_STEP_SCRAM_FINAL;
    send_sasl(c, 11, out);
}

/* The client's proof gave away its ClientKey: with the auth file's ServerKey, pgsluice can log in to
 * the server as this user without the password (SCRAM pass-through). */
static bool scram_keys(sl_client *c, uint8_t client_key[32], uint8_t server_key[32])
{
    const char *pw = stored_password(c);
    sl_scram_secret sec;
    if (!c->login->scram->have_client_key || !pw || !sl_scram_is_secret(pw) || !sl_scram_parse_secret(pw, &sec)) return false;
    memcpy(client_key, c->login->scram->client_key, 32);
    memcpy(server_key, sec.server_key, 32);
    return true;
}

static void scram_final(sl_client *c, sl_rd *r)
{
    size_t n = sl_rd_left(r);
    const uint8_t *data = sl_rd_bytes(r, n);
    char out[512];
    const char *errmsg = NULL;
    if (!data || !sl_scram_server_final(c->login->scram, (const char *)data, n, out, sizeof(out), &errmsg)) {
        const char *state = data ? c->login->scram->sqlstate : NULL;
        if (state && strcmp(state, "28P01") != 0) /* a channel binding check failed, or a malformed message */
            auth_failed(c, state, "%s", errmsg ? errmsg : "SCRAM authentication failed");
        else
            fail_password(c);
        return;
    }
    uint8_t ck[32], sk[32];
    bool keys = scram_keys(c, ck, sk);
    free(c->login->scram);
    c->login->scram = NULL;
    sl_pb_auth(&c->s.out, 12, out, strlen(out));
    sl_client_auth_done(c, keys ? ck : NULL, keys ? sk : NULL);
}

static void handle_password(sl_client *c, const uint8_t *body, uint32_t len)
{
    sl_rd r;
    sl_rd_init(&r, body, len);
    switch (c->login->method) {
    case SL_AUTH_STEP_PLAIN: {
        const char *given = sl_rd_str(&r);
        if (!given) sl_client_error(c, true, "08P01", "malformed password message");
        else if (plain_matches(c, stored_password(c), given)) sl_client_auth_done(c, NULL, NULL);
        else fail_password(c);
        break;
    }
    case SL_AUTH_STEP_MD5: {
        const char *given = sl_rd_str(&r);
        const char *stored = stored_password(c);
        if (!given) sl_client_error(c, true, "08P01", "malformed password message");
        else if (stored && sl_md5_verify(stored, c->user, c->login->md5_salt, given)) sl_client_auth_done(c, NULL, NULL);
        else fail_password(c);
        break;
    }
    case SL_AUTH_STEP_EXTERNAL: {
        const char *given = sl_rd_str(&r);
        if (!given) {
            sl_client_error(c, true, "08P01", "malformed password message");
        } else if (!*given) { /* as PostgreSQL: an empty password is never handed to PAM or LDAP */
            refuse(c, c->login->external_ldap ? "LDAP" : "PAM");
        } else {
            c->login->method = SL_AUTH_STEP_EXTERNAL_WAIT;
            sl_stream_set_poll(&c->s, 0); /* nothing more is expected until the check answers */
            if (!sl_auth_external_start(c, given)) refuse(c, c->login->external_ldap ? "LDAP" : "PAM");
        }
        break;
    }
    case SL_AUTH_STEP_SCRAM_FIRST: scram_first(c, &r); break;
    case SL_AUTH_STEP_SCRAM_FINAL: scram_final(c, &r); break;
    default: sl_client_error(c, true, "08P01", "unexpected password message"); break;
    }
}

void sl_client_auth_external_done(sl_client *c, bool ok, const char *password)
{
    if (!ok) {
        refuse(c, c->login->external_ldap ? "LDAP" : "PAM");
        return;
    }
    sl_stream_set_poll(&c->s, UV_READABLE);
    /* its servers log in with the password that passed, unless auth_file knows one */
    if (!sl_config_find_userlist(c->s.w->cfg, c->user) && password) {
        free(c->login->secret);
        c->login->secret = strdup(password);
    }
    sl_client_auth_done(c, NULL, NULL);
}

void sl_client_auth_lookup_done(sl_client *c, const char *secret, const char *error)
{
    if (error) {
        sl_client_error(c, true, "08006", "could not look up the password of user \"%s\": %s", c->user, error);
        return;
    }
    free(c->login->secret);
    c->login->secret = secret ? strdup(secret) : NULL;
    /* no such user (or a NULL secret): the exchange still runs, against a mock secret, and fails
     * like a wrong password */
    sl_client_auth_start(c);
}

void sl_client_auth_input(sl_client *c)
{
    while (c->state == SL_CL_AUTH) {
        sl_wire_msg m;
        if (c->s.end - c->s.pos >= 1 && c->s.buf[c->s.pos] != SL_FE_PASSWORD) {
            char type = (char)c->s.buf[c->s.pos];
            if (type == SL_FE_TERMINATE) sl_client_close(c, SL_CLOSE_CLIENT_GAVE_UP_LOGIN);
            else sl_client_error(c, true, "08P01", "expected password response, got message type '%c'", type);
            return;
        }
        switch (sl_take_msg(&c->s, AUTH_MSG_MAX, &m)) {
        case SL_TAKE_MORE: return;
        case SL_TAKE_NOMEM: sl_client_close(c, SL_CLOSE_OUT_OF_MEMORY); return;
        case SL_TAKE_BAD_LENGTH:
            sl_client_error(c, true, "08P01", "invalid password message length %u", sl_get_u32(c->s.buf + c->s.pos + 1));
            return;
        case SL_TAKE_OK: handle_password(c, m.body, m.len); break;
        }
    }
}
