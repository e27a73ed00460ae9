/* machine.c - CPUs and memory available to this process: the affinity mask and /proc/meminfo, lowered by
 * cgroup v2 (cpu.max, memory.max) or v1 (cpu.cfs_quota_us, memory.limit_in_bytes) limits. */
#include "tools/machine.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static bool read_line(const char *root, const char *path, char *buf, size_t len)
{
    char full[512];
    snprintf(full, sizeof(full), "%s%s", root, path);
    FILE *f = fopen(full, "r");
    if (!f) return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok) buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* Number of CPUs in a list like "0-3,6". */
static int count_cpu_list(const char *s)
{
    int n = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s) break;
        if (*end == '-') b = strtol(end + 1, &end, 10);
        if (b >= a) n += (int)(b - a + 1);
        s = *end == ',' ? end + 1 : end;
        if (*end != ',') break;
    }
    return n;
}

static int detect_cpus(const char *root, char *src, size_t srclen)
{
    int n = 0;
    if (!*root) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0) {
            n = CPU_COUNT(&set);
            snprintf(src, srclen, "sched_getaffinity");
        }
        if (n < 1) {
            long c = sysconf(_SC_NPROCESSORS_ONLN);
            n = c > 0 ? (int)c : 1;
            snprintf(src, srclen, "sysconf");
        }
    } else {
        /* A fake root (tests): the online CPU list, e.g. "0-3,6". */
        char buf[256];
        if (read_line(root, "/sys/devices/system/cpu/online", buf, sizeof(buf))) n = count_cpu_list(buf);
        snprintf(src, srclen, "%s/sys/devices/system/cpu/online", root);
        if (n < 1) n = 1;
    }
    /* cgroup v2 "max 100000" / "200000 100000"; v1 quota and period files. */
    char buf[128];
    long long quota = -1, period = 0;
    const char *how = NULL;
    if (read_line(root, "/sys/fs/cgroup/cpu.max", buf, sizeof(buf))) {
        if (strncmp(buf, "max", 3) != 0 && sscanf(buf, "%lld %lld", &quota, &period) == 2) how = "cgroup cpu.max";
    } else if (read_line(root, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", buf, sizeof(buf))) {
        quota = atoll(buf);
        if (quota > 0 && read_line(root, "/sys/fs/cgroup/cpu/cpu.cfs_period_us", buf, sizeof(buf))) {
            period = atoll(buf);
            how = "cgroup cpu.cfs_quota_us";
        }
    }
    if (how && quota > 0 && period > 0) {
        int lim = (int)((quota + period - 1) / period);
        if (lim >= 1 && lim < n) {
            n = lim;
            snprintf(src, srclen, "%s", how);
        }
    }
    return n;
}

static uint64_t detect_memory(const char *root, char *src, size_t srclen)
{
    uint64_t mem = 0;
    char full[512];
    snprintf(full, sizeof(full), "%s/proc/meminfo", root);
    FILE *f = fopen(full, "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
                mem = (uint64_t)kb * 1024;
                break;
            }
        fclose(f);
        snprintf(src, srclen, "%s/proc/meminfo", root);
    }
    if (mem == 0 && !*root) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psz > 0) mem = (uint64_t)pages * (uint64_t)psz;
        snprintf(src, srclen, "sysconf");
    }
    char buf[128];
    const char *how = NULL;
    uint64_t lim = 0;
    if (read_line(root, "/sys/fs/cgroup/memory.max", buf, sizeof(buf))) {
        if (isdigit((unsigned char)buf[0])) lim = strtoull(buf, NULL, 10), how = "cgroup memory.max";
    } else if (read_line(root, "/sys/fs/cgroup/memory/memory.limit_in_bytes", buf, sizeof(buf))) {
        lim = strtoull(buf, NULL, 10), how = "cgroup memory.limit_in_bytes";
    }
    if (how && lim > 0 && (mem == 0 || lim < mem)) {
        mem = lim;
        snprintf(src, srclen, "%s", how);
    }
    return mem ? mem : (uint64_t)1 << 30;
}

void sl_machine_detect(sl_machine *m, const char *root)
{
    if (!root) root = "";
    memset(m, 0, sizeof(*m));
    m->cpus = detect_cpus(root, m->cpus_source, sizeof(m->cpus_source));
    m->memory_bytes = detect_memory(root, m->memory_source, sizeof(m->memory_source));
}

bool sl_parse_memory(const char *text, uint64_t *bytes)
{
    if (!text) return false;
    while (isspace((unsigned char)*text)) text++;
    if (!isdigit((unsigned char)*text)) return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno) return false;
    while (isspace((unsigned char)*end)) end++;
    static const struct { const char *suffix; int shift; } units[] = {
        {"", 0},    {"B", 0},   {"K", 10},   {"KB", 10}, {"KiB", 10}, {"M", 20},  {"MB", 20},
        {"MiB", 20}, {"G", 30}, {"GB", 30},  {"GiB", 30}, {"T", 40},   {"TB", 40}, {"TiB", 40},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) != 0) continue;
        if (v == 0 || (units[i].shift && v > (~0ULL >> units[i].shift))) return false;
        *bytes = (uint64_t)v << units[i].shift;
        return true;
    }
    return false;
}

bool sl_parse_count(const char *text, int lo, int hi, int *out)
{
    if (!text || !isdigit((unsigned char)*text)) return false;
    errno = 0;
    char *end;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}
