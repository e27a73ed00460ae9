/* routes.h - the HTTP endpoint's pages: each renders a body from a fresh snapshot and returns the
 * status code. Shared by http.c (dispatch) and the page files (health.c, metrics.c, tables.c). */
#ifndef SL_HTTP_ROUTES_H
#define SL_HTTP_ROUTES_H

#include <stdint.h>

#include "http/textbuf.h"

/* One request as the pages see it: query arguments through a lookup callback. */
typedef struct sl_http_req {
    const char *(*arg)(void *ctx, const char *name); /* NULL when absent */
    void *ctx;
    const char *content_type;                        /* out: set by the page */
} sl_http_req;

#define SL_CT_JSON "application/json; charset=utf-8"
#define SL_CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define SL_CT_TEXT "text/plain; charset=utf-8"

typedef int (*sl_http_page)(sl_http_req *r, sl_tb *out);

/* The answer to one request, decided without libmicrohttpd (http.c): the bearer token check
 * (token NULL or "" = none needed; authorization = the Authorization header, NULL when absent),
 * the route, the method, then the page. The body goes to body. */
typedef struct sl_http_answer {
    int status;
    const char *content_type;
    const char *header, *header_value; /* one extra header, or NULL */
} sl_http_answer;
void sl_http_answer_request(const char *method, const char *url, const char *authorization, const char *token,
                            sl_http_req *r, sl_tb *body, sl_http_answer *a);

int sl_page_health(sl_http_req *r, sl_tb *out);   /* / and /health */
int sl_page_live(sl_http_req *r, sl_tb *out);
int sl_page_ready(sl_http_req *r, sl_tb *out);
int sl_page_metrics(sl_http_req *r, sl_tb *out);
int sl_page_pools(sl_http_req *r, sl_tb *out);
int sl_page_stats(sl_http_req *r, sl_tb *out);

/* The pages' renderers: the page of a given snapshot (each sl_page_* above takes a fresh one and
 * calls its renderer). */
struct sl_snapshot;
int sl_render_health(sl_http_req *r, const struct sl_snapshot *s, sl_tb *out);
int sl_render_ready(const struct sl_snapshot *s, sl_tb *out);
int sl_render_metrics(const struct sl_snapshot *s, sl_tb *out);
int sl_render_pools(const struct sl_snapshot *s, sl_tb *out);
int sl_render_stats(const struct sl_snapshot *s, sl_tb *out);

/* RFC 3339 UTC timestamp ("2024-12-26T15:30:00Z") of a wall clock in usec. */
void sl_tb_rfc3339(sl_tb *b, int64_t wall_us);

#endif
