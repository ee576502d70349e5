#include "test_vmm.h"

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

/* Two NICs: the second without a MAC (hypervisor default). */
static const vmm_nic two_nics[] = {
    {.tap = "hyprtap0", .mac = "02:42:ac:11:00:02"},
    {.tap = "hyprtap1", .mac = NULL},
};

static const vmm_nic one_nic[] = {{.tap = "t0", .mac = "02:00:00:00:00:01"}};

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
    cfg.nics = two_nics;
    cfg.n_nics = 1;
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

/* The argv elements following each occurrence of flag, in order. */
static size_t argv_values(char **argv, const char *flag, const char **out, size_t max)
{
    size_t n = 0;
    for (int i = 0; argv[i] && argv[i + 1]; i++)
        if (strcmp(argv[i], flag) == 0 && n < max)
            out[n++] = argv[i + 1];
    return n;
}

static void test_qemu_nics(void **state)
{
    vmm_adapter a = {.ops = &vmm_qemu_ops, .binary_path = "/q", .kvm = true};
    vmm_config cfg = base_config();
    cfg.nics = two_nics;
    cfg.n_nics = 2;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, NULL), 0);
    char **v = cmd.argv;
    const char *netdevs[4];
    assert_int_equal(argv_values(v, "-netdev", netdevs, 4), 2);
    assert_string_equal(netdevs[0], "tap,id=net0,ifname=hyprtap0,script=no,downscript=no");
    assert_string_equal(netdevs[1], "tap,id=net1,ifname=hyprtap1,script=no,downscript=no");
    const char *devs[16], *nets[4];
    size_t nd = argv_values(v, "-device", devs, 16), nn = 0;
    for (size_t i = 0; i < nd; i++)
        if (str_startswith(devs[i], "virtio-net-device") && nn < 4)
            nets[nn++] = devs[i];
    assert_int_equal(nn, 2);
    assert_string_equal(nets[0], "virtio-net-device,netdev=net0,mac=02:42:ac:11:00:02");
    assert_string_equal(nets[1], "virtio-net-device,netdev=net1");
    /* Each netdev precedes its device, in NIC order. */
    assert_true(argv_find(v, netdevs[0]) < argv_find(v, nets[0]));
    assert_true(argv_find(v, nets[0]) < argv_find(v, netdevs[1]));
    assert_true(argv_find(v, netdevs[1]) < argv_find(v, nets[1]));

    /* n_nics bounds the array: no NIC when it is 0, even with nics set. */
    cfg.n_nics = 0;
    _cleanup_vmm_command_ vmm_command cmd0 = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd0, NULL), 0);
    assert_int_equal(argv_find(cmd0.argv, "-netdev"), -1);
    assert_false(argv_contains_substr(cmd0.argv, "virtio-net"));
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

/* Every NIC is validated, for every adapter (the checks are shared). */
static void test_nic_errors(void **state)
{
    const vmm_adapter_ops *ops[] = {&vmm_qemu_ops, &vmm_cloud_hypervisor_ops, &vmm_firecracker_ops};
    const vmm_nic comma_tap[] = {{.tap = "ok0"}, {.tap = "bad,tap"}};
    const vmm_nic comma_mac[] = {{.tap = "ok0", .mac = "02:00:00:00:00:01,x"}};
    const vmm_nic newline_tap[] = {{.tap = "bad\ntap"}};
    const vmm_nic empty_tap[] = {{.tap = "ok0"}, {.tap = ""}};
    const vmm_nic null_tap[] = {{.tap = NULL}};
    struct {
        const vmm_nic *nics;
        size_t n;
        const char *msg;
    } cases[] = {
        {comma_tap, 2, "'bad,tap' contains a comma"},
        {comma_mac, 1, "contains a comma"},
        {newline_tap, 1, "contains a comma or newline"},
        {empty_tap, 2, "network interface 1 has no tap"},
        {null_tap, 1, "network interface 0 has no tap"},
    };
    for (size_t o = 0; o < ARRAY_SIZE(ops); o++) {
        vmm_adapter a = {.ops = ops[o], .binary_path = "/bin/hv"};
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
            _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
            _cleanup_vmm_command_ vmm_command cmd = {0};
            vmm_config cfg = base_config();
            cfg.nics = cases[i].nics;
            cfg.n_nics = cases[i].n;
            assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, &err), -EINVAL);
            assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
            assert_non_null(strstr(err.message, cases[i].msg));
            assert_null(cmd.argv);
        }
    }
    vmm_config cfg = base_config();
    cfg.nics = comma_tap;
    cfg.n_nics = 2;
    vmm_api_request req = {0};
    assert_int_equal(ch_request_create(&cfg, &req, NULL), -EINVAL);
    assert_null(req.body);
    vmm_api_request *reqs = NULL;
    size_t n = 0;
    assert_int_equal(fc_requests_configure(&cfg, &reqs, &n, NULL), -EINVAL);
    assert_null(reqs);
    assert_int_equal(n, 0);
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
    cfg.nics = one_nic;
    cfg.n_nics = 1;
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

