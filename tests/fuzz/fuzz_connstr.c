/* fuzz_connstr.c - the values of the config file: libpq-style connection strings of [databases]
 * and [users] entries (connstr.c), and setting values ([pgbouncer] lines, admin console SET).
 * The first input byte picks the mode, the rest (up to a NUL, as an ini value is a C string) is
 * the text. Checks:
 *  - raw connection strings: the pairs found, written back with every value quoted, parse to the
 *    same pairs (nothing lost or merged by quoting and escapes);
 *  - [databases]/[users] entries: an accepted entry copies and frees cleanly, numbers in range;
 *  - settings: an accepted value, shown the way SHOW CONFIG shows it, is accepted again and shows
 *    the same (what SHOW CONFIG prints can be SET back). */
#include "fuzz_common.h"

#include "config/config_int.h"
#include "util/log.h"

typedef struct pairs {
    char *key[64], *value[64];
    int n;
    bool overflow;
} pairs;

static bool collect(void *ctx, const char *key, const char *value, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    pairs *p = ctx;
    if (p->n == 64) {
        p->overflow = true;
        return true;
    }
    p->key[p->n] = strdup(key);
    p->value[p->n] = strdup(value);
    if (!p->key[p->n] || !p->value[p->n]) abort();
    p->n++;
    return true;
}

static void pairs_free(pairs *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->key[i]);
        free(p->value[i]);
    }
    p->n = 0;
}

/* key='value' with \ and ' escaped, pairs separated by one space. */
static char *quote_all(const pairs *p)
{
    size_t cap = 16;
    for (int i = 0; i < p->n; i++) cap += strlen(p->key[i]) + 2 * strlen(p->value[i]) + 4;
    char *s = malloc(cap), *o = s;
    if (!s) abort();
    for (int i = 0; i < p->n; i++) {
        if (i) *o++ = ' ';
        o += sprintf(o, "%s='", p->key[i]);
        for (const char *v = p->value[i]; *v; v++) {
            if (*v == '\\' || *v == '\'') *o++ = '\\';
            *o++ = *v;
        }
        *o++ = '\'';
    }
    *o = '\0';
    return s;
}

static void raw_connstr(const char *text)
{
    char err[256];
    pairs a = {0}, b = {0};
    if (!sl_connstr_parse(text, collect, &a, err, sizeof(err))) {
        FZ_CHECK(err[0] != '\0', "refused without a reason");
        pairs_free(&a);
        return;
    }
    if (!a.overflow) {
        char *again = quote_all(&a);
        FZ_CHECK(sl_connstr_parse(again, collect, &b, err, sizeof(err)), "quoted form refused: %s (%s)", again, err);
        FZ_CHECK(a.n == b.n, "%d pairs, %d after quoting: %s", a.n, b.n, again);
        for (int i = 0; i < a.n; i++) {
            FZ_CHECK(!strcmp(a.key[i], b.key[i]), "key %d changed: %s", i, again);
            FZ_CHECK(!strcmp(a.value[i], b.value[i]), "value %d changed: %s", i, again);
        }
        free(again);
    }
    pairs_free(&a);
    pairs_free(&b);
}

static void db_entry(const char *text)
{
    sl_warn_once warn = {0};
    sl_db_def d, copy;
    char err[512];
    if (sl_db_def_parse(&d, "fuzzdb", text, &warn, err, sizeof(err))) {
        FZ_CHECK(d.port >= 1 && d.port <= 65535, "port %d", d.port);
        FZ_CHECK(d.pool_mode >= -1 && d.pool_mode <= SL_POOL_STATEMENT, "pool_mode %d", d.pool_mode);
        FZ_CHECK(d.pool_size >= -1 && d.min_pool_size >= -1 && d.max_db_connections >= -1, "negative size");
        FZ_CHECK(sl_db_def_copy(&copy, &d), "copy failed");
        FZ_CHECK(!strcmp(copy.name, d.name) && (!d.host) == (!copy.host), "copy differs");
        sl_db_def_free(&copy);
    } else {
        FZ_CHECK(err[0] != '\0', "refused without a reason");
    }
    sl_db_def_free(&d);
    sl_warn_once_free(&warn);
}

static void user_entry(const char *text)
{
    sl_warn_once warn = {0};
    sl_user_def u, copy;
    char err[512];
    if (sl_user_def_parse(&u, "fuzzuser", text, &warn, err, sizeof(err))) {
        FZ_CHECK(u.pool_mode >= -1 && u.pool_mode <= SL_POOL_STATEMENT, "pool_mode %d", u.pool_mode);
        FZ_CHECK(sl_user_def_copy(&copy, &u), "copy failed");
        sl_user_def_free(&copy);
    }
    sl_user_def_free(&u);
    sl_warn_once_free(&warn);
}

static void setting_value(uint8_t which, const char *text)
{
    const sl_setting *s = &sl_settings[which % sl_settings_count];
    sl_config *c = sl_config_new_default();
    if (!c) abort();
    char err[512], shown[4096], again[4096];
    if (sl_setting_set(c, s, text, err, sizeof(err))) {
        sl_setting_format(c, s, shown, sizeof(shown));
        /* times are shown with microsecond decimals: beyond ~2^45 us a double cannot hold them exactly */
        bool exact = s->type != SL_T_TIME || *(const int64_t *)((const char *)c + s->offset) < (1ll << 45);
        if (exact && strlen(shown) < sizeof(shown) - 1) {
            FZ_CHECK(sl_setting_set(c, s, shown, err, sizeof(err)), "%s: shown value \"%s\" refused: %s", s->name,
                     shown, err);
            sl_setting_format(c, s, again, sizeof(again));
            FZ_CHECK(!strcmp(shown, again), "%s: \"%s\" shows \"%s\", set again shows \"%s\"", s->name, text, shown,
                     again);
        }
        sl_config *clone = sl_config_clone(c);
        FZ_CHECK(clone != NULL, "clone failed");
        sl_config_unref(clone);
    } else {
        FZ_CHECK(err[0] != '\0', "%s: refused without a reason", s->name);
    }
    sl_config_unref(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1); /* warnings about ignored keys: not on stderr */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t mode = fz_u8(&in), which = fz_u8(&in);
    char *text = fz_strndup(in.p, in.n);
    switch (mode % 4) {
    case 0: raw_connstr(text); break;
    case 1: db_entry(text); break;
    case 2: user_entry(text); break;
    default: setting_value(which, text); break;
    }
    free(text);
    return 0;
}
