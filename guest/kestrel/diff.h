/* kestrel: the changes of a VM's root filesystem (hypr diff). libc only, so the
 * unit tests run it on the host. */
#ifndef KESTREL_DIFF_H
#define KESTREL_DIFF_H

/* The built-in command an exec session names to get the diff (hypr diff). */
#define KESTREL_DIFF_COMMAND "kestrel:diff"

/* Writes docker diff's lines ("A /path", "C /path", "D /path"; sorted by path) of
 * the overlay upper directory upper_fd over lower directory lower_fd to out_fd
 * (directory fds, O_PATH will do). hidden: NULL-terminated absolute paths that are
 * not the workload's changes (the files and mount points kestrel makes); directories
 * holding only those are not listed either. 0 or -errno. */
int kestrel_diff(int upper_fd, int lower_fd, const char *const *hidden, int out_fd);

#endif