static void test_ch_nics(void **state)
{
    vmm_adapter a = {.ops = &vmm_cloud_hypervisor_ops, .binary_path = "/ch"};
    vmm_config cfg = base_config();
    cfg.nics = two_nics;
    cfg.n_nics = 2;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, NULL), 0);
    char **v = cmd.argv;
    /* One --net flag followed by one value per NIC. */
    int n = argv_find(v, "--net");
    assert_true(n > 0);
    assert_string_equal(v[n + 1], "tap=hyprtap0,mac=02:42:ac:11:00:02");
    assert_string_equal(v[n + 2], "tap=hyprtap1");
    assert_string_equal(v[n + 3], "--vsock");
    const char *flags[4];
    assert_int_equal(argv_values(v, "--net", flags, 4), 1);

    vmm_api_request req = {0};
    assert_int_equal(ch_request_create(&cfg, &req, NULL), 0);
    json_error_t e;
    _cleanup_json_ json_t *body = json_loads(req.body, 0, &e);
    assert_non_null(body);
    _cleanup_free_ char *net = json_dumps(json_object_get(body, "net"), JSON_COMPACT);
    assert_json_equal(net, "[{\"tap\": \"hyprtap0\", \"mac\": \"02:42:ac:11:00:02\"},"
                           " {\"tap\": \"hyprtap1\"}]");
    vmm_api_request_clear(&req);

    /* No NICs: neither --net nor a "net" member. */
    cfg.nics = NULL;
    cfg.n_nics = 0;
    _cleanup_vmm_command_ vmm_command cmd0 = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd0, NULL), 0);
    assert_int_equal(argv_find(cmd0.argv, "--net"), -1);
    assert_int_equal(ch_request_create(&cfg, &req, NULL), 0);
    _cleanup_json_ json_t *body0 = json_loads(req.body, 0, &e);
    assert_non_null(body0);
    assert_null(json_object_get(body0, "net"));
    vmm_api_request_clear(&req);
}

