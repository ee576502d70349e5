"""GPU passthrough against a fake sysfs tree (no machine here has an IOMMU or
/dev/vfio): hyprd runs with HYPR_SYSFS_ROOT pointing at a tree this test builds,
and a thread plays the kernel's part in it (a write to a driver's unbind file
drops the device's driver link, drivers_probe and bind make one), so what hyprd
writes is checked by its effect, as on a real host. No VM boots: a run with a GPU
fails before the hypervisor starts, since /dev/vfio/<group> does not exist."""

import json
import os
import re
import threading
import time

import pytest

from conftest import import_busybox, wait_for
from test_vms import Host

IGPU = "0000:00:02.0"   # Intel, the boot VGA device, IOMMU group 0
DGPU = "0000:01:00.0"   # NVIDIA, IOMMU group 12 ...
AUDIO = "0000:01:00.1"  # ... with its HDMI audio function
NOGRP = "0000:02:00.0"  # AMD, no IOMMU group
NIC = "0000:03:00.0"    # not a display device

PCI_IDS = """\
8086  Intel Corporation
\t3e92  CoffeeLake-S GT2 [UHD Graphics 630]
10de  NVIDIA Corporation
\t2204  GA102 [GeForce RTX 3090]
\t1aef  GA102 High Definition Audio Controller
C 03  Display controller
"""

DEVICES = [
    # address, class, vendor, device, driver, IOMMU group, boot_vga, NUMA node
    (IGPU, "0x030000", "0x8086", "0x3e92", "i915", "0", "1", "-1"),
    (DGPU, "0x030000", "0x10de", "0x2204", "nvidia", "12", "0", "1"),
    (AUDIO, "0x040300", "0x10de", "0x1aef", "snd_hda_intel", "12", None, "1"),
    (NOGRP, "0x038000", "0x1002", "0x73bf", "amdgpu", None, "0", "-1"),
    (NIC, "0x020000", "0x8086", "0x1533", "igb", "13", None, "-1"),
]
NATIVE = {d[0]: d[4] for d in DEVICES}


class FakeSysfs:
    """A sysfs tree laid out like the kernel's, and the kernel's part in it."""

    def __init__(self, root):
        self.root = str(root)
        self.writes = []  # (file below root, value), in the order the kernel saw them
        self._stop = threading.Event()
        self._thread = None
        for addr, cls, vendor, device, driver, group, boot_vga, numa in DEVICES:
            d = self.path("devices/pci0000:00", addr)
            os.makedirs(d)
            for name, value in (("class", cls), ("vendor", vendor), ("device", device),
                                ("numa_node", numa), ("driver_override", "(null)")):
                self.put(os.path.join(d, name), value + "\n")
            if boot_vga is not None:
                self.put(os.path.join(d, "boot_vga"), boot_vga + "\n")
            self.symlink("../../../devices/pci0000:00/" + addr, "bus/pci/devices", addr)
            self.add_driver(driver)
            self.link_driver(addr, driver)
            if group is not None:
                self.symlink("../../../kernel/iommu_groups/" + group,
                             "devices/pci0000:00", addr, "iommu_group")
                self.symlink("../../../../devices/pci0000:00/" + addr,
                             "kernel/iommu_groups", group, "devices", addr)
        self.add_driver("vfio-pci")
        self.put(self.path("bus/pci/drivers_probe"), "")

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @staticmethod
    def put(path, text):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def symlink(self, target, *parts):
        p = self.path(*parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.symlink(target, p)

    def add_driver(self, name):
        for f in ("bind", "unbind"):
            p = self.path("bus/pci/drivers", name, f)
            if not os.path.exists(p):
                self.put(p, "")

    def driver(self, addr):
        link = self.path("devices/pci0000:00", addr, "driver")
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    def link_driver(self, addr, driver):
        self.symlink("../../../bus/pci/drivers/" + driver, "devices/pci0000:00", addr, "driver")

    def override(self, addr):
        with open(self.path("devices/pci0000:00", addr, "driver_override")) as f:
            return f.read()

    # ---- the kernel ------------------------------------------------------------------
    def _take(self, rel):
        """The address written to a control file, which then empties (once whole)."""
        p = self.path(rel)
        with open(p) as f:
            value = f.read()
        if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\n?", value):
            return None  # nothing, or a write still under way
        open(p, "w").close()
        value = value.strip()
        self.writes.append((rel, value))
        return value

    def _step(self):
        drivers = self.path("bus/pci/drivers")
        for drv in sorted(os.listdir(drivers)):
            addr = self._take("bus/pci/drivers/%s/unbind" % drv)
            if addr and self.driver(addr) == drv:
                os.unlink(self.path("devices/pci0000:00", addr, "driver"))
            addr = self._take("bus/pci/drivers/%s/bind" % drv)
            if addr and self.driver(addr) is None:
                self.link_driver(addr, drv)
        addr = self._take("bus/pci/drivers_probe")
        if addr and self.driver(addr) is None:
            ovr = self.override(addr).strip()
            if ovr and ovr != "(null)":
                if os.path.isdir(self.path("bus/pci/drivers", ovr)):
                    self.link_driver(addr, ovr)
            else:
                self.link_driver(addr, NATIVE[addr])

    def _run(self):
        while not self._stop.is_set():
            self._step()
            time.sleep(0.002)

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)


