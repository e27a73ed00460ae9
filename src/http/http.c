/* http.c - the HTTP server: libmicrohttpd with its own polling threads, the route table, the
 * bearer-token check and the error answers (404, 405, 401). Pages live in health.c, metrics.c
 * and tables.c; they only read snapshots (see snapshot.c), so the proxy path is never slowed. */
#include "http/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/routes.h"
#include "util/log.h"

#define HTTP_THREADS 2
#define HTTP_MAX_CONNS 64
#define HTTP_CONN_TIMEOUT_S 10

static struct MHD_Daemon *g_daemon;

static const struct {
    const char *path;
    sl_http_page page;
} routes[] = {
    {"/", sl_page_health},       {"/health", sl_page_health}, {"/live", sl_page_live},
    {"/ready", sl_page_ready},   {"/metrics", sl_page_metrics}, {"/pools", sl_page_pools},
    {"/stats", sl_page_stats},
};

static const char *lookup_arg(void *ctx, const char *name)
{
    return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result send_body(struct MHD_Connection *conn, int status, const char *ctype, sl_tb *body,
                                 const char *extra_header, const char *extra_value)
{
    if (body->failed) {
        sl_tb_free(body);
        sl_tb_put(body, "out of memory\n");
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        ctype = SL_CT_TEXT;
    }
    size_t len;
    char *data = sl_tb_take(body, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data ? data : "", data ? MHD_RESPMEM_MUST_FREE
                                                                                        : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (extra_header) MHD_add_response_header(resp, extra_header, extra_value);
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

static void error_body(sl_tb *b, const char *msg)
{
    sl_tb_put(b, "{\"error\":");
    sl_tb_json_str(b, msg);
    sl_tb_put(b, "}\n");
}

/* Constant-time comparison, so the token cannot be guessed byte by byte from timings. */
static bool token_equal(const char *given, const char *want)
{
    size_t gl = strlen(given), wl = strlen(want);
    unsigned diff = gl != wl;
    for (size_t i = 0; i < wl; i++) diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff == 0;
}

static bool authorized(const char *authorization, const char *token)
{
    if (!token || !*token) return true;
    return authorization && !strncasecmp(authorization, "Bearer ", 7) && token_equal(authorization + 7, token);
}

static sl_http_page find_page(const char *url)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!strcmp(url, routes[i].path)) return routes[i].page;
    return NULL;
}

void sl_http_answer_request(const char *method, const char *url, const char *authorization, const char *token,
                            sl_http_req *r, sl_tb *body, sl_http_answer *a)
{
    *a = (sl_http_answer){.status = MHD_HTTP_OK, .content_type = SL_CT_JSON};
    sl_http_page page = find_page(url);
    if (!authorized(authorization, token)) {
        a->status = MHD_HTTP_UNAUTHORIZED;
        a->header = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
        a->header_value = "Bearer realm=\"pgsluice\"";
        error_body(body, "missing or wrong bearer token");
    } else if (!page) {
        a->status = MHD_HTTP_NOT_FOUND;
        error_body(body, "no such path");
    } else if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        a->status = MHD_HTTP_METHOD_NOT_ALLOWED;
        a->header = MHD_HTTP_HEADER_ALLOW;
        a->header_value = "GET, HEAD";
        error_body(body, "only GET and HEAD are supported");
    } else {
        r->content_type = SL_CT_JSON;
        a->status = page(r, body);
        a->content_type = r->content_type;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
    (void)cls, (void)version, (void)upload;
    if (!*req_cls) { /* first call: headers only; answer on the next call, once any body is read */
        *req_cls = conn;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* bodies are ignored: every page is GET-only */
        return MHD_YES;
    }
    sl_config *cfg = sl_config_acquire(); /* held until answered: the token belongs to it */
    const char *authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    sl_http_req r = {.arg = lookup_arg, .ctx = conn, .content_type = SL_CT_JSON};
    sl_tb body;
    sl_tb_init(&body);
    sl_http_answer a;
    sl_http_answer_request(method, url, authorization, cfg->http_token, &r, &body, &a);
    sl_config_unref(cfg);
    return send_body(conn, a.status, a.content_type, &body, a.header, a.header_value);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    sl_log_debug("http: %s", msg);
}

static bool resolve(const char *addr, int port, struct sockaddr_storage *ss)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (!strcmp(addr, "*")) addr = NULL;
    int rc = getaddrinfo(addr && *addr ? addr : NULL, portstr, &hints, &res);
    if (rc != 0 || !res) {
        sl_log_error("http: cannot resolve http_listen_addr %s: %s", addr ? addr : "*", gai_strerror(rc));
        return false;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return true;
}

bool sl_http_start(const sl_config *cfg)
{
    if (cfg->http_port <= 0 || g_daemon) return true;
    struct sockaddr_storage ss = {0};
    if (!resolve(cfg->http_listen_addr, cfg->http_port, &ss)) {
        sl_log_warn("http: cannot use http_listen_addr \"%s\": the monitoring endpoint is off, SQL traffic is "
                    "served as usual", cfg->http_listen_addr);
        return false;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    g_daemon = MHD_start_daemon(flags, (uint16_t)cfg->http_port, NULL, NULL, on_request, NULL,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                /* so_reuseport: several pgsluice processes share the port, as they share
                                 * listen_port */
                                MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)(cfg->so_reuseport ? 1 : 0),
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONN_TIMEOUT_S,
                                MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!g_daemon) {
        int e = errno;
        /* monitoring never stops SQL traffic */
        sl_log_warn("http: cannot listen on %s:%d: %s; the monitoring endpoint is off, SQL traffic is served as "
                    "usual%s", cfg->http_listen_addr, cfg->http_port, e ? strerror(e) : "unknown error",
                    e == EADDRINUSE && !cfg->so_reuseport ? " (several pgsluice processes can share it with so_reuseport = 1)" : "");
        return false;
    }
    sl_log_info("http: monitoring endpoint on http://%s:%d/", cfg->http_listen_addr, cfg->http_port);
    return true;
}

void sl_http_stop(void)
{
    if (!g_daemon) return;
    MHD_stop_daemon(g_daemon);
    g_daemon = NULL;
}