static void test_ch_requests(void **state)
{
    vmm_config cfg = base_config();
    cfg.nics = one_nic;
    cfg.n_nics = 1;
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

static void test_firecracker_command_and_api_requests(void **state)
{
    vmm_adapter a = {.ops = &vmm_firecracker_ops, .binary_path = "/usr/bin/firecracker"};
    vmm_disk disks[] = {{"/data/vol.img", false}};
    vmm_config cfg = base_config();
    cfg.nics = one_nic;
    cfg.n_nics = 1;
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

static void test_firecracker_nics(void **state)
{
    vmm_config cfg = base_config();
    cfg.nics = two_nics;
    cfg.n_nics = 2;
    vmm_api_request *reqs = NULL;
    size_t n = 0;
    assert_int_equal(fc_requests_configure(&cfg, &reqs, &n, NULL), 0);
    const char *paths[] = {
        "/machine-config",          "/boot-source", "/drives/root", "/network-interfaces/eth0",
        "/network-interfaces/eth1", "/vsock"};
    assert_int_equal(n, ARRAY_SIZE(paths));
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(reqs[i].method, "PUT");
        assert_string_equal(reqs[i].path, paths[i]);
    }
    assert_json_equal(reqs[3].body, "{\"iface_id\": \"eth0\", \"host_dev_name\": \"hyprtap0\","
                                    " \"guest_mac\": \"02:42:ac:11:00:02\"}");
    assert_json_equal(reqs[4].body, "{\"iface_id\": \"eth1\", \"host_dev_name\": \"hyprtap1\"}");
    vmm_api_requests_free(reqs, n);

    /* No NICs: no network-interfaces request. */
    cfg.n_nics = 0;
    assert_int_equal(fc_requests_configure(&cfg, &reqs, &n, NULL), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_false(str_startswith(reqs[i].path, "/network-interfaces"));
    vmm_api_requests_free(reqs, n);
}

/* ---- PCI passthrough (VFIO) ------------------------------------------------ */

static const char *const gpu_group[] = {"0000:01:00.0", "0000:01:00.1"};

static vmm_config gpu_config(void)
{
    vmm_config cfg = base_config();
    cfg.pci_devices = gpu_group;
    cfg.n_pci_devices = ARRAY_SIZE(gpu_group);
    return cfg;
}

static void test_qemu_vfio_devices_pcie_and_locked_memory(void **state)
{
    vmm_adapter a = {.ops = &vmm_qemu_ops, .binary_path = "/q", .kvm = true};
    assert_true(a.ops->pci_passthrough);
    vmm_config cfg = gpu_config();
    _cleanup_vmm_command_ vmm_command cmd = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, NULL), 0);
    char **v = cmd.argv;
    assert_string_equal(argv_value(v, "-M", ""),
                        "microvm,x-option-roms=off,isa-serial=on,rtc=on,pcie=on");
    assert_string_equal(argv_value(v, "-overcommit", ""), "mem-lock=on");
    /* One device per function of the group, in order. */
    const char *devs[16];
    size_t nd = argv_values(v, "-device", devs, 16), nv = 0;
    for (size_t i = 0; i < nd; i++)
        nv += str_startswith(devs[i], "vfio-pci,");
    assert_int_equal(nv, 2);
    int first = argv_find(v, "vfio-pci,host=0000:01:00.0");
    assert_true(first > 0);
    assert_string_equal(v[first - 1], "-device");
    assert_string_equal(v[first + 1], "-device");
    assert_string_equal(v[first + 2], "vfio-pci,host=0000:01:00.1");

    /* Without devices: no PCIe bus, no locked memory. */
    vmm_config plain = base_config();
    _cleanup_vmm_command_ vmm_command cmd0 = {0};
    assert_int_equal(a.ops->build_command(&a, &plain, &cmd0, NULL), 0);
    assert_null(strstr(argv_value(cmd0.argv, "-M", ""), "pcie"));
    assert_int_equal(argv_find(cmd0.argv, "-overcommit"), -1);
    assert_false(argv_contains_substr(cmd0.argv, "vfio-pci"));
}

/* ---- shared directories (volumes, bind mounts) --------------------------- */

static const vmm_share shares[] = {
    {.tag = "hyprfs0",
     .path = "/v/a",
     .socket = "/run/hypr/x.fs0.sock",
     .transport = VMM_SHARE_VIRTIOFS},
    {.tag = "hyprfs1", .path = "/srv/b", .readonly = true, .transport = VMM_SHARE_9P},
};