@pytest.fixture
def sysfs(short_tmp):
    fake = FakeSysfs(short_tmp / "sys").start()
    yield fake
    fake.stop()


@pytest.fixture
def gpu_env(short_tmp, sysfs):
    ids = short_tmp / "pci.ids"
    ids.write_text(PCI_IDS)
    return {"HYPR_SYSFS_ROOT": sysfs.root, "HYPR_PCI_IDS": str(ids)}


@pytest.fixture
def gpu_host(daemons, gpu_env):
    return Host(daemons.start(env=gpu_env))


def rows(out):
    """The table's rows as lists of cells (columns are 3+ spaces apart)."""
    lines = out.rstrip("\n").split("\n")
    return [re.split(r"\s{3,}", line.strip()) for line in lines]


def assert_untouched(sysfs):
    for addr, *_ in DEVICES:
        assert sysfs.driver(addr) == NATIVE[addr], addr
        assert sysfs.override(addr) == "(null)\n", addr
    assert sysfs.writes == []


# ---- gpu list ------------------------------------------------------------------------

def test_gpu_list_table(gpu_host, sysfs):
    """`hypr gpu list`: the display devices and the audio function sharing the NVIDIA
    GPU's IOMMU group, with pci.ids names, driver, group, NUMA node and status; the
    NIC is not listed."""
    p = gpu_host.ok("gpu", "list")
    table = rows(p.out)
    assert table[0] == ["ADDRESS", "VENDOR", "DEVICE", "DRIVER", "IOMMU GROUP", "NUMA",
                        "STATUS"], p.out
    assert table[1:] == [
        [IGPU, "Intel Corporation", "CoffeeLake-S GT2 [UHD Graphics 630]", "i915", "0", "-",
         "boot-vga (protected)"],
        [DGPU, "NVIDIA Corporation", "GA102 [GeForce RTX 3090]", "nvidia", "12", "1",
         "available"],
        [AUDIO, "NVIDIA Corporation", "GA102 High Definition Audio Controller",
         "snd_hda_intel", "12", "1", "available"],
        [NOGRP, "0x1002", "0x73bf", "amdgpu", "-", "-", "available"],
    ], p.out
    assert_untouched(sysfs)


def test_gpu_list_json_and_in_use(gpu_host, busybox_rootfs):
    """`hypr gpu list --format json` has every field; a device a VM holds (its claim
    in the run dir, as while it runs) shows in-use with the VM, in both formats, and
    another run asking for its group is refused naming that VM."""
    p = gpu_host.ok("gpu", "list", "--format", "json")
    gpus = {g["Address"]: g for g in json.loads(p.out)}
    assert sorted(gpus) == [IGPU, DGPU, AUDIO, NOGRP]
    assert gpus[DGPU] == {
        "Address": DGPU, "ClassId": "0x030000", "VendorId": "0x10de",
        "Vendor": "NVIDIA Corporation", "DeviceId": "0x2204",
        "Device": "GA102 [GeForce RTX 3090]", "Driver": "nvidia", "IommuGroup": "12",
        "NumaNode": 1, "Status": "available", "BootVga": False, "GroupDevices": [AUDIO],
    }
    assert gpus[IGPU]["Status"] == "boot-vga" and gpus[IGPU]["BootVga"] is True
    assert gpus[NOGRP]["IommuGroup"] == "" and gpus[NOGRP]["GroupDevices"] == []

    import_busybox(gpu_host.daemon, busybox_rootfs)
    vm = gpu_host.daemon.call("CreateVM", config={"image": "busybox:latest", "name": "holder"}).vm
    with open(os.path.join(gpu_host.run_dir, vm.id + ".gpu"), "w") as f:
        f.write("%s nvidia\n%s snd_hda_intel\n" % (DGPU, AUDIO))
    p = gpu_host.ok("gpu", "list")
    status = {r[0]: r[-1] for r in rows(p.out)[1:]}
    assert status[DGPU] == status[AUDIO] == "in-use by holder", p.out
    gpus = {g["Address"]: g for g in json.loads(gpu_host.ok("gpu", "list", "--format",
                                                            "json").out)}
    assert gpus[AUDIO]["Status"] == "in-use"
    assert gpus[AUDIO]["VmId"] == vm.id and gpus[AUDIO]["VmName"] == "holder"

    p = gpu_host.hypr("run", "--gpu", DGPU, "busybox:latest", "true")
    assert p.returncode == 125, (p.out, p.err)
    assert "GPU %s is in use by VM holder (%s)" % (DGPU, vm.id[:12]) in p.err, p.err
    names = [v["Names"] for v in gpu_host.ps_json()]
    assert names == ["holder"], names
    os.unlink(os.path.join(gpu_host.run_dir, vm.id + ".gpu"))


# ---- refusals --------------------------------------------------------------------------

