/* backend.c - one host of a route's database: its idle servers (one list per worker), the address
 * its name resolved to, and what its servers say at login (replayed to clients that log in later). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool.h"
#include "pool/pool_int.h"
#include "util/time.h"

static const char *const role_names[] = {"any", "primary", "replica"};

const char *sl_role_name(sl_role r) { return r >= SL_ROLE_ANY && r <= SL_ROLE_REPLICA ? role_names[r] : "unknown"; }

sl_backend *sl_backend_new(sl_route *r, int index, const sl_host_def *h)
{
    sl_backend *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->idle = calloc((size_t)sl_pool_nworkers, sizeof(sl_list));
    if (!b->idle || (h->host && !(b->host = strdup(h->host)))) {
        free(b->idle);
        free(b);
        return NULL;
    }
    for (int i = 0; i < sl_pool_nworkers; i++) sl_list_init(&b->idle[i]);
    sl_list_init(&b->retired_node);
    b->route = r;
    b->index = index;
    b->port = h->port > 0 ? h->port : 5432;
    b->role = SL_ROLE_ANY;
    b->target_gen = 1;
    sl_pb_init(&b->welcome);
    return b;
}

void sl_backend_free(sl_backend *b)
{
    if (!b) return;
    sl_pb_free(&b->welcome);
    sl_params_clear(&b->welcome_params);
    free(b->idle);
    free(b->host);
    free(b);
}

bool sl_backend_dns_get(sl_backend *b, int64_t ttl, struct sockaddr_storage *ss, socklen_t *len)
{
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    bool hit = b->dns_at && sl_now_us() - b->dns_at < ttl;
    if (hit) {
        memcpy(ss, &b->dns_addr, b->dns_len);
        *len = b->dns_len;
    }
    sl_mutex_unlock(&r->lock);
    return hit;
}

void sl_backend_dns_store(sl_backend *b, const struct sockaddr *sa, socklen_t len)
{
    if (len > sizeof(b->dns_addr)) return;
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    memcpy(&b->dns_addr, sa, len);
    b->dns_len = len;
    b->dns_at = sl_now_us();
    sl_mutex_unlock(&r->lock);
}

void sl_backend_dns_forget(sl_backend *b)
{
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    b->dns_at = 0;
    sl_mutex_unlock(&r->lock);
}

void sl_backend_set_welcome(sl_backend *b, const sl_params *server_params, const sl_pktbuf *other)
{
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    if (!b->have_welcome && other) {
        sl_pb_reset(&b->welcome);
        sl_pb_bytes(&b->welcome, other->data, other->len);
        for (int i = 0; i < SL_NPARAMS; i++) sl_params_set_interned(&b->welcome_params, i, server_params->v[i]);
        b->have_welcome = !b->welcome.failed;
    }
    sl_mutex_unlock(&r->lock);
}

void sl_backend_addr_str(const sl_backend *b, char *out, size_t len)
{
    /* host and port are set when the backend is made and never change */
    if (!b->host || b->host[0] == '/') snprintf(out, len, "unix:%d", b->port);
    else snprintf(out, len, "%s:%d", b->host, b->port);
}
