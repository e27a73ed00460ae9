/* machine.h - what `pgsluice tune` reads about the machine: usable CPUs and memory (cgroup limits included,
 * so a container is sized by its own limits), and parsing of --memory values like "8GiB". */
#ifndef SL_TOOLS_MACHINE_H
#define SL_TOOLS_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_machine {
    int cpus;
    uint64_t memory_bytes;
    char cpus_source[96];   /* e.g. "sched_getaffinity", "cgroup cpu.max" */
    char memory_source[96]; /* e.g. "/proc/meminfo", "cgroup memory.max" */
} sl_machine;

/* Read the running machine. root: prefix for /proc and /sys (NULL or "" for the real ones; tests pass a
 * directory with fake files). */
void sl_machine_detect(sl_machine *m, const char *root);
/* "8GiB", "512MiB", "8G", "1024M", "8589934592" (bytes); binary units. false on anything else or 0. */
bool sl_parse_memory(const char *text, uint64_t *bytes);
/* Integer in [lo, hi] with nothing after it. */
bool sl_parse_count(const char *text, int lo, int hi, int *out);

#endif
