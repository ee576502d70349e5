/* Handing devices to vfio-pci and back (the sequence is at the top of gpu.h),
 * and the claims that remember where each device came from. */
#define LOG_MODULE "gpu"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gpu/gpu-private.h"

/* ---- claims ------------------------------------------------------------------------ */

void gpu_claim_clear(gpu_claim *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].address);
        free(c->items[i].driver);
    }
    free(c->items);
    *c = (gpu_claim){0};
}

static const gpu_binding *claim_find(const gpu_claim *c, const char *address)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->items[i].address, address) == 0)
            return &c->items[i];
    return NULL;
}

bool gpu_claim_has(const gpu_claim *c, const char *address)
{
    return claim_find(c, address) != NULL;
}

static void claim_add(gpu_claim *c, const char *address, const char *driver)
{
    c->items = xrealloc(c->items, (c->n + 1) * sizeof(*c->items));
    c->items[c->n++] = (gpu_binding){xstrdup(address), driver ? xstrdup(driver) : NULL};
}

int gpu_claim_plan(const gpu_sysfs *sys, char *const *addresses, const gpu_claim *earlier,
                   gpu_claim *out, hypr_error *err)
{
    _cleanup_gpu_claim_ gpu_claim c = {0};
    for (char *const *a = addresses; a && *a; a++) {
        const gpu_binding *before = claim_find(earlier, *a);
        if (before) {
            claim_add(&c, *a, before->driver);
            continue;
        }
        _cleanup_free_ char *dir = gpu_device_dir(sys, *a);
        struct stat st;
        if (stat(dir, &st) < 0)
            return hypr_err(err, HYPR_NOT_FOUND, errno, "PCI device %s: %s: %s", *a, dir,
                            strerror(errno));
        _cleanup_free_ char *driver = gpu_link_name(dir, "driver");
        claim_add(&c, *a, driver);
    }
    *out = c;
    c = (gpu_claim){0};
    return 0;
}

char *gpu_claim_format(const gpu_claim *c)
{
    _cleanup_buf_ hypr_buf b = {0};
    buf_puts(&b, "# hypr GPU claim: PCI address, driver to give it back to (- none)\n");
    for (size_t i = 0; i < c->n; i++)
        buf_printf(&b, "%s %s\n", c->items[i].address,
                   c->items[i].driver ? c->items[i].driver : "-");
    return buf_steal(&b);
}

/* A driver name is one path component under bus/pci/drivers. */
static bool driver_name_ok(const char *s)
{
    return !str_empty(s) && strlen(s) < 256 && strcmp(s, ".") && strcmp(s, "..") &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
               strlen(s);
}

int gpu_claim_parse(const char *text, gpu_claim *out, hypr_error *err)
{
    *out = (gpu_claim){0};
    _cleanup_gpu_claim_ gpu_claim c = {0};
    _cleanup_strv_ char **lines = strv_split(text, "\n");
    size_t no = 0;
    for (char **l = lines; l && *l; l++) {
        no++;
        if ((*l)[0] == '#')
            continue;
        _cleanup_strv_ char **f = strv_split(*l, " \t\r");
        if (!f)
            continue;
        _cleanup_free_ char *addr = gpu_address_normalize(f[0]);
        bool ok = strv_length(f) == 2 && addr && strcmp(addr, f[0]) == 0 &&
                  (strcmp(f[1], "-") == 0 || driver_name_ok(f[1])) && !claim_find(&c, addr);
        if (!ok)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "GPU claim: line %zu is not \"ADDRESS DRIVER\"", no);
        claim_add(&c, addr, strcmp(f[1], "-") == 0 ? NULL : f[1]);
    }
    *out = c;
    c = (gpu_claim){0};
    return 0;
}

/* ---- sysfs writes ------------------------------------------------------------------ */

