/* takeover_receive.c - the new process's side of a takeover (`pgsluice --takeover`), on the main
 * thread before the workers start: log in to the running process's console over its Unix socket, send
 * TAKEOVER, wait for the hand-over, receive the state and the descriptors, build the connections
 * (takeover_wire.c) and confirm with 'K'. The workers then adopt them (takeover_adopt.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/takeover.h"
#include "core/takeover_int.h"
#include "util/log.h"
#include "util/time.h"

/* The M field of an ErrorResponse / NoticeResponse body. */
static const char *field_msg(const uint8_t *b, uint32_t len)
{
    uint32_t i = 0;
    while (i < len && b[i]) {
        char f = (char)b[i++];
        const char *v = (const char *)b + i;
        i += (uint32_t)strnlen(v, len - i) + 1;
        if (f == 'M') return v;
    }
    return "(no message)";
}

static int console_login(const sl_config *cfg, int64_t deadline, char *err, size_t errlen)
{
    if (!cfg->unix_socket_dir || !*cfg->unix_socket_dir) {
        snprintf(err, errlen, "takeover needs unix_socket_dir: the running process is reached through its Unix socket");
        return -1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "cannot connect to the running pgsluice at %s: %s", sa.sun_path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    static const char params[] = "user\0pgbouncer\0database\0pgbouncer\0application_name\0pgsluice takeover\0";
    uint8_t pkt[8 + sizeof(params)];
    uint32_t n = (uint32_t)sizeof(pkt);
    pkt[0] = (uint8_t)(n >> 24);
    pkt[1] = (uint8_t)(n >> 16);
    pkt[2] = (uint8_t)(n >> 8);
    pkt[3] = (uint8_t)n;
    pkt[4] = 0;
    pkt[5] = 3;
    pkt[6] = 0;
    pkt[7] = 0;
    memcpy(pkt + 8, params, sizeof(params)); /* ends with the terminating NUL */
    if (tk_write_all(fd, pkt, n) < 0) {
        snprintf(err, errlen, "cannot talk to the running pgsluice: %s", strerror(errno));
        close(fd);
        return -1;
    }
    for (;;) {
        char type;
        uint8_t *b;
        uint32_t len;
        if (!tk_read_msg(fd, &type, &b, &len, deadline, err, errlen)) {
            close(fd);
            return -1;
        }
        bool bad = false;
        if (type == 'E') {
            snprintf(err, errlen, "the running pgsluice refused the console login: %s", field_msg(b, len));
            bad = true;
        } else if (type == 'R' && (len < 4 || b[0] || b[1] || b[2] || b[3])) {
            snprintf(err, errlen, "the running pgsluice asks for a password: run the new process as the same OS user "
                                  "as the running one (its console lets that user in over the Unix socket)");
            bad = true;
        }
        free(b);
        if (bad) {
            close(fd);
            return -1;
        }
        if (type == 'Z') return fd;
    }
}

bool sl_takeover_receive(const sl_config *cfg, int timeout_s, char *err, size_t errlen)
{
    sl_now_refresh();
    int64_t deadline = sl_now_us() + 30 * 1000000LL;
    int fd = console_login(cfg, deadline, err, errlen);
    if (fd < 0) return false;
    char q[64];
    int n = snprintf(q, sizeof(q), "TAKEOVER %d", timeout_s);
    if (!tk_send_simple(fd, 'Q', q, (uint32_t)n + 1)) {
        snprintf(err, errlen, "cannot talk to the running pgsluice: %s", strerror(errno));
        close(fd);
        return false;
    }
    sl_log_info("takeover: asked the running pgsluice to hand over (waiting up to %d s for its clients to get "
                "between transactions)",
                timeout_s);
    /* its answer comes once every client is between transactions */
    deadline = sl_now_us() + ((int64_t)timeout_s + 60) * 1000000;
    uint8_t *body = NULL;
    uint32_t len = 0;
    for (;;) {
        char type;
        if (!tk_read_msg(fd, &type, &body, &len, deadline, err, errlen)) {
            close(fd);
            return false;
        }
        if (type == '!') break;
        if (type == 'E') {
            snprintf(err, errlen, "the running pgsluice did not hand over: %s", field_msg(body, len));
            free(body);
            close(fd);
            return false;
        }
        if (type == 'N') sl_log_info("takeover: the running pgsluice says: %s", field_msg(body, len));
        free(body);
    }
    tk_in in = {.cfg = cfg, .now = sl_now_us()};
    in.nworkers = cfg->workers < 1 ? 1 : cfg->workers > SL_MAX_WORKERS ? SL_MAX_WORKERS : cfg->workers;
    uint32_t want = 0;
    if (len >= 4) memcpy(&want, body, 4);
    in.fds = want ? calloc(want, sizeof(int)) : NULL;
    if (len < 4 || (want && !in.fds)) {
        snprintf(err, errlen, "bad hand-over message");
        free(body);
        close(fd);
        return false;
    }
    bool ok = tk_recv_fds(fd, &in, want, deadline, err, errlen);
    if (ok) ok = parse_payload(&in, body + 4, len - 4, err, errlen);
    free(body);
    if (!ok) {
        /* nothing is taken over: our copies go, the running process keeps serving */
        for (uint32_t i = 0; i < in.nfds; i++) close(in.fds[i]);
        free(in.fds);
        close(fd);
        return false;
    }
    free(in.fds);
    if (tk_write_all(fd, "K", 1) < 0) {
        snprintf(err, errlen, "cannot confirm the hand-over: %s", strerror(errno));
        close(fd);
        return false;
    }
    close(fd);
    sl_log_info("takeover: took over %u clients and %u server connections (%u server connections dropped)",
                in.clients, in.servers, in.dropped);
    return true;
}
