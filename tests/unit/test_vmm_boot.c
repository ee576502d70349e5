/* vmm: kernel images, the initramfs writer and module resolution. */
#include "test_vmm.h"

/* ---- kernel images -------------------------------------------------------- */

static const char fake_elf[] = "\177ELF\2\1\1\0 fake vmlinux Linux version 6.1.0-test (gcc) #1";

static void compress_gzip(const void *in, size_t len, hypr_buf *out)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf_reserve(out, len + 128);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)(len + 128);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len += len + 128 - z.avail_out;
    deflateEnd(&z);
}

static void compress_xz(const void *in, size_t len, hypr_buf *out)
{
    buf_reserve(out, len + 256);
    size_t pos = 0;
    assert_int_equal(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in, len,
                                             (uint8_t *)out->data + out->len, &pos, len + 256),
                     LZMA_OK);
    out->len += pos;
}

static void compress_zstd(const void *in, size_t len, hypr_buf *out)
{
    size_t cap = ZSTD_compressBound(len);
    buf_reserve(out, cap);
    size_t n = ZSTD_compress(out->data + out->len, cap, in, len, 3);
    assert_false(ZSTD_isError(n));
    out->len += n;
}

typedef void (*compress_fn)(const void *, size_t, hypr_buf *);

/* A bzImage-shaped file: setup sectors with the boot header, then the
 * compressed ELF payload and some trailing bytes. */
static void make_bzimage(hypr_buf *img, compress_fn compress, bool with_header)
{
    img->len = 0;
    char setup[1024] = {0};
    if (with_header) {
        setup[0x1f1] = 1; /* setup_sects: pm code at (1 + 1) * 512 */
        memcpy(setup + 0x202, "HdrS", 4);
        setup[0x206] = 0x0f; /* protocol 2.15 */
        setup[0x207] = 0x02;
        setup[0x20e] = 0x00; /* kernel_version at 0x300 */
        setup[0x20f] = 0x01;
        memcpy(setup + 0x300, "6.1.0-77-amd64 (debian-kernel@lists.debian.org) #1 SMP",
               strlen("6.1.0-77-amd64 (debian-kernel@lists.debian.org) #1 SMP"));
    }
    buf_append(img, setup, sizeof(setup));
    buf_append(img, "decompressor code \x1f\x8b junk", 25); /* a false gzip magic */
    size_t start = img->len;
    compress(fake_elf, sizeof(fake_elf), img);
    size_t plen = img->len - start;
    buf_append(img, "\0\0\0\0trailer", 11);
    if (with_header) {
        uint32_t off = (uint32_t)(start - 1024), l = (uint32_t)plen;
        memcpy(img->data + 0x248, &off, 4);
        memcpy(img->data + 0x24c, &l, 4);
    }
}

static void test_kernel_decompress(void **state)
{
    compress_fn fns[] = {compress_gzip, compress_xz, compress_zstd};
    for (size_t i = 0; i < ARRAY_SIZE(fns); i++) {
        for (int hdr = 0; hdr < 2; hdr++) {
            _cleanup_buf_ hypr_buf img = {0};
            _cleanup_buf_ hypr_buf out = {0};
            make_bzimage(&img, fns[i], hdr);
            _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
            assert_int_equal(vmm_kernel_decompress(img.data, img.len, &out, &err), 0);
            assert_int_equal(out.len, sizeof(fake_elf));
            assert_memory_equal(out.data, fake_elf, sizeof(fake_elf));
            _cleanup_free_ char *ver = vmm_kernel_image_version(img.data, img.len);
            if (hdr)
                assert_string_equal(ver, "6.1.0-77-amd64");
        }
    }
    _cleanup_free_ char *v = vmm_kernel_image_version(fake_elf, sizeof(fake_elf));
    assert_string_equal(v, "6.1.0-test");
    _cleanup_buf_ hypr_buf out = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(vmm_kernel_decompress("MZ nothing here at all", 22, &out, &err), -ENOEXEC);
}

