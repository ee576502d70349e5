/* hypr gpu module: the host's PCI display devices (class 0x03) and the devices
 * sharing their IOMMU groups, as sysfs shows them; their names from pci.ids; and
 * handing whole IOMMU groups to vfio-pci for passthrough, and back.
 *
 * Everything reads and writes under a sysfs root ($HYPR_SYSFS_ROOT, else /sys), so
 * tests run against a fake tree. The module keeps no state: which VM holds a
 * device and the drivers to give it back to (a gpu_claim) are the caller's to
 * keep; the daemon writes them to <run-dir>/<vm-id>.gpu before the first sysfs
 * write, so a crash never leaves a device on vfio-pci for good.
 *
 * What gpu_bind() writes, per device of the claim, in order:
 *   "vfio-pci"  > <dev>/driver_override
 *   ADDRESS     > <dev>/driver/unbind          (only when a driver is bound)
 *   ADDRESS     > <root>/bus/pci/drivers_probe  then waits for <dev>/driver -> vfio-pci
 * and gpu_release(), per device in reverse order:
 *   "\n"        > <dev>/driver_override         (clears it)
 *   ADDRESS     > <dev>/driver/unbind          (when bound to another driver)
 *   ADDRESS     > <root>/bus/pci/drivers/<original>/bind, or drivers_probe when that
 *                 driver has no bind file; then waits for <dev>/driver -> original
 * A device that was on vfio-pci before (status vfio-ready) is left alone by both. */
#ifndef HYPR_GPU_H
#define HYPR_GPU_H

#include "common/common.h"

#define GPU_VFIO_DRIVER  "vfio-pci"
#define GPU_PCI_IDS_PATH "/usr/share/misc/pci.ids" /* Debian's pci.ids package */
#define GPU_VFIO_DEV_DIR "/dev/vfio"
#define GPU_SETTLE_MS    5000 /* how long a driver change may take to show in sysfs */

/* ---- pci.ids ------------------------------------------------------------------ */

typedef struct gpu_ids gpu_ids;
/* A handle on the pci.ids file at path (NULL: $HYPR_PCI_IDS, else GPU_PCI_IDS_PATH),
 * read and parsed at its first lookup. A missing or unreadable file gives no names. */
gpu_ids *gpu_ids_new(const char *path);
/* Parses pci.ids text (copied). Never fails: lines it cannot read are skipped. */
gpu_ids *gpu_ids_parse(const char *data, size_t len);
/* Names, or NULL when unknown. They live as long as ids. Not thread-safe. */
const char *gpu_ids_vendor(gpu_ids *ids, unsigned vendor);
const char *gpu_ids_device(gpu_ids *ids, unsigned vendor, unsigned device);
void gpu_ids_free(gpu_ids *ids);
DEFINE_CLEANUP_FUNC(gpu_ids, gpu_ids_free)
#define _cleanup_gpu_ids_ _cleanup_(gpu_ids_freep)

/* ---- sysfs access ------------------------------------------------------------- */

/* Where sysfs is and how it is changed. A NULL gpu_sysfs or NULL fields mean the
 * defaults. Tests pass a write that records each write and plays the kernel's part
 * (moving the fake tree's driver links). */
typedef struct gpu_sysfs {
    const char *root; /* NULL: gpu_sysfs_root() */
    /* Writes value to the existing file path; 0 or -errno. NULL: open(O_WRONLY|O_TRUNC)
     * and write(2). */
    int (*write)(void *ud, const char *path, const char *value);
    void *ud;
    int settle_ms; /* 0: GPU_SETTLE_MS */
} gpu_sysfs;

/* $HYPR_SYSFS_ROOT when set, else "/sys". */
const char *gpu_sysfs_root(void);

/* "0000:01:00.0" or "01:00.0" (domain 0000), any case -> "0000:01:00.0" (caller
 * frees); NULL when s is not a PCI address. */
char *gpu_address_normalize(const char *s);

/* ---- devices ------------------------------------------------------------------ */

typedef struct gpu_device {
    char *address;     /* "0000:01:00.0" */
    char *class_id;    /* "0x030000" */
    char *vendor_id;   /* "0x10de" */
    char *device_id;   /* "0x2204" */
    char *vendor;      /* from pci.ids; NULL when unknown */
    char *device;      /* from pci.ids; NULL when unknown */
    char *driver;      /* the bound driver; NULL when none */
    char *iommu_group; /* "12"; NULL without IOMMU group (no IOMMU, or it is off) */
    int numa_node;     /* -1 when unknown */
    bool boot_vga;     /* the firmware's console: the host's display */
    bool display;      /* class 0x03; false for a device that shares a GPU's IOMMU group */
    char **group;      /* every device of its IOMMU group, itself included, sorted; NULL
                          without group */
} gpu_device;

