/* config.h - the immutable configuration snapshot: global settings, [databases], [users], auth file.
 *
 * A snapshot is built by sl_config_load() and never changed afterwards. Workers hold a reference
 * while they use it; RELOAD builds a new snapshot and swaps the global pointer (sl_config_current()).
 * Time settings are stored in microseconds (int64_t); -1 in a per-database/per-user integer means
 * "not set, use the global default".
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SL_POOL_SESSION = 0,
    SL_POOL_TRANSACTION = 1,
    SL_POOL_STATEMENT = 2,
} sl_pool_mode;

/* How a database with several hosts spreads new server connections (load_balance_hosts). */
typedef enum {
    SL_LB_ROUND_ROBIN = 0, /* each new connection to the next host (PgBouncer's default) */
    SL_LB_DISABLE,         /* the same host until a connection to it fails, then the next */
} sl_load_balance;

typedef enum {
    SL_AUTH_TRUST = 0,
    SL_AUTH_PLAIN,
    SL_AUTH_MD5,
    SL_AUTH_SCRAM,
    SL_AUTH_ANY,
    SL_AUTH_HBA,  /* the first matching rule of auth_hba_file decides (cfg->hba) */
    SL_AUTH_CERT, /* a verified TLS client certificate whose CN is the user name */
    SL_AUTH_PAM,  /* cleartext password checked by PAM (service "pgbouncer") */
    SL_AUTH_LDAP, /* cleartext password checked against LDAP (auth_ldap_options, kept as cfg->hba) */
} sl_auth_type;

/* TLS modes (client_tls_sslmode, server_tls_sslmode), PgBouncer's and libpq's names and order. */
typedef enum {
    SL_TLS_DISABLE = 0,
    SL_TLS_ALLOW,
    SL_TLS_PREFER,
    SL_TLS_REQUIRE,
    SL_TLS_VERIFY_CA,
    SL_TLS_VERIFY_FULL,
} sl_tls_mode;

const char *sl_pool_mode_name(sl_pool_mode m);
const char *sl_tls_mode_name(sl_tls_mode m);
const char *sl_auth_type_name(sl_auth_type t);

/* What a host of a [databases] entry is expected to be (role_map). What its health checks find
 * (pg_is_in_recovery()) wins: a promoted replica is a primary, a primary back in recovery a replica. */
typedef enum {
    SL_HOSTROLE_AUTO = 0, /* whatever the checks find */
    SL_HOSTROLE_PRIMARY,
    SL_HOSTROLE_REPLICA,
} sl_host_role;
const char *sl_host_role_name(int r);

/* Which servers a database's clients get (target_session_attrs, libpq's names). */
typedef enum {
    SL_TSA_ANY = 0,        /* any reachable host, whatever its role */
    SL_TSA_READ_WRITE,     /* the primary */
    SL_TSA_PRIMARY,        /* the primary (same as read-write) */
    SL_TSA_READ_ONLY,      /* replicas; the primary when none is in rotation and replica_fallback is on */
    SL_TSA_STANDBY,        /* replicas only */
    SL_TSA_PREFER_STANDBY, /* replicas; the primary when none is in rotation (always) */
} sl_target_session;
const char *sl_tsa_name(int t);
/* Parse a target_session_attrs value; false if unknown. */
bool sl_parse_tsa(const char *text, int *out);

/* How reads are spread over the replicas in rotation (replica_load_balance). */
typedef enum {
    SL_REPLICA_LB_LEAST_OUTSTANDING = 0, /* the replica with the fewest busy server connections */
    SL_REPLICA_LB_ROUND_ROBIN,           /* each new server connection to the next replica */
} sl_replica_lb;

/* One host of a [databases] entry. */
typedef struct sl_host_def {
    char *host;              /* NULL: unix socket default dir; starting with '/': unix socket dir */
    int port;
    int role;                /* sl_host_role from role_map */
} sl_host_def;

