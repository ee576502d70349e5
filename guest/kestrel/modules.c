/* kestrel: loads the kernel modules shipped in the initramfs.
 *
 * MODULES_ORDER (/hypr/modules.order, written by the host when it builds the
 * initramfs) lists one module per line in dependency order: a path, absolute or
 * relative to /lib/modules/, optionally followed by a space and module
 * parameters ("virtio_blk.ko", "kernel/fs/overlayfs/overlay.ko", "foo.ko a=1").
 * Blank lines and '#' lines are ignored. A module that fails to load is logged
 * and skipped; EEXIST (already loaded or built in) is success. */
#include "kestrel.h"

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

int modules_load(char *const *extra)
{
    int failed = 0;
    _cleanup_free_ char *order = NULL;
    int r = read_file_all(MODULES_ORDER, 1u << 20, &order, NULL);
    if (r < 0 && r != -ENOENT)
        klog("%s: %s", MODULES_ORDER, strerror(-r));
    for (char *line = order; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[len - 1] = 0;
        if (line[0] && line[0] != '#' && load_one(line) < 0)
            failed++;
        line = nl ? nl + 1 : NULL;
    }
    for (size_t i = 0; extra && extra[i]; i++)
        if (load_one(extra[i]) < 0)
            failed++;
    return failed;
}
