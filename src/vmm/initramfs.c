/* The kestrel initramfs: a cpio "newc" writer, the guest's kernel modules
 * resolved from modules.dep, and the per-VM manifest archive. */
#define LOG_MODULE "vmm"

#include <string.h>
#include <sys/stat.h>

#include "vmm/vmm-private.h"

#define STAMP_FORMAT     "hypr-initramfs 5"
#define MAX_MODULE_SIZE  ((size_t)64 << 20)
#define MAX_KESTREL_SIZE ((size_t)64 << 20)
#define MAX_BASE_SIZE    ((size_t)512 << 20)

/* virtio transports (mmio: qemu microvm, firecracker; pci: cloud-hypervisor),
 * the devices, vsock, and the filesystems of the root. */
const char *const vmm_guest_modules[] = {
    "virtio",
    "virtio_ring",
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "squashfs",
    "overlay",
    /* volumes: virtiofs, 9p, and ext4 (the persistent upper disk, disk volumes);
     * ext4 asks the crypto API for "crc32c" at mount time and a guest has no
     * modprobe, so the generic driver goes in with it (crc32c-intel needs
     * SSE4.2, which TCG's default CPU lacks). */
    "fuse",
    "virtiofs",
    "netfs",
    "fscache",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "crc16",
    "mbcache",
    "jbd2",
    "crc32c_generic",
    "ext4",
    NULL,
};

/* Without these the guest cannot mount its root: a clear error beats a hung boot. */
static const char *const essential_modules[] = {"virtio_blk", "squashfs", "overlay"};

/* ---- cpio newc ---------------------------------------------------------- */

static void pad4(hypr_buf *b)
{
    static const char zeros[4] = {0};
    if (b->len % 4)
        buf_append(b, zeros, 4 - b->len % 4);
}

static void cpio_entry(cpio_writer *w, const char *name, uint32_t mode, uint32_t nlink,
                       const void *data, size_t len)
{
    while (*name == '/')
        name++;
    size_t namesize = strlen(name) + 1;
    char hdr[6 + 13 * 8 + 1];
    snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
             w->next_ino++, mode, 0u, 0u, nlink, 0u, (uint32_t)len, 0u, 0u, 0u, 0u,
             (uint32_t)namesize, 0u);
    buf_append(w->out, hdr, sizeof(hdr) - 1);
    buf_append(w->out, name, namesize);
    pad4(w->out);
    if (len)
        buf_append(w->out, data, len);
    pad4(w->out);
}

void cpio_init(cpio_writer *w, hypr_buf *out)
{
    w->out = out;
    w->next_ino = 1;
}

void cpio_add_dir(cpio_writer *w, const char *path, mode_t perm)
{
    cpio_entry(w, path, S_IFDIR | (perm & 07777), 2, NULL, 0);
}

void cpio_add_file(cpio_writer *w, const char *path, mode_t perm, const void *data, size_t len)
{
    cpio_entry(w, path, S_IFREG | (perm & 07777), 1, data, len);
}

void cpio_add_symlink(cpio_writer *w, const char *path, const char *target)
{
    cpio_entry(w, path, S_IFLNK | 0777, 1, target, strlen(target));
}

void cpio_finish(cpio_writer *w)
{
    cpio_entry(w, "TRAILER!!!", 0, 1, NULL, 0);
}

/* ---- modules.dep --------------------------------------------------------- */

typedef struct mod_entry {
    char *path;  /* relative to the modules dir, points into the parsed file */
    char **deps; /* relative paths, as listed */
    size_t n_deps;
    char *name; /* owned: basename without .ko*, '-' as '_' */
    int state;  /* 0 unvisited, 1 visiting, 2 done */
} mod_entry;

typedef struct mod_table {
    char *text;
    mod_entry *e;
    size_t n;
} mod_table;

static char *module_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *ko = strstr(base, ".ko");
    char *n = xstrndup(base, ko ? (size_t)(ko - base) : strlen(base));
    for (char *p = n; *p; p++)
        if (*p == '-')
            *p = '_';
    return n;
}