/* One [databases] entry. Strings are NULL when not given. */
typedef struct sl_db_def {
    char *name;              /* the name clients connect to ("*" for the fallback entry) */
    char *host;              /* as written: one host or a comma-separated list */
    int port;                /* the first host's port (default 5432) */
    char *port_list;         /* as written: one port for every host, or one per host */
    sl_host_def *hosts;      /* host and port paired up, in the order given; at least one */
    int nhosts;
    char *dbname;            /* server-side database name; NULL = same as name (or client's db for "*") */
    char *user;              /* forced server user; NULL = client's user */
    char *password;          /* password for the forced user / for the server login */
    char *auth_user;
    char *auth_query;
    char *auth_dbname;
    int pool_size;           /* -1 = default_pool_size */
    int min_pool_size;       /* -1 = global */
    int reserve_pool_size;   /* -1 = global (also accepts the old key reserve_pool) */
    int max_db_connections;  /* -1 = global */
    int max_db_client_connections; /* -1 = unlimited */
    int pool_mode;           /* -1 = global, else sl_pool_mode */
    int load_balance_hosts;  /* sl_load_balance */
    /* primary/replica routing; -1 (NULL) = not set, the global setting applies */
    char *role_map;          /* as written: one role per host */
    int target_session_attrs;    /* sl_target_session */
    int read_write_split;
    int replica_fallback;
    int replica_load_balance;    /* sl_replica_lb */
    int max_replica_lag_bytes;
    int64_t max_replica_lag;     /* usec */
    int64_t server_lifetime;     /* usec; -1 = global */
    int64_t query_wait_timeout;  /* usec; -1 = user's or global */
    char *connect_query;
    char *client_encoding;
    char *datestyle;
    char *timezone;
    char *application_name;
    int line;                /* config line it came from */
} sl_db_def;

/* One [users] entry. Times in usec; -1 = not set (the database's or the global value applies). */
typedef struct sl_user_def {
    char *name;
    int pool_mode;            /* -1 = not set */
    int max_user_connections; /* -1 = global */
    int max_user_client_connections; /* -1 = unlimited */
    int pool_size;            /* -1 = not set */
    int reserve_pool_size;    /* -1 = not set */
    int64_t query_timeout, query_wait_timeout, idle_transaction_timeout, transaction_timeout, client_idle_timeout;
    int64_t pool_idle_timeout; /* usec; -1 = the global value */
} sl_user_def;

/* One [peers] entry: another process sharing the listening port (so_reuseport). */
#define SL_PEER_ID_MAX 16383
typedef struct sl_peer_def {
    int id;                   /* 1..SL_PEER_ID_MAX */
    char *host;               /* address, or a Unix socket directory (starts with /) */
    int port;
    int pool_size;            /* -1 = not set (shown by SHOW PEERS; cancels are not pooled) */
} sl_peer_def;

/* One auth_file (userlist.txt) entry: "user" "password-or-md5-or-SCRAM-secret". */
typedef struct sl_userlist_entry {
    char *name;
    char *password; /* as written: plain text, "md5<32 hex>" or "SCRAM-SHA-256$..." */
} sl_userlist_entry;

