/* kestrel: API filesystems and volumes. */
#include "kestrel.h"
#include "populate.h"

#include <dirent.h>
#include <fcntl.h>
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

/* Splits "ro,nosuid,size=1g" into mount flags and the data the fs gets; x-
 * options are kestrel's own and never reach mount(2) (x-populate sets *populate). */
static int parse_options(const char *opts, unsigned long *flags, char **data, bool *populate)
{
    size_t n = strlen(opts);
    char *d = malloc(n + 1);
    if (!d)
        return -ENOMEM;
    size_t o = 0;
    *flags = 0;
    *populate = false;
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
        bool hit = len >= 2 && p[0] == 'x' && p[1] == '-';
        if (hit && len == 10 && memcmp(p, "x-populate", 10) == 0)
            *populate = true;
        for (size_t i = 0; !hit && i < sizeof(known) / sizeof(known[0]); i++) {
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

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int mounts_find_serial(const char *serial, char *dev, size_t len)
{
    DIR *d = opendir("/sys/block");
    if (!d)
        return -errno;
    int r = -ENODEV;
    struct dirent *de;
    while (r < 0 && (de = readdir(d))) {
        char path[300], buf[64] = {0};
        if (de->d_name[0] == '.' || strlen(de->d_name) > 200)
            continue;
        snprintf(path, sizeof(path), "/sys/block/%s/serial", de->d_name);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = 0;
        if (n > 0 && strcmp(buf, serial) == 0) {
            snprintf(dev, len, "/dev/%s", de->d_name);
            r = 0;
        }
    }
    closedir(d);
    return r;
}

int mounts_wait_device(const char *spec, char *dev, size_t len, int ms)
{
    bool by_serial = strncmp(spec, "serial:", 7) == 0;
    for (int waited = 0;; waited += 10) {
        struct stat st;
        if (by_serial ? mounts_find_serial(spec + 7, dev, len) == 0 && stat(dev, &st) == 0
                      : stat(spec, &st) == 0) {
            if (!by_serial)
                snprintf(dev, len, "%s", spec);
            return 0;
        }
        if (waited >= ms)
            return -ENODEV;
        sleep_ms(10);
    }
}

/* Makes the target (with parents); an existing non-directory is an error. */
static int make_target(const char *target, kerr *e)
{
    struct stat st;
    if (stat(target, &st) == 0) { /* a symlink to a directory is fine, as in Docker */
        if (!S_ISDIR(st.st_mode))
            return kerr_add(e, -ENOTDIR, "volume target %s exists and is not a directory", target);
        return 0;
    }
    int r = mkdir_parents(target, 0755);
    if (r < 0)
        return kerr_add(e, r, "mkdir volume target %s", target);
    return 0;
}

static int mount_volume(const manifest_volume *v, kerr *e)
{
    unsigned long flags;
    bool populate;
    _cleanup_free_ char *data = NULL;
    int r = parse_options(v->options, &flags, &data, &populate);
    if (r < 0)
        return kerr_add(e, r, "volume %s", v->target);
    if ((r = make_target(v->target, e)) < 0)
        return r;
    bool bind = strcmp(v->fstype, "bind") == 0 || (flags & MS_BIND);
    bool shared = strcmp(v->fstype, "virtiofs") == 0 || strcmp(v->fstype, "9p") == 0;
    const char *type = bind ? NULL : v->fstype;
    if (bind)
        flags |= MS_BIND;
    char dev[280];
    const char *src = v->source;
    if (strcmp(v->fstype, "ext4") == 0) {
        if ((r = mounts_wait_device(v->source, dev, sizeof(dev), 5000)) < 0)
            return kerr_add(e, r, "mount volume on %s (ext4 %s): device did not appear", v->target,
                            v->source);
        src = dev;
    }
    /* The image's directory, seen through this fd even once the volume covers it. */
    _cleanup_close_ int under = -1;
    if (populate && !bind)
        under = open(v->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* A virtiofs tag / 9p channel registers a moment after its driver loads:
     * retry "no such tag"/"no such fs" for up to 2 s, on the mount itself. */
    /* Read-only binds, and volumes to fill first, are made read-only afterwards. */
    bool ro_later = (flags & MS_RDONLY) && (bind || under >= 0);
    for (int waited = 0;; waited += 10) {
        r = mount(src, v->target, type, flags & ~(unsigned long)(ro_later ? MS_RDONLY : 0),
                  data[0] ? data : NULL) < 0
                ? -errno
                : 0;
        if (r == 0 || !shared || (r != -ENOENT && r != -ENODEV) || waited >= 2000)
            break;
        sleep_ms(10);
    }
    if (r < 0)
        return kerr_add(e, r, "mount volume on %s (%s %s)", v->target, v->fstype, v->source);
    if (under >= 0) {
        _cleanup_close_ int top = open(v->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (top < 0)
            return kerr_add(e, -errno, "open volume %s", v->target);
        int empty = populate_dir_is_empty(top);
        if (empty < 0)
            return kerr_add(e, empty, "read volume %s", v->target);
        char why[400];
        if (empty && (r = populate_copy_tree(under, top, why, sizeof(why))) < 0)
            return kerr_add(e, r, "populate volume %s: %s", v->target, why);
    }
    /* A bind mount ignores MS_RDONLY until remounted (MS_BIND: only this mount's flags). */
    if (ro_later &&
        mount(NULL, v->target, NULL,
              MS_REMOUNT | MS_BIND | MS_RDONLY | (flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)),
              NULL) < 0)
        return kerr_add(e, -errno, "remount volume on %s read-only", v->target);
    return 0;
}

int mounts_volumes(const kestrel_manifest *m, kerr *e)
{
    /* Stops at the first failure: the start fails, never half a set of volumes. */
    for (size_t i = 0; i < m->n_volumes; i++) {
        int r = mount_volume(&m->volumes[i], e);
        if (r < 0)
            return r;
    }
    return 0;
}

int mounts_readonly_root(kerr *e)
{
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
        return kerr_add(e, -errno, "remount / read-only");
    return 0;
}
