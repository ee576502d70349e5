/* kestrel: what the VM changed in its root filesystem (hypr diff), read from the
 * overlay's upper directory against the image's lower one, as docker diff prints it:
 * "A /path" added, "C /path" changed, "D /path" deleted (an overlay whiteout),
 * sorted by path. What kestrel itself puts there while it sets the VM up (the
 * /etc files it writes, the mount points of volumes) is the VM's "init layer", as
 * Docker's is: not listed, nor the directories that hold only it. Everything goes
 * through *at() calls relative to directory fds with AT_SYMLINK_NOFOLLOW, so a
 * symlink in the layer is never followed. */
#include "diff.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define DIFF_MAX_DEPTH 256

typedef struct diff_ctx {
    int lower_fd;
    const char *const *hidden;
    char **lines;
    size_t n, cap;
    int err;
} diff_ctx;

static void add_line(diff_ctx *c, char kind, const char *path)
{
    if (c->err)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        char **l = realloc(c->lines, cap * sizeof(*l));
        if (!l) {
            c->err = -ENOMEM;
            return;
        }
        c->lines = l;
        c->cap = cap;
    }
    size_t len = strlen(path);
    char *line = malloc(len + 4);
    if (!line) {
        c->err = -ENOMEM;
        return;
    }
    line[0] = kind;
    line[1] = ' ';
    memcpy(line + 2, path, len);
    line[len + 2] = '\n';
    line[len + 3] = '\0';
    c->lines[c->n++] = line;
}

/* 1: path is one of the hidden ones; 2: it is a directory above one; 0: neither. */
static int hidden_kind(const diff_ctx *c, const char *path)
{
    size_t len = strlen(path);
    int kind = 0;
    for (size_t i = 0; c->hidden && c->hidden[i]; i++) {
        const char *h = c->hidden[i];
        if (strcmp(h, path) == 0)
            return 1;
        if (strncmp(h, path, len) == 0 && h[len] == '/')
            kind = 2;
    }
    return kind;
}

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && major(st->st_rdev) == 0 && minor(st->st_rdev) == 0;
}

static bool is_opaque(int dfd, const char *name)
{
    char v[4];
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v));
    close(fd);
    return n == 1 && v[0] == 'y';
}

/* Lists what is under upper directory dfd (path: its absolute path in the VM, "" for
 * the root); true when it listed anything. */
static bool walk(diff_ctx *c, int dfd, const char *path, bool in_lower, int depth)
{
    if (depth > DIFF_MAX_DEPTH) {
        c->err = -ELOOP;
        return false;
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        c->err = -errno;
        close(dfd);
        return false;
    }
    bool listed = false;
    struct dirent *de;
    while (!c->err && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        size_t plen = strlen(path) + strlen(de->d_name) + 2;
        char *child = malloc(plen);
        if (!child) {
            c->err = -ENOMEM;
            break;
        }
        snprintf(child, plen, "%s/%s", path, de->d_name);
        struct stat st, lst;
        int hk = hidden_kind(c, child);
        if (hk == 1 || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            free(child);
            continue;
        }
        /* Below a new or opaque directory nothing of the lower shows through. */
        bool lower = in_lower && fstatat(c->lower_fd, child + 1, &lst, AT_SYMLINK_NOFOLLOW) == 0;
        if (is_whiteout(&st)) {
            if (lower) { /* a whiteout of nothing is not a change */
                add_line(c, 'D', child);
                listed = true;
            }
            free(child);
            continue;
        }
        size_t mark = c->n;
        add_line(c, lower ? 'C' : 'A', child);
        bool below = false;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                below = walk(c, sub, child,
                             lower && S_ISDIR(lst.st_mode) && !is_opaque(dirfd(d), de->d_name),
                             depth + 1);
        }
        /* A directory that only holds the init layer is not the workload's change. */
        if (hk == 2 && !below && c->n == mark + 1) {
            free(c->lines[mark]);
            c->n = mark;
        } else {
            listed = true;
        }
        free(child);
    }
    closedir(d);
    return listed;
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a + 2, *(char *const *)b + 2);
}

int kestrel_diff(int upper_fd, int lower_fd, const char *const *hidden, int out_fd)
{
    diff_ctx c = {.lower_fd = lower_fd, .hidden = hidden};
    /* A description of our own: readdir's offset is not shared with anyone. */
    int fd = openat(upper_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    walk(&c, fd, "", true, 0);
    if (!c.err && c.n > 1)
        qsort(c.lines, c.n, sizeof(*c.lines), cmp_lines);
    for (size_t i = 0; i < c.n; i++) {
        const char *p = c.lines[i];
        size_t len = strlen(p);
        while (!c.err && len > 0) {
            ssize_t w = write(out_fd, p, len);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                c.err = -errno;
            else {
                p += w;
                len -= (size_t)w;
            }
        }
        free(c.lines[i]);
    }
    free(c.lines);
    return c.err;
}
