/* peers.c - the [peers] section: the other pgsluice (or PgBouncer) processes sharing a port with
 * so_reuseport, to which a cancel request meant for one of their clients is forwarded.
 *   <peer_id> = host=<address or Unix socket directory> [port=<n>] [pool_size=<n>]
 * peer_id is 1..16383, as PgBouncer's (it travels in the cancel key). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"

typedef struct {
    sl_peer_def *p;
} peer_ctx;

static bool peer_kv(void *vctx, const char *key, const char *value, char *err, size_t errlen)
{
    sl_peer_def *p = ((peer_ctx *)vctx)->p;
    if (!strcmp(key, "host")) {
        free(p->host);
        p->host = sl_cfg_strdup(value);
        if (!p->host) return sl_cfg_err(err, errlen, "out of memory"), false;
        return true;
    }
    if (!strcmp(key, "port")) {
        if (!sl_parse_int_range(value, 1, 65535, &p->port))
            return sl_cfg_err(err, errlen, "invalid port \"%s\"", value), false;
        return true;
    }
    if (!strcmp(key, "pool_size")) {
        if (!sl_parse_int_range(value, 0, 1000000, &p->pool_size))
            return sl_cfg_err(err, errlen, "invalid pool_size \"%s\"", value), false;
        return true;
    }
    return sl_cfg_err(err, errlen, "unknown peer parameter \"%s\"", key), false;
}

bool sl_peer_def_parse(sl_peer_def *p, const char *id, const char *connstr, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->port = 6432;
    p->pool_size = -1;
    if (!sl_parse_int_range(id, 1, SL_PEER_ID_MAX, &p->id))
        return sl_cfg_err(err, errlen, "peer id \"%s\" is not a number from 1 to %d", id, SL_PEER_ID_MAX), false;
    peer_ctx ctx = {p};
    if (!sl_connstr_parse(connstr, peer_kv, &ctx, err, errlen)) {
        sl_peer_def_free(p);
        return false;
    }
    if (!p->host || !*p->host) {
        sl_peer_def_free(p);
        return sl_cfg_err(err, errlen, "peer %s needs host=", id), false;
    }
    return true;
}

void sl_peer_def_free(sl_peer_def *p)
{
    free(p->host);
    p->host = NULL;
}

const sl_peer_def *sl_config_find_peer(const sl_config *c, int id)
{
    for (size_t i = 0; c && i < c->n_peers; i++)
        if (c->peers[i].id == id) return &c->peers[i];
    return NULL;
}
