/* takeover_donor.c - the running (old) process's side of a takeover: the console's TAKEOVER starts
 * it; every tick, on the console session's worker, it runs the freeze rounds (takeover_freeze.c)
 * until every worker froze in the same one or the time is up; then a sender thread sends the message
 * and the descriptors (takeover_fdpass.c) and waits for the new process's 'K'. Confirmed: what
 * stayed behind is closed and the process exits; anything else thaws every worker and serves on.
 * The protocol is described in takeover_int.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/lifecycle.h"
#include "core/takeover.h"
#include "core/takeover_int.h"
#include "util/log.h"
#include "util/sdnotify.h"
#include "util/time.h"

enum { D_IDLE = 0, D_WAITING, D_SENDING, D_FINISHING, D_RESUMING };

static struct donor {
    int phase;                   /* D_*; changed on the home worker only */
    int home;                    /* the console client's worker */
    uint32_t slot, gen;
    sl_client *console;
    pid_t peer;
    int64_t deadline, started;
    int timeout_s;
    bool round_busy;
    unsigned attempts;
    tk_part parts[SL_MAX_WORKERS];
    tk_buf msg;                  /* what the sender thread sends */
    int result;                  /* atomic: 0 sending, 1 confirmed, -1 failed */
    char err[256];               /* the sender's failure (written before result) */
    char fail_msg[300];          /* why the takeover gives up, for the console */
} D;

static tk_freeze_req freeze_req; /* freeze_each's view of D */

static bool console_alive(sl_worker *w)
{
    sl_client *c = sl_worker_find_slot(w, D.slot, D.gen);
    return c && c == D.console && c->state != SL_CL_CLOSING;
}

static void thawed(sl_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    D.round_busy = false;
}

static void resumed(sl_worker *w, void *arg)
{
    (void)arg;
    if (console_alive(w)) {
        sl_client *c = D.console;
        c->s.handed = false;
        int fl = fcntl(c->s.fd, F_GETFL);
        if (fl >= 0) (void)fcntl(c->s.fd, F_SETFL, fl | O_NONBLOCK);
        sl_client_error(c, true, "55000", "takeover failed: %s", D.fail_msg);
    }
    for (int i = 0; i < SL_MAX_WORKERS; i++) tb_free(&D.parts[i].buf);
    tb_free(&D.msg);
    D.console = NULL;
    D.round_busy = false;
    __atomic_store_n(&D.phase, D_IDLE, __ATOMIC_RELEASE);
    sl_set_run_state(sl_run_state_get()); /* releases the hold (unless paused meanwhile) */
    sl_log_info("takeover called off, serving again: %s", D.fail_msg);
}

static void give_up(sl_worker *home, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void give_up(sl_worker *home, const char *fmt, ...)
{
    char msg[sizeof(D.fail_msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); /* fmt's arguments may be D.fail_msg itself */
    va_end(ap);
    memcpy(D.fail_msg, msg, sizeof(msg));
    sl_log_warn("takeover failed: %s", D.fail_msg);
    __atomic_store_n(&D.phase, D_RESUMING, __ATOMIC_RELEASE);
    D.round_busy = true;
    if (!sl_workers_round(home, resume_each, resumed, NULL)) {
        /* out of memory: thaw this worker at least; the others retry at their next freeze check */
        resume_each(home, NULL);
        resumed(home, NULL);
    }
}

static void *sender_main(void *arg)
{
    (void)arg;
    int fd = D.console->s.fd;
    char err[256] = "";
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint8_t hdr[5] = {'!'};
    uint32_t len = (uint32_t)(D.msg.len + 8), nfds = (uint32_t)D.msg.nfds;
    hdr[1] = (uint8_t)(len >> 24);
    hdr[2] = (uint8_t)(len >> 16);
    hdr[3] = (uint8_t)(len >> 8);
    hdr[4] = (uint8_t)len;
    if (tk_write_all(fd, hdr, 5) < 0 || tk_write_all(fd, &nfds, 4) < 0 || tk_write_all(fd, D.msg.p, D.msg.len) < 0) {
        snprintf(err, sizeof(err), "sending the connections' state: %s", strerror(errno));
        goto out;
    }
    if (!tk_send_fds(fd, D.msg.fds, D.msg.nfds, err, sizeof(err))) goto out;
    char ack = 0;
    ssize_t rc;
    do rc = recv(fd, &ack, 1, 0);
    while (rc < 0 && errno == EINTR);
    if (rc != 1 || ack != 'K')
        snprintf(err, sizeof(err), "the new process did not confirm (%s)",
                 rc == 0 ? "it closed the connection" : rc < 0 ? strerror(errno) : "unexpected answer");
out:
    snprintf(D.err, sizeof(D.err), "%s", err);
    __atomic_store_n(&D.result, err[0] ? -1 : 1, __ATOMIC_RELEASE);
    return NULL;
}

static void freeze_done(sl_worker *home, void *arg)
{
    (void)arg;
    int busy = 0, nok = 0;
    const char *why = NULL;
    for (int i = 0; i < sl_nworkers; i++) {
        if (D.parts[i].ok) nok++;
        busy += D.parts[i].busy;
        if (D.parts[i].busy && !why) why = D.parts[i].why;
    }
    D.attempts++;
    if (sl_run_state_get() != SL_RUN_NORMAL) { /* SIGINT, SHUTDOWN...: the sockets may be shut down */
        give_up(home, "the running process is %s", sl_run_state_label(sl_run_state_get()));
        return;
    }
    if (nok < sl_nworkers || !console_alive(home)) {
        if (D.attempts == 1 || D.attempts % 50 == 0)
            sl_log_info("takeover: waiting for %d connection%s to get between transactions (%s)", busy,
                        busy == 1 ? "" : "s", why ? why : "out of memory");
        snprintf(D.fail_msg, sizeof(D.fail_msg), "%d connection%s still not between transactions after %d s (%s)",
                 busy, busy == 1 ? "" : "s", D.timeout_s, why ? why : "out of memory");
        if (!sl_workers_round(home, thaw_each, thawed, NULL)) {
            thaw_each(home, NULL);
            D.round_busy = false;
        }
        return;
    }
    /* all frozen: the message is the listening sockets, then each worker's connections */
    tk_buf *m = &D.msg;
    uint32_t nrec;
    int nl;
    if (!put_message(m, D.parts, sl_nworkers, &nrec, &nl)) {
        give_up(home, "out of memory writing the connections' state");
        return;
    }
    sl_log_info("takeover: every connection is between transactions; handing %u connections and %d listening "
                "sockets (%zu descriptors, %zu bytes) to process %d",
                nrec, nl, m->nfds, m->len, (int)D.peer);
    __atomic_store_n(&D.result, 0, __ATOMIC_RELAXED);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &at, sender_main, NULL);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        give_up(home, "cannot start the sender thread: %s", strerror(rc));
        return;
    }
    __atomic_store_n(&D.phase, D_SENDING, __ATOMIC_RELEASE);
    D.round_busy = false;
}

