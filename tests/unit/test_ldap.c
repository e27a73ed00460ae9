/* test_ldap.c - sl_ldap_check against a throwaway OpenLDAP server: slapd started in a temporary directory on
 * free loopback ports (plain + StartTLS, and ldaps) with a test CA made by the openssl command, a few users
 * loaded with slapadd; stopped and removed at the end. slapd missing is a failure, not a skip:
 * scripts/install-deps.sh installs it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/ldap.h"

#define SLAPD "/usr/sbin/slapd"
#define SLAPADD "/usr/sbin/slapadd"
#define BASE "dc=example,dc=com"

static struct {
    char dir[64];
    pid_t pid;
    int port;     /* ldap:// (StartTLS available) */
    int tls_port; /* ldaps:// */
    char port_text[16];
} fx;

/* ---- fixture helpers ---- */

static bool run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        fprintf(stderr, "test_ldap: command failed: %s\n", cmd);
        return false;
    }
    return true;
}

static bool write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* A port nobody listens on right now (the kernel's pick). */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(s, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(s);
    return ntohs(a.sin_port);
}

static bool port_accepts(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (s >= 0) close(s);
    return ok;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void show_log(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "tail -n 30 %s/slapd.log >&2", fx.dir);
    if (system(cmd) != 0) fprintf(stderr, "(no slapd log)\n");
}

static void stop_slapd(void)
{
    if (fx.pid <= 0) return;
    kill(fx.pid, SIGTERM);
    for (double deadline = now_s() + 10; now_s() < deadline;) {
        if (waitpid(fx.pid, NULL, WNOHANG) == fx.pid) {
            fx.pid = 0;
            return;
        }
        poll(NULL, 0, 20);
    }
    kill(fx.pid, SIGKILL);
    waitpid(fx.pid, NULL, 0);
    fx.pid = 0;
}

/* Start slapd on two fresh ports and wait (with a deadline) until both accept connections. */
static bool start_slapd(void)
{
    fx.port = free_port();
    fx.tls_port = free_port();
    if (fx.port < 0 || fx.tls_port < 0 || fx.port == fx.tls_port) return false;
    snprintf(fx.port_text, sizeof(fx.port_text), "%d", fx.port);
    char conf[128], urls[128], log[128];
    snprintf(conf, sizeof(conf), "%s/slapd.conf", fx.dir);
    snprintf(urls, sizeof(urls), "ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", fx.port, fx.tls_port);
    snprintf(log, sizeof(log), "%s/slapd.log", fx.dir);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a crashed test must not leave slapd running */
        if (getppid() == 1) _exit(127);
        /* -d keeps slapd in the foreground (our child, so we can stop it) */
        execl(SLAPD, "slapd", "-d", "0", "-f", conf, "-h", urls, (char *)NULL);
        _exit(127);
    }
    fx.pid = pid;
    for (double deadline = now_s() + 20; now_s() < deadline;) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fx.pid = 0;
            fprintf(stderr, "test_ldap: slapd exited at start-up:\n");
            show_log();
            return false;
        }
        if (port_accepts(fx.port) && port_accepts(fx.tls_port)) return true;
        poll(NULL, 0, 20);
    }
    fprintf(stderr, "test_ldap: slapd did not listen within 20 s:\n");
    show_log();
    stop_slapd();
    return false;
}

static const char *const LDIF =
    "dn: " BASE "\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n"
    "dn: ou=people," BASE "\nobjectClass: organizationalUnit\nou: people\n\n"
    "dn: ou=staff," BASE "\nobjectClass: organizationalUnit\nou: staff\n\n"
    "dn: cn=reader," BASE "\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\n"
    "userPassword: reader-pw\n\n"
    "dn: uid=alice,ou=people," BASE "\nobjectClass: inetOrgPerson\nuid: alice\ncn: Alice\nsn: A\n"
    "mail: alice@example.com\nuserPassword: alice-pw\n\n"
    "dn: uid=bob,ou=people," BASE "\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\nsn: B\n"
    "mail: shared@example.com\nuserPassword: bob-pw\n\n"
    "dn: uid=carol,ou=people," BASE "\nobjectClass: inetOrgPerson\nuid: carol\ncn: Carol\nsn: C\n"
    "mail: shared@example.com\nuserPassword: carol-pw\n\n"
    "dn: uid=a\\,b,ou=people," BASE "\nobjectClass: inetOrgPerson\nuid: a,b\ncn: comma\nsn: C\n"
    "userPassword: comma-pw\n\n"
    "dn: cn=star,ou=people," BASE "\nobjectClass: inetOrgPerson\nuid: *\ncn: star\nsn: S\n"
    "userPassword: star-pw\n\n"
    "dn: uid=dave,ou=staff," BASE "\nobjectClass: inetOrgPerson\nuid: dave\ncn: Dave\nsn: D\n"
    "userPassword: dave-pw\n";