static void test_kernel_find(void **state)
{
    _cleanup_free_ char *boot = tmp_path("boot");
    _cleanup_free_ char *mods = tmp_path("modules");
    _cleanup_free_ char *data = tmp_path("data");
    _cleanup_free_ char *moddir = path_join(mods, "6.1.0-10-amd64");
    assert_int_equal(mkdir_p(boot, 0755), 0);
    assert_int_equal(mkdir_p(moddir, 0755), 0);
    assert_int_equal(mkdir_p(data, 0755), 0);
    vmm_kernel_opts o = {.data_dir = data, .boot_dir = boot, .modules_root = mods};
    vmm_kernel k = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;

    /* Nothing anywhere. */
    assert_int_equal(vmm_kernel_find(&o, &k, &err), -ENOENT);
    assert_string_equal(err.message,
                        "no guest kernel found: install one with 'apt-get install "
                        "linux-image-amd64', or set the kernel setting to an uncompressed vmlinux");

    /* The newest /boot/vmlinuz-* by version (10 > 9), extracted into the cache. */
    const char *versions[] = {"6.1.0-9-amd64", "6.1.0-10-amd64"};
    for (size_t i = 0; i < 2; i++) {
        _cleanup_buf_ hypr_buf img = {0};
        make_bzimage(&img, i ? compress_xz : compress_gzip, true);
        _cleanup_free_ char *name = xasprintf("%s/vmlinuz-%s", boot, versions[i]);
        assert_int_equal(write_file_atomic(name, img.data, img.len, 0644), 0);
    }
    assert_int_equal(vmm_kernel_find(&o, &k, &err), 0);
    assert_string_equal(k.version, "6.1.0-10-amd64");
    assert_string_equal(k.modules_dir, moddir);
    _cleanup_free_ char *prefix = xasprintf("%s/kernel/cache/vmlinux-6.1.0-10-amd64-", data);
    assert_true(str_startswith(k.path, prefix));
    _cleanup_free_ char *content = NULL;
    size_t len = 0;
    assert_int_equal(read_file(k.path, 1 << 20, &content, &len), 0);
    assert_memory_equal(content, fake_elf, sizeof(fake_elf));

    /* A cache hit does no work: the cached file is used as it is. */
    _cleanup_free_ char *cached = xstrdup(k.path);
    write_str(cached, "\177ELF marker");
    vmm_kernel_clear(&k);
    assert_int_equal(vmm_kernel_find(&o, &k, &err), 0);
    assert_string_equal(k.path, cached);
    free(content);
    content = NULL;
    assert_int_equal(read_file(k.path, 1 << 20, &content, &len), 0);
    assert_string_equal(content, "\177ELF marker");
    vmm_kernel_clear(&k);

    /* <data-dir>/kernel/vmlinux beats /boot; ELF is used in place. */
    _cleanup_free_ char *kdir = path_join(data, "kernel");
    _cleanup_free_ char *dv = path_join(kdir, "vmlinux");
    assert_int_equal(write_file_atomic(dv, fake_elf, sizeof(fake_elf), 0644), 0);
    assert_int_equal(vmm_kernel_find(&o, &k, &err), 0);
    assert_string_equal(k.path, dv);
    assert_string_equal(k.version, "6.1.0-test");
    assert_null(k.modules_dir);
    vmm_kernel_clear(&k);

    /* The setting beats both. */
    _cleanup_free_ char *set = tmp_path("my-vmlinux");
    assert_int_equal(write_file_atomic(set, fake_elf, sizeof(fake_elf), 0644), 0);
    o.setting = set;
    assert_int_equal(vmm_kernel_find(&o, &k, &err), 0);
    assert_string_equal(k.path, set);
    vmm_kernel_clear(&k);
    o.setting = "/nonexistent/vmlinux";
    assert_int_equal(vmm_kernel_find(&o, &k, &err), -ENOENT);
    assert_non_null(strstr(err.message, "/nonexistent/vmlinux"));
}

/* ---- cpio ---------------------------------------------------------------- */

typedef struct cpio_entry {
    char name[256];
    uint32_t mode;
    const char *data;
    size_t len;
} cpio_entry;

static uint32_t hex8(const char *p)
{
    char tmp[9];
    memcpy(tmp, p, 8);
    tmp[8] = '\0';
    return (uint32_t)strtoul(tmp, NULL, 16);
}

/* Parses one newc archive from data+*off; returns the entry count (trailer
 * excluded) and advances *off past the trailer. */
