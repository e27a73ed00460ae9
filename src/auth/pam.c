/* pam.c - sl_pam_check: one PAM transaction (authenticate + account) with a conversation that answers the
 * password prompt. Runs on thread-pool threads; keeps no state between calls. */
#include "auth/pam.h"

#include <netdb.h>
#include <security/pam_appl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errbuf.h"

typedef struct conv_data {
    const char *password;
    char module_error[256]; /* the last PAM_ERROR_MSG a module sent (for the log) */
} conv_data;


static void free_replies(struct pam_response *r, int n)
{
    for (int i = 0; i < n; i++)
        if (r[i].resp) {
            explicit_bzero(r[i].resp, strlen(r[i].resp));
            free(r[i].resp);
        }
    free(r);
}

/* Answer every hidden prompt with the password (PostgreSQL does the same); take note of error messages,
 * ignore informational ones; anything else (a visible prompt, a binary one) ends the conversation. */
static int conversation(int n, const struct pam_message **msg, struct pam_response **resp, void *appdata)
{
    conv_data *cd = appdata;
    if (n <= 0 || n > PAM_MAX_NUM_MSG || !cd) return PAM_CONV_ERR;
    struct pam_response *r = calloc((size_t)n, sizeof(*r));
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
            if (!(r[i].resp = strdup(cd->password))) {
                free_replies(r, n);
                return PAM_BUF_ERR;
            }
            break;
        case PAM_ERROR_MSG:
            snprintf(cd->module_error, sizeof(cd->module_error), "%s", msg[i]->msg ? msg[i]->msg : "");
            /* fall through */
        case PAM_TEXT_INFO:
            if (!(r[i].resp = strdup(""))) {
                free_replies(r, n);
                return PAM_BUF_ERR;
            }
            break;
        default:
            free_replies(r, n);
            return PAM_CONV_ERR;
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

/* Linux-PAM calls this instead of sleeping after a failure (see pam.h for why it does not sleep). */
static void no_fail_delay(int retval, unsigned usec, void *appdata)
{
    (void)retval;
    (void)usec;
    (void)appdata;
}

bool sl_pam_check(const char *service, const char *user, const char *password, const char *remote_host, char *err,
                  size_t errlen)
{
    if (!service || !*service) return sl_errf(err, errlen, "no PAM service name"), false;
    if (!user || !*user) return sl_errf(err, errlen, "empty user name"), false;
    if (!password || !*password) return sl_errf(err, errlen, "empty password returned by client"), false;

    conv_data cd = {.password = password};
    struct pam_conv conv = {conversation, &cd};
    pam_handle_t *h = NULL;
    int rc = pam_start(service, user, &conv, &h);
    if (rc != PAM_SUCCESS) {
        sl_errf(err, errlen, "could not start PAM service \"%s\": %s", service, pam_strerror(h, rc));
        if (h) pam_end(h, rc);
        return false;
    }
    const char *step = "pam_set_item(PAM_RHOST)";
    if (remote_host && *remote_host) rc = pam_set_item(h, PAM_RHOST, remote_host);
    if (rc == PAM_SUCCESS) {
        step = "pam_set_item(PAM_FAIL_DELAY)";
        rc = pam_set_item(h, PAM_FAIL_DELAY, (const void *)no_fail_delay);
    }
    if (rc == PAM_SUCCESS) {
        step = "pam_authenticate";
        rc = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
    }
    if (rc == PAM_SUCCESS) {
        step = "pam_acct_mgmt";
        rc = pam_acct_mgmt(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
    }
    if (rc != PAM_SUCCESS)
        sl_errf(err, errlen, "PAM authentication failed for user \"%s\" (service \"%s\", %s): %s%s%s", user, service,
             step, pam_strerror(h, rc), cd.module_error[0] ? ": " : "", cd.module_error);
    int end_rc = pam_end(h, rc);
    if (rc == PAM_SUCCESS && end_rc != PAM_SUCCESS) {
        sl_errf(err, errlen, "could not release PAM authenticator: %s", pam_strerror(NULL, end_rc));
        return false;
    }
    return rc == PAM_SUCCESS;
}

const char *sl_pam_remote_host(const struct sockaddr *addr, socklen_t addrlen, bool use_hostname, char *buf,
                               size_t len)
{
    if (!len) return buf;
    buf[0] = '\0';
    if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) return buf;
    if (use_hostname && getnameinfo(addr, addrlen, buf, (socklen_t)len, NULL, 0, NI_NAMEREQD) == 0) return buf;
    if (getnameinfo(addr, addrlen, buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0) buf[0] = '\0';
    return buf;
}
