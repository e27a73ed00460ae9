/* fuzz_admin_parse.c - the admin console's command grammar (admin/parse.c): a Query string split
 * into statements (adm_next_statement), each parsed (adm_parse), and the result columns of a
 * parsed command (adm_describe, no side effects) sent as a RowDescription in the result formats
 * a Bind asked for. Commands are never executed here (they act on the running pooler).
 * Input: one byte n, n big-endian 16-bit result formats, then the query text (up to a NUL, as in
 * a Query message). Checks: statements lie inside the query, in order, and the split always ends;
 * a statement is parsed from exactly its own bytes (an exact-size copy, no NUL after it); a parsed
 * command has a lower-case keyword verb and NUL-terminated fields; the RowDescription is whole. */
#include "fuzz_common.h"

#include <ctype.h>

#include "admin/admin_int.h"
#include "util/log.h"

static void check_cmd(const adm_cmd *cmd)
{
    FZ_CHECK(memchr(cmd->verb, 0, sizeof(cmd->verb)) && memchr(cmd->arg, 0, sizeof(cmd->arg)) &&
                 memchr(cmd->value, 0, sizeof(cmd->value)) && memchr(cmd->text, 0, sizeof(cmd->text)),
             "unterminated field");
    FZ_CHECK(cmd->verb[0], "empty verb");
    for (const char *p = cmd->verb; *p; p++)
        FZ_CHECK((isalnum((unsigned char)*p) || *p == '_') && !isupper((unsigned char)*p), "verb \"%s\"", cmd->verb);
    if (cmd->kind == ADM_CMD_SET) FZ_CHECK(!strcmp(cmd->verb, "set") && cmd->arg[0], "SET without a name");
}

static void check_rowdesc(const sl_pktbuf *out, int ncols)
{
    FZ_CHECK(!out->failed, "builder failed");
    FZ_CHECK(out->len >= 5, "no message");
    FZ_CHECK(sl_get_u32(out->data + 1) == out->len - 1, "length field %u for %zu bytes", sl_get_u32(out->data + 1),
             out->len);
    if (ncols == 0) {
        FZ_CHECK(out->data[0] == 'n' && out->len == 5, "NoData expected");
        return;
    }
    FZ_CHECK(out->data[0] == 'T', "RowDescription expected");
    sl_rd r;
    sl_rd_init(&r, out->data + 5, out->len - 5);
    FZ_CHECK(sl_rd_u16(&r) == ncols, "column count");
    for (int i = 0; i < ncols; i++) {
        FZ_CHECK(sl_rd_str(&r) != NULL, "column %d name", i);
        sl_rd_bytes(&r, 18);
    }
    FZ_CHECK(!r.failed && sl_rd_left(&r) == 0, "RowDescription malformed");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    int nfmts = fz_u8(&in) % 8;
    int16_t fmts[8];
    for (int i = 0; i < nfmts; i++) fmts[i] = (int16_t)fz_u16(&in);
    char *q = fz_strndup(in.p, in.n);
    size_t qlen = strlen(q), off = 0, start, len, prev_end = 0;
    int guard = 0;
    while (adm_next_statement(q, &off, &start, &len)) {
        FZ_CHECK(++guard <= (int)qlen + 1, "the statement split does not end");
        FZ_CHECK(start >= prev_end && start + len <= qlen && off <= qlen && off >= start + len,
                 "statement [%zu, +%zu) off %zu in a %zu-byte query", start, len, off, qlen);
        FZ_CHECK(len > 0, "empty statement");
        prev_end = start + len;
        char *stmt = malloc(len);
        if (!stmt) abort();
        memcpy(stmt, q + start, len);
        adm_cmd cmd;
        char err[256] = "";
        if (adm_parse(stmt, len, &cmd, err, sizeof(err))) {
            check_cmd(&cmd);
            adm_result r;
            adm_result_init(&r);
            adm_describe(&cmd, &r);
            FZ_CHECK(r.ncols >= 0 && r.ncols <= ADM_MAX_COLS, "ncols %d", r.ncols);
            if (!r.failed) {
                sl_pktbuf out;
                sl_pb_init(&out);
                adm_send_rowdesc(&out, &r, fmts, nfmts);
                check_rowdesc(&out, r.ncols);
                sl_pb_free(&out);
            }
            adm_result_free(&r);
        } else {
            FZ_CHECK(err[0], "refused without a reason");
        }
        free(stmt);
    }
    FZ_CHECK(off == qlen, "split stopped at %zu of %zu", off, qlen);
    free(q);
    return 0;
}