static void finished(sl_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    sl_log_info("takeover: process %d took over in %.1f s; exiting", (int)D.peer,
                (double)(sl_now_us() - D.started) / 1e6);
    /* under systemd the new process is the service from now on (it runs in the service's cgroup
     * when UPGRADE started it) */
    if (D.peer > 0) sl_sd_mainpid((long)D.peer, "handed over to the new process");
    _exit(0);
}

bool sl_takeover_donor_begin(sl_client *c, int timeout_s, char *err, size_t errlen)
{
    if (!c->is_unix || !c->console_peer_admin) {
        snprintf(err, errlen, "TAKEOVER is only allowed to user pgbouncer over the Unix socket from pgsluice's own OS "
                              "user");
        return false;
    }
    if (__atomic_load_n(&D.phase, __ATOMIC_ACQUIRE) != D_IDLE) {
        snprintf(err, errlen, "a takeover is already under way");
        return false;
    }
    if (sl_run_state_get() != SL_RUN_NORMAL) {
        snprintf(err, errlen, "TAKEOVER needs the pooler running (not %s)", sl_run_state_label(sl_run_state_get()));
        return false;
    }
    struct ucred cr;
    socklen_t cl = sizeof(cr);
    D.peer = getsockopt(c->s.fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 ? cr.pid : 0;
    __atomic_store_n(&D.home, c->s.w->id, __ATOMIC_RELAXED);
    D.slot = c->slot;
    D.gen = c->gen;
    D.console = c;
    D.timeout_s = timeout_s > 0 ? timeout_s : 60;
    D.started = sl_now_us();
    D.deadline = D.started + (int64_t)D.timeout_s * 1000000;
    D.attempts = 0;
    D.round_busy = false;
    D.fail_msg[0] = '\0';
    __atomic_store_n(&D.phase, D_WAITING, __ATOMIC_RELEASE); /* other workers' ticks look at it */
    sl_pools_set_hold(true);
    sl_log_info("takeover requested by process %d: holding new transactions, waiting up to %d s for clients to get "
                "between transactions",
                (int)D.peer, D.timeout_s);
    return true;
}

void sl_takeover_tick(sl_worker *w, int64_t now)
{
    if (__atomic_load_n(&D.phase, __ATOMIC_ACQUIRE) == D_IDLE || w->id != __atomic_load_n(&D.home, __ATOMIC_RELAXED) ||
        D.round_busy)
        return;
    switch (__atomic_load_n(&D.phase, __ATOMIC_RELAXED)) {
    case D_WAITING:
        if (!console_alive(w)) {
            D.console = NULL;
            give_up(w, "the new process went away");
            return;
        }
        if (now > D.deadline) {
            give_up(w, "%s", D.fail_msg[0] ? D.fail_msg : "timed out");
            return;
        }
        D.round_busy = true;
        freeze_req = (tk_freeze_req){.parts = D.parts, .console = D.console};
        if (!sl_workers_round(w, freeze_each, freeze_done, &freeze_req)) D.round_busy = false;
        break;
    case D_SENDING: {
        int r = __atomic_load_n(&D.result, __ATOMIC_ACQUIRE);
        if (r == 0) return;
        if (r < 0) {
            give_up(w, "%s", D.err);
            return;
        }
        __atomic_store_n(&D.phase, D_FINISHING, __ATOMIC_RELEASE);
        D.round_busy = true;
        if (!sl_workers_round(w, finish_each, finished, NULL)) finished(w, NULL);
        break;
    }
    default: break;
    }
}