static int setup(void **state)
{
    (void)state;
    if (access(SLAPD, X_OK) != 0 || access(SLAPADD, X_OK) != 0) {
        fprintf(stderr, "test_ldap: %s is not installed: scripts/install-deps.sh installs the slapd package\n",
                SLAPD);
        return -1;
    }
    strcpy(fx.dir, "/tmp/sl_test_ldap_XXXXXX");
    if (!mkdtemp(fx.dir)) return -1;
    char conf[4096];
    snprintf(conf, sizeof(conf),
             "include /etc/ldap/schema/core.schema\n"
             "include /etc/ldap/schema/cosine.schema\n"
             "include /etc/ldap/schema/inetorgperson.schema\n"
             "pidfile %1$s/slapd.pid\n"
             "argsfile %1$s/slapd.args\n"
             "modulepath /usr/lib/ldap\n"
             "moduleload back_mdb\n"
             "TLSCACertificateFile %1$s/ca.crt\n"
             "TLSCertificateFile %1$s/server.crt\n"
             "TLSCertificateKeyFile %1$s/server.key\n"
             "database mdb\n"
             "maxsize 10485760\n"
             "suffix \"" BASE "\"\n"
             "rootdn \"cn=admin," BASE "\"\n"
             "rootpw adminpw\n"
             "directory %1$s/db\n"
             "access to attrs=userPassword by anonymous auth by * none\n"
             "access to dn.subtree=\"ou=staff," BASE "\" by users read by * none\n"
             "access to * by * read\n",
             fx.dir);
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    if (!write_file("slapd.conf", conf) || !write_file("data.ldif", LDIF) ||
        !write_file("ext.cnf", "subjectAltName=IP:127.0.0.1\n") ||
        !run("mkdir %s/db", fx.dir) ||
        !run("openssl req -x509 %s -keyout %s/ca.key -out %s/ca.crt -days 2 -subj /CN=pgsluice-test-ca "
             ">/dev/null 2>&1", ec, fx.dir, fx.dir) ||
        !run("openssl req %s -keyout %s/server.key -out %s/server.csr -subj /CN=127.0.0.1 >/dev/null 2>&1", ec,
             fx.dir, fx.dir) ||
        !run("openssl x509 -req -in %1$s/server.csr -CA %1$s/ca.crt -CAkey %1$s/ca.key -CAcreateserial "
             "-out %1$s/server.crt -days 2 -extfile %1$s/ext.cnf >/dev/null 2>&1", fx.dir) ||
        !run(SLAPADD " -q -f %1$s/slapd.conf -l %1$s/data.ldif", fx.dir))
        return -1;
    /* libldap reads its TLS defaults from the environment on first use: trust the test CA only */
    char ca[128];
    snprintf(ca, sizeof(ca), "%s/ca.crt", fx.dir);
    setenv("LDAPTLS_CACERT", ca, 1);
    setenv("LDAPTLS_REQCERT", "demand", 1);
    for (int attempt = 0; attempt < 3; attempt++) /* a port taken between our pick and slapd's bind */
        if (start_slapd()) return 0;
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    stop_slapd();
    if (fx.dir[0]) run("rm -rf %s", fx.dir);
    return 0;
}

/* ---- option sets ---- */

static sl_ldap_options simple_opts(void)
{
    return (sl_ldap_options){.server = "127.0.0.1", .port = fx.port, .prefix = "uid=",
                             .suffix = ",ou=people," BASE, .timeout_ms = 5000};
}

static sl_ldap_options search_opts(void)
{
    return (sl_ldap_options){.server = "127.0.0.1", .port = fx.port, .basedn = "ou=people," BASE, .scope = 2,
                             .timeout_ms = 5000};
}

