/* fuzz_userlist.c - the auth_file reader (userlist.c): the input is the file. Checks: an accepted
 * file gives entries with non-empty names, sorted and without repeats (the later line wins), and
 * those entries written back in the file format ("" for a quote) read back the same. The
 * password strings also go through the checks that decide how they are used at login
 * (md5 hash? SCRAM secret?), which parse them. */
#include "fuzz_common.h"

#include "auth/md5.h"
#include "auth/scram.h"
#include "config/config.h"
#include "util/log.h"

static void write_entries(const sl_userlist_entry *e, size_t n, char *path, size_t plen)
{
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += 2 * (strlen(e[i].name) + strlen(e[i].password)) + 8;
    char *s = malloc(cap), *o = s;
    if (!s) abort();
    for (size_t i = 0; i < n; i++) {
        const char *fields[2] = {e[i].name, e[i].password};
        for (int f = 0; f < 2; f++) {
            *o++ = '"';
            for (const char *c = fields[f]; *c; c++) {
                if (*c == '"') *o++ = '"';
                *o++ = *c;
            }
            *o++ = '"';
            *o++ = f ? '\n' : ' ';
        }
    }
    fz_write_file("userlist_again.txt", s, (size_t)(o - s), path, plen);
    free(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512], path2[512], err[1024];
    fz_write_file("userlist.txt", data, size, path, sizeof(path));
    sl_userlist_entry *e = NULL, *e2 = NULL;
    size_t n = 0, n2 = 0;
    if (!sl_userlist_load(path, &e, &n, err, sizeof(err))) {
        FZ_CHECK(err[0] != '\0', "refused without a reason");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(e[i].name && e[i].password && e[i].name[0], "entry %zu: empty name", i);
        if (i) FZ_CHECK(strcmp(e[i - 1].name, e[i].name) < 0, "entries %zu and %zu not sorted and distinct", i - 1, i);
        /* what the login path asks of a stored password */
        sl_scram_secret sec;
        if (sl_scram_is_secret(e[i].password)) FZ_CHECK(sl_scram_parse_secret(e[i].password, &sec), "is/parse disagree");
        (void)sl_md5_is_hash(e[i].password);
    }
    write_entries(e, n, path2, sizeof(path2));
    FZ_CHECK(sl_userlist_load(path2, &e2, &n2, err, sizeof(err)), "written back, refused: %s", err);
    FZ_CHECK(n == n2, "%zu entries, %zu after writing back", n, n2);
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK(!strcmp(e[i].name, e2[i].name), "name %zu changed", i);
        FZ_CHECK(!strcmp(e[i].password, e2[i].password), "password %zu changed", i);
    }
    sl_userlist_free(e, n);
    sl_userlist_free(e2, n2);
    return 0;
}
