/* kestrel: API filesystems and volumes. */
#include "kestrel.h"

#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

/* Mounts type on target (made when missing); a failure is added to e, and the
 * first one is kept in *first. */
static void do_mount(const char *src, const char *target, const char *type, unsigned long flags,
                     const char *data, kerr *e, int *first)
{
    int r = 0;
    if (mkdir(target, 0755) < 0 && errno != EEXIST)
        r = kerr_add(e, -errno, "mkdir %s", target);
    else if (mount(src, target, type, flags, data) < 0 && errno != EBUSY)
        r = kerr_add(e, -errno, "mount %s on %s", type, target);
    if (r < 0 && *first == 0)
        *first = r;
}

int mounts_early(kerr *e)
{
    const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    int r = 0;
    do_mount("proc", "/proc", "proc", nse, NULL, e, &r);
    do_mount("sysfs", "/sys", "sysfs", nse, NULL, e, &r);
    do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", e, &r);
    do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666,gid=5",
             e, &r);
    do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", e, &r);
    static const char *const links[][2] = {
        {"/proc/self/fd", "/dev/fd"},       {"/proc/self/fd/0", "/dev/stdin"},
        {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
        {"/proc/kcore", "/dev/core"},
    };
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        (void)symlink(links[i][0], links[i][1]);
    return r;
}

int mounts_late(kerr *e)
{
    int r = 0;
    do_mount("run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", e, &r);
    do_mount("tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", e, &r);
    /* Optional: workloads that read their cgroup limits expect it. */
    if (mkdir("/sys/fs/cgroup", 0755) == 0 || errno == EEXIST)
        (void)mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    return r;
}

/* Splits "ro,nosuid,size=1g" into mount flags and the data the fs gets. */
static int parse_options(const char *opts, unsigned long *flags, char **data)
{
    size_t n = strlen(opts);
    char *d = malloc(n + 1);
    if (!d)
        return -ENOMEM;
    size_t o = 0;
    *flags = 0;
    const char *p = opts;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        static const struct {
            const char *name;
            unsigned long set;
        } known[] = {
            {"ro", MS_RDONLY},           {"rw", 0},
            {"nosuid", MS_NOSUID},       {"nodev", MS_NODEV},
            {"noexec", MS_NOEXEC},       {"bind", MS_BIND},
            {"rbind", MS_BIND | MS_REC}, {"noatime", MS_NOATIME},
            {"relatime", MS_RELATIME},
        };
        bool hit = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (strlen(known[i].name) == len && memcmp(known[i].name, p, len) == 0) {
                *flags |= known[i].set;
                hit = true;
            }
        }
        if (!hit && len) {
            if (o)
                d[o++] = ',';
            memcpy(d + o, p, len);
            o += len;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    d[o] = 0;
    *data = d;
    return 0;
}

static void wait_for_path(const char *path, int ms)
{
    struct stat st;
    for (int i = 0; i < ms / 10 && stat(path, &st) < 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int mounts_volumes(const kestrel_manifest *m, kerr *e)
{
    int first = 0;
    for (size_t i = 0; i < m->n_volumes; i++) {
        const manifest_volume *v = &m->volumes[i];
        unsigned long flags;
        _cleanup_free_ char *data = NULL;
        int r = parse_options(v->options, &flags, &data);
        if (r == 0)
            r = mkdir_parents(v->target, 0755);
        if (r == 0) {
            if (strcmp(v->fstype, "bind") == 0)
                flags |= MS_BIND;
            if (strncmp(v->source, "/dev/", 5) == 0)
                wait_for_path(v->source, 5000);
            if (mount(v->source, v->target, v->fstype, flags, data[0] ? data : NULL) < 0)
                r = -errno;
            /* A bind mount ignores MS_RDONLY until remounted. */
            if (r == 0 && (flags & MS_BIND) && (flags & MS_RDONLY))
                (void)mount(NULL, v->target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
        }
        if (r < 0) {
            kerr_add(e, r, "volume %s on %s (%s)", v->source, v->target, v->fstype);
            first = first ? first : r;
        }
    }
    return first;
}
