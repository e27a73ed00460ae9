/* settings.c - the one table of [pgbouncer] settings, and value parsing/formatting driven by it. */
#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/errbuf.h"

static const char *const pool_mode_names[] = {"session", "transaction", "statement", NULL};
static const char *const tls_mode_names[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full", NULL};
static const char *const replica_lb_names[] = {"least-outstanding", "round-robin", NULL};
static const char *const pin_mode_names[] = {"off", "on", "error", NULL};
static const char *const auth_type_names[] = {"trust", "plain", "md5", "scram-sha-256", "any",
                                              "hba",   "cert",  "pam", "ldap", NULL};

#define OFS(f) offsetof(sl_config, f)
/* The third argument says when a change takes effect (RELOAD or SET): R needs a restart, N applies
 * to connections made afterwards, A also to connections already open. Rows may end with flags
 * (.flags = ...). */
#define R SL_APPLY_RESTART
#define N SL_APPLY_NEW
#define A SL_APPLY_ALL
#define NI .flags = SL_SETTING_UNIMPLEMENTED
#define S_INT(n, def, rel, lo, hi, desc, ...) \
    {.name = #n, .type = SL_T_INT, .offset = OFS(n), .default_value = def, .apply = rel, \
     .description = desc, .min_value = lo, .max_value = hi, __VA_ARGS__}
#define S_BOOL(n, def, rel, desc, ...) \
    {.name = #n, .type = SL_T_BOOL, .offset = OFS(n), .default_value = def, .apply = rel, .description = desc, \
     __VA_ARGS__}
#define S_STR(n, def, rel, desc, ...) \
    {.name = #n, .type = SL_T_STRING, .offset = OFS(n), .default_value = def, .apply = rel, \
     .description = desc, __VA_ARGS__}
#define S_TIME(n, def, rel, desc, ...) \
    {.name = #n, .type = SL_T_TIME, .offset = OFS(n), .default_value = def, .apply = rel, .description = desc, \
     __VA_ARGS__}
#define S_ENUM(n, def, rel, names, desc, ...) \
    {.name = #n, .type = SL_T_ENUM, .offset = OFS(n), .default_value = def, .apply = rel, \
     .enum_names = names, .description = desc, __VA_ARGS__}

/* Order follows struct sl_config. 0 as max_value means INT_MAX. */
const sl_setting sl_settings[] = {
    S_STR(listen_addr, "127.0.0.1", R,
          "Comma-separated addresses to listen on for TCP; \"*\" means all, empty disables TCP."),
    S_INT(listen_port, "6432", R, 1, 65535, "Port for TCP; also names the Unix socket (.s.PGSQL.PORT)."),
    S_STR(unix_socket_dir, "/tmp", R, "Directory for the Unix socket; empty disables the Unix socket."),
    {.name = "unix_socket_mode", .type = SL_T_INT, .offset = OFS(unix_socket_mode), .default_value = "0777",
     .apply = SL_APPLY_RESTART, .description = "File mode of the Unix socket (octal).", .min_value = 0,
     .max_value = 07777, .flags = SL_SETTING_OCTAL},
    S_STR(unix_socket_group, "", R, "Group given the Unix socket (with unix_socket_mode, its members may connect); a group that does not exist refuses to start. Empty keeps the process's group."),
    S_INT(workers, "0", R, 0, 1024, "Number of event-loop worker threads; 0 (auto) means one per two CPUs the process may run on, at least one (on a 2-core machine one loop is faster than two)."),

    S_ENUM(auth_type, "md5", N, auth_type_names,
           "How clients authenticate: trust, plain, md5, scram-sha-256, any (no check; forced users), cert "
           "(TLS client certificate whose CN is the user), hba (per connection, from auth_hba_file), pam (PAM "
           "service pgbouncer, cleartext password), ldap (auth_ldap_options, cleartext password)."),
    S_STR(auth_file, "", N, "File with user names and passwords (userlist.txt format)."),
    S_STR(auth_hba_file, "", N, "pg_hba.conf-style rules used when auth_type is hba: local/host/hostssl/hostnossl lines "
          "with trust, reject, md5, password, scram-sha-256, cert, peer, pam and ldap. Read at start and by "
          "every RELOAD; a line pgsluice cannot honour refuses the file."),
    S_STR(auth_ident_file, "", N, "pg_ident.conf-style user name maps for the map= option of peer and cert lines in "
          "auth_hba_file."),
    S_STR(auth_ldap_options, "", N, "LDAP options for auth_type ldap, in pg_hba.conf syntax, e.g. "
          "ldapserver=ldap.example.com ldapbasedn=\"dc=example,dc=com\" ldapsearchattribute=uid."),
    S_STR(auth_user, "", N, "User that runs auth_query to look up the password secret of a user not in auth_file (its own password must be in auth_file). A [databases] entry may name its own."),
    S_STR(auth_query, "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END "
                      "FROM pg_authid WHERE rolname=$1 AND rolcanlogin", N,
          "Query that returns (user name, password secret) for the user name $1 (a bound parameter, never spliced into the text). It runs in its own transaction with search_path set to pg_catalog, pg_temp. A NULL secret (an expired VALID UNTIL in the default query) refuses the login."),
    S_STR(auth_dbname, "", N, "Database ([databases] entry) in which auth_query runs; empty: the database the client asked for."),
    S_TIME(auth_cache_ttl, "60", A, "Seconds a secret found by auth_query is reused for the next logins of the same user and database before it is looked up again; 0 looks it up at every login."),
    S_STR(admin_users, "", N, "Users allowed full access to the admin console (comma/space separated)."),
    S_STR(stats_users, "", N, "Users allowed read-only SHOW commands on the admin console."),

    S_ENUM(pool_mode, "session", A, pool_mode_names,
           "When a server connection goes back to the pool: session, transaction or statement."),
    S_INT(max_client_conn, "100", N, 1, 0, "Maximum number of client connections."),
    S_INT(default_pool_size, "20", A, 0, 0, "Server connections per user/database pair."),
    S_INT(min_pool_size, "0", A, 0, 0, "Keep at least this many server connections open per pool."),
    S_INT(reserve_pool_size, "0", A, 0, 0, "Extra connections a pool may open when clients wait too long."),
    S_TIME(reserve_pool_timeout, "5", A, "Seconds a client waits before the reserve pool is used."),
    S_INT(max_db_connections, "0", A, 0, 0, "Maximum server connections per database; 0 is unlimited."),
    S_INT(max_user_connections, "0", A, 0, 0, "Maximum server connections per user; 0 is unlimited."),
    S_INT(max_db_client_connections, "0", N, 0, 0, "Maximum client connections (logged in) per database, unless its [databases] entry says otherwise; 0 is unlimited. More are refused with 53300."),
    S_INT(max_user_client_connections, "0", N, 0, 0, "Maximum client connections (logged in) per user, unless its [users] entry says otherwise; 0 is unlimited. More are refused with 53300."),
    S_BOOL(server_round_robin, "0", A, "Reuse server connections round-robin instead of LIFO."),
    S_STR(server_reset_query, "DISCARD ALL", A, "Query run when a server connection is released (session mode)."),
    S_BOOL(server_reset_query_always, "0", A, "Run server_reset_query in every pool mode, not only session."),
    S_STR(server_check_query, "select 1", A, "Query used to check an idle server connection is alive."),
    S_TIME(server_check_delay, "30", A, "Seconds a released connection may be reused without a check."),
    S_BOOL(server_fast_close, "0", A,
           "Session pooling: a server connection that must be replaced (RECONNECT, a RELOAD that changes its "
           "database's host or settings, server_lifetime) is closed at the end of its current transaction instead "
           "of at the end of the client's session; the client is then disconnected too (57P01), so that it "
           "notices. No effect in transaction and statement pooling, where that is what happens anyway."),
    S_TIME(server_lifetime, "3600", A, "Close server connections older than this many seconds; 0 is unlimited."),
    S_TIME(server_idle_timeout, "600", A, "Close server connections idle this many seconds; 0 is never."),
    S_TIME(server_connect_timeout, "15", A, "Seconds allowed for connecting and logging in to a server."),
    S_TIME(server_login_retry, "15", A, "Seconds to wait before retrying after a failed server login."),
    S_TIME(dns_max_ttl, "15", N, "Seconds a server host name's resolved address is reused before it is looked up again. Lookups run off the worker threads (libuv's thread pool)."),
    S_TIME(autodb_idle_timeout, "3600", A, "Seconds after which a pool that has had no client and no server connection is freed (its counters stay in its database's totals). PgBouncer applies this to pools of automatically created databases only; pgsluice to every pool, so that pools of users and databases no longer in use do not accumulate."),
    S_TIME(pool_idle_timeout, "0", A, "Seconds after which a pool (a database and user pair) that has had no client and no server connection is freed, when set; it then decides instead of autodb_idle_timeout, for every pool (a [users] entry can set its own). 0: autodb_idle_timeout decides. From PgBouncer's development branch, where it frees pools of any database that stay unused."),
    S_TIME(client_login_timeout, "60", A, "Disconnect clients that do not log in within this many seconds."),
    S_INT(scram_iterations, "4096", N, 1, 10000000,
          "Iterations of the SCRAM secret pgsluice derives from a plain-text auth_file password when a client "
          "logs in with SCRAM (PostgreSQL's default is 4096)."),
    S_TIME(query_wait_notify, "0", A,
           "Tell a client that has waited this long for a server why nothing happens yet: a NOTICE \"No server "
           "connection available in pool ..., waiting\" (once per wait); 0 never tells."),
    S_TIME(auth_failure_delay, "0", A,
           "Answer a refused login (wrong password, no hba line, unknown user) only after this long, so that "
           "guessing passwords is slow (as PostgreSQL's auth_delay); 0 answers at once. Every refusal is logged "
           "with the client's address either way. pgsluice's own setting."),
    S_TIME(query_timeout, "0", A, "Cancel queries running longer than this many seconds; 0 is off."),
    S_TIME(query_wait_timeout, "120", A, "Seconds a client may wait for a server connection; 0 waits forever."),
    S_TIME(cancel_wait_timeout, "10", A, "Seconds a cancel request may take: until the server's postmaster has taken it, the server connection it targets is not given to another client (so the cancel cannot hit another client's query); after this long pgsluice gives up on it. 0 waits as long as it takes."),
    S_TIME(client_idle_timeout, "0", A, "Disconnect clients idle this many seconds; 0 is off."),
    S_TIME(idle_transaction_timeout, "0", A, "Disconnect clients idle in a transaction this long; 0 is off."),
    S_TIME(transaction_timeout, "0", A, "Disconnect clients whose transaction has been open this long (their server is closed, which rolls it back); 0 is off."),
    S_TIME(suspend_timeout, "10", A, "Seconds SUSPEND waits for every connection's buffers to be passed on; connections whose buffers are still not flushed then are dropped and SUSPEND answers. 0 waits for ever."),
    S_STR(ignore_startup_parameters, "", N, "Startup parameters to accept and ignore (comma separated)."),
    S_STR(track_extra_parameters, "IntervalStyle", R,
          "Parameters tracked per client besides client_encoding, DateStyle, TimeZone, IntervalStyle, "
          "standard_conforming_strings, application_name, search_path and default_transaction_read_only (comma "
          "separated, at most 8): a client's value (startup packet, options, or a SET in transaction pooling) is "
          "set on every server it gets where the server's differs. Parameters PostgreSQL reports to clients "
          "(ParameterStatus) are followed from its reports; the others (search_path before PostgreSQL 18) from "
          "the client's SET / RESET statements in transaction pooling. A SET of a parameter not tracked pins "
          "the client to its server (pin_session_state)."),
    S_BOOL(application_name_add_host, "0", N, "Append the client host and port to application_name."),
    S_BOOL(disable_pqexec, "0", R,
           "Refuse the simple query protocol: a client that sends a Query message is disconnected with \"PQexec "
           "disallowed\" (several statements in one string make some SQL injections possible); only clients "
           "that use the extended protocol alone keep working. The console is not affected."),
    S_INT(max_prepared_statements, "200", A, 0, 0,
          "Protocol-level prepared statements tracked per client in transaction/statement mode; 0 disables."),
    S_BOOL(listen_fanout, "1", A,
           "Transaction pooling: a LISTEN or UNLISTEN sent alone in a simple Query between transactions is served "
           "by pgsluice instead of pinning the client to a server: one listener connection per database LISTENs on "
           "the union of the clients' channels and passes each notification (channel, payload, sending backend's "
           "PID) to every subscribed client, between its transactions. LISTEN inside a transaction block, in a "
           "multi-statement query or through the extended protocol still pins (pin_session_state). Notifications "
           "sent while the listener connection is down (reconnecting) are lost. 0: LISTEN always pins. "
           "pgsluice's own setting."),
    S_INT(listen_queue_max, "10000", A, 1, 100000000,
          "LISTEN fan-out: notifications held for one client that is busy (in a transaction, or not reading); a "
          "client with more waiting is disconnected (as PostgreSQL's notification queue is bounded). "
          "pgsluice's own setting."),
    S_ENUM(pin_session_state, "on", A, pin_mode_names,
           "Transaction/statement pooling: what happens when a client does something whose effect outlives its "
           "transaction on the server (a session advisory lock, CREATE TEMP TABLE, DECLARE ... WITH HOLD, LISTEN, "
           "SQL PREPARE, SET of a parameter pgsluice does not track, SET ROLE). on: the client keeps that server "
           "(session behaviour) until the state is gone (pg_advisory_unlock_all(), DISCARD ALL/TEMP, UNLISTEN *, "
           "DEALLOCATE ALL, CLOSE ALL, RESET ALL) or it disconnects; the server then gets DISCARD ALL before it "
           "goes back to the pool. error: such statements are refused (SQLSTATE 0A000, naming the feature and "
           "this setting). off: nothing is done (the state stays on whichever server ran the statement). "
           "pgsluice's own setting."),

    S_STR(logfile, "", A, "Log file; empty logs to stderr only."),
    S_STR(pidfile, "", R, "PID file; empty writes none."),
    S_BOOL(syslog, "0", A, "Also log to syslog."),
    S_STR(syslog_ident, "pgsluice", A, "Program name used for syslog."),
    S_STR(syslog_facility, "daemon", A, "Syslog facility (daemon, user, local0 .. local7)."),
    S_BOOL(log_connections, "1", A, "Log successful client logins."),
    S_BOOL(log_disconnections, "1", A, "Log client disconnections with reasons."),
    S_BOOL(log_pooler_errors, "1", A, "Log errors the pooler sends to clients."),
    S_BOOL(log_stats, "1", A, "Log aggregated statistics every stats_period."),
    S_TIME(stats_period, "60", A, "Seconds between statistics aggregation and logging."),
    S_INT(verbose, "0", A, 0, 0, "Log verbosity: 0 normal, 1 debug, 2 noise (also -v on the command line)."),
    S_STR(user, "", R, "Operating-system user to switch to after start (also -u)."),

    S_BOOL(tcp_keepalive, "1", N, "Enable TCP keepalive on client and server sockets."),
    S_INT(tcp_keepcnt, "0", N, 0, 0, "TCP_KEEPCNT; 0 keeps the OS default."),
    S_INT(tcp_keepidle, "0", N, 0, 0, "TCP_KEEPIDLE in seconds; 0 keeps the OS default."),
    S_INT(tcp_keepintvl, "0", N, 0, 0, "TCP_KEEPINTVL in seconds; 0 keeps the OS default."),
    S_INT(tcp_user_timeout, "0", N, 0, 0, "TCP_USER_TIMEOUT in milliseconds; 0 keeps the OS default."),
    S_INT(tcp_defer_accept, "1", R, 0, 0, "TCP_DEFER_ACCEPT on listening sockets (0 disables)."),
    S_INT(tcp_socket_buffer, "0", N, 0, 0, "Socket send/receive buffer size in bytes; 0 keeps the OS default."),
    S_INT(tcp_backlog, "128", R, 1, 0, "Backlog for listen(2) (PgBouncer calls it listen_backlog)."),
    S_INT(pkt_buf, "4096", R, 1, 0, "Internal buffer size for packets, in bytes (pgsluice uses at least 1024 whatever the value; PgBouncer takes any size). A connection whose read fills it, as a large result or COPY does, reads in 64 KB pieces (when pkt_buf is smaller) until its socket is drained."),
    S_INT(max_packet_size, "2147483647", A, 1024, 0, "Largest packet accepted from a client, in bytes."),
    S_INT(sbuf_loopcnt, "5", A, 0, 0,
          "Accepted for PgBouncer compatibility, no effect: pgsluice reads a connection once per event-loop turn "
          "(one buffer), so a large result never holds up the other connections of its worker."),
    S_INT(peer_id, "0", R, 0, SL_PEER_ID_MAX,
          "This process's id among [peers] (1..16383; 0: none). With it, cancel keys carry the id, and a cancel "
          "request that reaches another process sharing the port (so_reuseport) is forwarded to this one. The "
          "cancel key then has 16 random bits instead of 32 (the id and a hop count take the rest)."),
    S_BOOL(so_reuseport, "0", R, "Set SO_REUSEPORT on listening sockets so several processes can share a port."),

    /* TLS: files are read again by every RELOAD (new connections get the new contexts, open ones
     * keep theirs); net/tls.c checks them and refuses the config when something does not load. */
    S_ENUM(client_tls_sslmode, "disable", N, tls_mode_names,
           "TLS for client connections: disable (an SSLRequest is answered N), allow and prefer (TLS if the "
           "client asks, a client certificate is not validated), require (clients must use TLS), verify-ca and "
           "verify-full (clients must use TLS and present a certificate signed by client_tls_ca_file)."),
    S_STR(client_tls_key_file, "", N, "Private key (PEM) of the certificate pgsluice shows to clients; needed unless client_tls_sslmode is disable."),
    S_STR(client_tls_cert_file, "", N, "Certificate (PEM, may include the chain) pgsluice shows to clients; needed unless client_tls_sslmode is disable."),
    S_STR(client_tls_ca_file, "", N, "CA certificates (PEM) that client certificates are checked against; needed for verify-ca and verify-full."),
    S_STR(client_tls_protocols, "secure", N,
          "TLS versions clients may use: a list of tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, or secure (tlsv1.2,tlsv1.3), "
          "all or legacy (all four); a name prefixed with ! is removed."),
    S_STR(client_tls_ciphers, "default", N,
          "TLS 1.2 and older cipher list in OpenSSL syntax; default, secure, fast and normal keep OpenSSL's "
          "system-wide default, all enables every cipher OpenSSL offers."),
    S_STR(client_tls13_ciphers, "", N,
          "TLS 1.3 cipher suites (colon separated, e.g. TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256); "
          "empty keeps OpenSSL's default."),
    S_STR(client_tls_dheparams, "auto", N, "DHE key exchange for TLS 1.2 clients: none (off), auto (2048-bit or matching the key), legacy (1024-bit)."),
    S_STR(client_tls_ecdhcurve, "auto", N,
          "Key exchange groups for client connections: auto (OpenSSL's default list), none (no elliptic curves), "
          "or a curve or group name (several: colon separated), e.g. prime256v1 or X25519."),
    S_ENUM(server_tls_sslmode, "prefer", N, tls_mode_names,
           "TLS for server connections over TCP: disable (never asked), allow and prefer (asked for, plain TCP "
           "if the server refuses; the certificate is not validated), require (TLS or no connection), verify-ca "
           "(certificate checked against server_tls_ca_file), verify-full (also the host name)."),
    S_STR(server_tls_ca_file, "", N,
          "CA certificates (PEM) that server certificates are checked against; needed for verify-ca and "
          "verify-full. The value system uses the operating system's CA store."),
    S_STR(server_tls_key_file, "", N, "Private key (PEM) of the client certificate pgsluice shows to servers (with server_tls_cert_file)."),
    S_STR(server_tls_cert_file, "", N, "Client certificate (PEM) pgsluice shows to servers that ask for one (with server_tls_key_file)."),
    S_STR(server_tls_protocols, "secure", N, "TLS versions used with servers; same syntax as client_tls_protocols."),
    S_STR(server_tls_ciphers, "default", N, "TLS 1.2 and older cipher list for server connections; same syntax as client_tls_ciphers."),
    S_STR(server_tls13_ciphers, "", N, "TLS 1.3 cipher suites for server connections; empty keeps OpenSSL's default."),

    S_STR(http_listen_addr, "127.0.0.1", R, "Address of the HTTP endpoint (metrics/health)."),
    S_INT(http_port, "8081", R, 0, 65535, "Port of the HTTP endpoint; 0 disables it."),
    S_STR(http_token, "", A, "Bearer token required by the HTTP endpoint; empty requires none. SHOW CONFIG shows it masked.",
          .flags = SL_SETTING_SECRET),

    /* primary/replica routing (databases with roles: role_map, target_session_attrs, read_write_split) */
    S_TIME(health_check_period, "1", A,
           "Seconds between two health checks of each host of a database with roles: one query on a connection "
           "of its own (reachable, pg_is_in_recovery(), WAL position; replay lag on replicas). While a database "
           "has no reachable primary its hosts are checked every 250 ms (or this often, if shorter), so a "
           "promotion is noticed at once."),
    S_TIME(health_check_timeout, "2", A,
           "Seconds a health check (connect, log in, query) may take; a host that does not answer in time is "
           "down."),
    S_STR(health_check_user, "", A,
          "User the health checks log in as (any user may run them): its password from "
          "health_check_password_file, else its plain-text auth_file entry (none: trust or peer on the server). "
          "Empty: a database's forced user (user= with password=). A database with roles and nobody to check its "
          "hosts as refuses the configuration."),
    S_STR(health_check_password_file, "", A,
          "File holding health_check_user's password (a Docker or Kubernetes secret; trailing newlines are "
          "dropped), read for each new check connection; empty: its auth_file entry."),
    S_TIME(max_replica_lag, "10", A,
           "A replica whose replay lags the primary by more than this many seconds leaves the rotation until it "
           "catches up; 0 is no limit. A [databases] entry may override it."),
    S_INT(max_replica_lag_bytes, "0", A, 0, 0,
          "A replica whose replay lags the primary's WAL by more than this many bytes leaves the rotation; 0 is "
          "no limit. A [databases] entry may override it."),
    S_BOOL(replica_fallback, "1", A,
           "Reads go to the primary while no replica is in rotation (down, lagging). Off: they wait for a replica "
           "(query_wait_timeout). target_session_attrs=prefer-standby always falls back, standby never."),
    S_ENUM(replica_load_balance, "least-outstanding", A, replica_lb_names,
           "How new server connections for reads are spread over the replicas in rotation: least-outstanding "
           "(the replica with the fewest busy server connections of the pool) or round-robin."),
    S_BOOL(read_write_split, "0", A,
           "In a database with several hosts or roles, transactions declared read-only (BEGIN READ ONLY, START "
           "TRANSACTION READ ONLY, a first statement SET TRANSACTION READ ONLY, default_transaction_read_only=on "
           "in the startup packet or options) go to replicas, everything else to the primary. Statements are not "
           "guessed at. A [databases] entry may override it."),
    S_BOOL(read_your_writes, "1", A,
           "With read_write_split: after a client's transaction on the primary, its reads go to a replica only "
           "once that replica has replayed the primary's WAL position seen by a health check that began after "
           "the transaction ended (until then, to the primary)."),
    S_STR(failover_command, "", A,
          "Shell command run (by /bin/sh, off the worker threads) when a database's primary becomes unreachable; "
          "environment: PGSLUICE_DATABASE, PGSLUICE_HOST, PGSLUICE_PORT, PGSLUICE_EVENT=primary_lost. Promotion "
          "itself is left to it or to the operator: pgsluice routes writes to whichever host reports "
          "pg_is_in_recovery() false. Its exit status is logged; it is killed after 60 seconds."),
};
const size_t sl_settings_count = sizeof(sl_settings) / sizeof(sl_settings[0]);
#undef R
#undef N
#undef A
#undef NI

const char *sl_apply_name(sl_apply a)
{
    switch (a) {
    case SL_APPLY_RESTART: return "restart";
    case SL_APPLY_NEW: return "new connections";
    case SL_APPLY_ALL: return "yes";
    }
    return "?";
}

const char *sl_pool_mode_name(sl_pool_mode m)
{
    return (m >= SL_POOL_SESSION && m <= SL_POOL_STATEMENT) ? pool_mode_names[m] : "unknown";
}

const char *sl_tls_mode_name(sl_tls_mode m)
{
    return (m >= SL_TLS_DISABLE && m <= SL_TLS_VERIFY_FULL) ? tls_mode_names[m] : "unknown";
}

const char *sl_auth_type_name(sl_auth_type t)
{
    return (t >= SL_AUTH_TRUST && t <= SL_AUTH_LDAP) ? auth_type_names[t] : "unknown";
}

void sl_cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_verrf(err, errlen, fmt, ap);
    va_end(ap);
}