typedef struct sl_config {
    /* --- the [pgbouncer]/[pgsluice] section; field names are the setting names --- */
    char *listen_addr;
    int listen_port;
    char *unix_socket_dir;
    int unix_socket_mode;
    char *unix_socket_group;
    int workers;              /* 0 in the file = number of CPUs; resolved at load */

    int auth_type;            /* sl_auth_type */
    char *auth_file;
    char *auth_hba_file;
    char *auth_ident_file;
    char *auth_ldap_options;
    char *auth_user;
    char *auth_query;
    char *auth_dbname;
    int64_t auth_cache_ttl;   /* usec */
    char *admin_users;        /* comma/space separated list */
    char *stats_users;

    int pool_mode;            /* sl_pool_mode */
    int max_client_conn;
    int default_pool_size;
    int min_pool_size;
    int reserve_pool_size;
    int64_t reserve_pool_timeout;   /* usec */
    int max_db_connections;         /* 0 = unlimited */
    int max_user_connections;       /* 0 = unlimited */
    int max_db_client_connections;  /* 0 = unlimited */
    int max_user_client_connections; /* 0 = unlimited */
    int server_round_robin;
    char *server_reset_query;
    int server_reset_query_always;
    char *server_check_query;
    int64_t server_check_delay;     /* usec */
    int server_fast_close;
    int64_t server_lifetime;        /* usec, 0 = unlimited */
    int64_t server_idle_timeout;    /* usec, 0 = never */
    int64_t server_connect_timeout; /* usec */
    int64_t server_login_retry;     /* usec */
    int64_t dns_max_ttl;            /* usec */
    int64_t autodb_idle_timeout;    /* usec: unused pools are freed after this long */
    int64_t pool_idle_timeout;      /* usec: when set (> 0), instead of autodb_idle_timeout */
    int64_t client_login_timeout;   /* usec */
    int64_t auth_failure_delay;     /* usec */
    int64_t query_wait_notify;      /* usec */
    int scram_iterations;
    int64_t query_timeout;          /* usec, 0 = off */
    int64_t query_wait_timeout;     /* usec, 0 = wait forever */
    int64_t cancel_wait_timeout;    /* usec */
    int64_t client_idle_timeout;    /* usec, 0 = off */
    int64_t idle_transaction_timeout; /* usec, 0 = off */
    int64_t transaction_timeout;    /* usec, 0 = off */
    int64_t suspend_timeout;        /* usec */
    char *ignore_startup_parameters;
    char *track_extra_parameters;
    int application_name_add_host;
    int disable_pqexec;
    int max_prepared_statements;
    int pin_session_state;          /* sl_pin_mode: off, on, error */
    int listen_fanout;              /* LISTEN served by one listener connection per database */
    int listen_queue_max;           /* notifications held for one client before it is dropped */

    char *logfile;
    char *pidfile;
    int syslog;
    char *syslog_ident;
    char *syslog_facility;
    int log_connections;
    int log_disconnections;
    int log_pooler_errors;
    int log_stats;
    int64_t stats_period;           /* usec */
    int verbose;
    char *user;                     /* -u: drop privileges to this OS user */

    int tcp_keepalive;
    int tcp_keepcnt;
    int tcp_keepidle;
    int tcp_keepintvl;
    int tcp_user_timeout;
    int tcp_defer_accept;
    int tcp_socket_buffer;
    int tcp_backlog;
    int pkt_buf;
    int max_packet_size;
    int sbuf_loopcnt;
    int peer_id;              /* [peers]: this process (0: none) */
    int so_reuseport;

    /* TLS (net/tls.c builds the contexts from these; strings "" = not set) */
    int client_tls_sslmode;         /* sl_tls_mode: applications -> pgsluice */
    char *client_tls_key_file;
    char *client_tls_cert_file;
    char *client_tls_ca_file;
    char *client_tls_protocols;
    char *client_tls_ciphers;
    char *client_tls13_ciphers;
    char *client_tls_dheparams;
    char *client_tls_ecdhcurve;
    int server_tls_sslmode;         /* sl_tls_mode: pgsluice -> PostgreSQL */
    char *server_tls_ca_file;
    char *server_tls_key_file;
    char *server_tls_cert_file;
    char *server_tls_protocols;
    char *server_tls_ciphers;
    char *server_tls13_ciphers;

    char *http_listen_addr;
    int http_port;
    char *http_token;

    /* primary/replica routing and health checks (databases with roles: sl_db_routing_of) */
    int64_t health_check_period;    /* usec */
    int64_t health_check_timeout;   /* usec */
    char *health_check_user;
    char *health_check_password_file;
    int64_t max_replica_lag;        /* usec, 0 = no limit */
    int max_replica_lag_bytes;      /* 0 = no limit */
    int replica_fallback;
    int replica_load_balance;       /* sl_replica_lb */
    int read_write_split;
    int read_your_writes;
    char *failover_command;

    /* --- [databases], [users], auth_file ---
     * (added note) String settings above are never NULL after load: "" means not set.
     * dbs, users and userlist are sorted by name (strcmp); a repeated name keeps the later entry. */
    sl_db_def *dbs;
    size_t n_dbs;
    sl_user_def *users;
    size_t n_users;
    sl_userlist_entry *userlist;
    size_t n_userlist;
    /* auth rules (reference counted, shared by clones): auth_type hba: auth_hba_file; ldap: one rule
     * made from auth_ldap_options; NULL otherwise. ident: auth_ident_file (hba only) or NULL. */
    struct sl_hba *hba;
    struct sl_ident *ident;
    sl_peer_def *peers;       /* [peers], in file order */
    size_t n_peers;

    char *path;          /* the main config file */
    int refcount;        /* managed by sl_config_ref/unref (atomic) */
} sl_config;

