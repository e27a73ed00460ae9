/* file_util.c - whole-file reads, atomic writes (mkstemp in the target's directory, fsync, link or rename,
 * fsync of the directory) and timestamped backups, for `pgsluice tune --apply` and `pgsluice userlist`. */
#include "tools/file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *sl_file_read(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) {
        snprintf(err, errlen, "out of memory reading %s", path);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        snprintf(err, errlen, "%s contains a NUL byte: not a text file", path);
        free(buf);
        return NULL;
    }
    if (len) *len = n;
    return buf;
}

static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        data += w;
        len -= (size_t)w;
    }
    return true;
}

static void fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

bool sl_file_write_atomic(const char *path, const char *data, size_t len, const sl_write_opts *o, char *err,
                          size_t errlen)
{
    char *copy = strdup(path), *copy2 = strdup(path);
    char tmp[4096];
    if (!copy || !copy2) {
        free(copy);
        free(copy2);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dirname(copy), basename(copy2));
    free(copy);
    free(copy2);
    struct stat st;
    if (!o->overwrite && lstat(path, &st) == 0) {
        snprintf(err, errlen, "%s already exists: not overwritten (use --force to replace it)", path);
        return false;
    }
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 from the start: secrets are never readable by others */
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s (a temporary file in its directory): %s", path, strerror(errno));
        return false;
    }
    const char *what = NULL;
    if (!write_all(fd, data, len)) what = "write";
    else if (fchmod(fd, o->mode) != 0) what = "chmod";
    else if (o->set_owner && fchown(fd, o->uid, o->gid) != 0 && errno != EPERM) what = "chown";
    else if (fsync(fd) != 0) what = "fsync";
    int e = errno;
    if (close(fd) != 0 && !what) what = "close", e = errno;
    if (what) {
        snprintf(err, errlen, "cannot write %s (%s): %s", path, what, strerror(e));
        unlink(tmp);
        return false;
    }
    if (o->validate && !o->validate(tmp, o->validate_arg, err, errlen)) {
        unlink(tmp);
        return false;
    }
    if (o->overwrite) {
        if (rename(tmp, path) != 0) {
            snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
            unlink(tmp);
            return false;
        }
    } else {
        if (link(tmp, path) != 0) {
            e = errno;
            unlink(tmp);
            if (e == EEXIST)
                snprintf(err, errlen, "%s already exists: not overwritten (use --force to replace it)", path);
            else
                snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
            return false;
        }
        unlink(tmp);
    }
    fsync_dir(path);
    return true;
}

bool sl_file_backup(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    size_t len;
    char *data = sl_file_read(path, &len, err, errlen);
    if (!data) return false;
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        free(data);
        return false;
    }
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    sl_write_opts o = {.mode = st.st_mode & 07777, .overwrite = false, .set_owner = true, .uid = st.st_uid,
                       .gid = st.st_gid};
    bool ok = false;
    for (int i = 0; i < 100 && !ok; i++) {
        if (i == 0) snprintf(out, outlen, "%s.%s.bak", path, stamp);
        else snprintf(out, outlen, "%s.%s.%d.bak", path, stamp, i);
        ok = sl_file_write_atomic(out, data, len, &o, err, errlen);
        if (!ok && access(out, F_OK) != 0) break; /* failed for another reason than "exists" */
    }
    free(data);
    return ok;
}
