/* hypr per-VM runtime manifest: written by hyprd, read by kestrel.
 *
 * Shared verbatim by both sides; depends only on libc. The host puts it at
 * MANIFEST_PATH inside a small cpio appended to the initramfs.
 *
 * Format (version 1): UTF-8/ASCII text, one entry per line ('\n'):
 *   hypr-manifest 1            first non-comment line, required
 *   # comment                  blank lines and '#' lines are ignored
 *   KEY TOKEN...               key, then tokens separated by single spaces
 * A token is either bare (printable ASCII except '"' and '\\', no spaces) or a
 * double-quoted C string with the escapes \\ \" \n \t \r \a \b \f \v \e \xHH and
 * \NNN (octal); \x00 is refused. The encoder quotes every string and escapes
 * every byte outside 0x20..0x7e, so the file is plain ASCII.
 *
 * Keys (lists repeat the key, one element per line, in order):
 *   hostname S            workdir S             user S ("uid[:gid]" or "name[:group]")
 *   entrypoint S (list)   cmd S (list)          image_env "K=V" (list)   env "K=V" (list)
 *   restart S             "no" | "always" | "unless-stopped" | "on-failure[:max]"
 *   stop_timeout N        seconds before SIGKILL after a stop request (default 10)
 *   stop_signal N         signal number a stop request sends the workload (default 15)
 *   host S (list)         "IP NAME": a line of /etc/hosts after the VM's own (--add-host)
 *   mode S                "run" (default) | "build" (no workload; exec sessions only)
 *   attach N              1: the workload waits for the host to start it as an exec
 *                         session with the MAIN flag (run -it: its terminal and stdin)
 *   ip S ("10.88.0.5/16") gateway S           dns S (list)    interface S (default eth0)
 *   mac S                 MAC ("02:ab:cd:ef:01:23", any case) of the primary
 *                         interface (the one ip/gateway configure): it is found by
 *                         hardware address, whatever its name; absent = by
 *                         interface (eth0)
 *   netif MAC CIDR        (list) a further interface, found by MAC, given the
 *                         address/netmask and brought up; no gateway (only the
 *                         subnet's on-link route)
 *   volume SRC DST FSTYPE OPTS   (list; FSTYPE: virtiofs, 9p, tmpfs, bind or ext4,
 *                                 anything else is a parse error. OPTS: comma list of
 *                                 ro,rw,nosuid,nodev,noexec,noatime,relatime,bind,rbind
 *                                 plus fs data passed through, "" for none; options
 *                                 starting "x-" are kestrel's and never reach mount(2):
 *                                 x-populate = copy the image's content of DST into
 *                                 the volume when the volume is empty (Docker's rule).
 *                                 SRC: virtiofs = the tag, 9p = the mount tag, tmpfs =
 *                                 any name, bind = a path in the root, ext4 = a block
 *                                 device path or "serial:NAME")
 *   readonly_root N       1: the root filesystem is remounted read-only once the
 *                         guest is set up (--read-only); volumes, /tmp, /run and
 *                         /dev/shm stay writable. Default 0
 *   rootfs S (default /dev/vda)  rootfs_type S (default squashfs)
 *   upper S               block device for a persistent overlay upper (ext4), a
 *                         path ("/dev/vdb") or "serial:NAME" (the virtio-blk disk
 *                         whose /sys/block/X/serial is NAME); none = tmpfs
 *   module S (list)       extra per-VM .ko files, loaded after /hypr/modules.order
 *   metrics_interval_ms N (default 5000, 0 = off)
 * Unknown keys are ignored (forward compatibility). Scalar keys given twice: the
 * last one wins. Required: the version line, and in run mode a non-empty
 * entrypoint or cmd. A version above MANIFEST_VERSION is refused. */
#ifndef KESTREL_MANIFEST_H
#define KESTREL_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MANIFEST_PATH     "/hypr/manifest"
#define MODULES_ORDER     "/hypr/modules.order"
#define MANIFEST_VERSION  1
#define MANIFEST_MAX_SIZE (4u << 20)