static void mod_table_free(mod_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].deps);
        free(t->e[i].name);
    }
    free(t->e);
    free(t->text);
}

static int mod_table_load(const char *modules_dir, mod_table *t, hypr_error *err)
{
    *t = (mod_table){0};
    _cleanup_free_ char *dep = path_join(modules_dir, "modules.dep");
    int r = read_file(dep, (size_t)64 << 20, &t->text, NULL);
    if (r < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "read %s: %s", dep, strerror(-r));
    char *save = NULL;
    for (char *line = strtok_r(t->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        mod_entry e = {.path = line, .name = module_name(line)};
        char *s2 = NULL;
        for (char *d = strtok_r(colon + 1, " \t", &s2); d; d = strtok_r(NULL, " \t", &s2)) {
            e.deps = xrealloc(e.deps, (e.n_deps + 1) * sizeof(char *));
            e.deps[e.n_deps++] = d;
        }
        t->e = xrealloc(t->e, (t->n + 1) * sizeof(*t->e));
        t->e[t->n++] = e;
    }
    return 0;
}

static mod_entry *mod_by_name(mod_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].name, name) == 0)
            return &t->e[i];
    return NULL;
}

static mod_entry *mod_by_path(mod_table *t, const char *path)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].path, path) == 0)
            return &t->e[i];
    return NULL;
}

/* Post-order: a module comes after everything it depends on. */
static void mod_visit(mod_table *t, mod_entry *m, char ***order)
{
    if (m->state)
        return; /* done, or a dependency cycle (modules.dep has none) */
    m->state = 1;
    for (size_t i = m->n_deps; i > 0; i--) {
        mod_entry *d = mod_by_path(t, m->deps[i - 1]);
        if (d)
            mod_visit(t, d, order);
    }
    m->state = 2;
    *order = strv_append(*order, m->path);
}

static bool is_builtin(const char *modules_dir, const char *name)
{
    _cleanup_free_ char *p = path_join(modules_dir, "modules.builtin");
    _cleanup_free_ char *text = NULL;
    if (read_file(p, (size_t)16 << 20, &text, NULL) < 0)
        return false;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        _cleanup_free_ char *n = module_name(l);
        if (strcmp(n, name) == 0)
            return true;
    }
    return false;
}

int vmm_modules_resolve(const char *modules_dir, const char *const *wanted, char ***out_paths,
                        hypr_error *err)
{
    *out_paths = NULL;
    mod_table t;
    int r = mod_table_load(modules_dir, &t, err);
    if (r < 0)
        return r;
    char **order = NULL;
    for (size_t i = 0; wanted[i]; i++) {
        mod_entry *m = mod_by_name(&t, wanted[i]);
        if (m) {
            mod_visit(&t, m, &order);
            continue;
        }
        if (is_builtin(modules_dir, wanted[i]))
            continue;
        bool essential = false;
        for (size_t k = 0; k < ARRAY_SIZE(essential_modules); k++)
            essential |= strcmp(essential_modules[k], wanted[i]) == 0;
        if (essential) {
            strv_free(order);
            mod_table_free(&t);
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOENT,
                            "the guest kernel has no '%s' driver (neither a module in %s nor "
                            "built in)",
                            wanted[i], modules_dir);
        }
        log_debug("module %s: not in %s, skipped", wanted[i], modules_dir);
    }
    mod_table_free(&t);
    *out_paths = order ? order : xcalloc(1, sizeof(char *));
    return 0;
}

/* Drops a module's appended signature: unenforced (no lockdown in a guest we boot),
 * checking it costs the guest a SHA-512 of the module and an RSA verify each, which
 * under TCG add up to a visible part of the boot. The trailer is the signature,
 * struct module_signature (12 bytes, big-endian sig_len last) and the magic. */
