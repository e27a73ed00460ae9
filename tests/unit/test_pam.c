/* test_pam.c - sl_pam_check against the real Linux-PAM stack: a throwaway OS user with a password set by
 * chpasswd and a throwaway PAM service (/etc/pam.d/pgsluice-test-<pid>: pam_unix auth + account), both
 * removed at the end. Installing them needs root (CI runs as root); without root only the checks that
 * need no service file run, and the others are reported as skipped with the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/pam.h"

static const char *const PASSWORD = "c0rrect horse:battery staple";

static struct {
    bool ready;          /* user and service installed */
    char why_not[256];   /* when not ready */
    char user[32];
    char service[64];
    char service_path[128];
} fx;

/* Run a shell command; true when it exits 0. */
static bool run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool run(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

/* A run that crashed (a sanitizer abort, a kill) left its user and service file behind: remove those whose
 * process is gone. */
static void sweep_crashed_runs(void)
{
    DIR *d = opendir("/etc/pam.d");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid;
        char tail;
        if (sscanf(e->d_name, "pgsluice-test-%d%c", &pid, &tail) != 1 || pid <= 0) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;
        fprintf(stderr, "test_pam: removing what crashed run %d left behind\n", pid);
        run("userdel slpamtest%d 2>/dev/null; rm -f /etc/pam.d/pgsluice-test-%d", pid, pid);
    }
    closedir(d);
}

static int setup(void **state)
{
    (void)state;
    snprintf(fx.user, sizeof(fx.user), "slpamtest%d", (int)getpid());
    snprintf(fx.service, sizeof(fx.service), "pgsluice-test-%d", (int)getpid());
    snprintf(fx.service_path, sizeof(fx.service_path), "/etc/pam.d/%s", fx.service);
    if (geteuid() != 0) {
        snprintf(fx.why_not, sizeof(fx.why_not),
                 "not root: cannot create an OS user or write %s (CI runs as root)", fx.service_path);
        fprintf(stderr, "test_pam: %s\n", fx.why_not);
        return 0;
    }
    sweep_crashed_runs();
    FILE *f = fopen(fx.service_path, "w");
    if (!f) {
        fprintf(stderr, "test_pam: cannot write %s\n", fx.service_path);
        return -1;
    }
    fprintf(f, "# written by pgsluice's test_pam; removed when the test ends\n"
               "auth     required  pam_unix.so\n"
               "account  required  pam_unix.so\n");
    fclose(f);
    if (!run("useradd -M -s /usr/sbin/nologin %s", fx.user)) {
        fprintf(stderr, "test_pam: useradd %s failed (is the passwd package installed?)\n", fx.user);
        unlink(fx.service_path);
        return -1;
    }
    FILE *p = popen("chpasswd", "w");
    if (!p) return -1;
    fprintf(p, "%s:%s\n", fx.user, PASSWORD);
    if (pclose(p) != 0) {
        fprintf(stderr, "test_pam: chpasswd failed\n");
        run("userdel %s", fx.user);
        unlink(fx.service_path);
        return -1;
    }
    fx.ready = true;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (geteuid() != 0) return 0;
    bool ok = run("userdel %s 2>/dev/null", fx.user) || !fx.ready;
    if (unlink(fx.service_path) != 0 && fx.ready) ok = false;
    return ok ? 0 : -1;
}

