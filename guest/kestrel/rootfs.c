/* kestrel: the image's read-only rootfs under a writable overlay, made the root.
 *
 *   /hypr/lower  <- rootfs (squashfs on /dev/vda), read-only
 *   /hypr/rw     <- tmpfs (or the per-VM "upper" disk): upper/ + work/
 *   /hypr/root   <- overlay, then /dev /proc /sys are moved in, and it is
 *                   moved onto / and chroot'ed into (the initramfs cannot be
 *                   pivot_root'ed). */
#include "kestrel.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#define LOWER "/hypr/lower"
#define RW    "/hypr/rw"
#define ROOT  "/hypr/root"

static int wait_device(const char *dev, int ms)
{
    struct stat st;
    for (int i = 0; i <= ms / 10; i++) {
        if (stat(dev, &st) == 0)
            return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -ENODEV;
}

static int mount_at(const char *src, const char *target, const char *type, unsigned long flags,
                    const char *data, kerr *e)
{
    int r = mkdir_parents(target, 0755);
    if (r < 0)
        return kerr_add(e, r, "mkdir %s", target);
    if (mount(src, target, type, flags, data) < 0)
        return kerr_add(e, -errno, "mount %s (%s) on %s", src, type ? type : "move", target);
    return 0;
}

int rootfs_setup(const kestrel_manifest *m, int *upper_fd, int *lower_fd, kerr *e)
{
    const char *dev = m->rootfs ? m->rootfs : "/dev/vda";
    const char *type = m->rootfs_type ? m->rootfs_type : "squashfs";
    int r;
    if ((r = wait_device(dev, 5000)) < 0)
        return kerr_add(e, r, "rootfs device %s did not appear", dev);
    if ((r = mount_at(dev, LOWER, type, MS_RDONLY, NULL, e)) < 0)
        return r;
    if (m->upper) {
        char upper[280];
        if ((r = mounts_wait_device(m->upper, upper, sizeof(upper), 5000)) < 0)
            return kerr_add(e, r, "upper device %s did not appear", m->upper);
        r = mount_at(upper, RW, "ext4", MS_NOATIME, NULL, e);
    } else {
        r = mount_at("rootfs-rw", RW, "tmpfs", 0, "mode=0755", e);
    }
    if (r < 0)
        return r;
    static const char *const dirs[] = {RW "/upper", RW "/work"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if ((r = mkdir_parents(dirs[i], 0755)) < 0)
            return kerr_add(e, r, "mkdir %s", dirs[i]);
    r = mount_at("overlay", ROOT, "overlay", 0,
                 "lowerdir=" LOWER ",upperdir=" RW "/upper,workdir=" RW "/work", e);
    if (r < 0)
        return r;
    /* Out of sight once the root moves: hypr diff reads them through these. */
    *upper_fd = open(RW "/upper", O_PATH | O_DIRECTORY | O_CLOEXEC);
    *lower_fd = open(LOWER, O_PATH | O_DIRECTORY | O_CLOEXEC);

    static const char *const moves[] = {"/dev", "/proc", "/sys"};
    for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
        char target[64];
        snprintf(target, sizeof(target), ROOT "%s", moves[i]);
        if ((r = mount_at(moves[i], target, NULL, MS_MOVE, NULL, e)) < 0)
            return r;
    }
    if (chdir(ROOT) < 0)
        return kerr_add(e, -errno, "chdir %s", ROOT);
    if (mount(ROOT, "/", NULL, MS_MOVE, NULL) < 0)
        return kerr_add(e, -errno, "move %s to /", ROOT);
    if (chroot(".") < 0 || chdir("/") < 0)
        return kerr_add(e, -errno, "chroot %s", ROOT);
    return 0;
}

/* Joins parts into one malloc'd string; NULL on ENOMEM. */
static char *concat(const char *const *parts, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(parts[i]);
    char *s = malloc(len);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        memcpy(s + o, parts[i], l);
        o += l;
    }
    s[o] = 0;
    return s;
}

int rootfs_identity(const kestrel_manifest *m, kerr *e)
{
    int r = 0;
    const char *host = m->hostname && m->hostname[0] ? m->hostname : "localhost";
    if (sethostname(host, strlen(host)) < 0)
        r = kerr_add(e, -errno, "sethostname %s", host);
    if (mkdir("/etc", 0755) < 0 && errno != EEXIST)
        return kerr_add(e, -errno, "mkdir /etc");

    _cleanup_free_ char *hn = concat((const char *const[]){host, "\n"}, 2);
    if (hn)
        write_file_str("/etc/hostname", hn, 0644);

    /* The guest's own address for its name, as docker does. */
    char addr[64] = "127.0.1.1";
    if (m->ip) {
        size_t l = strcspn(m->ip, "/");
        if (l < sizeof(addr)) {
            memcpy(addr, m->ip, l);
            addr[l] = 0;
        }
    }
    _cleanup_free_ char *hosts = concat(
        (const char *const[]){"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                              addr, "\t", host, "\n"},
        5);
    for (size_t i = 0; hosts && i < m->hosts.n; i++) { /* --add-host, after our own */
        char *more = concat((const char *const[]){hosts, m->hosts.v[i], "\n"}, 3);
        free(hosts);
        hosts = more;
    }
    if (hosts) {
        unlink("/etc/hosts");
        write_file_str("/etc/hosts", hosts, 0644);
    }

    if (m->dns.n) {
        size_t cap = 1;
        for (size_t i = 0; i < m->dns.n; i++)
            cap += strlen("nameserver \n") + strlen(m->dns.v[i]);
        _cleanup_free_ char *rc = malloc(cap);
        if (!rc)
            return kerr_add(e, -ENOMEM, "/etc/resolv.conf");
        size_t o = 0;
        for (size_t i = 0; i < m->dns.n; i++) {
            const char *parts[] = {"nameserver ", m->dns.v[i], "\n"};
            for (size_t j = 0; j < 3; j++) {
                size_t l = strlen(parts[j]);
                memcpy(rc + o, parts[j], l);
                o += l;
            }
        }
        rc[o] = 0;
        unlink("/etc/resolv.conf"); /* may be a dangling symlink into /run */
        int w = write_file_str("/etc/resolv.conf", rc, 0644);
        if (w < 0) {
            kerr_add(e, w, "/etc/resolv.conf");
            r = r ? r : w;
        }
    }
    return r;
}
