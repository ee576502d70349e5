/* kestrel: copies the image's content of a directory into a fresh volume
 * mounted over it (x-populate). The source is a directory fd opened before the
 * mount: it still sees the image's directory under the new mount. Everything
 * goes through *at() calls relative to directory fds with AT_SYMLINK_NOFOLLOW /
 * O_NOFOLLOW, so a symlink in the image is copied as a symlink and never
 * followed out of the tree. */
#include "populate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each level holds three fds (source, destination, the DIR stream); a guest has
 * 1024. Deeper trees than this are not real images. */
#define POPULATE_MAX_DEPTH 256
#define COPY_CHUNK         (64u << 10)

typedef struct copy_ctx {
    char *path; /* relative path of the entry being copied, for messages */
    size_t len, cap;
    char *why;
    size_t why_len;
    char *buf; /* COPY_CHUNK bytes, shared by every file */
} copy_ctx;

static int fail(copy_ctx *c, int r, const char *what)
{
    if (c->why && c->why_len)
        snprintf(c->why, c->why_len, "%s %s: %s", what, c->len ? c->path : ".", strerror(-r));
    return r;
}

/* Appends "/name" (or "name" at the top) to c->path; returns the old length. */
static int path_push(copy_ctx *c, const char *name, size_t *old)
{
    size_t n = strlen(name), need = c->len + 1 + n + 1;
    if (need > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < need)
            cap *= 2;
        char *p = realloc(c->path, cap);
        if (!p)
            return -ENOMEM;
        c->path = p;
        c->cap = cap;
    }
    *old = c->len;
    if (c->len)
        c->path[c->len++] = '/';
    memcpy(c->path + c->len, name, n + 1);
    c->len += n;
    return 0;
}

static void path_pop(copy_ctx *c, size_t old)
{
    c->len = old;
    if (c->path)
        c->path[old] = 0;
}

static const struct timespec *times_of(const struct stat *st, struct timespec ts[2])
{
    ts[0] = st->st_atim;
    ts[1] = st->st_mtim;
    return ts;
}

/* Owner first: chown clears setuid/setgid, the chmod after it puts them back. */
static int apply_meta_fd(copy_ctx *c, int fd, const struct stat *st)
{
    struct timespec ts[2];
    if (fchown(fd, st->st_uid, st->st_gid) < 0)
        return fail(c, -errno, "chown");
    if (fchmod(fd, st->st_mode & 07777) < 0)
        return fail(c, -errno, "chmod");
    if (futimens(fd, times_of(st, ts)) < 0)
        return fail(c, -errno, "set times of");
    return 0;
}

