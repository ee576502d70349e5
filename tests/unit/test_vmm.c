#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <lzma.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <zlib.h>
#include <zstd.h>

#include "vmm/vmm-private.h"

#define VM_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char tmpdir[256];

static int setup_tmp(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hypr-test-vmm-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown_tmp(void **state)
{
    rm_rf(tmpdir);
    return 0;
}

static char *tmp_path(const char *name)
{
    return path_join(tmpdir, name);
}

static void write_str(const char *path, const char *s)
{
    assert_int_equal(write_file_atomic(path, s, strlen(s), 0755), 0);
}

static vmm_config base_config(void)
{
    return (vmm_config){
        .id = VM_ID,
        .vcpus = 2,
        .memory_mb = 512,
        .kernel = "/var/lib/hypr/kernel/vmlinux",
        .initramfs = "/run/hypr/" VM_ID ".initrd",
        .cmdline = "hypr.debug=1",
        .rootfs = "/var/lib/hypr/images/abc/rootfs.squashfs",
        .run_dir = "/run/hypr",
        .console_log = "/var/lib/hypr/logs/" VM_ID ".log",
    };
}

/* Index of the first argv element equal to s, or -1. */
static int argv_find(char **argv, const char *s)
{
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], s) == 0)
            return i;
    return -1;
}

/* The value following flag whose value starts with prefix (flags may repeat). */
static const char *argv_value(char **argv, const char *flag, const char *prefix)
{
    for (int i = 0; argv[i] && argv[i + 1]; i++)
        if (strcmp(argv[i], flag) == 0 && str_startswith(argv[i + 1], prefix))
            return argv[i + 1];
    return NULL;
}

static bool argv_contains_substr(char **argv, const char *s)
{
    for (int i = 0; argv[i]; i++)
        if (strstr(argv[i], s))
            return true;
    return false;
}

/* ---- qemu --------------------------------------------------------------- */

static void test_qemu_tcg(void **state)
{
    vmm_adapter a = {.ops = &vmm_qemu_ops, .binary_path = "/usr/bin/qemu-system-x86_64"};
    vmm_config cfg = base_config();
    _cleanup_vmm_command_ vmm_command cmd = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, &err), 0);
    char **v = cmd.argv;
    assert_string_equal(v[0], "/usr/bin/qemu-system-x86_64");
    assert_true(str_startswith(argv_value(v, "-M", ""), "microvm,"));
    assert_string_equal(argv_value(v, "-accel", ""), "tcg");
    assert_null(argv_value(v, "-cpu", "host"));
    assert_int_equal(argv_find(v, "-enable-kvm"), -1);
    assert_string_equal(argv_value(v, "-m", ""), "512M");
    assert_string_equal(argv_value(v, "-smp", ""), "2");
    assert_true(argv_find(v, "-nodefaults") > 0);
    assert_true(argv_find(v, "-no-reboot") > 0);
    assert_string_equal(argv_value(v, "-kernel", ""), cfg.kernel);
    assert_string_equal(argv_value(v, "-initrd", ""), cfg.initramfs);
    const char *append = argv_value(v, "-append", "");
    assert_non_null(strstr(append, "console=ttyS0"));
    assert_non_null(strstr(append, "hypr.ctl=serial"));
    assert_true(str_endswith(append, " hypr.debug=1"));
    assert_false(argv_contains_substr(v, "quiet"));
    assert_string_equal(argv_value(v, "-drive", "id=root"),
                        "id=root,file=/var/lib/hypr/images/abc/rootfs.squashfs,format=raw,if=none,"
                        "readonly=on");
    assert_non_null(argv_value(v, "-device", "virtio-blk-device,drive=root"));
    assert_string_equal(argv_value(v, "-qmp", ""),
                        "unix:/run/hypr/" VM_ID ".qmp,server=on,wait=off");
    assert_string_equal(argv_value(v, "-chardev", "socket"),
                        "socket,id=ctl,path=/run/hypr/" VM_ID ".vsock,server=off,reconnect=1");
    assert_string_equal(argv_value(v, "-device", "virtserialport"),
                        "virtserialport,chardev=ctl,name=hypr.ctl");
    assert_null(argv_value(v, "-netdev", ""));
    assert_string_equal(cmd.stdout_path, cfg.console_log);
    _cleanup_free_ char *ctl = a.ops->control_path(&a, &cfg);
    assert_string_equal(ctl, "/run/hypr/" VM_ID ".vsock");
}

