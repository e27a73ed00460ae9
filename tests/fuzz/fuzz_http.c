/* fuzz_http.c - our side of the HTTP endpoint (src/http): the decision on a request (bearer token,
 * route, method: sl_http_answer_request, with the real pages of this process) and every page
 * rendered from a fuzzed snapshot (sl_render_*): names of databases and users as a client's
 * startup packet or the config file may spell them, any counters, errors and query arguments.
 * libmicrohttpd's own parsing is not ours and is not fuzzed here.
 * Input: a flags byte (1: an Authorization header is sent), then NUL-separated fields: method,
 * url, Authorization, configured token, ?utilization=, ?maxwait=; then the snapshot's bytes.
 * Checks: a JSON page is valid JSON (RFC 8259, UTF-8 included), /metrics is valid Prometheus text
 * (sample lines, escapes in label values, UTF-8), the status is one the endpoint documents, and
 * the token check answers 401 exactly when the header is not "Bearer <token>". */
#include "fuzz_common.h"

#include <ctype.h>
#include <strings.h>

#include "config/config.h"
#include "http/routes.h"
#include "http/snapshot.h"
#include "pool/pool.h"
#include "util/log.h"

/* ---- validators ---- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) len = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) len = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) len = 4, cp = p[0] & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

typedef struct json {
    const unsigned char *p, *end;
    int depth;
    const char *why;
} json;

static void jws(json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static bool jfail(json *j, const char *why)
{
    if (!j->why) j->why = why;
    return false;
}

static bool jvalue(json *j);

static bool jstring(json *j)
{
    j->p++; /* the opening quote */
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20) return jfail(j, "control character in a string");
        if (c == '\\') {
            if (j->end - j->p < 2) return jfail(j, "truncated escape");
            char e = (char)j->p[1];
            if (e == 'u') {
                if (j->end - j->p < 6) return jfail(j, "truncated \\u escape");
                for (int i = 2; i < 6; i++)
                    if (!strchr("0123456789abcdefABCDEF", j->p[i]) || !j->p[i]) return jfail(j, "bad \\u escape");
                j->p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || !e) return jfail(j, "bad escape");
            j->p += 2;
            continue;
        }
        size_t l = utf8_len(j->p, (size_t)(j->end - j->p));
        if (!l) return jfail(j, "invalid UTF-8 in a string");
        j->p += l;
    }
    return jfail(j, "unterminated string");
}

static bool jnumber(json *j)
{
    const unsigned char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return jfail(j, "bad number");
    if (*j->p == '0') j->p++;
    else
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return jfail(j, "bad fraction");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return jfail(j, "bad exponent");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    return j->p > s;
}

static bool jword(json *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n)) return jfail(j, "bad literal");
    j->p += n;
    return true;
}

static bool jcontainer(json *j, char close)
{
    if (++j->depth > 64) return jfail(j, "nested too deeply");
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        jws(j);
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"') return jfail(j, "object key expected");
            if (!jstring(j)) return false;
            jws(j);
            if (j->p >= j->end || *j->p != ':') return jfail(j, "':' expected");
            j->p++;
        }
        if (!jvalue(j)) return false;
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return true;
        }
        return jfail(j, "',' or end of container expected");
    }
}

static bool jvalue(json *j)
{
    jws(j);
    if (j->p >= j->end) return jfail(j, "value expected");
    switch (*j->p) {
    case '{': return jcontainer(j, '}');
    case '[': return jcontainer(j, ']');
    case '"': return jstring(j);
    case 't': return jword(j, "true");
    case 'f': return jword(j, "false");
    case 'n': return jword(j, "null");
    default: return jnumber(j);
    }
}

static void check_json(const char *what, const sl_tb *b)
{
    FZ_CHECK(!b->failed, "%s: out of memory", what);
    json j = {(const unsigned char *)b->data, (const unsigned char *)b->data + b->len, 0, NULL};
    bool ok = b->data && jvalue(&j);
    if (ok) {
        jws(&j);
        if (j.p != j.end) ok = jfail(&j, "text after the value");
    }
    FZ_CHECK(ok, "%s: invalid JSON (%s) at byte %zu: %.*s", what, j.why ? j.why : "empty",
             b->data ? (size_t)(j.p - (const unsigned char *)b->data) : 0, (int)(b->len < 2000 ? b->len : 2000),
             b->data ? b->data : "");
}

static bool prom_name(const char **p, const char *end)
{
    const char *s = *p;
    if (s >= end || !(isalpha((unsigned char)*s) || *s == '_' || *s == ':')) return false;
    while (s < end && (isalnum((unsigned char)*s) || *s == '_' || *s == ':')) s++;
    *p = s;
    return true;
}