static int apply_meta_at(copy_ctx *c, int dfd, const char *name, const struct stat *st)
{
    struct timespec ts[2];
    if (fchownat(dfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(c, -errno, "chown");
    /* A symlink's mode is not its own (and cannot be changed on Linux). */
    if (!S_ISLNK(st->st_mode) && fchmodat(dfd, name, st->st_mode & 07777, 0) < 0)
        return fail(c, -errno, "chmod");
    if (utimensat(dfd, name, times_of(st, ts), AT_SYMLINK_NOFOLLOW) < 0)
        return fail(c, -errno, "set times of");
    return 0;
}

static int copy_file(copy_ctx *c, int sdfd, int ddfd, const char *name, const struct stat *st)
{
    int in = openat(sdfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (in < 0)
        return fail(c, -errno, "open");
    int out = openat(ddfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        int r = -errno;
        close(in);
        return fail(c, r, "create");
    }
    int r = 0;
    for (;;) {
        ssize_t n = read(in, c->buf, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = fail(c, -errno, "read");
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, c->buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                r = fail(c, -errno, "write");
                break;
            }
            off += w;
        }
        if (r < 0)
            break;
    }
    if (r == 0)
        r = apply_meta_fd(c, out, st);
    close(in);
    if (close(out) < 0 && r == 0)
        r = fail(c, -errno, "write");
    return r;
}

static int copy_symlink(copy_ctx *c, int sdfd, int ddfd, const char *name, const struct stat *st)
{
    size_t cap = st->st_size > 0 ? (size_t)st->st_size + 1 : 256;
    for (;;) {
        char *target = malloc(cap);
        if (!target)
            return fail(c, -ENOMEM, "readlink");
        ssize_t n = readlinkat(sdfd, name, target, cap);
        if (n < 0) {
            int r = -errno;
            free(target);
            return fail(c, r, "readlink");
        }
        if ((size_t)n < cap) {
            target[n] = 0;
            int r = symlinkat(target, ddfd, name) < 0 ? -errno : 0;
            free(target);
            if (r < 0)
                return fail(c, r, "symlink");
            return apply_meta_at(c, ddfd, name, st);
        }
        free(target); /* grew since the stat */
        cap *= 2;
    }
}

static int copy_dir(copy_ctx *c, int sdfd, int ddfd, int depth);

static int copy_entry(copy_ctx *c, int sdfd, int ddfd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(sdfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(c, -errno, "stat");
    switch (st.st_mode & S_IFMT) {
    case S_IFREG:
        return copy_file(c, sdfd, ddfd, name, &st);
    case S_IFLNK:
        return copy_symlink(c, sdfd, ddfd, name, &st);
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
        if (mknodat(ddfd, name, (st.st_mode & S_IFMT) | 0600, st.st_rdev) < 0)
            return fail(c, -errno, "mknod");
        return apply_meta_at(c, ddfd, name, &st);
    case S_IFDIR: {
        if (depth >= POPULATE_MAX_DEPTH)
            return fail(c, -ELOOP, "copy");
        if (mkdirat(ddfd, name, 0700) < 0)
            return fail(c, -errno, "mkdir");
        int s = openat(sdfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s < 0)
            return fail(c, -errno, "open");
        int d = openat(ddfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d < 0) {
            int r = -errno;
            close(s);
            return fail(c, r, "open");
        }
        int r = copy_dir(c, s, d, depth + 1);
        /* After the content: creating entries would move the mtime again. */
        if (r == 0)
            r = apply_meta_fd(c, d, &st);
        close(s);
        close(d);
        return r;
    }
    default:
        return fail(c, -EOPNOTSUPP, "copy");
    }
}

static int copy_dir(copy_ctx *c, int sdfd, int ddfd, int depth)
{
    /* fdopendir takes the fd over; the dup keeps the caller's (and its offset
     * is shared, so read from the start explicitly). */
    int fd = dup(sdfd);
    if (fd < 0)
        return fail(c, -errno, "open");
    DIR *dir = fdopendir(fd);
    if (!dir) {
        int r = -errno;
        close(fd);
        return fail(c, r, "open");
    }
    rewinddir(dir);
    int r = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (!de) {
            if (errno)
                r = fail(c, -errno, "read directory");
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t old;
        if ((r = path_push(c, de->d_name, &old)) < 0) {
            r = fail(c, r, "copy");
            break;
        }
        r = copy_entry(c, sdfd, ddfd, de->d_name, depth);
        if (r < 0)
            break; /* c->path names the failure */
        path_pop(c, old);
    }
    closedir(dir);
    return r;
}

int populate_dir_is_empty(int dfd)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        int r = -errno;
        close(fd);
        return r;
    }
    int empty = 1;
    while (empty == 1) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (!de) {
            if (errno)
                empty = -errno;
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (strcmp(de->d_name, "lost+found") == 0) {
            int lf = openat(dfd, "lost+found", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int inner = lf >= 0 ? populate_dir_is_empty(lf) : 0;
            if (lf >= 0)
                close(lf);
            if (inner == 1)
                continue;
        }
        empty = 0;
    }
    closedir(dir);
    return empty;
}

int populate_copy_tree(int src_dfd, int dst_dfd, char *why, size_t why_len)
{
    copy_ctx c = {.why = why, .why_len = why_len};
    if (why && why_len)
        why[0] = 0;
    c.buf = malloc(COPY_CHUNK);
    if (!c.buf)
        return fail(&c, -ENOMEM, "copy");
    struct stat st;
    int r = fstat(src_dfd, &st) < 0 ? fail(&c, -errno, "stat") : 0;
    if (r == 0)
        r = copy_dir(&c, src_dfd, dst_dfd, 0);
    if (r == 0)
        r = apply_meta_fd(&c, dst_dfd, &st);
    free(c.buf);
    free(c.path);
    return r;
}
