/* hypr volume module: mount specs as Docker's -v, --mount and --tmpfs take them,
 * volume names, and the filesystem helpers of the volume store. Pure C on top of
 * common: no daemon or protobuf knowledge, so the CLI parses with it, the daemon
 * re-validates what gRPC clients send with it, and the compose loader reuses it.
 * Every error is INVALID_ARGUMENT (EINVAL) with a message quoting the offending
 * value, except filesystem errors, which carry their errno. */
#ifndef HYPR_VOLUME_H
#define HYPR_VOLUME_H

#include "common/common.h"

/* Longest volume name: it is a directory name in the volume store (NAME_MAX). */
#define VOLUME_NAME_MAX 255
#define VOLUME_NAME_LEN 64 /* generated names: hex characters */

typedef enum { VOLUME_MOUNT_VOLUME = 0, VOLUME_MOUNT_BIND, VOLUME_MOUNT_TMPFS } volume_mount_type;

typedef struct volume_mount_spec {
    volume_mount_type type;
    char *source; /* volume name or absolute host path; NULL = anonymous volume (type VOLUME)
                     or tmpfs */
    char *target; /* absolute path in the VM, normalised: no trailing '/', no '//', no '.'
                     or '..' components (a '..' component is an error) */
    bool read_only;
    bool create_host_path; /* bind: create the source dir if missing (true for -v, false for
                              --mount, as Docker) */
    bool nocopy;           /* volume: do not pre-populate from the image (volume-nocopy /
                              :nocopy) */
    uint64_t tmpfs_size;   /* bytes; 0 = unlimited/default */
    uint32_t tmpfs_mode;   /* permission bits (<= 07777); 0 = default (01777) */
    char *options;         /* tmpfs: comma-separated mount(2) options from --tmpfs beyond
                              size/mode/ro/rw, each validated (see volume_parse_tmpfs_flag);
                              NULL when none; always NULL for other types */
} volume_mount_spec;

/* Frees the strings and zeroes *m; NULL-safe, idempotent. */
void volume_mount_spec_clear(volume_mount_spec *m);
/* Clears and frees an array of n specs (NULL-safe). */
void volume_mount_specs_free(volume_mount_spec *mounts, size_t n);
static inline void volume_mount_spec_clearp(volume_mount_spec *m)
{
    volume_mount_spec_clear(m);
}
#define _cleanup_mount_spec_ _cleanup_(volume_mount_spec_clearp)

/* ---- the three flags ---------------------------------------------------------------- */

/* -v / --volume: SOURCE:TARGET[:OPTS] or TARGET (an anonymous volume).
 * SOURCE starting with '/' is a bind mount (create_host_path = true, as Docker's -v);
 * otherwise it must be a valid volume name (volume_name_check). A SOURCE containing
 * '/' that is not absolute is an error: the CLI resolves ./ and ../ against its own
 * working directory before calling, so the parser (also run by the daemon) only
 * ever sees absolute host paths. An empty SOURCE (":/x") is an error.
 * OPTS is a comma-separated list, at most one of each group:
 *   ro | rw           read-only or read-write (default rw)
 *   nocopy            named or anonymous volumes only: no pre-population
 *   consistent | cached | delegated   accepted and ignored, as Docker on Linux
 * Refused with a message naming them, since a VM cannot honour them: z, Z
 * (SELinux relabelling) and shared, rshared, slave, rslave, private, rprivate
 * (mount propagation). Anything else is an invalid mode. "TARGET:MODE" (e.g.
 * "/data:ro") is an error, as in Docker. */
int volume_parse_volume_flag(const char *spec, volume_mount_spec *out, hypr_error *err);

/* --mount: Docker's CSV syntax, one record of key[=value] fields; a field may be
 * double-quoted ("target=/a,b"), "" inside quotes is a quote, and a quote anywhere
 * else is an error, as Go's encoding/csv. Newlines are refused (Docker would
 * silently drop what follows one). Keys are case-insensitive:
 *   type=volume|bind|tmpfs            default volume (the value is case-insensitive)
 *   source|src=NAME-OR-ABSOLUTE-PATH  bind: required; volume: optional (anonymous);
 *                                     tmpfs: refused
 *   target|destination|dst=PATH       required
 *   readonly|ro[=BOOL]                BOOL as Go's strconv.ParseBool (1 t T TRUE true
 *                                     True 0 f F FALSE false False)
 *   volume-nocopy[=BOOL]              type=volume only
 *   tmpfs-size=SIZE                   type=tmpfs only; volume_parse_size
 *   tmpfs-mode=OCTAL                  type=tmpfs only; at most 07777
 *   consistency=...                   accepted and ignored, as Docker on Linux
 *   bind-propagation=...              refused (cannot be honoured in a VM)
 * The other keys Docker knows (volume-driver, volume-label, volume-opt,
 * volume-subpath, bind-recursive, bind-nonrecursive, bind-create-src) are refused as
 * unsupported, anything else as an unknown key; each message names the key. A bind
 * mount from --mount does not create its source (create_host_path = false, as Docker). */