static size_t cpio_parse(const char *data, size_t len, size_t *off, cpio_entry *out, size_t max)
{
    size_t n = 0;
    for (;;) {
        size_t p = *off;
        assert_true(p + 110 <= len);
        assert_memory_equal(data + p, "070701", 6);
        uint32_t mode = hex8(data + p + 6 + 8);
        uint32_t fsize = hex8(data + p + 6 + 6 * 8);
        uint32_t nsize = hex8(data + p + 6 + 11 * 8);
        const char *name = data + p + 110;
        assert_int_equal(name[nsize - 1], '\0');
        size_t doff = (p + 110 + nsize + 3) & ~(size_t)3;
        *off = (doff + fsize + 3) & ~(size_t)3;
        assert_true(*off <= len);
        if (strcmp(name, "TRAILER!!!") == 0)
            return n;
        assert_true(n < max);
        snprintf(out[n].name, sizeof(out[n].name), "%s", name);
        out[n].mode = mode;
        out[n].data = data + doff;
        out[n].len = fsize;
        n++;
    }
}

static const cpio_entry *cpio_get(const cpio_entry *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0)
            return &e[i];
    return NULL;
}

static const cpio_entry *cpio_need(const cpio_entry *e, size_t n, const char *name)
{
    const cpio_entry *x = cpio_get(e, n, name);
    if (!x) {
        print_error("no %s in the archive\n", name);
        abort();
    }
    return x;
}

static void test_cpio_writer(void **state)
{
    _cleanup_buf_ hypr_buf b = {0};
    cpio_writer w;
    cpio_init(&w, &b);
    cpio_add_dir(&w, "/hypr", 0755);
    cpio_add_file(&w, "/hypr/manifest", 0600, "{\"a\":1}", 7);
    cpio_add_symlink(&w, "/bin/sh", "busybox");
    cpio_add_file(&w, "empty", 0644, NULL, 0);
    cpio_finish(&w);
    assert_int_equal(b.len % 4, 0);
    cpio_entry e[8];
    size_t off = 0;
    assert_int_equal(cpio_parse(b.data, b.len, &off, e, 8), 4);
    assert_int_equal(off, b.len);
    assert_string_equal(e[0].name, "hypr");
    assert_int_equal(e[0].mode, S_IFDIR | 0755);
    assert_string_equal(e[1].name, "hypr/manifest");
    assert_int_equal(e[1].mode, S_IFREG | 0600);
    assert_int_equal(e[1].len, 7);
    assert_memory_equal(e[1].data, "{\"a\":1}", 7);
    assert_int_equal(e[2].mode, S_IFLNK | 0777);
    assert_int_equal(e[2].len, 7);
    assert_memory_equal(e[2].data, "busybox", 7);
    assert_int_equal(e[3].len, 0);
}

/* ---- modules ------------------------------------------------------------- */

static const char fixture_modules_dep[] =
    "kernel/fs/squashfs/squashfs.ko:\n"
    "kernel/fs/overlayfs/overlay.ko:\n"
    "kernel/drivers/unrelated/foo.ko: kernel/drivers/virtio/virtio.ko\n"
    "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/drivers/virtio/virtio_ring.ko:\n"
    "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko "
    "kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
    "kernel/net/core/failover.ko:\n"
    "kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/net/vmw_vsock/vsock.ko:\n"
    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko\n"
    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: "
    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko "
    "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/fs/fuse/fuse.ko:\n"
    "kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko\n"
    "kernel/fs/netfs/netfs.ko:\n"
    "kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko\n"
    "kernel/net/9p/9pnet.ko:\n"
    "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko "
    "kernel/fs/netfs/netfs.ko\n";

static char *make_modules_dir(const char *dep)
{
    _cleanup_free_ char *root = tmp_path("lib-modules");
    char *dir = path_join(root, "6.1.0-test");
    assert_int_equal(mkdir_p(dir, 0755), 0);
    _cleanup_free_ char *dep_path = path_join(dir, "modules.dep");
    write_str(dep_path, dep);
    _cleanup_free_ char *builtin = path_join(dir, "modules.builtin");
    write_str(builtin, "kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/ext4/ext4.ko\n");
    /* Every module file, its own path as content; virtio_blk xz-compressed. */
    _cleanup_free_ char *text = xstrdup(dep);
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        *strchr(l, ':') = '\0';
        _cleanup_free_ char *p = path_join(dir, l);
        _cleanup_free_ char *parent = xstrndup(p, (size_t)(strrchr(p, '/') - p));
        assert_int_equal(mkdir_p(parent, 0755), 0);
        _cleanup_buf_ hypr_buf content = {0};
        if (str_endswith(l, ".xz"))
            compress_xz(l, strlen(l), &content);
        else
            buf_puts(&content, l);
        assert_int_equal(write_file_atomic(p, content.data, content.len, 0644), 0);
    }
    return dir;
}