/* One exposition-format line (without its newline); NULL when fine, else why not. */
static const char *prom_line(const char *s, const char *end)
{
    for (const char *q = s; q < end;) {
        size_t l = utf8_len((const unsigned char *)q, (size_t)(end - q));
        if (!l) return "invalid UTF-8";
        q += l;
    }
    if (s < end && *s == '#') {
        if ((size_t)(end - s) >= 7 && (!memcmp(s, "# HELP ", 7) || !memcmp(s, "# TYPE ", 7))) {
            const char *q = s + 7;
            if (!prom_name(&q, end) || (q < end && *q != ' ')) return "bad metric name in a comment";
        }
        return NULL;
    }
    const char *q = s;
    if (!prom_name(&q, end)) return "bad metric name";
    if (q < end && *q == '{') {
        q++;
        for (;;) {
            if (q < end && *q == '}') break;
            if (!prom_name(&q, end)) return "bad label name";
            if (end - q < 2 || q[0] != '=' || q[1] != '"') return "label without =\"";
            q += 2;
            while (q < end && *q != '"') {
                if (*q == '\\') {
                    if (end - q < 2 || !strchr("\\\"n", q[1]) || !q[1]) return "bad escape in a label value";
                    q += 2;
                } else {
                    q++;
                }
            }
            if (q >= end) return "unterminated label value";
            q++;
            if (q < end && *q == ',') q++;
            else if (q >= end || *q != '}') return "',' or '}' expected after a label";
        }
        q++;
    }
    if (q >= end || *q != ' ') return "no space before the value";
    q++;
    char num[64];
    size_t n = (size_t)(end - q);
    if (n == 0 || n >= sizeof(num)) return "bad value";
    memcpy(num, q, n);
    num[n] = '\0';
    if (!strcmp(num, "+Inf") || !strcmp(num, "-Inf") || !strcmp(num, "NaN")) return NULL;
    char *e;
    strtod(num, &e);
    return *e ? "value is not a number" : NULL;
}

static void check_prom(const sl_tb *b)
{
    FZ_CHECK(!b->failed && b->data && b->len && b->data[b->len - 1] == '\n', "metrics: empty or not newline-ended");
    const char *s = b->data, *end = b->data + b->len;
    int line = 1;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *why = prom_line(s, nl);
        FZ_CHECK(!why, "metrics line %d: %s: %.*s", line, why, (int)(nl - s), s);
        s = nl + 1;
        line++;
    }
}

/* ---- the fuzzed request and snapshot ---- */

typedef struct fuzz_args {
    const char *utilization, *maxwait;
} fuzz_args;

static const char *arg_of(void *ctx, const char *name)
{
    const fuzz_args *a = ctx;
    if (!strcmp(name, "utilization")) return a->utilization;
    if (!strcmp(name, "maxwait")) return a->maxwait;
    return NULL;
}

static char *field(fz_in *in)
{
    size_t n;
    const uint8_t *p = fz_bytes(in, 0, &n);
    while (in->n && *in->p) {
        in->p++;
        in->n--;
        n++;
    }
    if (in->n) { /* the NUL */
        in->p++;
        in->n--;
    }
    return fz_strndup(p, n);
}

static char *small_string(fz_in *in)
{
    size_t n;
    const uint8_t *p = fz_bytes(in, fz_u8(in) % 40, &n);
    return fz_strndup(p, n); /* stops at a NUL, as names in the pooler do */
}

static uint64_t fz_u64(fz_in *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | fz_u8(in);
    return v;
}

static void fill_stats(fz_in *in, sl_pool_stats *st)
{
    uint8_t how = fz_u8(in);
    uint64_t base = how & 1 ? fz_u64(in) : fz_u16(in);
    uint64_t *fields[] = {&st->xact_count, &st->query_count, &st->bytes_in, &st->bytes_out, &st->xact_time_us,
                          &st->query_time_us, &st->wait_time_us, &st->server_connects, &st->client_logins,
                          &st->client_parses, &st->prepare_hits};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) *fields[i] = base * (i + 1);
    for (int c = 0; c < SL_NERRCLASS; c++) st->errors[c] = how & 2 ? base + (uint64_t)c : 0;
    sl_hist *h[] = {&st->h_xact, &st->h_query, &st->h_wait};
    for (int k = 0; k < 3; k++) {
        for (int b = 0; b < SL_HIST_BUCKETS; b++) h[k]->count[b] = how & 4 ? base >> b : fz_u8(in);
        h[k]->sum_us = base * 1000;
    }
}