int volume_parse_mount_flag(const char *spec, volume_mount_spec *out, hypr_error *err);

/* --tmpfs TARGET[:OPTS]: OPTS comma-separated. size=SIZE (volume_parse_size) and
 * mode=OCTAL go into tmpfs_size / tmpfs_mode, ro / rw into read_only. These are
 * kept, in the order given, in options for the guest's mount(2): exec, noexec,
 * suid, nosuid, dev, nodev, sync, async, dirsync, atime, noatime, diratime,
 * nodiratime, relatime, norelatime, strictatime, nostrictatime, uid=N, gid=N,
 * nr_inodes=N (N decimal). Propagation flags are refused like -v's; anything else
 * is an error naming it. Nothing is ever silently dropped. */
int volume_parse_tmpfs_flag(const char *spec, volume_mount_spec *out, hypr_error *err);

/* A size as Docker's units.RAMInBytes takes it: a decimal number, optionally with a
 * fraction, optionally a space, then an optional binary unit k, m, g, t or p (any
 * case, 1024-based), optionally followed by "i" and/or "b" ("64m", "1.5g", "64MiB",
 * "65536k", "100"). Fractions of a byte are truncated. -EINVAL for anything else
 * (negatives included), -ERANGE beyond INT64_MAX bytes; INVALID_ARGUMENT either way. */
int volume_parse_size(const char *s, uint64_t *out, hypr_error *err);

/* ---- paths, names, sets ------------------------------------------------------------- */

/* A target in the VM: absolute, not "/", no '..' component, no control characters,
 * shorter than PATH_MAX. *out: the normalised copy ("//a/./b/" -> "/a/b"). */
int volume_target_normalize(const char *target, char **out, hypr_error *err);
/* A bind source on the host: the same rules, except that "/" itself is allowed. */
int volume_source_normalize(const char *source, char **out, hypr_error *err);

/* Docker's volume-name rule [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two characters at least),
 * at most VOLUME_NAME_MAX; the message quotes the name and the rule. */
int volume_name_check(const char *name, hypr_error *err);
/* VOLUME_NAME_LEN lowercase hex characters from getrandom() (anonymous volumes).
 * Caller frees; NULL only when the kernel's random source fails. */
char *volume_generate_name(void);

/* The mounts of one VM: at most max of them, no two with the same target (compared
 * normalised: "/data" and "/data/" are the same), each one consistent: a volume's
 * source absent or a valid name, a bind's source present and absolute, a tmpfs
 * without source; options that do not apply to the type (nocopy on a bind,
 * tmpfs_size on a volume, create_host_path on a non-bind, ...) are errors. */
int volume_mounts_check(const volume_mount_spec *mounts, size_t n, size_t max, hypr_error *err);

/* ---- filesystem helpers of the volume store ---------------------------------------- */

/* These walk a tree with openat/fstatat, holding a few descriptors whatever its depth,
 * and never follow a symbolic link inside it: a link is looked at (or unlinked) itself.
 * The directories leading to path are the caller's (the store's own) and are trusted.
 * Blocking: the daemon runs them on its thread pool. */

/* Removes path and everything under it. A symlink anywhere, the top included, is
 * unlinked, never traversed, so nothing outside the tree is touched. A missing path
 * is success. A directory moved while the walk is inside it fails it (-ESTALE). */
int volume_dir_remove(const char *path, hypr_error *err);
/* *bytes: the sum of st_blocks * 512 of path and everything under it, links not
 * followed, each inode counted once (hard links). */
int volume_dir_usage(const char *path, uint64_t *bytes, hypr_error *err);
/* 1 when the directory path has no entries, 0 when it has some, -errno otherwise
 * (-ELOOP or -ENOTDIR when path is a symlink or not a directory). */
int volume_dir_is_empty(const char *path);

#endif