static void test_shares_per_adapter(void **state)
{
    vmm_adapter q = {.ops = &vmm_qemu_ops, .binary_path = "/q"};
    vmm_config cfg = base_config();
    cfg.shares = shares;
    cfg.n_shares = 2;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    assert_int_equal(q.ops->build_command(&q, &cfg, &cmd, NULL), 0);
    char **v = cmd.argv;
    /* virtiofs: guest memory in a shared memfd, virtio 1.x mmio, a vhost-user device */
    assert_non_null(strstr(argv_value(v, "-M", ""), ",memory-backend=mem"));
    assert_string_equal(argv_value(v, "-object", "memory-backend-memfd"),
                        "memory-backend-memfd,id=mem,size=512M,share=on");
    assert_string_equal(argv_value(v, "-global", ""), "virtio-mmio.force-legacy=false");
    assert_string_equal(argv_value(v, "-chardev", "socket,id=fs0"),
                        "socket,id=fs0,path=/run/hypr/x.fs0.sock");
    assert_non_null(argv_value(v, "-device", "vhost-user-fs-device,chardev=fs0,tag=hyprfs0"));
    /* 9p: qemu serves the directory, read-only when asked */
    assert_string_equal(argv_value(v, "-fsdev", ""),
                        "local,id=fs1,path=/srv/b,security_model=passthrough,readonly=on");
    assert_non_null(argv_value(v, "-device", "virtio-9p-device,fsdev=fs1,mount_tag=hyprfs1"));

    /* 9p only: no shared memory, no vhost-user */
    cfg.shares = shares + 1;
    cfg.n_shares = 1;
    _cleanup_vmm_command_ vmm_command nine = {0};
    assert_int_equal(q.ops->build_command(&q, &cfg, &nine, NULL), 0);
    assert_null(strstr(argv_value(nine.argv, "-M", ""), "memory-backend"));
    assert_int_equal(argv_find(nine.argv, "-global"), -1);

    /* cloud-hypervisor: --fs with shared memory; it has no 9p */
    vmm_adapter ch = {.ops = &vmm_cloud_hypervisor_ops, .binary_path = "/ch"};
    cfg.shares = shares;
    cfg.n_shares = 1;
    _cleanup_vmm_command_ vmm_command chc = {0};
    assert_int_equal(ch.ops->build_command(&ch, &cfg, &chc, NULL), 0);
    assert_string_equal(argv_value(chc.argv, "--memory", ""), "size=512M,shared=on");
    assert_string_equal(argv_value(chc.argv, "--fs", ""),
                        "tag=hyprfs0,socket=/run/hypr/x.fs0.sock,num_queues=1,queue_size=512");
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    cfg.shares = shares + 1;
    _cleanup_vmm_command_ vmm_command ch9 = {0};
    assert_true(ch.ops->build_command(&ch, &cfg, &ch9, &err) < 0);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, "volume_transport"));

    /* firecracker: no shared filesystem at all */
    vmm_adapter fc = {.ops = &vmm_firecracker_ops, .binary_path = "/fc"};
    cfg.shares = shares;
    _cleanup_error_ hypr_error ferr = HYPR_ERROR_INIT;
    _cleanup_vmm_command_ vmm_command fcc = {0};
    assert_true(fc.ops->build_command(&fc, &cfg, &fcc, &ferr) < 0);
    assert_int_equal(ferr.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(ferr.message, "firecracker has no shared filesystem"));

    /* more than the limit, said */
    vmm_share many[VMM_MAX_SHARES + 1];
    for (size_t i = 0; i < ARRAY_SIZE(many); i++)
        many[i] = shares[1];
    cfg.shares = many;
    cfg.n_shares = ARRAY_SIZE(many);
    _cleanup_error_ hypr_error merr = HYPR_ERROR_INIT;
    _cleanup_vmm_command_ vmm_command mc = {0};
    assert_true(q.ops->build_command(&q, &cfg, &mc, &merr) < 0);
    assert_non_null(strstr(merr.message, "at most 16"));
}

