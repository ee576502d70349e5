/* kestrel: loads the kernel modules shipped in the initramfs.
 *
 * MODULES_ORDER (/hypr/modules.order, written by the host when it builds the
 * initramfs) lists one module per line in dependency order: a path, absolute or
 * relative to /lib/modules/, optionally followed by a space and module
 * parameters ("virtio_blk.ko", "kernel/fs/overlayfs/overlay.ko", "foo.ko a=1").
 * A line may start with a condition and a space: "@pci" (the machine has a PCI
 * device) or "@virtio=N" (a virtio device of type N is on the bus, e.g. 1 net,
 * 3 console, 19 vsock), or "@virtio=N*M" (at least M such devices: "@virtio=2*2"
 * is a second disk, for ext4); the module is skipped when the condition is false.
 * Conditional lines load after all the others, in their own order.
 * Blank lines and '#' lines are ignored. A module that fails to load is logged
 * and skipped; EEXIST (already loaded or built in) is success. */
#include "kestrel.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static int load_one(const char *spec)
{
    const char *sp = strchr(spec, ' ');
    size_t plen = sp ? (size_t)(sp - spec) : strlen(spec);
    const char *params = sp ? sp + 1 : "";
    const char *prefix = spec[0] == '/' ? "" : "/lib/modules/";
    size_t n = strlen(prefix) + plen + 1;
    _cleanup_free_ char *path = malloc(n);
    if (!path)
        return -ENOMEM;
    memcpy(path, prefix, strlen(prefix));
    memcpy(path + strlen(prefix), spec, plen);
    path[n - 1] = 0;

    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = -errno;
        klog("module %s: %s", path, strerror(-e));
        return e;
    }
    int flags = 0;
    if (ends_with(path, ".xz") || ends_with(path, ".zst") || ends_with(path, ".gz"))
        flags |= MODULE_INIT_COMPRESSED_FILE;
    if (syscall(SYS_finit_module, fd, params, flags) < 0 && errno != EEXIST) {
        int e = -errno;
        klog("module %s: %s", path, strerror(-e));
        return e;
    }
    return 0;
}

/* Digits of s in base 10 or 16 (an optional 0x before hex), up to the first other
 * byte: strtoul would pull musl's whole number scanner into a 80 KB binary. */
static unsigned long parse_num(const char *s, unsigned base)
{
    unsigned long v = 0;
    if (base == 16 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    for (;; s++) {
        unsigned d = *s >= '0' && *s <= '9'   ? (unsigned)(*s - '0')
                     : *s >= 'a' && *s <= 'f' ? (unsigned)(*s - 'a' + 10)
                     : *s >= 'A' && *s <= 'F' ? (unsigned)(*s - 'A' + 10)
                                              : 99;
        if (d >= base)
            return v;
        v = v * base + d;
    }
}

/* Whether a device is present: "@pci" or "@virtio=N" (transports load first). */
static bool condition_holds(const char *cond)
{
    bool pci = strcmp(cond, "@pci") == 0;
    unsigned long want = 0, count = 1, seen = 0;
    if (!pci) {
        if (strncmp(cond, "@virtio=", 8) != 0)
            return true; /* unknown: load, as before conditions existed */
        want = parse_num(cond + 8, 10);
        const char *star = strchr(cond + 8, '*');
        if (star)
            count = parse_num(star + 1, 10);
    }
    const char *dir = pci ? "/sys/bus/pci/devices" : "/sys/bus/virtio/devices";
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *de;
    while (d && !found && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (pci) {
            found = true;
            continue;
        }
        char path[320], id[16] = {0};
        if (strlen(dir) + strlen(de->d_name) + sizeof("//device") > sizeof(path))
            continue;
        strcat(strcat(strcat(strcpy(path, dir), "/"), de->d_name), "/device");
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && read(fd, id, sizeof(id) - 1) > 0 && parse_num(id, 16) == want)
            found = ++seen >= count;
    }
    if (d)
        closedir(d);
    return found;
}

int modules_load(char *const *extra)
{
    int failed = 0;
    _cleanup_free_ char *order = NULL;
    int r = read_file_all(MODULES_ORDER, 1u << 20, &order, NULL);
    if (r < 0 && r != -ENOENT)
        klog("%s: %s", MODULES_ORDER, strerror(-r));
    size_t total = order ? strlen(order) : 0;
    for (size_t i = 0; i < total; i++)
        if (order[i] == '\n' || order[i] == '\r')
            order[i] = 0;
    /* Two passes: the unconditional modules (the transports among them) first, so
     * the devices are on their bus when the conditions are checked. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t off = 0; off < total; off += strlen(order + off) + 1) {
            char *spec = order + off;
            if ((spec[0] == '@') != (pass == 1))
                continue;
            if (pass == 1) {
                char *sp = strchr(spec, ' ');
                if (!sp || (*sp = 0, !condition_holds(spec)))
                    continue;
                spec = sp + 1;
            }
            if (spec[0] && spec[0] != '#' && load_one(spec) < 0)
                failed++;
        }
    }
    for (size_t i = 0; extra && extra[i]; i++)
        if (load_one(extra[i]) < 0)
            failed++;
    return failed;
}
