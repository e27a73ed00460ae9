/* auth_external.c - PAM and LDAP password checks on libuv's thread pool. The job carries copies of
 * what the check needs and a reference to the config snapshot whose rule it follows (the rule's
 * strings live in it); the answer is delivered on the client's worker by slot and generation, so a
 * client that left meanwhile is simply not found. The password is wiped when the job ends. */
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

typedef struct ext_job {
    uv_work_t req;
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

static void check_done(uv_work_t *req, int status)
{
    ext_job *j = req->data;
    sl_client *c = sl_worker_find_slot(j->w, j->slot, j->gen);
    if (c && c->state == SL_CL_AUTH && c->login && c->login->method == SL_AUTH_STEP_EXTERNAL_WAIT) {
        bool ok = status == 0 && j->ok;
        if (!ok)
            sl_log_msg(SL_LOG_WARNING, "C-0x%llx: %s/%s@%s %s authentication failed: %s", (unsigned long long)c->id,
                       c->dbname, c->user, c->addr, j->ldap ? "LDAP" : "PAM",
                       status ? uv_strerror(status) : j->err);
        sl_client_auth_external_done(c, ok, ok ? j->password : NULL);
    }
    job_free(j);
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
    if (uv_queue_work(&c->s.w->loop, &j->req, run_check, check_done) != 0) {
        job_free(j);
        return false;
    }
    return true;
}