/* Load and validate a config file (and its auth_file). On failure returns NULL and writes
 * "file:line: reason" into err. Warnings (settings PgBouncer knows that we do not implement)
 * are logged through sl_log. */
sl_config *sl_config_load(const char *path, char *err, size_t errlen);
void sl_config_ref(sl_config *c);
void sl_config_unref(sl_config *c);

/* The global current snapshot (set at start and on reload). sl_config_acquire returns it with a
 * reference taken; release with sl_config_unref. */
sl_config *sl_config_acquire(void);
void sl_config_set_current(sl_config *c); /* takes over the caller's reference */

/* (Re)load the auth rules of c from its settings (auth_type, auth_hba_file, auth_ident_file,
 * auth_ldap_options) into c->hba / c->ident. false + err (c unchanged): a file that does not load,
 * a map no line defines, auth_type hba without auth_hba_file, ldap without auth_ldap_options. */
bool sl_config_load_auth_rules(sl_config *c, char *err, size_t errlen);

/* Look-ups. find_db falls back to the "*" entry when name is unknown (returns NULL if neither). */
const sl_db_def *sl_config_find_db(const sl_config *c, const char *name);
const sl_user_def *sl_config_find_user(const sl_config *c, const char *name);
const sl_userlist_entry *sl_config_find_userlist(const sl_config *c, const char *name);
const sl_peer_def *sl_config_find_peer(const sl_config *c, int id);

/* How a database's clients are routed over its hosts, resolved from its entry and the global
 * settings. A database has roles (routed) when its entry names a role_map, a target_session_attrs
 * other than any, or several hosts with read_write_split on; its hosts are then health checked and
 * each client is given a server of the role it needs. Otherwise (routed false) its hosts are used
 * as PgBouncer does (load_balance_hosts) and nothing else here applies. */
typedef struct sl_db_routing {
    bool routed;
    int target;              /* sl_target_session: read-write when routed and not set */
    bool read_write_split;   /* declared read-only transactions go to replicas */
    bool replica_fallback;   /* reads go to the primary when no replica is in rotation */
    bool read_your_writes;
    int replica_lb;          /* sl_replica_lb */
    int64_t max_lag_us;      /* 0: no limit */
    int64_t max_lag_bytes;   /* 0: no limit */
} sl_db_routing;
void sl_db_routing_of(const sl_config *c, const sl_db_def *d, sl_db_routing *out);
/* Who health checks a routed database's hosts log in as, and where: health_check_user (password
 * from health_check_password_file, else auth_file), else the entry's forced user (password= or
 * auth_file). false: nobody (user NULL). password and password_file NULL: none known (trust, peer);
 * password_file set: read it at each new check connection. */