@pytest.mark.parametrize("addr,message", [
    (IGPU, IGPU + " is the boot VGA device (the host's display); use --gpu-force"),
    (NOGRP, "GPU %s has no IOMMU group: IOMMU/VFIO is unavailable on this host" % NOGRP),
    (NIC, "no GPU at PCI address %s" % NIC),
    ("gpu0", 'invalid GPU "gpu0": expected a PCI address like 0000:01:00.0, or all'),
])
def test_run_gpu_refused_creates_nothing(gpu_host, sysfs, busybox_rootfs, addr, message):
    """`hypr run --gpu X` for the boot VGA device (without --gpu-force), a GPU without
    IOMMU group, a device that is no GPU, or no address at all: exit 125 with the
    reason, no VM created, and sysfs left alone."""
    import_busybox(gpu_host.daemon, busybox_rootfs)
    p = gpu_host.hypr("run", "--gpu", addr, "busybox:latest", "true")
    assert p.returncode == 125, (p.out, p.err)
    assert message in p.err, p.err
    assert gpu_host.ps_json() == []
    assert_untouched(sysfs)


def test_run_gpu_flags_in_help_and_force_needs_gpu(gpu_host):
    """`hypr run --help` documents --gpu and --gpu-force; --gpu-force alone is a usage
    error."""
    p = gpu_host.ok("run", "--help")
    assert re.search(r"--gpu string\s+Pass a GPU and its IOMMU group through", p.out), p.out
    assert re.search(r"--gpu-force\s+Allow --gpu to take the boot VGA device", p.out), p.out
    p = gpu_host.hypr("run", "--gpu-force", "busybox:latest")
    assert p.returncode == 125 and "--gpu-force needs --gpu" in p.err, (p.returncode, p.err)


# ---- binding and giving back ------------------------------------------------------------

def test_run_gpu_without_vfio_fails_and_gives_the_group_back(gpu_host, sysfs, busybox_rootfs):
    """`hypr run --gpu 0000:01:00.0`: hyprd binds the GPU and its audio function to
    vfio-pci, finds no /dev/vfio here, fails the run with that reason, and gives both
    back to their drivers (driver_override cleared) before the run returns."""
    assert not os.path.exists("/dev/vfio/12"), "this host has VFIO: the test expects none"
    import_busybox(gpu_host.daemon, busybox_rootfs)
    p = gpu_host.hypr("run", "--gpu", DGPU, "busybox:latest", "true")
    assert p.returncode == 125, (p.out, p.err)
    assert "/dev/vfio/12 does not exist" in p.err, p.err
    assert "IOMMU/VFIO is unavailable on this host" in p.err, p.err
    # The kernel saw the group go to vfio-pci, then back, device by device.
    assert sysfs.writes == [
        ("bus/pci/drivers/nvidia/unbind", DGPU),
        ("bus/pci/drivers_probe", DGPU),
        ("bus/pci/drivers/snd_hda_intel/unbind", AUDIO),
        ("bus/pci/drivers_probe", AUDIO),
        ("bus/pci/drivers/vfio-pci/unbind", AUDIO),
        ("bus/pci/drivers/snd_hda_intel/bind", AUDIO),
        ("bus/pci/drivers/vfio-pci/unbind", DGPU),
        ("bus/pci/drivers/nvidia/bind", DGPU),
    ], sysfs.writes
    for addr in (DGPU, AUDIO):
        assert sysfs.driver(addr) == NATIVE[addr], addr
        assert sysfs.override(addr) == "\n", addr
    assert [f for f in os.listdir(gpu_host.run_dir) if f.endswith(".gpu")] == []
    status = {r[0]: r[-1] for r in rows(gpu_host.ok("gpu", "list").out)[1:]}
    assert status[DGPU] == status[AUDIO] == "available"
    vms = gpu_host.ps_json()
    assert [v["State"] for v in vms] == ["failed"], vms
    assert "giving its GPUs back failed" not in gpu_host.daemon.log_text()


def test_devices_of_a_vm_that_died_with_hyprd_are_given_back_at_start(daemons, gpu_env, sysfs):
    """A claim left in the run dir by a hyprd that died while its VM held the GPU (the
    devices still on vfio-pci): the next hyprd gives them back before it serves."""
    for addr in (DGPU, AUDIO):
        os.unlink(sysfs.path("devices/pci0000:00", addr, "driver"))
        sysfs.link_driver(addr, "vfio-pci")
        sysfs.put(sysfs.path("devices/pci0000:00", addr, "driver_override"), "vfio-pci\n")
    d = daemons.make(env=gpu_env)
    claim = os.path.join(d.run_dir, "ab" * 32 + ".gpu")
    with open(claim, "w") as f:
        f.write("# left by a hyprd that died\n%s nvidia\n%s snd_hda_intel\n" % (DGPU, AUDIO))
    d.start()
    for addr in (DGPU, AUDIO):
        assert sysfs.driver(addr) == NATIVE[addr], addr
        assert sysfs.override(addr) == "\n", addr
    assert not os.path.exists(claim)
    wait_for(lambda: "giving back the GPUs of VM abababababab" in d.log_text(), 5,
             "the give-back in hyprd's log")