static int index_of(char **v, const char *suffix)
{
    for (int i = 0; v[i]; i++)
        if (str_endswith(v[i], suffix))
            return i;
    return -1;
}

static void test_modules_resolve(void **state)
{
    _cleanup_free_ char *dir = make_modules_dir(fixture_modules_dep);
    _cleanup_strv_ char **paths = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(vmm_modules_resolve(dir, vmm_guest_modules, &paths, &err), 0);
    assert_int_equal(strv_length(paths), 20);
    assert_true(index_of(paths, "/fuse.ko") < index_of(paths, "/virtiofs.ko"));
    assert_true(index_of(paths, "/netfs.ko") < index_of(paths, "/fscache.ko"));
    assert_true(index_of(paths, "/fscache.ko") < index_of(paths, "/9p.ko"));
    assert_true(index_of(paths, "/9pnet.ko") < index_of(paths, "/9pnet_virtio.ko"));
    assert_int_equal(index_of(paths, "/ext4.ko"), -1); /* built in */
    /* Each module after its dependencies, none twice, nothing unrelated. */
    assert_true(index_of(paths, "/virtio_ring.ko") < index_of(paths, "/virtio.ko"));
    assert_true(index_of(paths, "/virtio.ko") < index_of(paths, "/virtio_mmio.ko"));
    assert_true(index_of(paths, "/virtio.ko") < index_of(paths, "/virtio_blk.ko.xz"));
    assert_true(index_of(paths, "/failover.ko") < index_of(paths, "/net_failover.ko"));
    assert_true(index_of(paths, "/net_failover.ko") < index_of(paths, "/virtio_net.ko"));
    assert_true(index_of(paths, "/vsock.ko") < index_of(paths, "_transport_common.ko"));
    assert_true(index_of(paths, "_transport_common.ko") <
                index_of(paths, "/vmw_vsock_virtio_transport.ko"));
    assert_int_equal(index_of(paths, "/foo.ko"), -1);
    assert_int_equal(index_of(paths, "virtio_pci.ko"), -1); /* built in */
    for (size_t i = 0; paths[i]; i++)
        for (size_t j = i + 1; paths[j]; j++)
            assert_string_not_equal(paths[i], paths[j]);

    /* An essential module that is neither a module nor built in. */
    rm_rf(dir);
    free(dir);
    dir = make_modules_dir(fixture_modules_dep + strlen("kernel/fs/squashfs/squashfs.ko:\n"));
    strv_free(paths);
    paths = NULL;
    assert_int_equal(vmm_modules_resolve(dir, vmm_guest_modules, &paths, &err), -ENOENT);
    assert_non_null(strstr(err.message, "'squashfs'"));
}

