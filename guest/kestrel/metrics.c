/* kestrel: guest metrics from /proc/stat, /proc/meminfo, statvfs("/") and
 * /proc/net/dev. Missing sources leave their fields 0. */
#include "kestrel.h"

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

static uint64_t num(const char **p)
{
    uint64_t v = 0;
    while (**p == ' ' || **p == '\t')
        (*p)++;
    while (**p >= '0' && **p <= '9') {
        v = v * 10 + (uint64_t)(**p - '0');
        (*p)++;
    }
    return v;
}

static void cpu(uint64_t *v)
{
    _cleanup_free_ char *s = NULL;
    if (read_file_all("/proc/stat", 1u << 20, &s, NULL) < 0)
        return;
    for (const char *line = s; line && *line;) {
        if (strncmp(line, "cpu ", 4) == 0) {
            const char *p = line + 4;
            uint64_t f[8];
            for (int i = 0; i < 8; i++)
                f[i] = num(&p);
            /* user nice system idle iowait irq softirq steal */
            v[CTL_M_CPU_USER] = f[0] + f[1];
            v[CTL_M_CPU_SYSTEM] = f[2] + f[5] + f[6];
            v[CTL_M_CPU_IDLE] = f[3];
            v[CTL_M_CPU_IOWAIT] = f[4];
            v[CTL_M_CPU_STEAL] = f[7];
        } else if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9') {
            v[CTL_M_NCPU]++;
        }
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
}

static void memory(uint64_t *v)
{
    _cleanup_free_ char *s = NULL;
    if (read_file_all("/proc/meminfo", 1u << 20, &s, NULL) < 0)
        return;
    for (const char *line = s; line && *line;) {
        const char *p;
        if (strncmp(line, "MemTotal:", 9) == 0) {
            p = line + 9;
            v[CTL_M_MEM_TOTAL] = num(&p) * 1024;
        } else if (strncmp(line, "MemAvailable:", 13) == 0) {
            p = line + 13;
            v[CTL_M_MEM_AVAILABLE] = num(&p) * 1024;
        }
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
}

static void disk(uint64_t *v)
{
    struct statvfs st;
    if (statvfs("/", &st) < 0)
        return;
    v[CTL_M_DISK_TOTAL] = (uint64_t)st.f_blocks * st.f_frsize;
    v[CTL_M_DISK_USED] = (uint64_t)(st.f_blocks - st.f_bfree) * st.f_frsize;
}

static void network(uint64_t *v)
{
    _cleanup_free_ char *s = NULL;
    if (read_file_all("/proc/net/dev", 1u << 20, &s, NULL) < 0)
        return;
    /* "  eth0: rxbytes rxpackets errs drop fifo frame compressed multicast txbytes txpackets" */
    for (const char *line = s; line && *line;) {
        const char *colon = strchr(line, ':');
        const char *nl = strchr(line, '\n');
        if (colon && (!nl || colon < nl)) {
            const char *name = line;
            while (*name == ' ')
                name++;
            if (!(colon - name == 2 && strncmp(name, "lo", 2) == 0)) {
                const char *p = colon + 1;
                uint64_t f[10];
                for (int i = 0; i < 10; i++)
                    f[i] = num(&p);
                v[CTL_M_NET_RX_BYTES] += f[0];
                v[CTL_M_NET_RX_PACKETS] += f[1];
                v[CTL_M_NET_TX_BYTES] += f[8];
                v[CTL_M_NET_TX_PACKETS] += f[9];
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

void metrics_sample(uint64_t values[CTL_M_COUNT])
{
    memset(values, 0, sizeof(uint64_t) * CTL_M_COUNT);
    values[CTL_M_TIME_NS] = boottime_ns();
    cpu(values);
    memory(values);
    disk(values);
    network(values);
}
