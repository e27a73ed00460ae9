/* fuzz_startup.c - the startup packet parser (sl_startup_parse, sl_startup_get), fed the way
 * client.c's handle_login feeds it: the first bytes a client sends, as a sequence of
 * length-prefixed packets (SSLRequest / GSSENCRequest may come before the startup packet).
 * The "options" parameter of an accepted startup packet goes through sl_pgoptions_next as client.c
 * reads it (proto/pgoptions.c).
 * Checks: every accepted packet rebuilds byte for byte with the message builder from what the
 * parser returned (so nothing was lost or invented), and the names and values lie inside it; the
 * options reader always advances, stops, and gives a non-empty name without '-' for each setting
 * and a reason for each refusal. */
#include "fuzz_common.h"

#include "proto/pgoptions.h"
#include "proto/pkt.h"

/* The options as client.c reads them (its buffer sizes), from an exact-size copy. */
static void check_options(const char *options)
{
    size_t n = strlen(options);
    char *copy = malloc(n + 1);
    if (!copy) abort();
    memcpy(copy, options, n + 1);
    const char *pos = copy;
    char name[128], value[512], err[256];
    for (int i = 0;; i++) {
        FZ_CHECK(i <= (int)n + 1, "options reader does not stop");
        const char *before = pos;
        err[0] = '\0';
        sl_pgopt_status st = sl_pgoptions_next(&pos, name, sizeof(name), value, sizeof(value), err, sizeof(err));
        FZ_CHECK(pos >= copy && pos <= copy + n, "options position outside the string");
        if (st == SL_PGOPT_DONE) break;
        if (st == SL_PGOPT_ERROR) {
            FZ_CHECK(err[0] != '\0', "options refused without a reason");
            break;
        }
        FZ_CHECK(st == SL_PGOPT_SETTING, "options status %d", (int)st);
        FZ_CHECK(pos > before, "a setting without advancing");
        FZ_CHECK(name[0] != '\0' && strlen(name) < sizeof(name) && strlen(value) < sizeof(value),
                 "setting name or value");
        FZ_CHECK(!strchr(name, '-'), "'-' left in the setting name \"%s\"", name);
    }
    free(copy);
}

static void check_roundtrip(const uint8_t *pkt, uint32_t len, const sl_startup *st)
{
    sl_pktbuf pb;
    sl_pb_init(&pb);
    sl_pb_begin(&pb, 0);
    sl_pb_u32(&pb, st->code);
    if (st->code == SL_CANCEL_CODE) {
        sl_pb_u32(&pb, st->cancel_pid);
        sl_pb_u32(&pb, st->cancel_key);
    } else if (st->code != SL_SSL_CODE && st->code != SL_GSSENC_CODE) {
        FZ_CHECK(st->nparams >= 0 && st->nparams <= SL_STARTUP_MAX_PARAMS, "nparams %d", st->nparams);
        for (int i = 0; i < st->nparams; i++) {
            const char *n = st->names[i], *v = st->values[i];
            FZ_CHECK((const uint8_t *)n > pkt && (const uint8_t *)n < pkt + len, "name %d outside the packet", i);
            FZ_CHECK((const uint8_t *)v > pkt && (const uint8_t *)v < pkt + len, "value %d outside the packet", i);
            FZ_CHECK(*n != '\0', "empty parameter name %d accepted", i);
            sl_pb_str(&pb, n);
            sl_pb_str(&pb, v);
            /* the first occurrence wins */
            const char *got = sl_startup_get(st, n);
            for (int k = 0; k < i; k++) {
                if (!strcmp(st->names[k], n)) {
                    v = st->values[k];
                    break;
                }
            }
            FZ_CHECK(got == v, "sl_startup_get(\"%s\") is not the first value", n);
        }
        sl_pb_u8(&pb, 0);
    }
    sl_pb_end(&pb);
    FZ_CHECK(!pb.failed, "builder failed");
    FZ_CHECK(pb.len == len && memcmp(pb.data, pkt, len) == 0, "accepted packet does not rebuild (%zu vs %u bytes)",
             pb.len, len);
    sl_pb_free(&pb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    /* like handle_login: packets back to back until one is not complete, is refused, or is the
     * startup packet / cancel request that ends the login phase */
    while (size - pos >= 4) {
        uint32_t len = sl_get_u32(data + pos);
        if (len < 8 || len > SL_STARTUP_MAX || len > size - pos) {
            sl_startup st;
            /* the parser must refuse these by itself too (when the bytes are there) */
            if (len <= size - pos && len >= 4)
                FZ_CHECK(sl_startup_parse(data + pos, len, &st) != SL_STARTUP_OK, "bad length %u accepted", len);
            return 0;
        }
        /* an exact-size copy, so a read past the packet is a sanitizer finding */
        uint8_t *pkt = malloc(len);
        if (!pkt) return 0;
        memcpy(pkt, data + pos, len);
        sl_startup st;
        sl_startup_status rc = sl_startup_parse(pkt, len, &st);
        FZ_CHECK(strlen(sl_startup_status_str(rc)) > 0, "status without a text");
        if (rc == SL_STARTUP_OK) {
            check_roundtrip(pkt, len, &st);
            const char *options = st.code == SL_CANCEL_CODE ? NULL : sl_startup_get(&st, "options");
            if (options) check_options(options);
        }
        bool more = rc == SL_STARTUP_OK && (st.code == SL_SSL_CODE || st.code == SL_GSSENC_CODE);
        free(pkt);
        if (!more) return 0;
        pos += len;
    }
    return 0;
}
