/* The PCI display devices and their IOMMU groups, from sysfs; their status; and
 * which devices a GPU request takes. */
#define LOG_MODULE "gpu"

#include <dirent.h>
#include <string.h>
#include <strings.h>

#include "gpu/gpu-private.h"

const char *gpu_sysfs_root(void)
{
    const char *root = getenv("HYPR_SYSFS_ROOT");
    return str_empty(root) ? "/sys" : root;
}

/* n hex digits at s; false otherwise. */
static bool hex_run(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr("0123456789abcdefABCDEF", s[i]))
            return false;
    return true;
}

char *gpu_address_normalize(const char *s)
{
    if (!s)
        return NULL;
    /* [DOMAIN:]BB:DD.F with a domain of 4 to 8 hex digits (VMD domains have 5). */
    size_t len = strlen(s), dom = 0;
    if (len != 7) {
        if (len < 8 + 4 || len > 8 + 8)
            return NULL;
        dom = len - 8;
        if (!hex_run(s, dom) || s[dom] != ':')
            return NULL;
    }
    const char *b = dom ? s + dom + 1 : s;
    if (!hex_run(b, 2) || b[2] != ':' || !hex_run(b + 3, 2) || b[5] != '.' || b[6] < '0' ||
        b[6] > '7')
        return NULL;
    char *out = dom ? xstrdup(s) : xasprintf("0000:%s", s);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

char *gpu_device_dir(const gpu_sysfs *sys, const char *address)
{
    return xasprintf("%s/bus/pci/devices/%s", gpu_root(sys), address);
}

char *gpu_link_name(const char *dir, const char *name)
{
    _cleanup_free_ char *link = path_join(dir, name);
    char target[4096];
    ssize_t k = readlink(link, target, sizeof(target) - 1);
    if (k <= 0)
        return NULL;
    target[k] = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    return *base ? xstrdup(base) : NULL;
}

/* A small attribute, trimmed; NULL when absent or empty. */
static char *read_attr(const char *dir, const char *name)
{
    _cleanup_free_ char *path = path_join(dir, name);
    char *data = NULL;
    size_t len;
    if (read_file(path, 4096, &data, &len) < 0)
        return NULL;
    data[strcspn(data, "\n")] = '\0';
    len = strlen(data);
    while (len && data[len - 1] == ' ')
        data[--len] = '\0';
    if (!len) {
        free(data);
        return NULL;
    }
    return data;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The PCI addresses among the entries of dir, sorted; NULL when none or no dir. */
static char **list_addresses(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **v = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        _cleanup_free_ char *a = gpu_address_normalize(de->d_name);
        /* Only canonical names: anything else in sysfs is not a device. */
        if (a && strcmp(a, de->d_name) == 0)
            v = strv_append(v, a);
    }
    closedir(d);
    size_t n = strv_length(v);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    return v;
}

static unsigned hex_id(const char *s)
{
    if (!s || !str_startswith(s, "0x"))
        return 0x10000; /* matches no pci.ids entry */
    char *end;
    unsigned long v = strtoul(s + 2, &end, 16);
    return *end || v > 0xffff ? 0x10000 : (unsigned)v;
}

static void read_device(const gpu_sysfs *sys, gpu_ids *ids, const char *address, gpu_device *dev)
{
    _cleanup_free_ char *dir = gpu_device_dir(sys, address);
    *dev = (gpu_device){.address = xstrdup(address), .numa_node = -1};
    dev->class_id = read_attr(dir, "class");
    dev->vendor_id = read_attr(dir, "vendor");
    dev->device_id = read_attr(dir, "device");
    dev->display = dev->class_id && str_startswith(dev->class_id, "0x03");
    unsigned v = hex_id(dev->vendor_id);
    const char *name = gpu_ids_vendor(ids, v);
    dev->vendor = name ? xstrdup(name) : NULL;
    name = gpu_ids_device(ids, v, hex_id(dev->device_id));
    dev->device = name ? xstrdup(name) : NULL;
    dev->driver = gpu_link_name(dir, "driver");
    dev->iommu_group = gpu_link_name(dir, "iommu_group");
    _cleanup_free_ char *numa = read_attr(dir, "numa_node");
    int64_t node;
    if (numa && parse_int64(numa, -1, 65535, &node) == 0)
        dev->numa_node = (int)node;
    _cleanup_free_ char *boot = read_attr(dir, "boot_vga");
    dev->boot_vga = boot && strcmp(boot, "1") == 0;
    if (dev->iommu_group) {
        _cleanup_free_ char *members = path_join(dir, "iommu_group/devices");
        dev->group = list_addresses(members);
        /* A group always holds the device itself, whatever the tree says. */
        if (!dev->group ||
            !bsearch(&address, dev->group, strv_length(dev->group), sizeof(char *), cmp_str)) {
            dev->group = strv_append(dev->group, address);
            qsort(dev->group, strv_length(dev->group), sizeof(char *), cmp_str);
        }
    }
}

static void device_clear(gpu_device *d)
{
    free(d->address);
    free(d->class_id);
    free(d->vendor_id);
    free(d->device_id);
    free(d->vendor);
    free(d->device);
    free(d->driver);
    free(d->iommu_group);
    strv_free(d->group);
}

void gpu_list_clear(gpu_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        device_clear(&l->devices[i]);
    free(l->devices);
    *l = (gpu_list){0};
}

static int cmp_device(const void *a, const void *b)
{
    return strcmp(((const gpu_device *)a)->address, ((const gpu_device *)b)->address);
}

const gpu_device *gpu_list_find(const gpu_list *l, const char *address)
{
    if (!address || !l->n)
        return NULL;
    gpu_device key = {.address = (char *)address};
    return bsearch(&key, l->devices, l->n, sizeof(*l->devices), cmp_device);
}

static bool listed(char **addrs, const char *a)
{
    for (char **p = addrs; p && *p; p++)
        if (strcmp(*p, a) == 0)
            return true;
    return false;
}

int gpu_scan(const gpu_sysfs *sys, gpu_ids *ids, gpu_list *out, hypr_error *err)
{
    *out = (gpu_list){0};
    _cleanup_free_ char *bus = xasprintf("%s/bus/pci/devices", gpu_root(sys));
    _cleanup_strv_ char **all = list_addresses(bus);
    _cleanup_strv_ char **wanted = NULL; /* display devices, then their group companions */
    for (char **a = all; a && *a; a++) {
        _cleanup_free_ char *dir = path_join(bus, *a);
        _cleanup_free_ char *cls = read_attr(dir, "class");
        if (cls && str_startswith(cls, "0x03"))
            wanted = strv_append(wanted, *a);
    }
    size_t n_display = strv_length(wanted);
    gpu_device *devs = xcalloc(n_display + 1, sizeof(*devs));
    size_t n = 0, cap = n_display + 1;
    for (size_t i = 0; i < n_display; i++)
        read_device(sys, ids, wanted[i], &devs[n++]);
    /* Companions: whatever shares a GPU's IOMMU group and exists in the tree. */
    for (size_t i = 0; i < n_display; i++) {
        for (char **m = devs[i].group; m && *m; m++) {
            if (listed(wanted, *m) || !listed(all, *m))
                continue;
            wanted = strv_append(wanted, *m);
            if (n == cap)
                devs = xrealloc(devs, (cap *= 2) * sizeof(*devs));
            read_device(sys, ids, *m, &devs[n++]);
        }
    }
    if (n > 1)
        qsort(devs, n, sizeof(*devs), cmp_device);
    out->devices = devs;
    out->n = n;
    (void)err; /* an unreadable attribute is an absent one: nothing here fails */
    return 0;
}

/* ---- status ---------------------------------------------------------------------- */

static bool group_has_boot_vga(const gpu_list *l, const gpu_device *dev)
{
    if (dev->boot_vga)
        return true;
    for (char **m = dev->group; m && *m; m++) {
        const gpu_device *o = gpu_list_find(l, *m);
        if (o && o->boot_vga)
            return true;
    }
    return false;
}

gpu_status gpu_device_status(const gpu_list *l, const gpu_device *dev, bool held)
{
    if (held)
        return GPU_IN_USE;
    if (group_has_boot_vga(l, dev))
        return GPU_BOOT_VGA;
    if (dev->driver && strcmp(dev->driver, GPU_VFIO_DRIVER) == 0)
        return GPU_VFIO_READY;
    return GPU_AVAILABLE;
}

const char *gpu_status_name(gpu_status s)
{
    static const char *const names[] = {
        [GPU_AVAILABLE] = "available",
        [GPU_VFIO_READY] = "vfio-ready",
        [GPU_IN_USE] = "in-use",
        [GPU_BOOT_VGA] = "boot-vga",
    };
    return (size_t)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

/* ---- selection ------------------------------------------------------------------- */

/* Adds the IOMMU group of one GPU to *out, checking the rules for each member. */
static int take_group(const gpu_list *l, const gpu_request *req, const gpu_device *gpu, char ***out,
                      hypr_error *err)
{
    if (!gpu->iommu_group)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ENODEV,
                        "GPU %s has no IOMMU group: IOMMU/VFIO is unavailable on this host "
                        "(" GPU_IOMMU_HINT ")",
                        gpu->address);
    for (char **m = gpu->group; *m; m++) {
        const gpu_device *dev = gpu_list_find(l, *m);
        bool self = strcmp(*m, gpu->address) == 0;
        /* Named by what the user asked for: a companion is "X, in the IOMMU group of Y". */
        _cleanup_free_ char *what =
            self ? xstrdup(*m) : xasprintf("%s, in the IOMMU group of %s,", *m, gpu->address);
        if (dev && dev->boot_vga && !req->force)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EPERM,
                            "%s is the boot VGA device (the host's display); use --gpu-force "
                            "to pass it through anyway",
                            what);
        const char *holder = req->held_by ? req->held_by(req->ud, *m) : NULL;
        if (holder)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY, "GPU %s is in use by VM %s", what,
                            holder);
        if (!listed(*out, *m))
            *out = strv_append(*out, *m);
    }
    return 0;
}