static void test_qemu_kvm_net_disks(void **state)
{
    vmm_adapter a = {.ops = &vmm_qemu_ops, .binary_path = "/q", .kvm = true};
    vmm_disk disks[] = {{"/data/vol.img", false}, {"/data/ro.img", true}};
    vmm_config cfg = base_config();
    cfg.tap = "hyprtap0";
    cfg.mac = "02:42:ac:11:00:02";
    cfg.disks = disks;
    cfg.n_disks = 2;
    cfg.console_log = NULL;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, NULL), 0);
    char **v = cmd.argv;
    assert_string_equal(argv_value(v, "-accel", ""), "kvm");
    assert_string_equal(argv_value(v, "-cpu", ""), "host");
    assert_string_equal(argv_value(v, "-netdev", ""),
                        "tap,id=net0,ifname=hyprtap0,script=no,downscript=no");
    assert_string_equal(argv_value(v, "-device", "virtio-net-device"),
                        "virtio-net-device,netdev=net0,mac=02:42:ac:11:00:02");
    assert_string_equal(argv_value(v, "-drive", "id=disk1"),
                        "id=disk1,file=/data/vol.img,format=raw,if=none,readonly=off");
    assert_string_equal(argv_value(v, "-drive", "id=disk2"),
                        "id=disk2,file=/data/ro.img,format=raw,if=none,readonly=on");
    /* The rootfs comes first so it is /dev/vda. */
    assert_true(argv_find(v, argv_value(v, "-drive", "id=root")) <
                argv_find(v, argv_value(v, "-drive", "id=disk1")));
    assert_string_equal(cmd.stdout_path, "/run/hypr/" VM_ID ".log");
}

static void test_config_errors(void **state)
{
    vmm_adapter a = {.ops = &vmm_qemu_ops, .binary_path = "/q"};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    vmm_config cfg = base_config();
    cfg.vcpus = 0;
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, &err), -EINVAL);
    assert_non_null(strstr(err.message, "vCPUs"));
    cfg = base_config();
    cfg.rootfs = NULL;
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, &err), -EINVAL);
    cfg = base_config();
    cfg.rootfs = "/a,b";
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_null(cmd.argv);
}

/* ---- cloud-hypervisor ---------------------------------------------------- */

static void assert_json_equal(const char *got, const char *expected)
{
    json_error_t e;
    _cleanup_json_ json_t *g = json_loads(got, 0, &e);
    _cleanup_json_ json_t *x = json_loads(expected, 0, &e);
    assert_non_null(g);
    assert_non_null(x);
    if (!json_equal(g, x)) {
        print_error("got:      %s\nexpected: %s\n", got, expected);
        fail();
    }
}