static void expect_ok(const sl_ldap_options *o, const char *user, const char *password)
{
    char err[1024] = "";
    if (!sl_ldap_check(o, user, password, err, sizeof(err))) fail_msg("%s / %s refused: %s", user, password ? password : "(no password)", err);
}

static void expect_refused(const sl_ldap_options *o, const char *user, const char *password, const char *needle)
{
    char err[1024] = "";
    if (sl_ldap_check(o, user, password, err, sizeof(err))) fail_msg("%s / %s accepted", user, password ? password : "(no password)");
    if (needle && !strstr(err, needle)) fail_msg("%s: \"%s\" not in: %s", user, needle, err);
    if (password && strlen(password) >= 5 && strstr(err, password)) fail_msg("the password is in the message: %s", err);
}

/* ---- escaping ---- */

static void test_escaping(void **state)
{
    (void)state;
    char out[64];
    assert_true(sl_ldap_escape_filter("a*b(c)d\\e", out, sizeof(out)));
    assert_string_equal(out, "a\\2ab\\28c\\29d\\5ce");
    assert_true(sl_ldap_escape_filter("José", out, sizeof(out)));
    assert_string_equal(out, "José");
    assert_true(sl_ldap_escape_dn("a,b+c\"d\\e<f>g;h=i", out, sizeof(out)));
    assert_string_equal(out, "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h\\=i");
    assert_true(sl_ldap_escape_dn("#x# ", out, sizeof(out))); /* a leading '#', a trailing blank */
    assert_string_equal(out, "\\#x#\\ ");
    assert_true(sl_ldap_escape_dn(" #x", out, sizeof(out))); /* a leading blank; '#' not first */
    assert_string_equal(out, "\\ #x");
    assert_false(sl_ldap_escape_dn("**********", out, 5));
    assert_false(sl_ldap_escape_filter("**", out, 6));
}

/* ---- simple bind ---- */

static void test_simple_bind(void **state)
{
    (void)state;
    sl_ldap_options o = simple_opts();
    expect_ok(&o, "alice", "alice-pw");
    expect_refused(&o, "alice", "bob-pw", "LDAP login failed for user \"uid=alice,ou=people," BASE "\"");
    expect_refused(&o, "alice", "bob-pw", "Invalid credentials");
    expect_refused(&o, "nobody", "x", "Invalid credentials");
    /* the user name is DN-escaped: "a,b" is the entry uid=a\,b */
    expect_ok(&o, "a,b", "comma-pw");
    /* several servers: the first refuses connections, the second answers */
    o.server = "127.0.0.2 127.0.0.1";
    if (port_accepts(fx.port)) expect_ok(&o, "alice", "alice-pw");
}

/* An empty password must never reach the server: a bind with a DN and no password is an unauthenticated
 * bind, which many servers answer with success. */
static void test_empty_password_never_sent(void **state)
{
    (void)state;
    sl_ldap_options o = simple_opts();
    expect_refused(&o, "alice", "", "empty password returned by client");
    expect_refused(&o, "alice", NULL, "empty password returned by client");
    o = search_opts();
    expect_refused(&o, "alice", "", "empty password returned by client");
    expect_refused(&o, "", "alice-pw", "empty user name");
}

/* ---- search+bind ---- */

static void test_search_bind(void **state)
{
    (void)state;
    sl_ldap_options o = search_opts();
    expect_ok(&o, "alice", "alice-pw");
    expect_refused(&o, "alice", "wrong", "Invalid credentials");
    expect_refused(&o, "zed", "x", "LDAP user \"zed\" does not exist");
    /* the name is filter-escaped: "*" is the entry whose uid is "*", not every entry */
    expect_ok(&o, "*", "star-pw");
    expect_refused(&o, "*", "alice-pw", "Invalid credentials");
    expect_refused(&o, "al*", "alice-pw", "does not exist");
    expect_refused(&o, "alice)(uid=*", "alice-pw", "does not exist");
    /* more than one entry: refused */
    o.searchattribute = "mail";
    expect_ok(&o, "alice@example.com", "alice-pw");
    expect_refused(&o, "shared@example.com", "bob-pw", "is not unique");
    /* a filter with $username (every occurrence replaced) */
    o.searchattribute = NULL;
    o.searchfilter = "(|(uid=$username)(mail=$username))";
    expect_ok(&o, "alice", "alice-pw");
    expect_ok(&o, "alice@example.com", "alice-pw");
    /* scope one level below the base */
    o = search_opts();
    o.basedn = BASE;
    o.scope = 1;
    expect_refused(&o, "alice", "alice-pw", "does not exist");
    o.scope = 2;
    expect_ok(&o, "alice", "alice-pw");
}