static bool vendor_matches(const gpu_device *g, const char *vendor)
{
    if (str_empty(vendor))
        return true;
    const char *id = g->vendor_id && str_startswith(g->vendor_id, "0x") ? g->vendor_id + 2 : "";
    const char *want = str_startswith(vendor, "0x") ? vendor + 2 : vendor;
    return strcasecmp(id, want) == 0 || (g->vendor && strcasestr(g->vendor, vendor));
}

int gpu_select(const gpu_list *l, const gpu_request *req, char ***out, hypr_error *err)
{
    *out = NULL;
    _cleanup_strv_ char **addrs = NULL;
    bool all = (req->address && strcmp(req->address, "all") == 0) ||
               (str_empty(req->address) && !str_empty(req->vendor));
    if (all) {
        for (size_t i = 0; i < l->n; i++) {
            const gpu_device *g = &l->devices[i];
            if (!g->display || group_has_boot_vga(l, g) || !vendor_matches(g, req->vendor))
                continue;
            int r = take_group(l, req, g, &addrs, err);
            if (r < 0)
                return r;
        }
        if (!addrs && !str_empty(req->vendor))
            return hypr_err(err, HYPR_NOT_FOUND, ENODEV,
                            "no GPU from vendor \"%s\" to pass through (see 'hypr gpu list')",
                            req->vendor);
        if (!addrs)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENODEV,
                            "--gpu all: no GPU to pass through (%s)",
                            l->n ? "the only ones are the boot VGA device's group; name one "
                                   "with --gpu ADDRESS --gpu-force"
                                 : "this host has no PCI display device");
    } else {
        _cleanup_free_ char *a = gpu_address_normalize(req->address);
        if (!a)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid GPU \"%s\": expected a PCI address like 0000:01:00.0, or "
                            "all",
                            req->address ? req->address : "");
        const gpu_device *g = gpu_list_find(l, a);
        if (!g)
            return hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                            "no GPU at PCI address %s (see 'hypr gpu list')", a);
        if (!vendor_matches(g, req->vendor))
            return hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                            "the GPU at PCI address %s is not from vendor \"%s\" (it is %s)", a,
                            req->vendor,
                            g->vendor      ? g->vendor
                            : g->vendor_id ? g->vendor_id
                                           : "unknown");
        int r = take_group(l, req, g, &addrs, err);
        if (r < 0)
            return r;
    }
    qsort(addrs, strv_length(addrs), sizeof(char *), cmp_str);
    *out = TAKE_PTR(addrs);
    return 0;
}
