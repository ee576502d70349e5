/* Walking a volume's directory tree without following symlinks: removal and disk
 * usage for the volume store.
 *
 * A volume's contents are written by the guest, so a tree can hold symlinks to
 * anywhere on the host and be nested deeper than there are file descriptors. The
 * walker therefore reads a directory's names into memory, holds one descriptor (the
 * directory it is in), goes down with openat(O_NOFOLLOW | O_DIRECTORY) and comes
 * back up through "..", checking that ".." is still the directory it came from. */
#define LOG_MODULE "volume"
#include "volume/volume.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#define DIR_OPEN_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

typedef struct walk_frame {
    char **names; /* entries still to visit */
    size_t n, next;
    char *name; /* this directory's name in its parent (NULL at the top) */
    dev_t dev;
    ino_t ino;
} walk_frame;

typedef struct walk_ops {
    /* A non-directory entry of dirfd (a symlink included, never followed). */
    int (*entry)(int dirfd, const char *name, const struct stat *st, void *ctx);
    /* A directory, on the way in (st describes it). NULL = nothing to do. */
    int (*dir_enter)(const struct stat *st, void *ctx);
    /* A directory, once everything under it was visited. NULL = nothing to do. */
    int (*dir_leave)(int parentfd, const char *name, void *ctx);
} walk_ops;

/* The names in dirfd except "." and "..", or NULL for an empty directory. */
static int list_names(int dirfd, char ***out)
{
    *out = NULL;
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    char **v = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            r = errno ? -errno : 0;
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n + 2 > cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[n++] = xstrdup(de->d_name);
        v[n] = NULL;
    }
    closedir(d);
    if (r < 0) {
        strv_free(v);
        return r;
    }
    *out = v;
    return 0;
}

static void frame_free(walk_frame *f)
{
    strv_free(f->names);
    free(f->name);
    memset(f, 0, sizeof(*f));
}

/* Walks everything below the directory topfd (not topfd itself). path is for
 * messages only. */