char *sl_cfg_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

const sl_setting *sl_setting_find(const char *name)
{
    if (!name) return NULL;
    const char *target = sl_setting_alias_target(name);
    if (target) name = target;
    for (size_t i = 0; i < sl_settings_count; i++)
        if (strcasecmp(sl_settings[i].name, name) == 0) return &sl_settings[i];
    return NULL;
}

/* ---- value parsers ---- */

static const char *skip_ws(const char *s)
{
    while (isspace((unsigned char)*s)) s++;
    return s;
}

/* Parse an integer with optional surrounding whitespace; base 8 or 10. */
static bool parse_int64(const char *text, int base, int64_t *out)
{
    const char *s = skip_ws(text);
    if (!isdigit((unsigned char)*s) && !(*s == '-' && isdigit((unsigned char)s[1]))) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, base);
    if (errno || end == s || *skip_ws(end) != '\0') return false;
    *out = v;
    return true;
}

bool sl_parse_int_range(const char *text, int64_t lo, int64_t hi, int *out)
{
    int64_t v;
    if (!text || !parse_int64(text, 10, &v) || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

bool sl_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "yes", "on", "true"};
    static const char *const no[] = {"0", "no", "off", "false"};
    if (!text) return false;
    const char *s = skip_ws(text);
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == len && strncasecmp(s, yes[i], len) == 0) return *out = true, true;
        if (strlen(no[i]) == len && strncasecmp(s, no[i], len) == 0) return *out = false, true;
    }
    return false;
}