static void test_search_bind_with_binddn(void **state)
{
    (void)state;
    sl_ldap_options o = search_opts();
    o.basedn = "ou=staff," BASE; /* anonymous may not read ou=staff: slapd hides it */
    expect_refused(&o, "dave", "dave-pw", "could not search LDAP for filter \"(uid=dave)\"");
    o.binddn = "cn=reader," BASE;
    o.bindpasswd = "reader-pw";
    expect_ok(&o, "dave", "dave-pw");
    expect_refused(&o, "dave", "alice-pw", "Invalid credentials");
    o.bindpasswd = "wrong";
    expect_refused(&o, "dave", "dave-pw", "could not perform initial LDAP bind for ldapbinddn \"cn=reader," BASE "\"");
}

/* ---- TLS ---- */

static void test_starttls_and_ldaps(void **state)
{
    (void)state;
    sl_ldap_options o = search_opts();
    o.starttls = true;
    expect_ok(&o, "alice", "alice-pw");
    o = simple_opts();
    o.scheme = "ldaps";
    o.port = fx.tls_port;
    expect_ok(&o, "alice", "alice-pw");
    expect_refused(&o, "alice", "x", "Invalid credentials");
    /* no silent fallback to clear text: ldaps to the plain port, StartTLS to the ldaps port fail */
    o.port = fx.port;
    expect_refused(&o, "alice", "alice-pw", NULL);
    o = simple_opts();
    o.starttls = true;
    o.port = fx.tls_port;
    expect_refused(&o, "alice", "alice-pw", "could not start LDAP TLS session");
}

/* ---- servers that are not there, or do not answer ---- */

static void test_unreachable_and_silent_servers(void **state)
{
    (void)state;
    sl_ldap_options o = simple_opts();
    o.port = free_port();
    expect_refused(&o, "alice", "alice-pw", "Can't contact LDAP server");

    /* a server that accepts the connection and never answers: the check gives up after timeout_ms */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 16), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    o.port = ntohs(a.sin_port);
    o.timeout_ms = 300;
    double t0 = now_s();
    expect_refused(&o, "alice", "alice-pw", NULL);
    o = search_opts();
    o.port = ntohs(a.sin_port);
    o.timeout_ms = 300;
    expect_refused(&o, "alice", "alice-pw", NULL);
    double took = now_s() - t0;
    close(s);
    if (took > 5.0) fail_msg("two checks against a silent server took %.1f s with timeout_ms 300", took);
}

/* ---- many checks at once, as libuv's thread pool runs them ---- */

typedef struct worker_arg {
    int id, wrong;
    char err[512];
} worker_arg;

static void *ldap_worker(void *p)
{
    worker_arg *a = p;
    sl_ldap_options o = search_opts();
    sl_ldap_options t = simple_opts();
    t.starttls = true;
    for (int i = 0; i < 6; i++) {
        bool right = (i + a->id) % 3 != 0;
        const sl_ldap_options *use = (i % 2) ? &o : &t;
        bool got = sl_ldap_check(use, (i % 4) ? "alice" : "bob", right ? ((i % 4) ? "alice-pw" : "bob-pw") : "bad",
                                 a->err, sizeof(a->err));
        if (got != right) a->wrong++;
    }
    return NULL;
}

static void test_concurrent_checks(void **state)
{
    (void)state;
    enum { N = 8 };
    pthread_t t[N];
    worker_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (worker_arg){.id = i};
        assert_int_equal(pthread_create(&t[i], NULL, ldap_worker, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (a[i].wrong) fail_msg("thread %d: %d wrong answers (last: %s)", i, a[i].wrong, a[i].err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_simple_bind),
        cmocka_unit_test(test_empty_password_never_sent),
        cmocka_unit_test(test_search_bind),
        cmocka_unit_test(test_search_bind_with_binddn),
        cmocka_unit_test(test_starttls_and_ldaps),
        cmocka_unit_test(test_unreachable_and_silent_servers),
        cmocka_unit_test(test_concurrent_checks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