static sl_snapshot *fuzzed_snapshot(fz_in *in)
{
    sl_snapshot *s = calloc(1, sizeof(*s));
    if (!s) abort();
    s->wall_us = (int64_t)(fz_u16(in) * 65536u + fz_u16(in)) * 1000000 + fz_u16(in); /* 1970 to 2106 */
    s->now_us = (int64_t)fz_u16(in) * 1000000;
    s->run_state = fz_u8(in) % 6;
    s->nworkers = fz_u8(in) % 5;
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].clients = fz_u16(in);
        s->workers[i].accepted = fz_u64(in);
        s->workers[i].events = fz_u64(in);
        s->workers[i].cpu_us = fz_u64(in);
        s->total_clients += s->workers[i].clients;
    }
    s->server_login_retry_us = fz_u16(in) * 1000;
    s->npools = fz_u8(in) % 6;
    s->pools = calloc((size_t)s->npools + 1, sizeof(*s->pools));
    if (!s->pools) abort();
    s->routes.v = s->pools; /* sl_snapshot_free frees them there */
    s->routes.n = s->npools;
    for (int i = 0; i < s->npools; i++) {
        sl_route_snap *p = &s->pools[i];
        p->db = small_string(in);
        p->user = small_string(in);
        p->pool_mode = fz_u8(in) % 3;
        p->cl_active = fz_u16(in);
        p->cl_waiting = fz_u8(in);
        p->sv_active = fz_u8(in);
        p->sv_idle = fz_u8(in);
        p->sv_used = fz_u8(in);
        p->sv_login = fz_u8(in);
        p->pool_size = fz_u8(in);
        p->reserve_size = fz_u8(in);
        p->max_db_conns = fz_u8(in);
        p->maxwait_us = (int64_t)fz_u16(in) * 100000 + fz_u16(in);
        uint8_t b = fz_u8(in);
        p->paused = b & 1;
        p->disabled = b & 2;
        p->login_failure_age_us = b & 4 ? (int64_t)fz_u16(in) * 1000 : -1;
        char *err = small_string(in);
        snprintf(p->login_error, sizeof(p->login_error), "%s", err);
        free(err);
        fill_stats(in, &p->stats);
    }
    s->ndbs = fz_u8(in) % 6;
    s->dbs = calloc((size_t)s->ndbs + 1, sizeof(*s->dbs));
    for (int i = 0; i < s->ndbs; i++) {
        sl_db_snap *d = &s->dbs[i];
        d->name = small_string(in);
        uint8_t b = fz_u8(in);
        d->host = b & 1 ? small_string(in) : NULL;
        d->port = fz_u16(in);
        d->npools = fz_u8(in);
        d->reachable = b & 2;
        char *err = small_string(in);
        snprintf(d->error, sizeof(d->error), "%s", err);
        free(err);
        fill_stats(in, &d->stats);
    }
    for (int i = 0; i < s->npools; i++) { /* last, so that older inputs keep their meaning */
        sl_route_snap *p = &s->pools[i];
        p->n_clients = p->cl_active + p->cl_waiting;
        p->sv_tested = fz_u8(in);
        p->min_pool_size = fz_u8(in);
        p->nbackends = fz_u8(in) % 4;
    }
    return s;
}

/* ---- the target ---- */

static void render_all(sl_snapshot *s, fuzz_args *args)
{
    sl_http_req r = {.arg = arg_of, .ctx = args, .content_type = SL_CT_JSON};
    int (*json_pages[])(const sl_snapshot *, sl_tb *) = {sl_render_ready, sl_render_pools, sl_render_stats};
    const char *names[] = {"/ready", "/pools", "/stats"};
    sl_tb b;
    sl_tb_init(&b);
    int st = sl_render_health(&r, s, &b);
    FZ_CHECK(st == 200 || st == 503, "/health status %d", st);
    check_json("/health", &b);
    sl_tb_free(&b);
    for (int i = 0; i < 3; i++) {
        st = json_pages[i](s, &b);
        FZ_CHECK(st == 200 || st == 503, "%s status %d", names[i], st);
        check_json(names[i], &b);
        sl_tb_free(&b);
    }
    FZ_CHECK(sl_render_metrics(s, &b) == 200, "/metrics status");
    check_prom(&b);
    sl_tb_free(&b);
}

static void request(const char *method, const char *url, const char *authorization, const char *token,
                    fuzz_args *args)
{
    sl_http_req r = {.arg = arg_of, .ctx = args, .content_type = SL_CT_JSON};
    sl_tb body;
    sl_tb_init(&body);
    sl_http_answer a;
    sl_http_answer_request(method, url, authorization, token, &r, &body, &a);
    bool want_auth = token && *token;
    bool good = !want_auth || (authorization && !strncasecmp(authorization, "bearer ", 7) &&
                               !strcmp(authorization + 7, token));
    FZ_CHECK((a.status == 401) == !good, "status %d for Authorization \"%s\", token \"%s\"", a.status,
             authorization ? authorization : "(none)", token);
    static const int known[] = {200, 401, 404, 405, 500, 503};
    bool ok = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) ok |= a.status == known[i];
    FZ_CHECK(ok, "status %d", a.status);
    FZ_CHECK(a.content_type != NULL, "no content type");
    if (!strcmp(a.content_type, SL_CT_JSON)) check_json(url, &body);
    else if (!strcmp(a.content_type, SL_CT_PROM)) check_prom(&body);
    sl_tb_free(&body);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1);
    sl_pools_init(1);
    sl_config_set_current(sl_config_new_default());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t flags = fz_u8(&in);
    char *method = field(&in), *url = field(&in), *authorization = field(&in), *token = field(&in);
    char *util = field(&in), *maxwait = field(&in);
    fuzz_args args = {*util ? util : NULL, *maxwait ? maxwait : NULL};
    request(method, url, flags & 1 ? authorization : NULL, token, &args);
    sl_snapshot *s = fuzzed_snapshot(&in);
    render_all(s, &args);
    sl_snapshot_free(s);
    free(method);
    free(url);
    free(authorization);
    free(token);
    free(util);
    free(maxwait);
    return 0;
}
