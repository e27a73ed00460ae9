/* file_util.h - file helpers for the tools: read a whole file, write one atomically (temp file, fsync, rename
 * or link so that a reader never sees a partial file and a refused write leaves nothing behind), backups. */
#ifndef SL_TOOLS_FILE_UTIL_H
#define SL_TOOLS_FILE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The whole file, NUL-terminated (malloc'd), or NULL with a reason in err. */
char *sl_file_read(const char *path, size_t *len, char *err, size_t errlen);

typedef struct sl_write_opts {
    mode_t mode;        /* file mode of the result */
    bool overwrite;     /* false: fail when path exists (checked atomically with link(2)) */
    bool set_owner;     /* give the file uid/gid (when run as root) */
    uid_t uid;
    gid_t gid;
    /* Called with the finished temp file's path before it replaces path; return false (reason in err) to
     * abandon the write. May be NULL. */
    bool (*validate)(const char *tmp_path, void *arg, char *err, size_t errlen);
    void *validate_arg;
} sl_write_opts;

bool sl_file_write_atomic(const char *path, const char *data, size_t len, const sl_write_opts *o, char *err,
                          size_t errlen);

/* Copy path to "<path>.<YYYYmmdd-HHMMSS>.bak" (".N" added when that exists), same mode and owner. The backup's
 * name goes to out. */
bool sl_file_backup(const char *path, char *out, size_t outlen, char *err, size_t errlen);

#endif
