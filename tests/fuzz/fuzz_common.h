/* fuzz_common.h - what the fuzz targets share: reading structured values from the fuzz input, a
 * private temporary directory for targets that parse files, and FZ_CHECK for the properties a
 * target asserts beyond "no sanitizer report" (a failed check aborts, which libFuzzer reports
 * as a crash and the standalone runner as a failed test). Header-only: each target is one file. */
#ifndef SL_FUZZ_COMMON_H
#define SL_FUZZ_COMMON_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FZ_CHECK(cond, ...)                                                     \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* FZ_VERBOSE=1 in the environment: targets say what they did with each input (for checking
 * that the seeds reach the paths they are meant for). */
static inline bool fz_verbose(void)
{
    static int v = -1;
    if (v < 0) v = getenv("FZ_VERBOSE") != NULL;
    return v;
}
#define FZ_LOG(...)                               \
    do {                                          \
        if (fz_verbose()) {                       \
            fprintf(stderr, __VA_ARGS__);         \
            fputc('\n', stderr);                  \
        }                                         \
    } while (0)

/* The rest of the input, consumed front to back; reads past the end give zeros / empty. */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static inline uint8_t fz_u8(fz_in *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t fz_u16(fz_in *in)
{
    uint16_t hi = fz_u8(in);
    return (uint16_t)((hi << 8) | fz_u8(in));
}

/* Up to want bytes (fewer at the end of the input). */
static inline const uint8_t *fz_bytes(fz_in *in, size_t want, size_t *got)
{
    const uint8_t *p = in->p;
    *got = want < in->n ? want : in->n;
    if (*got) in->p += *got;
    in->n -= *got;
    return p;
}

/* A chunk whose length is the next byte (0-255, or the rest when fewer are left). */
static inline const uint8_t *fz_chunk(fz_in *in, size_t *got) { return fz_bytes(in, fz_u8(in), got); }

/* Bytes up to the separator (consumed, not returned) or the end of the input. */
static inline const uint8_t *fz_until(fz_in *in, const char *sep, size_t *got)
{
    size_t sl = strlen(sep);
    const uint8_t *p = in->p;
    for (size_t i = 0; i + sl <= in->n; i++) {
        if (memcmp(p + i, sep, sl) == 0) {
            *got = i;
            in->p += i + sl;
            in->n -= i + sl;
            return p;
        }
    }
    *got = in->n;
    in->p += in->n;
    in->n = 0;
    return p;
}

/* A malloc'd NUL-terminated copy (the input may contain NULs: the C string ends at the first). */
static inline char *fz_strndup(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* ---- a private directory for file-parsing targets, removed at exit ---- */

static char fz_dir_path[256];

static inline void fz_dir_cleanup(void)
{
    if (!fz_dir_path[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz_dir_path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", fz_dir_path);
}

static inline const char *fz_dir(void)
{
    if (fz_dir_path[0]) return fz_dir_path;
    /* $TMPDIR, else /dev/shm when there is one (a file per input: memory is three times faster) */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir_path, sizeof(fz_dir_path), "%s/sl_fuzz_XXXXXX", tmp);
    if (!mkdtemp(fz_dir_path)) {
        perror("mkdtemp");
        abort();
    }
    char real[PATH_MAX];
    if (realpath(fz_dir_path, real) && strlen(real) < sizeof(fz_dir_path)) strcpy(fz_dir_path, real);
    atexit(fz_dir_cleanup);
    return fz_dir_path;
}

/* Write n bytes to <dir>/<name>, replacing it; returns the full path (static storage per call site
 * is the caller's business: it is written into out). */
static inline void fz_write_file(const char *name, const void *data, size_t n, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", fz_dir(), name);
    FILE *f = fopen(out, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(out);
        abort();
    }
}

#endif