bool sl_db_health_login(const sl_config *c, const sl_db_def *d, const char **user, const char **password,
                        const char **password_file, const char **dbname);
/* The content of a file holding a secret, trailing newlines dropped (malloc'd; wipe and free it), or
 * NULL with the file name and reason in err. */
char *sl_read_secret_file(const char *path, char *err, size_t errlen);

/* Is item in a comma/whitespace separated list (case-insensitive)? "*" in the list matches all. */
bool sl_list_contains(const char *list, const char *item);

/* The settings table, for SHOW CONFIG, SET and docs. */
typedef enum { SL_T_INT, SL_T_BOOL, SL_T_STRING, SL_T_TIME, SL_T_ENUM } sl_setting_type;
/* When a changed value (RELOAD, SET) takes effect. Workers always read the current snapshot, so a
 * setting consulted while a connection lives applies to open connections too (ALL); one consulted
 * only when a connection starts applies to new ones (NEW). */
typedef enum {
    SL_APPLY_RESTART = 0, /* read once at start: a change needs a restart (refused by SET) */
    SL_APPLY_NEW,         /* connections made after the change */
    SL_APPLY_ALL,         /* also connections already open */
} sl_apply;
typedef struct sl_setting {
    const char *name;
    sl_setting_type type;
    size_t offset;            /* into sl_config */
    const char *default_value;
    sl_apply apply;           /* when a change takes effect */
    const char *const *enum_names; /* SL_T_ENUM: NULL-terminated names, index = value */
    const char *description;
    /* --- added: value constraints and flags (zero-initialised rows get the defaults) --- */
    int64_t min_value;        /* SL_T_INT: smallest allowed value (0 by default) */
    int64_t max_value;        /* SL_T_INT: largest allowed value; 0 means INT_MAX */
    unsigned flags;           /* SL_SETTING_* below */
} sl_setting;
#define SL_SETTING_OCTAL 0x1u /* SL_T_INT written and shown in octal (unix_socket_mode) */
#define SL_SETTING_UNIMPLEMENTED 0x2u /* PgBouncer's setting, accepted and warned about, no effect yet */
#define SL_SETTING_SECRET 0x4u        /* a credential: never shown (SHOW CONFIG masks it) */
static inline bool sl_setting_reloadable(const sl_setting *s) { return s->apply != SL_APPLY_RESTART; }
const char *sl_apply_name(sl_apply a); /* "restart", "new connections", "yes" */
extern const sl_setting sl_settings[];
extern const size_t sl_settings_count;

/* Render a setting's current value as text (for SHOW CONFIG). Returns buf. */
const char *sl_setting_format(const sl_config *c, const sl_setting *s, char *buf, size_t len);
/* Set one setting on a config copy from text (SET name = value). false + err on a bad value. */
bool sl_setting_set(sl_config *c, const sl_setting *s, const char *value, char *err, size_t errlen);
const sl_setting *sl_setting_find(const char *name);
/* Deep copy (for SET on a running config). */
sl_config *sl_config_clone(const sl_config *c);

/* --- added --- */
/* A snapshot holding only the table defaults (refcount 1, no databases/users; workers stays 0). */
sl_config *sl_config_new_default(void);
/* Read a PgBouncer-style auth_file ("user" "secret" per line). On success *out and *n hold the entries
 * sorted by name (a repeated name keeps the later line); on failure "file:line: reason" in err. */
bool sl_userlist_load(const char *path, sl_userlist_entry **out, size_t *n, char *err, size_t errlen);
void sl_userlist_free(sl_userlist_entry *e, size_t n);
/* Parse a time value ("30", "0.5", "250ms", "2min", "1h"; plain numbers are seconds) into usec. */
bool sl_parse_time_usec(const char *text, int64_t *usec);
/* Parse a boolean (1/0, yes/no, on/off, true/false; case-insensitive). */
bool sl_parse_bool(const char *text, bool *out);

#endif
