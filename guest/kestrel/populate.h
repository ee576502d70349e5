/* kestrel: pre-populating a fresh volume from the image (Docker's rule: an
 * EMPTY volume mounted on a directory of the image gets that directory's
 * content first). Libc only, no PID 1 state, so the host's unit tests run it. */
#ifndef KESTREL_POPULATE_H
#define KESTREL_POPULATE_H

#include <stddef.h>

/* 1 when the directory dfd has no entries but "." and ".." (an empty
 * "lost+found", which mkfs.ext4 leaves, does not count), 0 when it has some,
 * -errno. dfd is not moved or closed. */
int populate_dir_is_empty(int dfd);

/* Copies everything under src_dfd into dst_dfd: directories, regular files
 * (hard links become separate files), symlinks, device nodes, fifos and
 * sockets, keeping owner (uid/gid), mode (incl. setuid/setgid/sticky) and
 * atime/mtime; the top directory dst_dfd itself also gets src_dfd's owner,
 * mode and times (the volume looks like the image's directory). Stops at the
 * first failure: -errno, and why names the failing path relative to the
 * top ("copy etc/app.conf: Permission denied"). Neither fd is closed. */
int populate_copy_tree(int src_dfd, int dst_dfd, char *why, size_t why_len);

#endif
