/* Internals shared by the gpu module's files; not for other modules. */
#ifndef HYPR_GPU_PRIVATE_H
#define HYPR_GPU_PRIVATE_H

#include "gpu/gpu.h"

/* What a user does about a missing IOMMU, after "IOMMU/VFIO is unavailable on this host". */
#define GPU_IOMMU_HINT                                                                             \
    "enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on"

static inline const char *gpu_root(const gpu_sysfs *sys)
{
    return sys && sys->root ? sys->root : gpu_sysfs_root();
}

/* "<root>/bus/pci/devices/<address>". Caller frees. */
char *gpu_device_dir(const gpu_sysfs *sys, const char *address);
/* The last component of the symlink <dir>/<name> ("nvidia" for driver, "12" for
 * iommu_group); NULL when there is no such link. Caller frees. */
char *gpu_link_name(const char *dir, const char *name);

#endif