static void test_initramfs(void **state)
{
    _cleanup_free_ char *dir = make_modules_dir(fixture_modules_dep);
    _cleanup_free_ char *kestrel = tmp_path("kestrel");
    _cleanup_free_ char *out = tmp_path("kestrel-initramfs.cpio");
    write_str(kestrel, "\177ELF kestrel v1");
    vmm_initramfs_opts o = {
        .kestrel = kestrel, .kernel_version = "6.1.0-test", .modules_dir = dir, .out = out};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    bool rebuilt = false;
    assert_int_equal(vmm_initramfs_ensure(&o, &rebuilt, &err), 0);
    assert_true(rebuilt);

    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    assert_int_equal(read_file(out, 1 << 24, &data, &len), 0);
    cpio_entry e[64];
    size_t off = 0;
    size_t n = cpio_parse(data, len, &off, e, 64);
    assert_int_equal(off, len);
    const cpio_entry *init = cpio_need(e, n, "init");
    assert_non_null(init);
    assert_int_equal(init->mode, S_IFREG | 0755);
    assert_memory_equal(init->data, "\177ELF kestrel v1", init->len);
    const cpio_entry *blk = cpio_need(e, n, "lib/modules/virtio_blk.ko");
    assert_non_null(blk); /* decompressed from .ko.xz */
    assert_int_equal(blk->len, strlen("kernel/drivers/block/virtio_blk.ko.xz"));
    assert_memory_equal(blk->data, "kernel/drivers/block/virtio_blk.ko.xz", blk->len);
    const cpio_entry *order = cpio_need(e, n, "hypr/modules.order");
    assert_non_null(order);
    _cleanup_free_ char *otext = xstrndup(order->data, order->len);
    assert_true(str_startswith(otext, "/lib/modules/"));
    assert_true(strstr(otext, "/lib/modules/virtio_ring.ko\n") <
                strstr(otext, "/lib/modules/virtio_blk.ko\n"));
    /* Device drivers load only when their device is there; the root's never wait. */
    assert_non_null(strstr(otext, "\n/lib/modules/virtio_blk.ko\n"));
    assert_non_null(strstr(otext, "\n@virtio=1 /lib/modules/virtio_net.ko\n"));
    assert_non_null(strstr(otext, "\n@virtio=1 /lib/modules/failover.ko\n"));
    assert_non_null(strstr(otext, "\n@virtio=19 /lib/modules/vsock.ko\n"));
    assert_non_null(strstr(otext, "\n/lib/modules/virtio_console.ko\n"));
    /* volume filesystems only with their device: virtio-fs (26), 9p (9) */
    assert_non_null(strstr(otext, "\n@virtio=26 /lib/modules/fuse.ko\n"));
    assert_non_null(strstr(otext, "\n@virtio=26 /lib/modules/virtiofs.ko\n"));
    assert_non_null(strstr(otext, "\n@virtio=9 /lib/modules/netfs.ko\n"));
    assert_non_null(strstr(otext, "\n@virtio=9 /lib/modules/9pnet_virtio.ko\n"));
    assert_non_null(strstr(otext, "\n@virtio=9 /lib/modules/9p.ko\n"));
    assert_non_null(cpio_get(e, n, "dev"));

    /* Unchanged: no rebuild. Changed kestrel: rebuild. */
    assert_int_equal(vmm_initramfs_ensure(&o, &rebuilt, &err), 0);
    assert_false(rebuilt);
    write_str(kestrel, "\177ELF kestrel v2");
    assert_int_equal(vmm_initramfs_ensure(&o, &rebuilt, &err), 0);
    assert_true(rebuilt);
    o.kernel_version = "6.1.0-other";
    assert_int_equal(vmm_initramfs_ensure(&o, &rebuilt, &err), 0);
    assert_true(rebuilt);

    /* Per-VM initrd: the base archive, then one holding the manifest. */
    _cleanup_free_ char *vm = tmp_path("vm.initrd");
    assert_int_equal(vmm_write_vm_initrd(out, "{\"cmd\":[\"sh\"]}", 14, vm, &err), 0);
    _cleanup_free_ char *base = NULL, *vmdata = NULL;
    size_t blen = 0, vlen = 0;
    assert_int_equal(read_file(out, 1 << 24, &base, &blen), 0);
    assert_int_equal(read_file(vm, 1 << 24, &vmdata, &vlen), 0);
    assert_true(vlen > blen);
    assert_memory_equal(vmdata, base, blen);
    off = blen;
    n = cpio_parse(vmdata, vlen, &off, e, 64);
    assert_int_equal(off, vlen);
    const cpio_entry *m = cpio_need(e, n, "hypr/manifest");
    assert_non_null(m);
    assert_memory_equal(m->data, "{\"cmd\":[\"sh\"]}", 14);

    assert_int_equal(vmm_write_vm_initrd("/nonexistent", "x", 1, vm, &err), -ENOENT);
}

int main(void)
{
    hypr_log_init("error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_decompress),
        cmocka_unit_test_setup_teardown(test_kernel_find, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_cpio_writer),
        cmocka_unit_test_setup_teardown(test_modules_resolve, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_initramfs, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests_name("vmm_boot", tests, NULL, NULL);
}