static int walk(int topfd, const char *path, const walk_ops *ops, void *ctx, hypr_error *err)
{
    _cleanup_close_ int cur = fcntl(topfd, F_DUPFD_CLOEXEC, 3);
    if (cur < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "%s: %s", path, strerror(errno));
    walk_frame *frames = NULL;
    size_t depth = 0, cap = 0;
    int r = 0;
    struct stat st;
    if (fstat(cur, &st) < 0) {
        r = hypr_err(err, HYPR_INTERNAL, errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    cap = 16;
    frames = xcalloc(cap, sizeof(*frames));
    frames[0].dev = st.st_dev;
    frames[0].ino = st.st_ino;
    if ((r = list_names(cur, &frames[0].names)) < 0) {
        r = hypr_err(err, HYPR_INTERNAL, -r, "%s: read directory: %s", path, strerror(-r));
        goto out;
    }
    frames[0].n = strv_length(frames[0].names);
    depth = 1;
    while (depth > 0) {
        walk_frame *f = &frames[depth - 1];
        if (f->next < f->n) {
            const char *name = f->names[f->next++];
            if (fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                    continue; /* gone meanwhile */
                r = hypr_err(err, HYPR_INTERNAL, errno, "%s: stat %s: %s", path, name,
                             strerror(errno));
                goto out;
            }
            if (!S_ISDIR(st.st_mode)) {
                if ((r = ops->entry(cur, name, &st, ctx)) < 0) {
                    r = hypr_err(err, HYPR_INTERNAL, -r, "%s: %s: %s", path, name, strerror(-r));
                    goto out;
                }
                continue;
            }
            int fd = openat(cur, name, DIR_OPEN_FLAGS);
            if (fd < 0) {
                if (errno == ENOENT)
                    continue;
                r = hypr_err(err, HYPR_INTERNAL, errno, "%s: open %s: %s", path, name,
                             strerror(errno));
                goto out;
            }
            /* Whatever is there now (it may have been swapped since the fstatat) is a
             * real directory inside the tree: O_NOFOLLOW refused a symlink. */
            if (fstat(fd, &st) < 0) {
                r = hypr_err(err, HYPR_INTERNAL, errno, "%s: stat %s: %s", path, name,
                             strerror(errno));
                close(fd);
                goto out;
            }
            if (ops->dir_enter && (r = ops->dir_enter(&st, ctx)) < 0) {
                close(fd);
                r = hypr_err(err, HYPR_INTERNAL, -r, "%s: %s: %s", path, name, strerror(-r));
                goto out;
            }
            if (depth == cap) {
                frames = xrealloc(frames, cap * 2 * sizeof(*frames));
                memset(frames + cap, 0, cap * sizeof(*frames));
                cap *= 2;
            }
            walk_frame *child = &frames[depth];
            child->name = xstrdup(name);
            child->dev = st.st_dev;
            child->ino = st.st_ino;
            depth++;
            if ((r = list_names(fd, &child->names)) < 0) {
                close(fd);
                r = hypr_err(err, HYPR_INTERNAL, -r, "%s: read directory %s: %s", path, name,
                             strerror(-r));
                goto out;
            }
            child->n = strv_length(child->names);
            close(cur);
            cur = fd;
            continue;
        }
        if (depth == 1)
            break;
        /* Back up: ".." must still be the directory we came down from. */
        int parent = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent < 0) {
            r = hypr_err(err, HYPR_INTERNAL, errno, "%s: open %s/..: %s", path, f->name,
                         strerror(errno));
            goto out;
        }
        walk_frame *up = &frames[depth - 2];
        if (fstat(parent, &st) < 0 || st.st_dev != up->dev || st.st_ino != up->ino) {
            close(parent);
            r = hypr_err(err, HYPR_ABORTED, ESTALE,
                         "%s: directory %s was moved during the walk; try again", path, f->name);
            goto out;
        }
        close(cur);
        cur = parent;
        if (ops->dir_leave && (r = ops->dir_leave(cur, f->name, ctx)) < 0) {
            r = hypr_err(err, HYPR_INTERNAL, -r, "%s: %s: %s", path, f->name, strerror(-r));
            goto out;
        }
        frame_free(f);
        depth--;
    }
out:
    for (size_t i = 0; i < depth; i++)
        frame_free(&frames[i]);
    free(frames);
    return r;
}

/* ---- removal -------------------------------------------------------------------------- */

static int remove_entry(int dirfd, const char *name, const struct stat *st, void *ctx)
{
    if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static int remove_dir(int parentfd, const char *name, void *ctx)
{
    if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int volume_dir_remove(const char *path, hypr_error *err)
{
    _cleanup_close_ int fd = open(path, DIR_OPEN_FLAGS);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno != ELOOP && errno != ENOTDIR)
            return hypr_err(err, HYPR_INTERNAL, errno, "remove %s: %s", path, strerror(errno));
        /* A symlink or a file where the directory should be: unlink it, follow nothing. */
        if (unlink(path) < 0 && errno != ENOENT)
            return hypr_err(err, HYPR_INTERNAL, errno, "remove %s: %s", path, strerror(errno));
        return 0;
    }
    static const walk_ops ops = {.entry = remove_entry, .dir_leave = remove_dir};
    int r = walk(fd, path, &ops, NULL, err);
    if (r < 0)
        return hypr_err_prefix(err, "remove");
    if (rmdir(path) < 0 && errno != ENOENT)
        return hypr_err(err, HYPR_INTERNAL, errno, "remove %s: %s", path, strerror(errno));
    return 0;
}

/* ---- usage ---------------------------------------------------------------------------- */

/* The (dev, ino) of files with more than one link, so each is counted once. */
typedef struct inode_set {
    struct inode_key {
        dev_t dev;
        ino_t ino;
    } * slots;
    size_t cap, len;
} inode_set;

static size_t inode_hash(dev_t dev, ino_t ino)
{
    uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
    return (size_t)(h ^ (h >> 29));
}

/* true when (dev, ino) was new. Slot {0, 0} is empty: inode 0 is never a file's. */
static bool inode_set_add(inode_set *s, dev_t dev, ino_t ino)
{
    if ((s->len + 1) * 2 > s->cap) {
        inode_set bigger = {.cap = s->cap ? s->cap * 2 : 64};
        bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i].ino || s->slots[i].dev)
                inode_set_add(&bigger, s->slots[i].dev, s->slots[i].ino);
        free(s->slots);
        *s = bigger;
    }
    for (size_t i = inode_hash(dev, ino) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        struct inode_key *k = &s->slots[i];
        if (!k->ino && !k->dev) {
            k->dev = dev;
            k->ino = ino;
            s->len++;
            return true;
        }
        if (k->dev == dev && k->ino == ino)
            return false;
    }
}

typedef struct usage_ctx {
    uint64_t bytes;
    inode_set seen;
} usage_ctx;

static void usage_add(usage_ctx *u, const struct stat *st)
{
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 &&
        !inode_set_add(&u->seen, st->st_dev, st->st_ino))
        return;
    uint64_t b = (uint64_t)st->st_blocks * 512;
    u->bytes = u->bytes > UINT64_MAX - b ? UINT64_MAX : u->bytes + b;
}

static int usage_entry(int dirfd, const char *name, const struct stat *st, void *ctx)
{
    usage_add(ctx, st);
    return 0;
}

static int usage_dir(const struct stat *st, void *ctx)
{
    usage_add(ctx, st);
    return 0;
}

int volume_dir_usage(const char *path, uint64_t *bytes, hypr_error *err)
{
    *bytes = 0;
    _cleanup_close_ int fd = open(path, DIR_OPEN_FLAGS);
    if (fd < 0)
        return hypr_err(err, errno == ENOENT ? HYPR_NOT_FOUND : HYPR_INTERNAL, errno,
                        "disk usage of %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "disk usage of %s: %s", path, strerror(errno));
    usage_ctx u = {0};
    usage_add(&u, &st);
    static const walk_ops ops = {.entry = usage_entry, .dir_enter = usage_dir};
    int r = walk(fd, path, &ops, &u, err);
    free(u.seen.slots);
    if (r < 0)
        return hypr_err_prefix(err, "disk usage");
    *bytes = u.bytes;
    return 0;
}

int volume_dir_is_empty(const char *path)
{
    int fd = open(path, DIR_OPEN_FLAGS);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    /* The first name other than "." and ".." settles it: no need to read them all. */
    int r = 1;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                r = -errno;
            break;
        }
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            r = 0;
            break;
        }
    }
    closedir(d);
    return r;
}
