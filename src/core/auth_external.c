/* auth_external.c - PAM and LDAP password checks on libuv's thread pool. The job carries copies of
 * what the check needs and a reference to the config snapshot whose rule it follows (the rule's
 * strings live in it); the answer is delivered on the client's worker by slot and generation, so a
 * client that left meanwhile is simply not found. The password is wiped when the job ends.
 * At most half as many checks as the thread pool has threads run at once, on all workers
 * together (UV_THREADPOOL_SIZE, which main.c sets to 16 unless told otherwise): the pool also
 * looks up host names and derives SCRAM keys, and logins waiting on an unresponsive LDAP server
 * must not take all of it. The others wait in their worker's queue, in order, and start as checks
 * end (or at the worker's next tick, when the check that ended was another worker's). */
#include "core/auth_external.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/ldap.h"
#include "auth/pam.h"
#include "config/hba.h"
#include "core/client_auth.h"
#include "net/worker.h"
#include "util/log.h"

#define SL_EXT_QUEUE_MAX 1000  /* per worker: a login beyond that is refused at once */

typedef struct ext_job {
    uv_work_t req;
    sl_list node;                /* in its worker's queue, until it runs */
    sl_worker *w;
    uint32_t slot, gen;
    sl_config *cfg;              /* keeps rule alive */
    const sl_hba_rule *rule;     /* NULL: auth_type pam with PAM's defaults */
    bool ldap;
    char user[256];
    char *password;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool ok;
    char err[256];
} ext_job;

static void run_check(uv_work_t *req)
{
    ext_job *j = req->data;
    if (j->ldap) {
        const sl_hba_ldap *l = &j->rule->ldap;
        sl_ldap_options o = {
            .scheme = l->scheme, .server = l->server, .port = l->port, .starttls = l->starttls,
            .prefix = l->prefix, .suffix = l->suffix, .basedn = l->basedn, .binddn = l->binddn,
            .bindpasswd = l->bindpasswd, .searchattribute = l->searchattribute, .searchfilter = l->searchfilter,
            .scope = l->scope, .timeout_ms = 0,
        };
        j->ok = sl_ldap_check(&o, j->user, j->password, j->err, sizeof(j->err));
        return;
    }
    const char *service = j->rule && j->rule->pamservice ? j->rule->pamservice : SL_PAM_DEFAULT_SERVICE;
    char host[256];
    const char *rhost = j->addrlen ? sl_pam_remote_host((const struct sockaddr *)&j->addr, j->addrlen,
                                                        j->rule && j->rule->pam_use_hostname, host, sizeof(host))
                                   : NULL;
    j->ok = sl_pam_check(service, j->user, j->password, rhost, j->err, sizeof(j->err));
}

static void job_free(ext_job *j)
{
    if (j->password) {
        explicit_bzero(j->password, strlen(j->password));
        free(j->password);
    }
    sl_config_unref(j->cfg);
    free(j);
}

static int checks_running;                  /* all workers (atomic) */
static sl_list queue[SL_MAX_WORKERS];       /* each worker's own */
static uint32_t queued[SL_MAX_WORKERS];

/* The client the job is for, still waiting for it (NULL: it left, or gave up). */
static sl_client *job_client(const ext_job *j)
{
    sl_client *c = sl_worker_find_slot(j->w, j->slot, j->gen);
    return c && c->state == SL_CL_AUTH && c->login && c->login->method == SL_AUTH_STEP_EXTERNAL_WAIT ? c : NULL;
}

static void deliver(ext_job *j, int status)
{
    sl_client *c = job_client(j);
    if (c) {
        bool ok = status == 0 && j->ok;
        if (!ok)
            sl_log_msg(SL_LOG_WARNING, "C-0x%llx: %s/%s@%s %s authentication failed: %s", (unsigned long long)c->id,
                       c->dbname, c->user, c->addr, j->ldap ? "LDAP" : "PAM",
                       status ? uv_strerror(status) : j->err);
        sl_client_auth_external_done(c, ok, ok ? j->password : NULL);
    }
    job_free(j);
}

/* Half of libuv's thread pool (it reads the same variable once, at its first use). */
static int checks_max(void)
{
    static int max; /* 0: not read yet (any worker may read it first: the same value) */
    int m = __atomic_load_n(&max, __ATOMIC_RELAXED);
    if (m) return m;
    const char *v = getenv("UV_THREADPOOL_SIZE");
    long threads = v ? strtol(v, NULL, 10) : 4;
    m = threads >= 4 ? (int)(threads / 2) : 1;
    __atomic_store_n(&max, m, __ATOMIC_RELAXED);
    return m;
}

static bool take_check_slot(void)
{
    int n = __atomic_load_n(&checks_running, __ATOMIC_RELAXED), max = checks_max();
    while (n < max)
        if (__atomic_compare_exchange_n(&checks_running, &n, n + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return true;
    return false;
}

static void check_done(uv_work_t *req, int status);

/* Start the worker's queued checks while there is room. */
static void run_queue(sl_worker *w)
{
    sl_list *q = &queue[w->id];
    while (queued[w->id] && take_check_slot()) {
        ext_job *j = sl_container_of(sl_list_pop_head(q), ext_job, node);
        queued[w->id]--;
        if (!job_client(j)) { /* it left while waiting */
            __atomic_sub_fetch(&checks_running, 1, __ATOMIC_RELAXED);
            job_free(j);
            continue;
        }
        if (uv_queue_work(&w->loop, &j->req, run_check, check_done) != 0) {
            __atomic_sub_fetch(&checks_running, 1, __ATOMIC_RELAXED);
            j->ok = false;
            snprintf(j->err, sizeof(j->err), "could not start the check");
            deliver(j, 0);
        }
    }
}

static void check_done(uv_work_t *req, int status)
{
    ext_job *j = req->data;
    sl_worker *w = j->w;
    __atomic_sub_fetch(&checks_running, 1, __ATOMIC_RELAXED);
    deliver(j, status);
    run_queue(w);
}

void sl_auth_external_tick(sl_worker *w)
{
    if (queued[w->id]) run_queue(w);
}

bool sl_auth_external_start(sl_client *c, const char *password)
{
    ext_job *j = calloc(1, sizeof(*j));
    if (!j) return false;
    j->w = c->s.w;
    j->slot = c->slot;
    j->gen = c->gen;
    j->ldap = c->login->external_ldap;
    j->rule = c->login->rule;
    if (c->login->cfg) {
        sl_config_ref(c->login->cfg);
        j->cfg = c->login->cfg;
    }
    snprintf(j->user, sizeof(j->user), "%s", c->user);
    j->password = strdup(password);
    if (!c->is_unix) {
        j->addrlen = sizeof(j->addr);
        if (getpeername(c->s.fd, (struct sockaddr *)&j->addr, &j->addrlen) != 0) j->addrlen = 0;
    }
    if (!j->password || (j->ldap && !j->rule)) {
        job_free(j);
        return false;
    }
    j->req.data = j;
    sl_worker *w = c->s.w;
    if (!queue[w->id].next) sl_list_init(&queue[w->id]);
    if (queued[w->id] >= SL_EXT_QUEUE_MAX) {
        sl_log_msg(SL_LOG_WARNING, "C-0x%llx: %s/%s@%s: %u logins already wait for a PAM/LDAP check",
                   (unsigned long long)c->id, c->dbname, c->user, c->addr, queued[w->id]);
        job_free(j);
        return false;
    }
    sl_list_insert_tail(&queue[w->id], &j->node);
    queued[w->id]++;
    run_queue(w);
    return true;
}