static void test_ch_command(void **state)
{
    vmm_adapter a = {.ops = &vmm_cloud_hypervisor_ops, .binary_path = "/usr/bin/cloud-hypervisor"};
    vmm_disk disks[] = {{"/data/vol.img", false}};
    vmm_config cfg = base_config();
    cfg.tap = "t0";
    cfg.mac = "02:00:00:00:00:01";
    cfg.disks = disks;
    cfg.n_disks = 1;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, NULL), 0);
    char **v = cmd.argv;
    assert_string_equal(argv_value(v, "--api-socket", ""), "path=/run/hypr/" VM_ID ".ch.sock");
    assert_string_equal(argv_value(v, "--kernel", ""), cfg.kernel);
    assert_string_equal(argv_value(v, "--initramfs", ""), cfg.initramfs);
    const char *cl = argv_value(v, "--cmdline", "");
    assert_non_null(strstr(cl, "console=ttyS0"));
    assert_non_null(strstr(cl, "hypr.ctl=vsock"));
    assert_null(strstr(cl, "quiet"));
    assert_string_equal(argv_value(v, "--cpus", ""), "boot=2");
    assert_string_equal(argv_value(v, "--memory", ""), "size=512M");
    int d = argv_find(v, "--disk");
    assert_true(d > 0);
    assert_string_equal(v[d + 1], "path=/var/lib/hypr/images/abc/rootfs.squashfs,readonly=on,"
                                  "serial=root");
    assert_string_equal(v[d + 2], "path=/data/vol.img,readonly=off,serial=disk1");
    assert_string_equal(argv_value(v, "--net", ""), "tap=t0,mac=02:00:00:00:00:01");
    assert_string_equal(argv_value(v, "--vsock", ""), "cid=3,socket=/run/hypr/" VM_ID ".vsock");
    assert_string_equal(argv_value(v, "--serial", ""), "tty");
    assert_string_equal(argv_value(v, "--console", ""), "off");
    _cleanup_free_ char *ctl = a.ops->control_path(&a, &cfg);
    assert_string_equal(ctl, "/run/hypr/" VM_ID ".vsock_1024");

    /* Configured through the API: the command line carries only the socket. */
    a.configure_via_api = true;
    _cleanup_vmm_command_ vmm_command cmd2 = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd2, NULL), 0);
    assert_int_equal(argv_find(cmd2.argv, "--kernel"), -1);
    assert_int_equal(argv_find(cmd2.argv, "--disk"), -1);
    assert_true(argv_find(cmd2.argv, "--api-socket") > 0);
}

static void test_ch_requests(void **state)
{
    vmm_config cfg = base_config();
    cfg.tap = "t0";
    cfg.mac = "02:00:00:00:00:01";
    cfg.cmdline = NULL;
    vmm_api_request req = {0};
    assert_int_equal(ch_request_create(&cfg, &req, NULL), 0);
    assert_string_equal(req.method, "PUT");
    assert_string_equal(req.path, "/api/v1/vm.create");
    assert_json_equal(
        req.body,
        "{\"payload\": {\"kernel\": \"/var/lib/hypr/kernel/vmlinux\","
        " \"initramfs\": \"/run/hypr/" VM_ID ".initrd\","
        " \"cmdline\": \"console=ttyS0 reboot=k panic=-1 hypr.ctl=vsock\"},"
        " \"cpus\": {\"boot_vcpus\": 2, \"max_vcpus\": 2},"
        " \"memory\": {\"size\": 536870912},"
        " \"disks\": [{\"path\": \"/var/lib/hypr/images/abc/rootfs.squashfs\", \"readonly\": true,"
        " \"serial\": \"root\"}],"
        " \"net\": [{\"tap\": \"t0\", \"mac\": \"02:00:00:00:00:01\"}],"
        " \"vsock\": {\"cid\": 3, \"socket\": \"/run/hypr/" VM_ID ".vsock\"},"
        " \"serial\": {\"mode\": \"Tty\"}, \"console\": {\"mode\": \"Off\"}}");
    vmm_api_request_clear(&req);

    const char *actions[] = {"vm.boot", "vm.shutdown", "vm.power-button", "vm.delete"};
    for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
        ch_request_action(actions[i], &req);
        _cleanup_free_ char *want = xasprintf("/api/v1/%s", actions[i]);
        assert_string_equal(req.method, "PUT");
        assert_string_equal(req.path, want);
        assert_null(req.body);
        vmm_api_request_clear(&req);
    }
}

/* ---- firecracker ---------------------------------------------------------- */