static void test_ch_vfio_devices(void **state)
{
    vmm_adapter a = {.ops = &vmm_cloud_hypervisor_ops, .binary_path = "/ch"};
    assert_true(a.ops->pci_passthrough);
    vmm_config cfg = gpu_config();
    _cleanup_vmm_command_ vmm_command cmd = {0};
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, NULL), 0);
    char **v = cmd.argv;
    int d = argv_find(v, "--device");
    assert_true(d > 0);
    assert_string_equal(v[d + 1], "path=/sys/bus/pci/devices/0000:01:00.0/");
    assert_string_equal(v[d + 2], "path=/sys/bus/pci/devices/0000:01:00.1/");
    assert_true(str_startswith(v[d + 3], "--"));

    vmm_api_request req = {0};
    assert_int_equal(ch_request_create(&cfg, &req, NULL), 0);
    json_error_t e;
    _cleanup_json_ json_t *body = json_loads(req.body, 0, &e);
    assert_non_null(body);
    _cleanup_free_ char *devs = json_dumps(json_object_get(body, "devices"), JSON_COMPACT);
    assert_json_equal(devs, "[{\"path\": \"/sys/bus/pci/devices/0000:01:00.0/\"},"
                            " {\"path\": \"/sys/bus/pci/devices/0000:01:00.1/\"}]");
    vmm_api_request_clear(&req);

    vmm_config plain = base_config();
    _cleanup_vmm_command_ vmm_command cmd0 = {0};
    assert_int_equal(a.ops->build_command(&a, &plain, &cmd0, NULL), 0);
    assert_int_equal(argv_find(cmd0.argv, "--device"), -1);
}

static void test_firecracker_refuses_vfio_devices(void **state)
{
    vmm_adapter a = {.ops = &vmm_firecracker_ops, .binary_path = "/fc"};
    assert_false(a.ops->pci_passthrough);
    vmm_config cfg = gpu_config();
    _cleanup_vmm_command_ vmm_command cmd = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, &err), -EOPNOTSUPP);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, "firecracker cannot pass PCI devices (GPUs) through"));
    vmm_api_request *reqs = NULL;
    size_t n = 0;
    assert_int_equal(fc_requests_configure(&cfg, &reqs, &n, NULL), -EOPNOTSUPP);
    assert_int_equal(n, 0);
}

static void test_pci_device_addresses_are_checked(void **state)
{
    vmm_adapter a = {.ops = &vmm_qemu_ops, .binary_path = "/q"};
    static const char *const bad[] = {"0000:01:00.0,romfile=/etc/shadow", "", "../x"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        vmm_config cfg = base_config();
        cfg.pci_devices = &bad[i];
        cfg.n_pci_devices = 1;
        _cleanup_vmm_command_ vmm_command cmd = {0};
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_int_equal(a.ops->build_command(&a, &cfg, &cmd, &err), -EINVAL);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    }
}

/* ---- factory ------------------------------------------------------------- */

static void test_adapter_choice_by_name_path_and_kvm(void **state)
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

static void test_delete_removes_vm_files_and_is_idempotent(void **state)
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
        cmocka_unit_test(test_qemu_nics),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_nic_errors),
        cmocka_unit_test(test_ch_command),
        cmocka_unit_test(test_ch_nics),
        cmocka_unit_test(test_ch_requests),
        cmocka_unit_test(test_firecracker_command_and_api_requests),
        cmocka_unit_test(test_firecracker_nics),
        cmocka_unit_test(test_qemu_vfio_devices_pcie_and_locked_memory),
        cmocka_unit_test(test_ch_vfio_devices),
        cmocka_unit_test(test_firecracker_refuses_vfio_devices),
        cmocka_unit_test(test_pci_device_addresses_are_checked),
        cmocka_unit_test_setup_teardown(test_adapter_choice_by_name_path_and_kvm, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test(test_http_parse),
        cmocka_unit_test(test_shares_per_adapter),
        cmocka_unit_test_setup_teardown(test_qmp_fake, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_http_fake, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_delete_removes_vm_files_and_is_idempotent, setup_tmp,
                                        teardown_tmp),
    };
    return cmocka_run_group_tests_name("vmm", tests, NULL, NULL);
}