typedef enum restart_policy {
    RESTART_NO = 0,
    RESTART_ALWAYS,
    RESTART_ON_FAILURE,
    RESTART_UNLESS_STOPPED,
} restart_policy;

typedef enum manifest_mode {
    MANIFEST_MODE_RUN = 0,
    MANIFEST_MODE_BUILD,
} manifest_mode;

/* A NULL-terminated string vector with its length. */
typedef struct manifest_strv {
    char **v;
    size_t n;
} manifest_strv;

typedef struct manifest_volume {
    char *source;
    char *target;
    char *fstype;
    char *options;
} manifest_volume;

typedef struct manifest_netif {
    char *mac; /* "02:ab:cd:ef:01:23" */
    char *ip;  /* CIDR */
} manifest_netif;

typedef struct kestrel_manifest {
    unsigned version;
    manifest_mode mode;
    char *hostname;
    char *workdir;
    char *user;
    manifest_strv entrypoint;
    manifest_strv cmd;
    manifest_strv image_env;
    manifest_strv env;
    restart_policy restart;
    uint32_t restart_max; /* on-failure:max; 0 = unlimited */
    uint32_t stop_timeout_s;
    uint32_t stop_signal; /* what a stop sends the workload; 0 = SIGTERM */
    uint32_t attach;      /* 1: the host starts the workload (CTL_EXEC_MAIN) */
    char *ip;             /* CIDR */
    char *gateway;
    char *interface;
    char *mac; /* primary interface by MAC; NULL = by interface name */
    manifest_strv dns;
    manifest_strv hosts; /* "IP NAME" lines added to /etc/hosts (--add-host) */
    manifest_netif *netifs;
    size_t n_netifs;
    manifest_volume *volumes;
    size_t n_volumes;
    char *rootfs;
    char *rootfs_type;
    char *upper;
    manifest_strv modules;
    uint32_t metrics_interval_ms;
    uint32_t readonly_root; /* 1: the root is remounted read-only after setup */
} kestrel_manifest;

/* Sets the defaults (what an empty manifest body means). */
void manifest_init(kestrel_manifest *m);
void manifest_free(kestrel_manifest *m);

/* Parses data[0..len). 0, or -EINVAL (malformed; errbuf says which line and why),
 * -EPROTONOSUPPORT (newer version), -EFBIG (above MANIFEST_MAX_SIZE), -ENOMEM.
 * On error *m is left freed/initialised. errbuf may be NULL. */
int manifest_parse(const char *data, size_t len, kestrel_manifest *m, char *errbuf, size_t errlen);
/* Encodes into a malloc'd NUL-terminated text (*out, *out_len). 0, -ENOMEM, or
 * -EINVAL when a value is invalid (e.g. NULL list entry, malformed MAC). */
int manifest_encode(const kestrel_manifest *m, char **out, size_t *out_len);

/* List and string helpers for building a manifest (host side and tests). */
int manifest_strv_push(manifest_strv *v, const char *s);
int manifest_add_volume(kestrel_manifest *m, const char *source, const char *target,
                        const char *fstype, const char *options);
/* Whether a volume line may carry this fstype (virtiofs, 9p, tmpfs, bind, ext4). */
bool manifest_volume_fstype_ok(const char *fstype);
/* 0, or -EINVAL for a bad MAC; -ENOMEM. */
int manifest_add_netif(kestrel_manifest *m, const char *mac, const char *ip);
/* "xx:xx:xx:xx:xx:xx" (hex, any case) -> 6 bytes (out may be NULL). 0 or -EINVAL. */
int manifest_mac_parse(const char *s, uint8_t out[6]);
/* "no", "always", "unless-stopped", "on-failure", "on-failure:N". */
int restart_policy_parse(const char *s, restart_policy *policy, uint32_t *max);
/* Writes the policy the way restart_policy_parse reads it; buf >= 32 bytes. */
void restart_policy_format(restart_policy policy, uint32_t max, char *buf, size_t len);

#endif