static void test_fc(void **state)
{
    vmm_adapter a = {.ops = &vmm_firecracker_ops, .binary_path = "/usr/bin/firecracker"};
    vmm_disk disks[] = {{"/data/vol.img", false}};
    vmm_config cfg = base_config();
    cfg.tap = "t0";
    cfg.mac = "02:00:00:00:00:01";
    cfg.disks = disks;
    cfg.n_disks = 1;
    cfg.guest_cid = 7;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, NULL), 0);
    assert_string_equal(argv_value(cmd.argv, "--api-sock", ""), "/run/hypr/" VM_ID ".fc.sock");
    assert_string_equal(argv_value(cmd.argv, "--id", ""), VM_ID);
    assert_int_equal(argv_find(cmd.argv, "--kernel"), -1);

    vmm_api_request *reqs = NULL;
    size_t n = 0;
    assert_int_equal(fc_requests_configure(&cfg, &reqs, &n, NULL), 0);
    const char *paths[] = {
        "/machine-config",          "/boot-source", "/drives/root", "/drives/disk1",
        "/network-interfaces/eth0", "/vsock"};
    assert_int_equal(n, ARRAY_SIZE(paths));
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(reqs[i].method, "PUT");
        assert_string_equal(reqs[i].path, paths[i]);
    }
    assert_json_equal(reqs[0].body, "{\"vcpu_count\": 2, \"mem_size_mib\": 512}");
    assert_json_equal(reqs[1].body,
                      "{\"kernel_image_path\": \"/var/lib/hypr/kernel/vmlinux\","
                      " \"initrd_path\": \"/run/hypr/" VM_ID ".initrd\","
                      " \"boot_args\": \"console=ttyS0 reboot=k panic=-1 pci=off i8042.noaux"
                      " i8042.nomux i8042.nopnp i8042.dumbkbd hypr.ctl=vsock hypr.debug=1\"}");
    assert_json_equal(reqs[2].body, "{\"drive_id\": \"root\", \"path_on_host\":"
                                    " \"/var/lib/hypr/images/abc/rootfs.squashfs\","
                                    " \"is_root_device\": false, \"is_read_only\": true}");
    assert_json_equal(reqs[3].body, "{\"drive_id\": \"disk1\", \"path_on_host\": \"/data/vol.img\","
                                    " \"is_root_device\": false, \"is_read_only\": false}");
    assert_json_equal(reqs[4].body, "{\"iface_id\": \"eth0\", \"host_dev_name\": \"t0\","
                                    " \"guest_mac\": \"02:00:00:00:00:01\"}");
    assert_json_equal(reqs[5].body,
                      "{\"guest_cid\": 7, \"uds_path\": \"/run/hypr/" VM_ID ".vsock\"}");
    vmm_api_requests_free(reqs, n);

    vmm_api_request req = {0};
    fc_request_action("InstanceStart", &req);
    assert_string_equal(req.path, "/actions");
    assert_json_equal(req.body, "{\"action_type\": \"InstanceStart\"}");
    vmm_api_request_clear(&req);
    fc_request_action("SendCtrlAltDel", &req);
    assert_json_equal(req.body, "{\"action_type\": \"SendCtrlAltDel\"}");
    vmm_api_request_clear(&req);

    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(a.ops->stop(&a, &cfg, false, 100, &err), -EOPNOTSUPP);
}

/* ---- factory ------------------------------------------------------------- */

static void test_factory(void **state)
{
    _cleanup_free_ char *bin = tmp_path("bin");
    assert_int_equal(mkdir_p(bin, 0755), 0);
    _cleanup_free_ char *ch = path_join(bin, "cloud-hypervisor");
    write_str(ch, "#!/bin/sh\n");
    _cleanup_free_ char *path_env = xasprintf("/nonexistent:%s", bin);

    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    vmm_adapter *a = NULL;
    vmm_host host = {.path_env = path_env, .kvm = 1};
    assert_int_equal(vmm_adapter_get_host("firecracker", &host, &a, &err), -ENOENT);
    assert_null(a);
    assert_string_equal(
        err.message, "hypervisor 'firecracker' is not installed (firecracker not found in PATH)");
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);

    assert_int_equal(vmm_adapter_get_host("bochs", &host, &a, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);

    /* auto: qemu is missing, cloud-hypervisor is there and KVM is usable. */
    assert_int_equal(vmm_adapter_get_host("auto", &host, &a, &err), 0);
    assert_string_equal(a->ops->name, "cloud-hypervisor");
    assert_string_equal(a->binary_path, ch);
    vmm_adapter_free(a);

    /* Without KVM cloud-hypervisor cannot run. */
    host.kvm = 0;
    assert_int_equal(vmm_adapter_get_host("cloud-hypervisor", &host, &a, &err), -ENODEV);
    assert_non_null(strstr(err.message, "/dev/kvm"));
    assert_int_equal(vmm_adapter_get_host(NULL, &host, &a, &err), -ENOENT);
    assert_non_null(strstr(err.message, "apt-get install qemu-system-x86"));

    /* qemu first in auto order; TCG when there is no KVM. */
    _cleanup_free_ char *q = path_join(bin, "qemu-system-x86_64");
    write_str(q, "#!/bin/sh\n");
    assert_int_equal(vmm_adapter_get_host("", &host, &a, &err), 0);
    assert_string_equal(a->ops->name, "qemu");
    assert_false(a->kvm);
    assert_true(a->boot_timeout_ms >= 60000);
    vmm_adapter_free(a);
    host.kvm = 1;
    assert_int_equal(vmm_adapter_get_host("qemu", &host, &a, &err), 0);
    assert_true(a->kvm);
    vmm_adapter_free(a);

    /* A non-executable file does not count. */
    _cleanup_free_ char *fc = path_join(bin, "firecracker");
    assert_int_equal(write_file_atomic(fc, "x", 1, 0644), 0);
    assert_int_equal(vmm_adapter_get_host("firecracker", &host, &a, &err), -ENOENT);
}

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
    "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n";

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
    assert_int_equal(strv_length(paths), 13);
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