/* Microseconds per unit for a time suffix; 0 if unknown. Empty suffix = seconds. */
static double time_unit(const char *u, size_t len)
{
    static const struct { const char *name; double mult; } units[] = {
        {"", 1e6}, {"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"sec", 1e6}, {"min", 60e6}, {"h", 3600e6}, {"d", 86400e6},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i].name) == len && strncasecmp(u, units[i].name, len) == 0) return units[i].mult;
    return 0;
}

bool sl_parse_time_usec(const char *text, int64_t *usec)
{
    if (!text) return false;
    const char *s = skip_ws(text);
    if (!isdigit((unsigned char)*s) && *s != '.') return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0) return false;
    const char *u = skip_ws(end);
    size_t ulen = 0;
    while (isalpha((unsigned char)u[ulen])) ulen++;
    if (*skip_ws(u + ulen) != '\0') return false;
    double mult = time_unit(u, ulen);
    if (mult == 0) return false;
    double r = v * mult;
    if (r > 9.0e18) return false;
    *usec = (int64_t)(r + 0.5); /* r >= 0: round to nearest without libm */
    return true;
}

bool sl_parse_pool_mode(const char *text, int *out)
{
    for (int i = 0; text && pool_mode_names[i]; i++)
        if (strcasecmp(text, pool_mode_names[i]) == 0) return *out = i, true;
    return false;
}

static bool parse_enum(const sl_setting *s, const char *text, int *out)
{
    const char *t = skip_ws(text);
    size_t len = strlen(t);
    while (len > 0 && isspace((unsigned char)t[len - 1])) len--;
    for (int i = 0; s->enum_names[i]; i++)
        if (strlen(s->enum_names[i]) == len && strncasecmp(t, s->enum_names[i], len) == 0) return *out = i, true;
    return false;
}

/* Append " (expected a, b or c)" for an enum, or the allowed range for an int. */
static void value_hint(const sl_setting *s, char *buf, size_t len)
{
    buf[0] = '\0';
    if (s->type == SL_T_ENUM) {
        size_t n = 0;
        while (s->enum_names[n]) n++;
        size_t used = (size_t)snprintf(buf, len, " (expected ");
        for (size_t i = 0; i < n && used < len; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", s->enum_names[i],
                                     i + 2 < n ? ", " : i + 2 == n ? " or " : ")");
    } else if (s->type == SL_T_INT) {
        int64_t hi = s->max_value ? s->max_value : INT_MAX;
        if (s->flags & SL_SETTING_OCTAL)
            snprintf(buf, len, " (expected an octal mode from 0 to 0%llo)", (unsigned long long)hi);
        else
            snprintf(buf, len, " (expected an integer from %lld to %lld)", (long long)s->min_value, (long long)hi);
    } else if (s->type == SL_T_BOOL) {
        snprintf(buf, len, " (expected 1/0, yes/no, on/off or true/false)");
    } else if (s->type == SL_T_TIME) {
        snprintf(buf, len, " (expected seconds, e.g. 30, 0.5, 250ms, 2min)");
    }
}

static void *field_ptr(sl_config *c, const sl_setting *s)
{
    return (char *)c + s->offset;
}

static const void *field_cptr(const sl_config *c, const sl_setting *s)
{
    return (const char *)c + s->offset;
}

/* Parse text for s; on success store into c. */
static bool store_value(sl_config *c, const sl_setting *s, const char *value)
{
    int64_t v64;
    bool b;
    int iv;
    switch (s->type) {
    case SL_T_INT: {
        int64_t hi = s->max_value ? s->max_value : INT_MAX;
        if (!parse_int64(value, (s->flags & SL_SETTING_OCTAL) ? 8 : 10, &v64)) return false;
        if (v64 < s->min_value || v64 > hi) return false;
        *(int *)field_ptr(c, s) = (int)v64;
        return true;
    }
    case SL_T_BOOL:
        if (!sl_parse_bool(value, &b)) return false;
        *(int *)field_ptr(c, s) = b ? 1 : 0;
        return true;
    case SL_T_TIME:
        if (!sl_parse_time_usec(value, &v64)) return false;
        *(int64_t *)field_ptr(c, s) = v64;
        return true;
    case SL_T_ENUM:
        if (!parse_enum(s, value, &iv)) return false;
        *(int *)field_ptr(c, s) = iv;
        return true;
    case SL_T_STRING: {
        char *dup = strdup(value);
        if (!dup) return false;
        char **slot = field_ptr(c, s);
        free(*slot);
        *slot = dup;
        return true;
    }
    }
    return false;
}

bool sl_setting_set(sl_config *c, const sl_setting *s, const char *value, char *err, size_t errlen)
{
    if (!c || !s) return sl_cfg_err(err, errlen, "no such setting"), false;
    if (!value) value = "";
    if (store_value(c, s, value)) return true;
    char hint[160];
    value_hint(s, hint, sizeof(hint));
    sl_cfg_err(err, errlen, "invalid value for %s: \"%s\"%s", s->name, value, hint);
    return false;
}

/* Seconds with up to 6 decimals, trailing zeros removed. */
static void format_time(int64_t usec, char *buf, size_t len)
{
    long long secs = (long long)(usec / 1000000), frac = (long long)(usec % 1000000);
    if (frac == 0) {
        snprintf(buf, len, "%lld", secs);
        return;
    }
    char f[8];
    snprintf(f, sizeof(f), "%06lld", frac);
    size_t n = strlen(f);
    while (n > 0 && f[n - 1] == '0') f[--n] = '\0';
    snprintf(buf, len, "%lld.%s", secs, f);
}

const char *sl_setting_format(const sl_config *c, const sl_setting *s, char *buf, size_t len)
{
    if (!buf || len == 0) return buf;
    buf[0] = '\0';
    if (!c || !s) return buf;
    const void *p = field_cptr(c, s);
    switch (s->type) {
    case SL_T_INT:
        if (s->flags & SL_SETTING_OCTAL)
            snprintf(buf, len, "0%o", (unsigned)*(const int *)p);
        else
            snprintf(buf, len, "%d", *(const int *)p);
        break;
    case SL_T_BOOL: snprintf(buf, len, "%d", *(const int *)p ? 1 : 0); break;
    case SL_T_TIME: format_time(*(const int64_t *)p, buf, len); break;
    case SL_T_ENUM: {
        int v = *(const int *)p, n = 0;
        while (s->enum_names[n]) n++;
        snprintf(buf, len, "%s", v >= 0 && v < n ? s->enum_names[v] : "unknown");
        break;
    }
    case SL_T_STRING: {
        const char *str = *(char *const *)p;
        snprintf(buf, len, "%s", str ? str : "");
        break;
    }
    }
    return buf;
}

void sl_config_free_settings(sl_config *c)
{
    for (size_t i = 0; i < sl_settings_count; i++) {
        if (sl_settings[i].type != SL_T_STRING) continue;
        char **slot = field_ptr(c, &sl_settings[i]);
        free(*slot);
        *slot = NULL;
    }
}

bool sl_config_copy_settings(sl_config *dst, const sl_config *src)
{
    bool ok = true;
    for (size_t i = 0; i < sl_settings_count; i++) {
        if (sl_settings[i].type != SL_T_STRING) continue;
        char **slot = field_ptr(dst, &sl_settings[i]);
        const char *from = *(char *const *)field_cptr(src, &sl_settings[i]);
        *slot = sl_cfg_strdup(from);
        if (from && !*slot) ok = false;
    }
    return ok;
}

sl_config *sl_config_new_default(void)
{
    sl_config *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    for (size_t i = 0; i < sl_settings_count; i++) {
        if (!store_value(c, &sl_settings[i], sl_settings[i].default_value)) {
            sl_config_free_settings(c);
            free(c);
            return NULL;
        }
    }
    c->refcount = 1;
    return c;
}