static int default_write(void *ud, const char *path, const char *value)
{
    /* O_TRUNC is what a shell's ">" does: sysfs ignores it, a fake tree needs it. */
    _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return fd_write_all(fd, value, strlen(value));
}

static int write_attr(const gpu_sysfs *sys, const char *address, const char *path,
                      const char *value, hypr_error *err)
{
    int r = sys && sys->write ? sys->write(sys->ud, path, value) : default_write(NULL, path, value);
    if (r < 0) {
        _cleanup_free_ char *shown =
            strcmp(value, "\n") == 0 ? xstrdup("a newline") : xasprintf("\"%s\"", value);
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "PCI device %s: write %s to %s: %s",
                        address, shown, path, strerror(-r));
    }
    log_debug("wrote %s to %s", strcmp(value, "\n") == 0 ? "\\n" : value, path);
    return 0;
}

static bool same_driver(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/* Waits until the device's driver link names want (NULL: unbound). The kernel
 * applies these writes before they return, except for drivers that probe
 * asynchronously; a bounded wait covers those. */
static bool wait_driver(const gpu_sysfs *sys, const char *dir, const char *want)
{
    int settle = sys && sys->settle_ms > 0 ? sys->settle_ms : GPU_SETTLE_MS;
    int64_t deadline = time_monotonic_ms() + settle;
    for (;;) {
        _cleanup_free_ char *now = gpu_link_name(dir, "driver");
        if (same_driver(now, want))
            return true;
        if (time_monotonic_ms() >= deadline)
            return false;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int unbind(const gpu_sysfs *sys, const char *address, const char *dir, const char *driver,
                  hypr_error *err)
{
    _cleanup_free_ char *path = xasprintf("%s/driver/unbind", dir);
    int r = write_attr(sys, address, path, address, err);
    if (r < 0)
        return r;
    if (!wait_driver(sys, dir, NULL))
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ETIMEDOUT,
                        "PCI device %s: still bound to %s after writing to %s", address, driver,
                        path);
    return 0;
}

static int bind_one(const gpu_sysfs *sys, const gpu_binding *b, hypr_error *err)
{
    if (same_driver(b->driver, GPU_VFIO_DRIVER))
        return 0; /* it was on vfio-pci before hypr: nothing to do, nothing to undo */
    const char *root = gpu_root(sys);
    _cleanup_free_ char *dir = gpu_device_dir(sys, b->address);
    _cleanup_free_ char *override = path_join(dir, "driver_override");
    int r = write_attr(sys, b->address, override, GPU_VFIO_DRIVER, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *now = gpu_link_name(dir, "driver");
    if (same_driver(now, GPU_VFIO_DRIVER))
        return 0;
    if (now && (r = unbind(sys, b->address, dir, now, err)) < 0)
        return r;
    _cleanup_free_ char *probe = xasprintf("%s/bus/pci/drivers_probe", root);
    r = write_attr(sys, b->address, probe, b->address, err);
    if (r < 0)
        return r;
    if (!wait_driver(sys, dir, GPU_VFIO_DRIVER)) {
        _cleanup_free_ char *got = gpu_link_name(dir, "driver");
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ENODEV,
                        "PCI device %s did not bind to vfio-pci (driver now: %s): is the "
                        "vfio-pci module loaded ('modprobe vfio-pci')?",
                        b->address, got ? got : "none");
    }
    return 0;
}

int gpu_bind(const gpu_sysfs *sys, const gpu_claim *c, hypr_error *err)
{
    for (size_t i = 0; i < c->n; i++) {
        const gpu_binding *b = &c->items[i];
        int r = bind_one(sys, b, err);
        if (r < 0)
            return r;
        if (!same_driver(b->driver, GPU_VFIO_DRIVER))
            log_info("PCI device %s is on vfio-pci (was %s)", b->address,
                     b->driver ? b->driver : "unbound");
    }
    return 0;
}

static int release_one(const gpu_sysfs *sys, const gpu_binding *b, hypr_error *err)
{
    if (same_driver(b->driver, GPU_VFIO_DRIVER))
        return 0;
    const char *root = gpu_root(sys);
    _cleanup_free_ char *dir = gpu_device_dir(sys, b->address);
    struct stat st;
    if (stat(dir, &st) < 0) {
        log_warn("PCI device %s is gone (hot-unplugged?): nothing to give back", b->address);
        return 0;
    }
    _cleanup_free_ char *override = path_join(dir, "driver_override");
    int r = write_attr(sys, b->address, override, "\n", err);
    if (r < 0)
        return r;
    _cleanup_free_ char *now = gpu_link_name(dir, "driver");
    if (same_driver(now, b->driver))
        return 0;
    if (now && strcmp(now, GPU_VFIO_DRIVER) != 0) {
        /* Someone bound it elsewhere since: theirs now, not hypr's to undo. */
        log_warn("PCI device %s is on %s, not vfio-pci: left there", b->address, now);
        return 0;
    }
    if (now && (r = unbind(sys, b->address, dir, now, err)) < 0)
        return r;
    if (!b->driver)
        return 0; /* it had no driver: it stays without one */
    _cleanup_free_ char *bind = xasprintf("%s/bus/pci/drivers/%s/bind", root, b->driver);
    _cleanup_free_ char *probe = xasprintf("%s/bus/pci/drivers_probe", root);
    /* A driver whose module was unloaded meanwhile has no bind file: let the
     * kernel probe, which loads nothing but finds any driver that matches. */
    r = write_attr(sys, b->address, access(bind, F_OK) == 0 ? bind : probe, b->address, err);
    if (r < 0)
        return r;
    if (!wait_driver(sys, dir, b->driver)) {
        _cleanup_free_ char *got = gpu_link_name(dir, "driver");
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ENODEV,
                        "PCI device %s did not go back to %s (driver now: %s)", b->address,
                        b->driver, got ? got : "none");
    }
    return 0;
}

int gpu_release(const gpu_sysfs *sys, const gpu_claim *c, hypr_error *err)
{
    int ret = 0;
    for (size_t i = c->n; i-- > 0;) {
        _cleanup_error_ hypr_error e = HYPR_ERROR_INIT;
        int r = release_one(sys, &c->items[i], &e);
        if (r < 0 && ret == 0) {
            ret = r;
            if (err) {
                hypr_error_clear(err);
                *err = e;
                e = (hypr_error)HYPR_ERROR_INIT;
            }
        } else if (r >= 0 && !same_driver(c->items[i].driver, GPU_VFIO_DRIVER)) {
            log_info("PCI device %s is back %s%s", c->items[i].address,
                     c->items[i].driver ? "on " : "unbound",
                     c->items[i].driver ? c->items[i].driver : "");
        }
    }
    return ret;
}

int gpu_check_vfio(const gpu_sysfs *sys, const gpu_claim *c, const char *vfio_dir, hypr_error *err)
{
    if (!vfio_dir)
        vfio_dir = GPU_VFIO_DEV_DIR;
    for (size_t i = 0; i < c->n; i++) {
        _cleanup_free_ char *dir = gpu_device_dir(sys, c->items[i].address);
        _cleanup_free_ char *group = gpu_link_name(dir, "iommu_group");
        if (!group)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENODEV,
                            "PCI device %s has no IOMMU group: IOMMU/VFIO is unavailable on "
                            "this host (" GPU_IOMMU_HINT ")",
                            c->items[i].address);
        _cleanup_free_ char *node = path_join(vfio_dir, group);
        if (access(node, F_OK) < 0)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, errno,
                            "PCI device %s is on vfio-pci but its VFIO group %s does not exist "
                            "(%s): IOMMU/VFIO is unavailable on this host (" GPU_IOMMU_HINT ")",
                            c->items[i].address, node, strerror(errno));
    }
    return 0;
}