static void strip_signature(hypr_buf *ko)
{
    static const char magic[] = "~Module signature appended~\n";
    const size_t mlen = sizeof(magic) - 1, info = 12;
    if (ko->len < mlen + info || memcmp(ko->data + ko->len - mlen, magic, mlen) != 0)
        return;
    const uint8_t *p = (const uint8_t *)ko->data + ko->len - mlen - 4;
    size_t sig_len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (sig_len > ko->len - mlen - info)
        return; /* not a trailer we understand: keep the module as it is */
    ko->len -= mlen + info + sig_len;
}

int vmm_module_read(const char *path, hypr_buf *out, hypr_error *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_file(path, MAX_MODULE_SIZE, &data, &len);
    if (r < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "read %s: %s", path, strerror(-r));
    out->len = 0;
    if (str_endswith(path, ".ko")) {
        buf_append(out, data, len);
    } else {
        /* finit_module takes compressed modules only with MODULE_DECOMPRESS:
         * decompress here so every kernel can load them. */
        r = vmm_decompress_stream(data, len, out, err);
        if (r < 0)
            return hypr_err_prefix(err, "module %s", path);
    }
    strip_signature(out);
    return 0;
}

/* ---- the kestrel initramfs ----------------------------------------------- */

static uint64_t fnv1a64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static char *file_identity(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) < 0)
        return xstrdup("-");
    return xasprintf("%" PRId64 " %" PRId64 ".%09ld", (int64_t)st.st_size,
                     (int64_t)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
}

static char *make_stamp(const vmm_initramfs_opts *o, const char *kestrel, size_t kestrel_len)
{
    _cleanup_free_ char *dep = o->modules_dir ? path_join(o->modules_dir, "modules.dep") : NULL;
    _cleanup_free_ char *dep_id = file_identity(dep);
    _cleanup_free_ char *k_id = file_identity(o->kestrel);
    return xasprintf(STAMP_FORMAT "\nkernel %s\nmodules %s %s\nkestrel %s %s %016" PRIx64 "\n",
                     o->kernel_version ? o->kernel_version : "-",
                     o->modules_dir ? o->modules_dir : "-", dep_id, o->kestrel, k_id,
                     fnv1a64(kestrel, kestrel_len));
}

/* Modules the guest loads only when their device is there (kestrel checks the
 * condition written before the path in modules.order): PCI transport only on a
 * machine with a PCI bus (not qemu microvm), vsock only with a vsock device, the
 * NIC driver only for a VM with a NIC. Each costs the boot a module load.
 * virtio_console stays unconditional and early: its ports get their names
 * asynchronously, and kestrel opens the control port right after the modules. */
static const struct {
    const char *module;
    const char *cond;
} module_conditions[] = {
    {"virtio_pci", "@pci"},
    {"virtio_pci_modern_dev", "@pci"},
    {"virtio_pci_legacy_dev", "@pci"},
    {"virtio_net", "@virtio=1"},
    {"net_failover", "@virtio=1"},
    {"failover", "@virtio=1"},
    {"vsock", "@virtio=19"},
    {"vmw_vsock_virtio_transport_common", "@virtio=19"},
    {"vmw_vsock_virtio_transport", "@virtio=19"},
    {"fuse", "@virtio=26"},
    {"virtiofs", "@virtio=26"},
    {"netfs", "@virtio=9"},
    {"fscache", "@virtio=9"},
    {"9pnet", "@virtio=9"},
    {"9pnet_virtio", "@virtio=9"},
    {"9p", "@virtio=9"},
    /* ext4 only with a second virtio-blk disk (the rootfs is /dev/vda, squashfs) */
    {"crc16", "@virtio=2*2"},
    {"mbcache", "@virtio=2*2"},
    {"jbd2", "@virtio=2*2"},
    {"crc32c_generic", "@virtio=2*2"},
    {"ext4", "@virtio=2*2"},
};

static const char *module_condition(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(module_conditions); i++)
        if (strcmp(module_conditions[i].module, name) == 0)
            return module_conditions[i].cond;
    return NULL;
}