/* ---- HTTP and QMP against fake servers ------------------------------------ */

static void test_http_parse(void **state)
{
    int st = 0;
    size_t off = 0, bl = 0;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    assert_int_equal(vmm_http_parse_response(ok, strlen(ok), false, &st, &off, &bl), 0);
    assert_int_equal(st, 200);
    assert_int_equal(bl, 5);
    assert_memory_equal(ok + off, "hello", 5);
    assert_int_equal(vmm_http_parse_response(ok, strlen(ok) - 1, false, &st, &off, &bl), -EAGAIN);
    const char *nc = "HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n";
    assert_int_equal(vmm_http_parse_response(nc, strlen(nc), false, &st, &off, &bl), 0);
    assert_int_equal(st, 204);
    assert_int_equal(bl, 0);
    const char *eof = "HTTP/1.0 500 Oops\r\n\r\nbad thing";
    assert_int_equal(vmm_http_parse_response(eof, strlen(eof), false, &st, &off, &bl), -EAGAIN);
    assert_int_equal(vmm_http_parse_response(eof, strlen(eof), true, &st, &off, &bl), 0);
    assert_int_equal(bl, 9);
    assert_int_equal(vmm_http_parse_response("garbage\r\n\r\n", 11, true, &st, &off, &bl),
                     -EBADMSG);
}

typedef struct fake_server {
    int listen_fd;
    const char *const *replies; /* sent in order, each after reading one line/request */
    bool greeting;              /* QMP: send replies[0] first without reading */
    hypr_buf received;
} fake_server;

static const char *buf_text(const hypr_buf *b)
{
    return b->data ? b->data : "";
}

static void *fake_server_run(void *arg)
{
    fake_server *s = arg;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t i = 0;
    if (s->greeting)
        (void)!write(fd, s->replies[i], strlen(s->replies[i])), i++;
    char buf[4096];
    while (s->replies[i]) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        buf_append(&s->received, buf, (size_t)n);
        /* One request per read is enough for these small messages. */
        (void)!write(fd, s->replies[i], strlen(s->replies[i]));
        i++;
    }
    close(fd);
    return NULL;
}