#define NEED_FIXTURE()                                                                                                 \
    do {                                                                                                               \
        if (!fx.ready) {                                                                                               \
            fprintf(stderr, "skipped: %s\n", fx.why_not);                                                              \
            skip();                                                                                                    \
        }                                                                                                              \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- no service needed ---- */

static void test_empty_password_refused_before_pam(void **state)
{
    (void)state;
    char err[256] = "";
    assert_false(sl_pam_check("pgsluice-no-such-service", "root", "", NULL, err, sizeof(err)));
    assert_string_equal(err, "empty password returned by client");
    assert_false(sl_pam_check("pgsluice-no-such-service", "root", NULL, NULL, err, sizeof(err)));
    assert_false(sl_pam_check("pgsluice-no-such-service", "", "x", NULL, err, sizeof(err)));
    assert_string_equal(err, "empty user name");
    assert_false(sl_pam_check("", "root", "x", NULL, err, sizeof(err)));
    assert_string_equal(err, "no PAM service name");
}

static void test_unknown_user_fails(void **state)
{
    (void)state;
    /* a service without a file falls back to /etc/pam.d/other; a user that does not exist never passes */
    char err[512] = "";
    assert_false(sl_pam_check("pgsluice-no-such-service", "pgsluice_no_such_user", "whatever", "10.0.0.1", err,
                              sizeof(err)));
    assert_non_null(strstr(err, "PAM authentication failed for user \"pgsluice_no_such_user\""));
    assert_null(strstr(err, "whatever"));
}

static void test_remote_host_text(void **state)
{
    (void)state;
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    char buf[256];
    assert_string_equal(sl_pam_remote_host((struct sockaddr *)&a, sizeof(a), false, buf, sizeof(buf)), "127.0.0.1");
    struct sockaddr_in6 b = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8::1", &b.sin6_addr);
    assert_string_equal(sl_pam_remote_host((struct sockaddr *)&b, sizeof(b), false, buf, sizeof(buf)), "2001:db8::1");
    /* a host name when asked (127.0.0.1 resolves through /etc/hosts), else the address */
    sl_pam_remote_host((struct sockaddr *)&a, sizeof(a), true, buf, sizeof(buf));
    assert_true(buf[0] != '\0');
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_string_equal(sl_pam_remote_host(&un, sizeof(un), false, buf, sizeof(buf)), "");
}

/* ---- against the throwaway user and service ---- */

static void test_right_password(void **state)
{
    (void)state;
    NEED_FIXTURE();
    char err[512] = "";
    if (!sl_pam_check(fx.service, fx.user, PASSWORD, NULL, err, sizeof(err))) fail_msg("%s", err);
    if (!sl_pam_check(fx.service, fx.user, PASSWORD, "192.0.2.10", err, sizeof(err))) fail_msg("%s", err);
}

static void test_wrong_password(void **state)
{
    (void)state;
    NEED_FIXTURE();
    char err[512] = "";
    assert_false(sl_pam_check(fx.service, fx.user, "c0rrect horse:battery stapl", NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "pam_authenticate"));
    assert_non_null(strstr(err, "Authentication failure"));
    assert_null(strstr(err, "horse"));
    assert_false(sl_pam_check(fx.service, "pgsluice_no_such_user", PASSWORD, NULL, err, sizeof(err)));
    /* the user exists, but this is another service: its file decides (here: the fallback "other") */
    assert_false(sl_pam_check(fx.service, "root", PASSWORD, NULL, err, sizeof(err)));
}

/* pam_unix asks for a ~2 s delay after a failure; it must not be slept on the thread-pool thread. */
static void test_failure_is_not_delayed(void **state)
{
    (void)state;
    NEED_FIXTURE();
    char err[512];
    double ok_time = 1e9, bad_time = 1e9;
    for (int i = 0; i < 2; i++) {
        double t0 = now_s();
        assert_true(sl_pam_check(fx.service, fx.user, PASSWORD, NULL, err, sizeof(err)));
        double t1 = now_s();
        assert_false(sl_pam_check(fx.service, fx.user, "wrong", NULL, err, sizeof(err)));
        double t2 = now_s();
        if (t1 - t0 < ok_time) ok_time = t1 - t0;
        if (t2 - t1 < bad_time) bad_time = t2 - t1;
    }
    if (bad_time > ok_time + 1.0) fail_msg("a failed check took %.2f s, a good one %.2f s", bad_time, ok_time);
}

/* Many checks at once on many threads, as libuv's thread pool will run them. */
typedef struct worker_arg {
    int id, wrong_answers;
    char err[256];
} worker_arg;

static void *pam_worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < 4; i++) {
        bool right = (i + a->id) % 2 == 0;
        bool got = sl_pam_check(fx.service, fx.user, right ? PASSWORD : "nope", "127.0.0.1", a->err, sizeof(a->err));
        if (got != right) a->wrong_answers++;
    }
    return NULL;
}

static void test_concurrent_checks(void **state)
{
    (void)state;
    NEED_FIXTURE();
    enum { N = 8 };
    pthread_t t[N];
    worker_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (worker_arg){.id = i};
        assert_int_equal(pthread_create(&t[i], NULL, pam_worker, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (a[i].wrong_answers) fail_msg("thread %d: %d wrong answers (%s)", i, a[i].wrong_answers, a[i].err);
    }
}

/* The account phase runs too: an expired account is refused even with the right password. */
static void test_expired_account_refused(void **state)
{
    (void)state;
    NEED_FIXTURE();
    char err[512] = "";
    assert_true(run("usermod -e 1970-01-02 %s", fx.user));
    bool ok = sl_pam_check(fx.service, fx.user, PASSWORD, NULL, err, sizeof(err));
    assert_true(run("usermod -e '' %s", fx.user));
    assert_false(ok);
    assert_non_null(strstr(err, "pam_acct_mgmt"));
    if (!sl_pam_check(fx.service, fx.user, PASSWORD, NULL, err, sizeof(err))) fail_msg("after unexpiring: %s", err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_password_refused_before_pam),
        cmocka_unit_test(test_unknown_user_fails),
        cmocka_unit_test(test_remote_host_text),
        cmocka_unit_test(test_right_password),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_failure_is_not_delayed),
        cmocka_unit_test(test_concurrent_checks),
        cmocka_unit_test(test_expired_account_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