static int add_modules(cpio_writer *w, const char *modules_dir, hypr_buf *order_txt,
                       hypr_error *err)
{
    _cleanup_strv_ char **paths = NULL;
    int r = vmm_modules_resolve(modules_dir, vmm_guest_modules, &paths, err);
    if (r < 0)
        return r;
    _cleanup_buf_ hypr_buf ko = {0};
    for (size_t i = 0; paths[i]; i++) {
        _cleanup_free_ char *src = path_join(modules_dir, paths[i]);
        _cleanup_free_ char *name = module_name(paths[i]);
        _cleanup_free_ char *dst = xasprintf("/lib/modules/%s.ko", name);
        r = vmm_module_read(src, &ko, err);
        if (r < 0)
            return r;
        cpio_add_file(w, dst, 0644, ko.data, ko.len);
        const char *cond = module_condition(name);
        buf_printf(order_txt, "%s%s%s\n", cond ? cond : "", cond ? " " : "", dst);
    }
    return 0;
}

int vmm_initramfs_ensure(const vmm_initramfs_opts *o, bool *rebuilt, hypr_error *err)
{
    if (rebuilt)
        *rebuilt = false;
    _cleanup_free_ char *kestrel = NULL;
    size_t klen = 0;
    int r = read_file(o->kestrel, MAX_KESTREL_SIZE, &kestrel, &klen);
    if (r < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "kestrel %s: %s", o->kestrel,
                        strerror(-r));
    _cleanup_free_ char *stamp = make_stamp(o, kestrel, klen);
    _cleanup_free_ char *stamp_path = xasprintf("%s.stamp", o->out);
    _cleanup_free_ char *old = NULL;
    struct stat st;
    if (stat(o->out, &st) == 0 && read_file(stamp_path, 65536, &old, NULL) == 0 &&
        strcmp(old, stamp) == 0)
        return 0;

    int64_t t0 = time_monotonic_ms();
    _cleanup_buf_ hypr_buf out = {0};
    _cleanup_buf_ hypr_buf order = {0};
    cpio_writer w;
    cpio_init(&w, &out);
    const char *dirs[] = {"/dev", "/proc", "/sys", "/run",        "/tmp",
                          "/mnt", "/hypr", "/lib", "/lib/modules"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
        cpio_add_dir(&w, dirs[i], 0755);
    cpio_add_file(&w, "/init", 0755, kestrel, klen);
    if (o->modules_dir) {
        r = add_modules(&w, o->modules_dir, &order, err);
        if (r < 0)
            return hypr_err_prefix(err, "build %s", o->out);
    }
    cpio_add_file(&w, "/hypr/modules.order", 0644, order.data ? order.data : "", order.len);
    cpio_finish(&w);

    r = write_file_atomic(o->out, out.data, out.len, 0644);
    if (r >= 0)
        r = write_file_atomic(stamp_path, stamp, strlen(stamp), 0644);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "write %s: %s", o->out, strerror(-r));
    log_info("built %s (%zu KiB, kernel %s, %" PRId64 " ms)", o->out, out.len >> 10,
             o->kernel_version ? o->kernel_version : "unknown", time_monotonic_ms() - t0);
    if (rebuilt)
        *rebuilt = true;
    return 0;
}

int vmm_write_vm_initrd(const char *base_cpio, const void *manifest, size_t manifest_len,
                        const char *out, hypr_error *err)
{
    _cleanup_free_ char *base = NULL;
    size_t blen = 0;
    int r = read_file(base_cpio, MAX_BASE_SIZE, &base, &blen);
    if (r < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "read %s: %s", base_cpio, strerror(-r));
    _cleanup_buf_ hypr_buf b = {0};
    buf_append(&b, base, blen);
    /* The kernel reads the next archive from a 4-byte boundary. */
    pad4(&b);
    cpio_writer w;
    cpio_init(&w, &b);
    w.next_ino = 0x100000; /* distinct from the base archive's inodes */
    cpio_add_dir(&w, "/hypr", 0755);
    cpio_add_file(&w, "/hypr/manifest", 0600, manifest, manifest_len);
    cpio_finish(&w);
    r = write_file_atomic(out, b.data, b.len, 0600);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "write %s: %s", out, strerror(-r));
    return 0;
}