static int fake_listen(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static void test_qmp_fake(void **state)
{
    _cleanup_free_ char *sock = tmp_path("vm.qmp");
    const char *replies[] = {
        "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n",
        "{\"return\": {}}\r\n",
        "{\"event\": \"RESUME\", \"data\": {}}\r\n{\"return\": {\"status\": \"running\", "
        "\"running\": true}}\r\n",
        NULL,
    };
    fake_server s = {.listen_fd = fake_listen(sock), .replies = replies, .greeting = true};
    pthread_t t;
    pthread_create(&t, NULL, fake_server_run, &s);
    _cleanup_json_ json_t *ret = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(qmp_execute(sock, "query-status", 5000, &ret, &err), 0);
    pthread_join(t, NULL);
    assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
    assert_non_null(strstr(buf_text(&s.received), "\"qmp_capabilities\""));
    assert_non_null(strstr(buf_text(&s.received), "\"query-status\""));
    buf_free(&s.received);
    close(s.listen_fd);
    unlink(sock);

    /* An error answer becomes the error message. */
    const char *err_replies[] = {
        "{\"QMP\": {}}\n",
        "{\"return\": {}}\n",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\n",
        NULL,
    };
    fake_server s2 = {.listen_fd = fake_listen(sock), .replies = err_replies, .greeting = true};
    pthread_create(&t, NULL, fake_server_run, &s2);
    assert_int_equal(qmp_execute(sock, "system_powerdown", 5000, NULL, &err), -EIO);
    pthread_join(t, NULL);
    assert_non_null(strstr(err.message, "system_powerdown: nope"));
    buf_free(&s2.received);
    close(s2.listen_fd);
    unlink(sock);

    /* Nobody there: a bounded wait, then a clear error. */
    int64_t t0 = time_monotonic_ms();
    assert_true(qmp_execute(sock, "quit", 200, NULL, &err) < 0);
    assert_true(time_monotonic_ms() - t0 < 2000);
    assert_int_equal(err.status, HYPR_UNAVAILABLE);
}

static void test_http_fake(void **state)
{
    _cleanup_free_ char *sock = tmp_path("api.sock");
    const char *replies[] = {"HTTP/1.1 204 No Content\r\n\r\n", NULL};
    fake_server s = {.listen_fd = fake_listen(sock), .replies = replies};
    pthread_t t;
    pthread_create(&t, NULL, fake_server_run, &s);
    vmm_api_request req = {0};
    fc_request_action("InstanceStart", &req);
    int status = 0;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(vmm_http_request(sock, &req, 5000, &status, NULL, &err), 0);
    pthread_join(t, NULL);
    assert_int_equal(status, 204);
    assert_true(str_startswith(buf_text(&s.received), "PUT /actions HTTP/1.1\r\n"));
    assert_non_null(strstr(buf_text(&s.received), "Content-Length: 31\r\n"));
    assert_true(str_endswith(buf_text(&s.received), "\r\n\r\n{\"action_type\":\"InstanceStart\"}"));
    buf_free(&s.received);
    close(s.listen_fd);
    unlink(sock);

    const char *bad[] = {"HTTP/1.1 400 Bad Request\r\nContent-Length: 41\r\n\r\n"
                         "{\"fault_message\": \"Invalid kernel path.\"}",
                         NULL};
    fake_server s2 = {.listen_fd = fake_listen(sock), .replies = bad};
    pthread_create(&t, NULL, fake_server_run, &s2);
    assert_int_equal(vmm_http_request(sock, &req, 5000, &status, NULL, &err), -EIO);
    pthread_join(t, NULL);
    assert_string_equal(err.message, "PUT /actions: HTTP 400: Invalid kernel path.");
    buf_free(&s2.received);
    close(s2.listen_fd);
    vmm_api_request_clear(&req);
}

static void test_delete(void **state)
{
    vmm_config cfg = base_config();
    cfg.run_dir = tmpdir;
    const char *files[] = {".qmp", ".vsock", ".initrd"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = vmm_vm_path(&cfg, files[i]);
        write_str(p, "x");
    }
    vmm_adapter a = {.ops = &vmm_qemu_ops};
    assert_int_equal(a.ops->delete (&a, &cfg, NULL), 0);
    assert_int_equal(a.ops->delete (&a, &cfg, NULL), 0);
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = vmm_vm_path(&cfg, files[i]);
        assert_int_equal(access(p, F_OK), -1);
    }
}

int main(void)
{
    hypr_log_init("error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qemu_tcg),
        cmocka_unit_test(test_qemu_kvm_net_disks),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_ch_command),
        cmocka_unit_test(test_ch_requests),
        cmocka_unit_test(test_fc),
        cmocka_unit_test_setup_teardown(test_factory, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_kernel_decompress),
        cmocka_unit_test_setup_teardown(test_kernel_find, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_cpio_writer),
        cmocka_unit_test_setup_teardown(test_modules_resolve, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_initramfs, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_http_parse),
        cmocka_unit_test_setup_teardown(test_qmp_fake, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_http_fake, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_delete, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests_name("vmm", tests, NULL, NULL);
}
