/* Unit tests of the gpu module on fake sysfs trees: the list (a GPU with its HDMI
 * audio companion in one IOMMU group, the boot VGA device, a GPU without IOMMU
 * group), the status values, the boot VGA and group rules, and the sysfs writes
 * of binding to vfio-pci and back, in order. The writer records every write and
 * plays the kernel's part (moving the tree's driver links), so bind and release
 * see a tree that changes like sysfs does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>

#include "gpu/gpu.h"

static char tmpdir[256];
static char root[300];

/* ---- the fake tree ----------------------------------------------------------------- */

static void put(const char *rel, const char *content)
{
    _cleanup_free_ char *path = path_join(root, rel);
    _cleanup_free_ char *dir = xstrdup(path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(mkdir_p(dir, 0755), 0);
    assert_int_equal(write_file_atomic(path, content, strlen(content), 0644), 0);
}

static void link_to(const char *rel, const char *target)
{
    _cleanup_free_ char *path = path_join(root, rel);
    _cleanup_free_ char *dir = xstrdup(path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(mkdir_p(dir, 0755), 0);
    unlink(path);
    assert_int_equal(symlink(target, path), 0);
}

static void add_driver(const char *name)
{
    _cleanup_free_ char *bind = xasprintf("bus/pci/drivers/%s/bind", name);
    _cleanup_free_ char *unbind = xasprintf("bus/pci/drivers/%s/unbind", name);
    put(bind, "");
    put(unbind, "");
}

/* A device as sysfs lays it out: devices/pci0000:00/ADDR, linked from
 * bus/pci/devices/ADDR; driver and iommu_group are links (NULL: none). */
static void add_device(const char *addr, const char *cls, const char *vendor, const char *device,
                       const char *driver, const char *group, const char *boot_vga)
{
    char rel[256];
#define ATTR(name, value)                                                                          \
    do {                                                                                           \
        snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/%s", addr, name);                        \
        put(rel, value);                                                                           \
    } while (0)
    ATTR("class", cls);
    ATTR("vendor", vendor);
    ATTR("device", device);
    ATTR("numa_node", "-1\n");
    ATTR("driver_override", "(null)\n");
    if (boot_vga)
        ATTR("boot_vga", boot_vga);
#undef ATTR
    snprintf(rel, sizeof(rel), "bus/pci/devices/%s", addr);
    _cleanup_free_ char *target = xasprintf("../../../devices/pci0000:00/%s", addr);
    link_to(rel, target);
    if (driver) {
        add_driver(driver);
        snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/driver", addr);
        _cleanup_free_ char *t = xasprintf("../../../bus/pci/drivers/%s", driver);
        link_to(rel, t);
    }
    if (group) {
        snprintf(rel, sizeof(rel), "devices/pci0000:00/%s/iommu_group", addr);
        _cleanup_free_ char *t = xasprintf("../../../kernel/iommu_groups/%s", group);
        link_to(rel, t);
        snprintf(rel, sizeof(rel), "kernel/iommu_groups/%s/devices/%s", group, addr);
        _cleanup_free_ char *m = xasprintf("../../../../devices/pci0000:00/%s", addr);
        link_to(rel, m);
    }
}

#define IGPU  "0000:00:02.0" /* Intel, the boot VGA device, group 0 */
#define DGPU  "0000:01:00.0" /* NVIDIA, group 12 ... */
#define AUDIO "0000:01:00.1" /* ... with its HDMI audio function */
#define NOGRP "0000:02:00.0" /* AMD, no IOMMU group */
#define NIC   "0000:03:00.0" /* not a display device */

static void standard_tree(void)
{
    add_device(IGPU, "0x030000\n", "0x8086\n", "0x3e92\n", "i915", "0", "1\n");
    add_device(DGPU, "0x030000\n", "0x10de\n", "0x2204\n", "nvidia", "12", "0\n");
    add_device(AUDIO, "0x040300\n", "0x10de\n", "0x1aef\n", "snd_hda_intel", "12", NULL);
    add_device(NOGRP, "0x038000\n", "0x1002\n", "0x73bf\n", "amdgpu", NULL, "0\n");
    add_device(NIC, "0x020000\n", "0x8086\n", "0x1533\n", "igb", "13", NULL);
    put("devices/pci0000:00/" DGPU "/numa_node", "1\n");
    add_driver("vfio-pci");
    put("bus/pci/drivers_probe", "");
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hypr-test-gpu-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(root, sizeof(root), "%s/sys", tmpdir);
    standard_tree();
    return 0;
}

static int teardown(void **state)
{
    rm_rf(tmpdir);
    return 0;
}

/* ---- a writer that records and plays the kernel ---------------------------------------- */

typedef struct fake_kernel {
    char **writes;      /* "path-below-root=value", in order */
    const char *fail;   /* a write to a path ending so fails ... */
    int fail_errno;     /* ... with this */
    bool no_vfio_probe; /* vfio-pci does not take devices (its module is not loaded) */
} fake_kernel;

/* <root>/devices/pci0000:00/ADDR/NAME. Caller frees. */
static char *dev_file(const char *addr, const char *name)
{
    return xasprintf("%s/devices/pci0000:00/%s/%s", root, addr, name);
}

static char *current_driver(const char *addr)
{
    _cleanup_free_ char *link = xasprintf("%s/bus/pci/devices/%s/driver", root, addr);
    char buf[512];
    ssize_t n = readlink(link, buf, sizeof(buf) - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    return xstrdup(strrchr(buf, '/') + 1);
}

static int kernel_bind(const char *addr, const char *driver)
{
    _cleanup_free_ char *cur = current_driver(addr);
    if (cur)
        return -EBUSY;
    _cleanup_free_ char *rel = xasprintf("devices/pci0000:00/%s/driver", addr);
    _cleanup_free_ char *t = xasprintf("../../../bus/pci/drivers/%s", driver);
    link_to(rel, t);
    return 0;
}

/* The driver a probe picks: the override if that driver exists, else the native one. */
static const char *native_driver(const char *addr)
{
    return !strcmp(addr, IGPU)    ? "i915"
           : !strcmp(addr, DGPU)  ? "nvidia"
           : !strcmp(addr, AUDIO) ? "snd_hda_intel"
           : !strcmp(addr, NOGRP) ? "amdgpu"
                                  : NULL;
}

static int fake_write(void *ud, const char *path, const char *value)
{
    fake_kernel *k = ud;
    assert_true(str_startswith(path, root));
    const char *rel = path + strlen(root) + 1;
    _cleanup_free_ char *rec = xasprintf("%s=%s", rel, value);
    k->writes = strv_append(k->writes, rec);
    if (k->fail && str_endswith(rel, k->fail))
        return -k->fail_errno;
    if (str_endswith(rel, "/driver_override")) {
        _cleanup_free_ char *p = xstrdup(path);
        assert_int_equal(write_file_atomic(p, value, strlen(value), 0644), 0);
        return 0;
    }
    if (str_endswith(rel, "/driver/unbind")) {
        /* bus/pci/devices/ADDR/driver/unbind: the value must be that device. */
        _cleanup_free_ char *addr = xstrndup(rel + strlen("bus/pci/devices/"), 12);
        assert_string_equal(addr, value);
        _cleanup_free_ char *link = dev_file(addr, "driver");
        return unlink(link) == 0 ? 0 : -ENODEV;
    }
    if (str_startswith(rel, "bus/pci/drivers/") && str_endswith(rel, "/bind")) {
        _cleanup_free_ char *drv = xstrndup(rel + strlen("bus/pci/drivers/"),
                                            strlen(rel) - strlen("bus/pci/drivers/") - 5);
        return kernel_bind(value, drv);
    }
    if (strcmp(rel, "bus/pci/drivers_probe") == 0) {
        _cleanup_free_ char *cur = current_driver(value);
        if (cur)
            return 0;
        _cleanup_free_ char *ovr_path = dev_file(value, "driver_override");
        _cleanup_free_ char *ovr = NULL;
        assert_int_equal(read_file(ovr_path, 4096, &ovr, NULL), 0);
        ovr[strcspn(ovr, "\n")] = '\0';
        if (*ovr && strcmp(ovr, "(null)") != 0) {
            if (strcmp(ovr, "vfio-pci") == 0 && k->no_vfio_probe)
                return 0;
            return kernel_bind(value, ovr);
        }
        return native_driver(value) ? kernel_bind(value, native_driver(value)) : 0;
    }
    fail_msg("unexpected write of %s to %s", value, rel);
    return -EINVAL;
}

static gpu_sysfs fake_sysfs(fake_kernel *k)
{
    return (gpu_sysfs){.root = root, .write = fake_write, .ud = k, .settle_ms = 50};
}

/* The writes so far as one string, "; "-separated, then forgets them. */
static char *take_writes(fake_kernel *k)
{
    _cleanup_buf_ hypr_buf b = {0};
    for (char **w = k->writes; w && *w; w++) {
        if (w != k->writes)
            buf_puts(&b, "; ");
        buf_puts(&b, *w);
    }
    strv_free(k->writes);
    k->writes = NULL;
    return buf_steal(&b);
}

/* ---- pci.ids ----------------------------------------------------------------------- */

static const char pci_ids_text[] = "# comment\n"
                                   "8086  Intel Corporation\n"
                                   "\t3e92  CoffeeLake-S GT2 [UHD Graphics 630]\n"
                                   "\t1533  I210 Gigabit Network Connection\n"
                                   "10de  NVIDIA Corporation\r\n"
                                   "\t2204  GA102 [GeForce RTX 3090]  \n"
                                   "\t\t10de 1454  a subsystem, never a device\n"
                                   "\t1aef  GA102 High Definition Audio Controller\n"
                                   "\t2204  a later duplicate\n"
                                   "zzzz  not an id\n"
                                   "\t1234  a device of no vendor\n"
                                   "C 03  Display controller\n"
                                   "\t00  VGA compatible controller\n"
                                   "1002  after the classes, not a vendor\n";

static void test_pci_ids_parse(void **state)
{
    _cleanup_gpu_ids_ gpu_ids *ids = gpu_ids_parse(pci_ids_text, sizeof(pci_ids_text) - 1);
    assert_string_equal(gpu_ids_vendor(ids, 0x8086), "Intel Corporation");
    assert_string_equal(gpu_ids_vendor(ids, 0x10de), "NVIDIA Corporation");
    assert_string_equal(gpu_ids_device(ids, 0x10de, 0x2204), "GA102 [GeForce RTX 3090]");
    assert_string_equal(gpu_ids_device(ids, 0x10de, 0x1aef),
                        "GA102 High Definition Audio Controller");
    assert_string_equal(gpu_ids_device(ids, 0x8086, 0x1533), "I210 Gigabit Network Connection");
    assert_null(gpu_ids_device(ids, 0x10de, 0x1454)); /* subsystems are not devices */
    assert_null(gpu_ids_device(ids, 0x8086, 0x2204)); /* devices belong to their vendor */
    assert_null(gpu_ids_device(ids, 0x10de, 0x1234));
    assert_null(gpu_ids_vendor(ids, 0x1002)); /* the class section ends the vendors */
    assert_null(gpu_ids_vendor(ids, 0x0003));
    assert_null(gpu_ids_vendor(ids, 0x10000));
}

static void test_pci_ids_file_is_read_at_first_lookup(void **state)
{
    _cleanup_free_ char *path = path_join(tmpdir, "pci.ids");
    _cleanup_gpu_ids_ gpu_ids *ids = gpu_ids_new(path);
    /* Written after the handle exists: nothing was read yet. */
    assert_int_equal(write_file_atomic(path, pci_ids_text, strlen(pci_ids_text), 0644), 0);
    assert_string_equal(gpu_ids_vendor(ids, 0x10de), "NVIDIA Corporation");

    _cleanup_free_ char *missing = path_join(tmpdir, "no-such-pci.ids");
    _cleanup_gpu_ids_ gpu_ids *none = gpu_ids_new(missing);
    assert_null(gpu_ids_vendor(none, 0x10de));
    assert_null(gpu_ids_device(none, 0x10de, 0x2204));
}

static void test_address_normalize(void **state)
{
    static const char *const good[][2] = {
        {"0000:01:00.0", "0000:01:00.0"},
        {"01:00.1", "0000:01:00.1"},
        {"0000:0A:1F.7", "0000:0a:1f.7"},
        {"10000:00:02.0", "10000:00:02.0"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        _cleanup_free_ char *a = gpu_address_normalize(good[i][0]);
        assert_non_null(a);
        assert_string_equal(a, good[i][1]);
    }
    static const char *const bad[] = {"",
                                      "all",
                                      "0000:01:00.8",
                                      "1:00.0",
                                      "0000:01:00",
                                      "../../../etc",
                                      "0000:01:00.0/",
                                      "000:01:00.0",
                                      "0000:g1:00.0"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_null(gpu_address_normalize(bad[i]));
}

/* ---- the list ------------------------------------------------------------------------- */

static void test_list_gpus_companions_and_fields(void **state)
{
    _cleanup_free_ char *path = path_join(tmpdir, "pci.ids");
    assert_int_equal(write_file_atomic(path, pci_ids_text, strlen(pci_ids_text), 0644), 0);
    _cleanup_gpu_ids_ gpu_ids *ids = gpu_ids_new(path);
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_list_ gpu_list l = {0};
    assert_int_equal(gpu_scan(&sys, ids, &l, NULL), 0);
    /* The three display devices and the audio function of the NVIDIA one; not the NIC. */
    assert_int_equal(l.n, 4);
    assert_string_equal(l.devices[0].address, IGPU);
    assert_string_equal(l.devices[1].address, DGPU);
    assert_string_equal(l.devices[2].address, AUDIO);
    assert_string_equal(l.devices[3].address, NOGRP);

    const gpu_device *d = gpu_list_find(&l, DGPU);
    assert_true(d->display);
    assert_false(d->boot_vga);
    assert_string_equal(d->class_id, "0x030000");
    assert_string_equal(d->vendor_id, "0x10de");
    assert_string_equal(d->device_id, "0x2204");
    assert_string_equal(d->vendor, "NVIDIA Corporation");
    assert_string_equal(d->device, "GA102 [GeForce RTX 3090]");
    assert_string_equal(d->driver, "nvidia");
    assert_string_equal(d->iommu_group, "12");
    assert_int_equal(d->numa_node, 1);
    assert_int_equal(strv_length(d->group), 2);
    assert_string_equal(d->group[0], DGPU);
    assert_string_equal(d->group[1], AUDIO);

    const gpu_device *a = gpu_list_find(&l, AUDIO);
    assert_false(a->display);
    assert_string_equal(a->class_id, "0x040300");
    assert_string_equal(a->driver, "snd_hda_intel");
    assert_string_equal(a->device, "GA102 High Definition Audio Controller");
    assert_int_equal(a->numa_node, -1);

    const gpu_device *i = gpu_list_find(&l, IGPU);
    assert_true(i->boot_vga);
    assert_string_equal(i->vendor, "Intel Corporation");

    const gpu_device *n = gpu_list_find(&l, NOGRP);
    assert_null(n->iommu_group);
    assert_null(n->group);
    assert_null(n->vendor); /* not in our pci.ids */
    assert_string_equal(n->vendor_id, "0x1002");
    assert_null(gpu_list_find(&l, NIC));
}

static void test_list_without_pci_bus_is_empty(void **state)
{
    gpu_sysfs sys = {.root = tmpdir}; /* no bus/pci there */
    _cleanup_gpu_list_ gpu_list l = {0};
    assert_int_equal(gpu_scan(&sys, NULL, &l, NULL), 0);
    assert_int_equal(l.n, 0);
}

static void test_status_values(void **state)
{
    link_to("devices/pci0000:00/" NOGRP "/driver", "../../../bus/pci/drivers/vfio-pci");
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_list_ gpu_list l = {0};
    assert_int_equal(gpu_scan(&sys, NULL, &l, NULL), 0);
    const gpu_device *dgpu = gpu_list_find(&l, DGPU), *igpu = gpu_list_find(&l, IGPU);
    const gpu_device *audio = gpu_list_find(&l, AUDIO), *amd = gpu_list_find(&l, NOGRP);
    assert_string_equal(gpu_status_name(gpu_device_status(&l, dgpu, false)), "available");
    assert_string_equal(gpu_status_name(gpu_device_status(&l, audio, false)), "available");
    assert_string_equal(gpu_status_name(gpu_device_status(&l, igpu, false)), "boot-vga");
    assert_string_equal(gpu_status_name(gpu_device_status(&l, amd, false)), "vfio-ready");
    assert_string_equal(gpu_status_name(gpu_device_status(&l, dgpu, true)), "in-use");
}

static void test_companion_of_boot_vga_is_protected(void **state)
{
    add_device("0000:00:1f.3", "0x040300\n", "0x8086\n", "0xa348\n", "snd_hda_intel", "0", NULL);
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_list_ gpu_list l = {0};
    assert_int_equal(gpu_scan(&sys, NULL, &l, NULL), 0);
    const gpu_device *hda = gpu_list_find(&l, "0000:00:1f.3");
    assert_non_null(hda);
    assert_false(hda->boot_vga);
    assert_int_equal(gpu_device_status(&l, hda, false), GPU_BOOT_VGA);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_strv_ char **sel = NULL;
    gpu_request req = {.address = "0000:00:1f.3"};
    assert_true(gpu_select(&l, &req, &sel, &err) < 0);
    assert_non_null(strstr(err.message, IGPU ", in the IOMMU group of 0000:00:1f.3, is the boot "
                                             "VGA device"));
}

/* ---- selection: boot VGA and group rules ------------------------------------------------- */

static const char *held_by_web(void *ud, const char *address)
{
    return strcmp(address, (const char *)ud) == 0 ? "web" : NULL;
}

static void test_boot_vga_refused_unless_forced(void **state)
{
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_list_ gpu_list l = {0};
    assert_int_equal(gpu_scan(&sys, NULL, &l, NULL), 0);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_strv_ char **sel = NULL;
    gpu_request req = {.address = IGPU};
    assert_int_equal(gpu_select(&l, &req, &sel, &err), -EPERM);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_string_equal(err.message, IGPU " is the boot VGA device (the host's display); use "
                                          "--gpu-force to pass it through anyway");
    assert_null(sel);
    req.force = true;
    assert_int_equal(gpu_select(&l, &req, &sel, NULL), 0);
    assert_int_equal(strv_length(sel), 1);
    assert_string_equal(sel[0], IGPU);
}

static void test_group_rule(void **state)
{
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_list_ gpu_list l = {0};
    assert_int_equal(gpu_scan(&sys, NULL, &l, NULL), 0);
    _cleanup_strv_ char **sel = NULL;
    /* The GPU brings its whole group, short address or not. */
    gpu_request req = {.address = "01:00.0"};
    assert_int_equal(gpu_select(&l, &req, &sel, NULL), 0);
    assert_int_equal(strv_length(sel), 2);
    assert_string_equal(sel[0], DGPU);
    assert_string_equal(sel[1], AUDIO);
    strv_free(TAKE_PTR(sel));

    /* A device of the group held by another VM refuses the GPU. */
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    req = (gpu_request){.address = DGPU, .held_by = held_by_web, .ud = (void *)AUDIO};
    assert_int_equal(gpu_select(&l, &req, &sel, &err), -EBUSY);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_string_equal(err.message,
                        "GPU " AUDIO ", in the IOMMU group of " DGPU ", is in use by VM web");
    assert_null(sel);
    req.ud = (void *)DGPU;
    assert_int_equal(gpu_select(&l, &req, &sel, &err), -EBUSY);
    assert_string_equal(err.message, "GPU " DGPU " is in use by VM web");

    /* No IOMMU group: VFIO cannot work. */
    req = (gpu_request){.address = NOGRP};
    assert_int_equal(gpu_select(&l, &req, &sel, &err), -ENODEV);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, NOGRP " has no IOMMU group: IOMMU/VFIO is unavailable"));

    req.address = NIC;
    assert_int_equal(gpu_select(&l, &req, &sel, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    assert_non_null(strstr(err.message, "no GPU at PCI address " NIC));

    req.address = "gpu0";
    assert_int_equal(gpu_select(&l, &req, &sel, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "invalid GPU \"gpu0\""));
}

static void test_all_takes_every_gpu_but_the_boot_vga(void **state)
{
    /* Without the group-less AMD card (it would refuse "all"). */
    _cleanup_free_ char *amd = path_join(root, "bus/pci/devices/" NOGRP);
    assert_int_equal(unlink(amd), 0);
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_list_ gpu_list l = {0};
    assert_int_equal(gpu_scan(&sys, NULL, &l, NULL), 0);
    _cleanup_strv_ char **sel = NULL;
    gpu_request req = {.address = "all"};
    assert_int_equal(gpu_select(&l, &req, &sel, NULL), 0);
    assert_int_equal(strv_length(sel), 2);
    assert_string_equal(sel[0], DGPU);
    assert_string_equal(sel[1], AUDIO);
    strv_free(TAKE_PTR(sel));

    /* Only the boot VGA device left: "all" has nothing, and says how to take it. */
    _cleanup_free_ char *nv = path_join(root, "bus/pci/devices/" DGPU);
    assert_int_equal(unlink(nv), 0);
    gpu_list_clear(&l);
    assert_int_equal(gpu_scan(&sys, NULL, &l, NULL), 0);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_true(gpu_select(&l, &req, &sel, &err) < 0);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, "--gpu-force"));
}

static void test_vendor_filter(void **state)
{
    _cleanup_free_ char *amd = path_join(root, "bus/pci/devices/" NOGRP);
    assert_int_equal(unlink(amd), 0);
    add_device("0000:04:00.0", "0x030200\n", "0x10de\n", "0x20b0\n", "nvidia", "20", "0\n");
    _cleanup_gpu_ids_ gpu_ids *ids = gpu_ids_parse(pci_ids_text, sizeof(pci_ids_text) - 1);
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_list_ gpu_list l = {0};
    assert_int_equal(gpu_scan(&sys, ids, &l, NULL), 0);
    _cleanup_strv_ char **sel = NULL;
    /* By name, any case, or by id: both NVIDIA GPUs with their groups. */
    static const char *const spellings[] = {"nvidia", "10de", "0x10DE"};
    for (size_t i = 0; i < ARRAY_SIZE(spellings); i++) {
        gpu_request req = {.vendor = spellings[i]};
        assert_int_equal(gpu_select(&l, &req, &sel, NULL), 0);
        assert_int_equal(strv_length(sel), 3);
        assert_string_equal(sel[2], "0000:04:00.0");
        strv_free(TAKE_PTR(sel));
    }
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    gpu_request req = {.address = "all", .vendor = "intel"}; /* only the boot VGA one */
    assert_int_equal(gpu_select(&l, &req, &sel, &err), -ENODEV);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    req = (gpu_request){.address = DGPU, .vendor = "amd"};
    assert_int_equal(gpu_select(&l, &req, &sel, &err), -ENOENT);
    assert_string_equal(err.message, "the GPU at PCI address " DGPU " is not from vendor \"amd\" "
                                     "(it is NVIDIA Corporation)");
}

/* ---- bind and release ----------------------------------------------------------------- */

static void plan(const gpu_sysfs *sys, const char *const *addrs, gpu_claim *c)
{
    assert_int_equal(gpu_claim_plan(sys, (char *const *)addrs, NULL, c, NULL), 0);
}

static const char *const group12[] = {DGPU, AUDIO, NULL};

static void test_bind_writes_in_order_and_release_rebinds(void **state)
{
    fake_kernel k = {0};
    gpu_sysfs sys = fake_sysfs(&k);
    _cleanup_gpu_claim_ gpu_claim c = {0};
    plan(&sys, group12, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.items[0].driver, "nvidia");
    assert_string_equal(c.items[1].driver, "snd_hda_intel");

    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(gpu_bind(&sys, &c, &err), 0);
    _cleanup_free_ char *bound = take_writes(&k);
    assert_string_equal(bound, "bus/pci/devices/" DGPU "/driver_override=vfio-pci; "
                               "bus/pci/devices/" DGPU "/driver/unbind=" DGPU "; "
                               "bus/pci/drivers_probe=" DGPU "; "
                               "bus/pci/devices/" AUDIO "/driver_override=vfio-pci; "
                               "bus/pci/devices/" AUDIO "/driver/unbind=" AUDIO "; "
                               "bus/pci/drivers_probe=" AUDIO);
    _cleanup_free_ char *d0 = current_driver(DGPU), *d1 = current_driver(AUDIO);
    assert_string_equal(d0, "vfio-pci");
    assert_string_equal(d1, "vfio-pci");

    assert_int_equal(gpu_release(&sys, &c, &err), 0);
    _cleanup_free_ char *released = take_writes(&k);
    assert_string_equal(released, "bus/pci/devices/" AUDIO "/driver_override=\n; "
                                  "bus/pci/devices/" AUDIO "/driver/unbind=" AUDIO "; "
                                  "bus/pci/drivers/snd_hda_intel/bind=" AUDIO "; "
                                  "bus/pci/devices/" DGPU "/driver_override=\n; "
                                  "bus/pci/devices/" DGPU "/driver/unbind=" DGPU "; "
                                  "bus/pci/drivers/nvidia/bind=" DGPU);
    _cleanup_free_ char *r0 = current_driver(DGPU), *r1 = current_driver(AUDIO);
    assert_string_equal(r0, "nvidia");
    assert_string_equal(r1, "snd_hda_intel");
    _cleanup_free_ char *ovr = NULL;
    _cleanup_free_ char *ovr_path = dev_file(DGPU, "driver_override");
    assert_int_equal(read_file(ovr_path, 64, &ovr, NULL), 0);
    assert_string_equal(ovr, "\n");
}

static void test_release_probes_when_the_driver_is_gone(void **state)
{
    fake_kernel k = {0};
    gpu_sysfs sys = fake_sysfs(&k);
    _cleanup_gpu_claim_ gpu_claim c = {0};
    const char *const one[] = {DGPU, NULL};
    plan(&sys, one, &c);
    assert_int_equal(gpu_bind(&sys, &c, NULL), 0);
    free(take_writes(&k));
    /* nvidia's module was unloaded meanwhile: no bind file, the kernel probes. */
    _cleanup_free_ char *bind = path_join(root, "bus/pci/drivers/nvidia/bind");
    assert_int_equal(unlink(bind), 0);
    assert_int_equal(gpu_release(&sys, &c, NULL), 0);
    _cleanup_free_ char *w = take_writes(&k);
    assert_string_equal(w, "bus/pci/devices/" DGPU "/driver_override=\n; "
                           "bus/pci/devices/" DGPU "/driver/unbind=" DGPU "; "
                           "bus/pci/drivers_probe=" DGPU);
    _cleanup_free_ char *drv = current_driver(DGPU);
    assert_string_equal(drv, "nvidia");
}

static void test_vfio_ready_and_unbound_devices(void **state)
{
    fake_kernel k = {0};
    gpu_sysfs sys = fake_sysfs(&k);
    /* The audio function already on vfio-pci (the user's doing), the GPU unbound. */
    _cleanup_free_ char *dl = dev_file(DGPU, "driver");
    _cleanup_free_ char *al = dev_file(AUDIO, "driver");
    unlink(dl);
    unlink(al);
    assert_int_equal(kernel_bind(AUDIO, "vfio-pci"), 0);
    _cleanup_gpu_claim_ gpu_claim c = {0};
    plan(&sys, group12, &c);
    assert_null(c.items[0].driver);
    assert_string_equal(c.items[1].driver, "vfio-pci");
    assert_int_equal(gpu_bind(&sys, &c, NULL), 0);
    _cleanup_free_ char *w = take_writes(&k);
    /* No unbind for an unbound device; nothing at all for a vfio-ready one. */
    assert_string_equal(w, "bus/pci/devices/" DGPU "/driver_override=vfio-pci; "
                           "bus/pci/drivers_probe=" DGPU);
    assert_int_equal(gpu_release(&sys, &c, NULL), 0);
    _cleanup_free_ char *r = take_writes(&k);
    assert_string_equal(r, "bus/pci/devices/" DGPU "/driver_override=\n; "
                           "bus/pci/devices/" DGPU "/driver/unbind=" DGPU);
    _cleanup_free_ char *d0 = current_driver(DGPU), *d1 = current_driver(AUDIO);
    assert_null(d0);                     /* unbound, as it was */
    assert_string_equal(d1, "vfio-pci"); /* vfio-ready, as it was */
}

static void test_bind_failure_names_device_and_file_and_release_undoes(void **state)
{
    fake_kernel k = {.fail = AUDIO "/driver/unbind", .fail_errno = EACCES};
    gpu_sysfs sys = fake_sysfs(&k);
    _cleanup_gpu_claim_ gpu_claim c = {0};
    plan(&sys, group12, &c);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(gpu_bind(&sys, &c, &err), -EACCES);
    _cleanup_free_ char *want =
        xasprintf("PCI device " AUDIO ": write \"" AUDIO "\" to "
                  "%s/bus/pci/devices/" AUDIO "/driver/unbind: Permission denied",
                  root);
    assert_string_equal(err.message, want);
    _cleanup_free_ char *d0 = current_driver(DGPU);
    assert_string_equal(d0, "vfio-pci"); /* the first one was taken */
    free(take_writes(&k));
    k.fail = NULL;
    assert_int_equal(gpu_release(&sys, &c, NULL), 0);
    _cleanup_free_ char *r0 = current_driver(DGPU), *r1 = current_driver(AUDIO);
    assert_string_equal(r0, "nvidia");
    assert_string_equal(r1, "snd_hda_intel");
    /* The audio function never left its driver: only its override is cleared. */
    _cleanup_free_ char *w = take_writes(&k);
    assert_true(str_startswith(w, "bus/pci/devices/" AUDIO "/driver_override=\n; "
                                  "bus/pci/devices/" DGPU "/driver_override=\n"));
}

static void test_bind_without_vfio_pci_module_fails_clearly(void **state)
{
    fake_kernel k = {.no_vfio_probe = true};
    gpu_sysfs sys = fake_sysfs(&k);
    _cleanup_gpu_claim_ gpu_claim c = {0};
    plan(&sys, group12, &c);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_true(gpu_bind(&sys, &c, &err) < 0);
    assert_string_equal(err.message, "PCI device " DGPU " did not bind to vfio-pci (driver now: "
                                     "none): is the vfio-pci module loaded ('modprobe "
                                     "vfio-pci')?");
    k.no_vfio_probe = false;
    assert_int_equal(gpu_release(&sys, &c, NULL), 0);
    _cleanup_free_ char *d0 = current_driver(DGPU);
    assert_string_equal(d0, "nvidia");
    strv_free(k.writes);
}

static void test_release_goes_on_past_a_failing_device(void **state)
{
    fake_kernel k = {0};
    gpu_sysfs sys = fake_sysfs(&k);
    _cleanup_gpu_claim_ gpu_claim c = {0};
    plan(&sys, group12, &c);
    assert_int_equal(gpu_bind(&sys, &c, NULL), 0);
    k.fail = "drivers/snd_hda_intel/bind";
    k.fail_errno = ENODEV;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(gpu_release(&sys, &c, &err), -ENODEV);
    assert_non_null(strstr(err.message, "PCI device " AUDIO ": write"));
    assert_non_null(strstr(err.message, "drivers/snd_hda_intel/bind"));
    _cleanup_free_ char *d0 = current_driver(DGPU);
    assert_string_equal(d0, "nvidia"); /* released although the other one failed */
    strv_free(k.writes);
}

static void test_claim_file_round_trip_and_plan_keeps_recorded_drivers(void **state)
{
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_claim_ gpu_claim c = {0};
    plan(&sys, group12, &c);
    _cleanup_free_ char *text = gpu_claim_format(&c);
    assert_non_null(strstr(text, "\n" DGPU " nvidia\n" AUDIO " snd_hda_intel\n"));
    _cleanup_gpu_claim_ gpu_claim back = {0};
    assert_int_equal(gpu_claim_parse(text, &back, NULL), 0);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.items[1].driver, "snd_hda_intel");

    /* A claim left by a run hyprd did not finish: its drivers win over sysfs's. */
    _cleanup_gpu_claim_ gpu_claim earlier = {0};
    assert_int_equal(gpu_claim_parse(DGPU " -\n", &earlier, NULL), 0);
    _cleanup_gpu_claim_ gpu_claim again = {0};
    assert_int_equal(gpu_claim_plan(&sys, (char *const *)group12, &earlier, &again, NULL), 0);
    assert_null(again.items[0].driver);
    assert_string_equal(again.items[1].driver, "snd_hda_intel");

    static const char *const bad[] = {DGPU " ../../../../etc\n", "01:00.0 nvidia\n", DGPU "\n",
                                      DGPU " nvidia extra\n", DGPU " nvidia\n" DGPU " nvidia\n"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_gpu_claim_ gpu_claim x = {0};
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_int_equal(gpu_claim_parse(bad[i], &x, &err), -EINVAL);
        assert_non_null(strstr(err.message, "is not \"ADDRESS DRIVER\""));
    }

    const char *const gone[] = {"0000:09:00.0", NULL};
    _cleanup_gpu_claim_ gpu_claim y = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(gpu_claim_plan(&sys, (char *const *)gone, NULL, &y, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
}

static void test_check_vfio_group_devices(void **state)
{
    gpu_sysfs sys = {.root = root};
    _cleanup_gpu_claim_ gpu_claim c = {0};
    plan(&sys, group12, &c);
    _cleanup_free_ char *vfio = path_join(tmpdir, "dev-vfio");
    assert_int_equal(mkdir_p(vfio, 0755), 0);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_true(gpu_check_vfio(&sys, &c, vfio, &err) < 0);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, "IOMMU/VFIO is unavailable on this host"));
    assert_non_null(strstr(err.message, "dev-vfio/12"));
    _cleanup_free_ char *node = path_join(vfio, "12");
    assert_int_equal(write_file_atomic(node, "", 0, 0600), 0);
    assert_int_equal(gpu_check_vfio(&sys, &c, vfio, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_normalize),
        cmocka_unit_test(test_pci_ids_parse),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_pci_ids_file_is_read_at_first_lookup),
        T(test_list_gpus_companions_and_fields),
        T(test_list_without_pci_bus_is_empty),
        T(test_status_values),
        T(test_companion_of_boot_vga_is_protected),
        T(test_boot_vga_refused_unless_forced),
        T(test_group_rule),
        T(test_all_takes_every_gpu_but_the_boot_vga),
        T(test_vendor_filter),
        T(test_bind_writes_in_order_and_release_rebinds),
        T(test_release_probes_when_the_driver_is_gone),
        T(test_vfio_ready_and_unbound_devices),
        T(test_bind_failure_names_device_and_file_and_release_undoes),
        T(test_bind_without_vfio_pci_module_fails_clearly),
        T(test_release_goes_on_past_a_failing_device),
        T(test_claim_file_round_trip_and_plan_keeps_recorded_drivers),
        T(test_check_vfio_group_devices),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