typedef struct gpu_list {
    gpu_device *devices; /* sorted by address */
    size_t n;
} gpu_list;

/* The display devices under <root>/bus/pci/devices and every device that shares an
 * IOMMU group with one. ids may be NULL (no names). No PCI bus in the tree gives
 * an empty list. */
int gpu_scan(const gpu_sysfs *sys, gpu_ids *ids, gpu_list *out, hypr_error *err);
void gpu_list_clear(gpu_list *l);
static inline void gpu_list_clearp(gpu_list *l)
{
    gpu_list_clear(l);
}
#define _cleanup_gpu_list_ _cleanup_(gpu_list_clearp)
/* The device at a normalized address, or NULL. */
const gpu_device *gpu_list_find(const gpu_list *l, const char *address);

typedef enum gpu_status {
    GPU_AVAILABLE,  /* on its own driver (or none): hypr can take it */
    GPU_VFIO_READY, /* already on vfio-pci */
    GPU_IN_USE,     /* a VM holds it */
    GPU_BOOT_VGA,   /* it, or a device of its IOMMU group, is the boot VGA device */
} gpu_status;
/* held: whether a VM holds the device. */
gpu_status gpu_device_status(const gpu_list *l, const gpu_device *dev, bool held);
/* "available", "vfio-ready", "in-use", "boot-vga" (the API's words). */
const char *gpu_status_name(gpu_status s);

/* ---- what a VM asks for ----------------------------------------------------------- */

typedef struct gpu_request {
    const char *address; /* a PCI address, or "all" (or NULL/"" with a vendor): every
                            display device but the boot VGA */
    const char *vendor;  /* NULL/"", or only GPUs whose vendor id ("10de", "0x10de") or
                            pci.ids vendor name (a part of it, any case) matches */
    bool force;          /* the boot VGA device may be taken */
    /* The VM that holds a device (its name), or NULL; held_by itself may be NULL. */
    const char *(*held_by)(void *ud, const char *address);
    void *ud;
} gpu_request;

/* The devices to pass through: the whole IOMMU group of each GPU asked for,
 * sorted, each once. Errors: INVALID_ARGUMENT (not an address), NOT_FOUND (no such
 * GPU), FAILED_PRECONDITION (no IOMMU group: VFIO is unavailable; the boot VGA device
 * without force; a device of the group held by a VM). */
int gpu_select(const gpu_list *l, const gpu_request *req, char ***out, hypr_error *err);

/* ---- vfio-pci and back -------------------------------------------------------------- */

typedef struct gpu_binding {
    char *address;
    char *driver; /* its driver before hypr took it; NULL when it had none */
} gpu_binding;

/* The devices a VM holds and where they go back to. */
typedef struct gpu_claim {
    gpu_binding *items;
    size_t n;
} gpu_claim;
void gpu_claim_clear(gpu_claim *c);
static inline void gpu_claim_clearp(gpu_claim *c)
{
    gpu_claim_clear(c);
}
#define _cleanup_gpu_claim_ _cleanup_(gpu_claim_clearp)
bool gpu_claim_has(const gpu_claim *c, const char *address);

/* The claim for taking addresses: each device's current driver, except those
 * already in earlier (may be NULL: a claim left by an interrupted run), whose
 * recorded driver is kept. NOT_FOUND for a device that is not in sysfs. */
int gpu_claim_plan(const gpu_sysfs *sys, char *const *addresses, const gpu_claim *earlier,
                   gpu_claim *out, hypr_error *err);
/* One "ADDRESS DRIVER" line per device ("-": none), after a comment line. Caller frees. */
char *gpu_claim_format(const gpu_claim *c);
/* The inverse; INVALID_ARGUMENT naming the bad line (the file drives sysfs writes). */
int gpu_claim_parse(const char *text, gpu_claim *out, hypr_error *err);

/* Hands every device of c to vfio-pci (see the top of this file). Stops at the
 * first error, which names the device and the file; gpu_release() then undoes
 * what was done. */
int gpu_bind(const gpu_sysfs *sys, const gpu_claim *c, hypr_error *err);
/* Gives every device of c back to its driver. Goes on past a device that fails
 * and returns the first error. */
int gpu_release(const gpu_sysfs *sys, const gpu_claim *c, hypr_error *err);
/* After gpu_bind: the VFIO group device <vfio_dir>/<group> of every device
 * (vfio_dir NULL: /dev/vfio) exists, or FAILED_PRECONDITION saying VFIO is unavailable. */
int gpu_check_vfio(const gpu_sysfs *sys, const gpu_claim *c, const char *vfio_dir, hypr_error *err);

#endif
