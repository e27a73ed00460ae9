/* fuzz_config.c - the config file loader as a whole: the ini reader (ini.c: sections, comments,
 * %include, ${VAR}), the settings table, [databases]/[users] connection strings and the auth_file,
 * through sl_config_load. The input holds up to three files separated by two NUL bytes: the main
 * file, "inc.ini" and "users.txt", written to a private directory whose path is in ${FUZZ_DIR}
 * (so a seed can say "%include ${FUZZ_DIR}/inc.ini" or "auth_file = ${FUZZ_DIR}/users.txt").
 * fopen is wrapped (-Wl,--wrap=fopen) so that while the loader runs, only regular files in that
 * directory open: an input naming /dev/zero or a FIFO cannot hang the fuzzer.
 * Checks on an accepted file: databases and users sorted with unique names, every string setting
 * set, numbers in their ranges, lookups find each entry, and the snapshot clones and frees. */
#include "fuzz_common.h"

#include <errno.h>

#include "config/config.h"
#include "util/log.h"

static bool g_sandbox;

FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);

/* Only regular files inside the fuzz directory, while the loader runs. */
FILE *__wrap_fopen(const char *path, const char *mode)
{
    if (g_sandbox) {
        char real[PATH_MAX];
        const char *dir = fz_dir();
        size_t dl = strlen(dir);
        struct stat st;
        if (!realpath(path, real) || strncmp(real, dir, dl) != 0 || real[dl] != '/' || stat(real, &st) != 0 ||
            !S_ISREG(st.st_mode)) {
            errno = ENOENT;
            return NULL;
        }
    }
    return __real_fopen(path, mode);
}

static void check_config(const sl_config *c)
{
    for (size_t i = 0; i < c->n_dbs; i++) {
        const sl_db_def *d = &c->dbs[i];
        FZ_CHECK(d->name != NULL, "database %zu without a name", i);
        if (i) FZ_CHECK(strcmp(c->dbs[i - 1].name, d->name) < 0, "databases %zu, %zu not sorted/unique", i - 1, i);
        FZ_CHECK(sl_config_find_db(c, d->name) == d, "find_db(%s) misses it", d->name);
        FZ_CHECK(d->port >= 1 && d->port <= 65535, "port %d", d->port);
    }
    for (size_t i = 0; i < c->n_users; i++) {
        if (i) FZ_CHECK(strcmp(c->users[i - 1].name, c->users[i].name) < 0, "users not sorted/unique");
        FZ_CHECK(sl_config_find_user(c, c->users[i].name) == &c->users[i], "find_user misses %s", c->users[i].name);
    }
    for (size_t i = 0; i < c->n_userlist; i++)
        FZ_CHECK(sl_config_find_userlist(c, c->userlist[i].name) == &c->userlist[i], "find_userlist misses one");
    for (size_t i = 0; i < sl_settings_count; i++) {
        const sl_setting *s = &sl_settings[i];
        const void *p = (const char *)c + s->offset;
        if (s->type == SL_T_STRING) FZ_CHECK(*(char *const *)p != NULL, "%s is NULL", s->name);
        if (s->type == SL_T_INT) {
            int v = *(const int *)p;
            int64_t hi = s->max_value ? s->max_value : 2147483647;
            /* workers = 0 in the file means "one per CPU", resolved at load */
            FZ_CHECK((v >= s->min_value && v <= hi) || !strcmp(s->name, "workers"), "%s = %d out of range", s->name, v);
        }
        char shown[4096];
        sl_setting_format(c, s, shown, sizeof(shown));
    }
    FZ_CHECK(c->workers >= 1, "workers %d not resolved", c->workers);
    sl_config *clone = sl_config_clone(c);
    FZ_CHECK(clone != NULL, "clone failed");
    sl_config_unref(clone);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1);
    setenv("FUZZ_DIR", fz_dir(), 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"main.ini", "inc.ini", "users.txt"};
    char paths[3][512];
    /* split on two NUL bytes (a single NUL stays in the file: the reader must refuse it) */
    const uint8_t *start = data, *end = data + size;
    for (int i = 0; i < 3; i++) {
        const uint8_t *sep = NULL;
        for (const uint8_t *q = start; i < 2 && q + 1 < end; q++)
            if (q[0] == 0 && q[1] == 0) {
                sep = q;
                break;
            }
        const uint8_t *stop = sep ? sep : end;
        fz_write_file(names[i], start, (size_t)(stop - start), paths[i], sizeof(paths[i]));
        start = sep ? sep + 2 : end;
    }
    char err[2048];
    g_sandbox = true;
    sl_config *c = sl_config_load(paths[0], err, sizeof(err));
    g_sandbox = false;
    if (!c) {
        FZ_CHECK(err[0] != '\0', "refused without a reason");
        return 0;
    }
    check_config(c);
    sl_config_unref(c);
    return 0;
}
