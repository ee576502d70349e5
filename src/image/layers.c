/* Layer application: tar layers (plain, gzip, zstd) applied in order to an
 * in-memory tree with OCI whiteout semantics. No byte of a file is extracted
 * here: a regular file remembers which entry of which layer holds its data,
 * and the squashfs writer streams it from there.
 *
 * Containment: paths are resolved inside the image root only. Leading "/" is
 * dropped, ".." that would climb above the root fails the layer, symlinked
 * parents are followed within the root (like a chroot), hard links must name
 * an existing non-directory of the image, and whiteouts of "." or ".." fail. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* ---- nodes ------------------------------------------------------------------------ */

static img_inode *inode_new(image_tree *t, mode_t mode)
{
    img_inode *ino = xcalloc(1, sizeof(*ino));
    ino->mode = mode;
    ino->layer = -1;
    ino->ordinal = -1;
    ino->spill_off = -1;
    t->n_inodes++;
    return ino;
}

static void xattrs_free(img_inode *ino)
{
    for (size_t i = 0; i < ino->n_xattrs; i++) {
        free(ino->xattrs[i].key);
        free(ino->xattrs[i].value);
    }
    free(ino->xattrs);
    ino->xattrs = NULL;
    ino->n_xattrs = 0;
}

static void inode_unref(image_tree *t, img_inode *ino)
{
    if (!ino || (ino->nlink > 0 && --ino->nlink > 0))
        return;
    /* nlink 0: never linked into the tree (a failed child_add) */
    xattrs_free(ino);
    free(ino->target);
    free(ino->host_path);
    free(ino->sq_inode);
    free(ino);
    t->n_inodes--;
}

static void node_free(image_tree *t, img_node *n)
{
    for (size_t i = 0; i < n->n_children; i++)
        node_free(t, n->children[i]);
    free(n->children);
    inode_unref(t, n->ino);
    free(n->name);
    free(n);
    t->n_nodes--;
}

image_tree *image_tree_new(void)
{
    image_tree *t = xcalloc(1, sizeof(*t));
    t->root = xcalloc(1, sizeof(img_node));
    t->root->name = xstrdup("");
    t->root->ino = inode_new(t, S_IFDIR | 0755);
    t->root->ino->nlink = 1;
    t->root->layer = -1;
    t->n_nodes = 1;
    return t;
}

void image_tree_free(image_tree *t)
{
    if (!t)
        return;
    node_free(t, t->root);
    for (size_t i = 0; i < t->n_spill; i++)
        if (t->spill_fds[i] >= 0)
            close(t->spill_fds[i]);
    free(t->spill_fds);
    free(t->spill_dir);
    free(t);
}

size_t image_tree_count(const image_tree *t)
{
    return t->n_inodes;
}

/* Binary search in the sorted children; *pos is the insertion point. */
static img_node *child_find(const img_node *dir, const char *name, size_t *pos)
{
    size_t lo = 0, hi = dir->n_children;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(dir->children[mid]->name, name);
        if (c == 0) {
            if (pos)
                *pos = mid;
            return dir->children[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return NULL;
}

static int child_add(image_tree *t, img_node *dir, const char *name, img_inode *ino, int layer,
                     img_node **out, hypr_error *err)
{
    if (t->n_nodes >= IMG_MAX_NODES)
        return hypr_err(err, HYPR_RESOURCE_EXHAUSTED, E2BIG, "more than %u entries in the image",
                        IMG_MAX_NODES);
    if (dir->depth + 1 > IMG_MAX_DEPTH)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, ENAMETOOLONG,
                        "directories nested more than %d deep", IMG_MAX_DEPTH);
    size_t pos;
    child_find(dir, name, &pos);
    if (dir->n_children == dir->cap_children) {
        dir->cap_children = dir->cap_children ? dir->cap_children * 2 : 8;
        dir->children = xrealloc(dir->children, dir->cap_children * sizeof(*dir->children));
    }
    memmove(dir->children + pos + 1, dir->children + pos,
            (dir->n_children - pos) * sizeof(*dir->children));
    img_node *n = xcalloc(1, sizeof(*n));
    n->name = xstrdup(name);
    n->parent = dir;
    n->ino = ino;
    n->layer = layer;
    n->depth = dir->depth + 1;
    ino->nlink++;
    dir->children[pos] = n;
    dir->n_children++;
    t->n_nodes++;
    *out = n;
    return 0;
}

static void child_remove(image_tree *t, img_node *dir, img_node *n)
{
    size_t pos;
    if (child_find(dir, n->name, &pos) != n)
        return;
    memmove(dir->children + pos, dir->children + pos + 1,
            (dir->n_children - pos - 1) * sizeof(*dir->children));
    dir->n_children--;
    node_free(t, n);
}

/* Removes everything under dir that lower layers (< layer) put there, keeping
 * what this layer declared: an opaque directory's contents come only from its
 * own layer. */
static void prune_lower(image_tree *t, img_node *dir, int layer)
{
    for (size_t i = dir->n_children; i-- > 0;) {
        img_node *c = dir->children[i];
        if (c->layer < layer)
            child_remove(t, dir, c);
        else if (S_ISDIR(c->ino->mode))
            prune_lower(t, c, layer);
    }
}

int img_tree_walk(img_node *n, int (*fn)(img_node *n, void *ud), void *ud)
{
    int r = fn(n, ud);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n->n_children; i++) {
        r = img_tree_walk(n->children[i], fn, ud);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- paths ---------------------------------------------------------------------- */

typedef struct path_parts {
    char **v;
    size_t n, cap;
} path_parts;

static void parts_free(path_parts *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

static void parts_push(path_parts *p, const char *s, size_t len)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = xrealloc(p->v, p->cap * sizeof(char *));
    }
    p->v[p->n++] = xstrndup(s, len);
}

/* Splits a tar path into components, dropping "/" prefixes and "." and folding
 * "..": one that would climb above the root is an escape (-EPERM). */
static int split_path(const char *path, path_parts *out, bool allow_escape)
{
    memset(out, 0, sizeof(*out));
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 1 && p[0] == '.') {
            /* skip */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (out->n == 0) {
                if (!allow_escape) {
                    parts_free(out);
                    return -EPERM;
                }
            } else {
                free(out->v[--out->n]);
            }
        } else {
            if (len > IMG_MAX_NAME) {
                parts_free(out);
                return -ENAMETOOLONG;
            }
            parts_push(out, p, len);
        }
        p += len;
    }
    return 0;
}

static char *node_path(const img_node *n)
{
    if (!n->parent)
        return xstrdup("/");
    size_t depth = 0;
    for (const img_node *c = n; c->parent; c = c->parent)
        depth++;
    const img_node **chain = xcalloc(depth, sizeof(*chain));
    size_t i = depth;
    for (const img_node *c = n; c->parent; c = c->parent)
        chain[--i] = c;
    hypr_buf b = {0};
    for (i = 0; i < depth; i++)
        buf_printf(&b, "/%s", chain[i]->name);
    free(chain);
    return buf_steal(&b);
}

/* Resolves the directory named by comps[0..n) from the root, following
 * symlinks inside the image. create: missing directories are made (implicit,
 * 0755 root, owned by `layer`); otherwise *out is NULL when one is missing. */
static int resolve_dir(image_tree *t, char *const *comps, size_t n, bool create, int layer,
                       img_node **out, const char *entry, hypr_error *err)
{
    *out = NULL;
    path_parts work = {0};
    for (size_t i = 0; i < n; i++)
        parts_push(&work, comps[i], strlen(comps[i]));
    img_node *cur = t->root;
    int hops = 0, r = 0;
    for (size_t i = 0; i < work.n; i++) {
        const char *c = work.v[i];
        if (!strcmp(c, "."))
            continue;
        if (!strcmp(c, "..")) {
            cur = cur->parent ? cur->parent : cur; /* contained at the root */
            continue;
        }
        img_node *child = child_find(cur, c, NULL);
        if (!child) {
            if (!create)
                goto out;
            img_inode *ino = inode_new(t, S_IFDIR | 0755);
            r = child_add(t, cur, c, ino, layer, &child, err);
            if (r < 0) {
                inode_unref(t, ino);
                goto out;
            }
            cur = child;
        } else if (S_ISDIR(child->ino->mode)) {
            /* A directory this layer writes into belongs to it as well: an opaque
             * marker or whiteout of this layer must not drop it. */
            if (create && child->layer < layer)
                child->layer = layer;
            cur = child;
        } else if (S_ISLNK(child->ino->mode)) {
            if (++hops > IMG_MAX_SYMLINKS) {
                r = hypr_err(err, HYPR_INVALID_ARGUMENT, ELOOP,
                             "entry %s: too many levels of symbolic links", entry);
                goto out;
            }
            /* Replace components [0..i] by the link target, resolved relative to
             * the link's directory (or the root when absolute). */
            path_parts target = {0};
            const char *tgt = child->ino->target ? child->ino->target : "";
            for (const char *p = tgt; *p;) {
                while (*p == '/')
                    p++;
                if (!*p)
                    break;
                const char *end = strchr(p, '/');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                parts_push(&target, p, len);
                p += len;
            }
            path_parts next = {0};
            if (tgt[0] != '/') {
                /* the link's directory path from the root */
                path_parts base = {0};
                _cleanup_free_ char *dirpath = node_path(cur);
                split_path(dirpath, &base, true);
                for (size_t k = 0; k < base.n; k++)
                    parts_push(&next, base.v[k], strlen(base.v[k]));
                parts_free(&base);
            }
            for (size_t k = 0; k < target.n; k++)
                parts_push(&next, target.v[k], strlen(target.v[k]));
            for (size_t k = i + 1; k < work.n; k++)
                parts_push(&next, work.v[k], strlen(work.v[k]));
            parts_free(&target);
            parts_free(&work);
            work = next;
            cur = t->root;
            i = (size_t)-1; /* restart */
        } else {
            r = hypr_err(err, HYPR_INVALID_ARGUMENT, ENOTDIR,
                         "entry %s: a parent is not a directory", entry);
            goto out;
        }
    }
    *out = cur;
out:
    parts_free(&work);
    return r;
}

/* ---- applying one entry ------------------------------------------------------------ */

static void set_meta(img_inode *ino, struct archive_entry *e, mode_t type)
{
    ino->mode = type | ((mode_t)archive_entry_perm(e) & 07777);
    la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
    ino->uid = uid < 0 || uid > UINT32_MAX ? 0 : (uint32_t)uid;
    ino->gid = gid < 0 || gid > UINT32_MAX ? 0 : (uint32_t)gid;
    ino->mtime = archive_entry_mtime_is_set(e) ? (int64_t)archive_entry_mtime(e) : 0;
    xattrs_free(ino);
    archive_entry_xattr_reset(e);
    const char *name;
    const void *value;
    size_t size;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (str_empty(name) || strlen(name) > 255 || size > IMG_MAX_XATTR_LEN)
            continue;
        /* pax archives may carry the same xattr twice (SCHILY. and LIBARCHIVE.). */
        bool dup = false;
        for (size_t i = 0; i < ino->n_xattrs && !dup; i++)
            dup = !strcmp(ino->xattrs[i].key, name);
        if (dup)
            continue;
        ino->xattrs = xrealloc(ino->xattrs, (ino->n_xattrs + 1) * sizeof(*ino->xattrs));
        img_xattr *x = &ino->xattrs[ino->n_xattrs++];
        x->key = xstrdup(name);
        x->value = xmalloc(size ? size : 1);
        if (size)
            memcpy(x->value, value, size);
        x->len = size;
    }
}

typedef struct apply_ctx {
    image_tree *t;
    int layer;
    int64_t ordinal;
    int64_t spill_off;
    const char *label;
    hypr_error *err;
} apply_ctx;

static int apply_whiteout(apply_ctx *a, path_parts *parts, const char *path)
{
    const char *base = parts->v[parts->n - 1];
    img_node *dir;
    int r = resolve_dir(a->t, parts->v, parts->n - 1, false, a->layer, &dir, path, a->err);
    if (r < 0)
        return r;
    if (!strcmp(base, ".wh..wh..opq")) {
        if (dir)
            prune_lower(a->t, dir, a->layer);
        return 0;
    }
    if (str_startswith(base, ".wh..wh."))
        return 0; /* aufs bookkeeping (.wh..wh.plnk and friends): nothing to apply */
    const char *name = base + strlen(".wh.");
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return hypr_err(a->err, HYPR_INVALID_ARGUMENT, EPERM,
                        "entry %s: whiteout of \"%s\" is not allowed", path, name);
    if (!dir)
        return 0;
    img_node *victim = child_find(dir, name, NULL);
    if (!victim)
        return 0;
    /* A whiteout hides lower layers only: what this layer put there stays. */
    if (victim->layer < a->layer)
        child_remove(a->t, dir, victim);
    else if (S_ISDIR(victim->ino->mode))
        prune_lower(a->t, victim, a->layer);
    return 0;
}

static int apply_hardlink(apply_ctx *a, img_node *dir, const char *base, const char *path,
                          const char *linkpath)
{
    path_parts tp;
    int r = split_path(linkpath, &tp, false);
    if (r < 0)
        return hypr_err(a->err, HYPR_INVALID_ARGUMENT, -r,
                        "entry %s: hard link target %s is outside the image", path, linkpath);
    img_node *tdir = NULL, *target = NULL;
    if (tp.n > 0) {
        r = resolve_dir(a->t, tp.v, tp.n - 1, false, a->layer, &tdir, path, a->err);
        if (r < 0) {
            parts_free(&tp);
            return r;
        }
        if (tdir)
            target = child_find(tdir, tp.v[tp.n - 1], NULL);
    }
    parts_free(&tp);
    if (!target)
        return hypr_err(a->err, HYPR_INVALID_ARGUMENT, ENOENT,
                        "entry %s: hard link target %s does not exist in the image", path,
                        linkpath);
    if (S_ISDIR(target->ino->mode))
        return hypr_err(a->err, HYPR_INVALID_ARGUMENT, EPERM, "entry %s: hard link to directory %s",
                        path, linkpath);
    img_node *existing = child_find(dir, base, NULL);
    if (existing == target)
        return 0;
    img_inode *ino = target->ino;
    ino->nlink++; /* keep it alive while an old entry at this path goes */
    if (existing)
        child_remove(a->t, dir, existing);
    img_node *n;
    r = child_add(a->t, dir, base, ino, a->layer, &n, a->err);
    ino->nlink--;
    return r;
}

static int apply_entry(apply_ctx *a, struct archive_entry *e)
{
    const char *path = archive_entry_pathname(e);
    if (!path)
        return hypr_err(a->err, HYPR_INVALID_ARGUMENT, EINVAL, "entry without a name");
    path_parts parts;
    int r = split_path(path, &parts, false);
    if (r == -EPERM)
        return hypr_err(a->err, HYPR_INVALID_ARGUMENT, EPERM,
                        "entry %s: path escapes the image root", path);
    if (r < 0)
        return hypr_err(a->err, HYPR_INVALID_ARGUMENT, -r, "entry %s: name too long", path);
    const char *hardlink = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (parts.n == 0) {
        /* "./": the root directory's own metadata */
        if (type == AE_IFDIR && !hardlink) {
            set_meta(a->t->root->ino, e, S_IFDIR);
            a->t->root->layer = a->layer;
        }
        parts_free(&parts);
        return 0;
    }
    const char *base = parts.v[parts.n - 1];
    if (str_startswith(base, ".wh.")) {
        r = apply_whiteout(a, &parts, path);
        parts_free(&parts);
        return r;
    }
    img_node *dir;
    r = resolve_dir(a->t, parts.v, parts.n - 1, true, a->layer, &dir, path, a->err);
    if (r < 0) {
        parts_free(&parts);
        return r;
    }
    if (hardlink) {
        r = apply_hardlink(a, dir, base, path, hardlink);
        parts_free(&parts);
        return r;
    }
    img_node *existing = child_find(dir, base, NULL);
    switch (type) {
    case AE_IFDIR:
        if (existing && S_ISDIR(existing->ino->mode)) {
            set_meta(existing->ino, e, S_IFDIR);
            existing->layer = a->layer;
            parts_free(&parts);
            return 0;
        }
        break;
    case AE_IFREG:
    case AE_IFLNK:
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
        break;
    default:
        log_debug("%s: skipping %s (unsupported type %o)", a->label, path, (unsigned)type);
        parts_free(&parts);
        return 0;
    }
    if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(e);
        if (!target || strlen(target) > IMG_MAX_TARGET) {
            parts_free(&parts);
            return hypr_err(a->err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "entry %s: missing or overlong symlink target", path);
        }
    }
    if (existing)
        child_remove(a->t, dir, existing);
    img_inode *ino = inode_new(a->t, type);
    set_meta(ino, e, type);
    if (type == AE_IFREG) {
        la_int64_t size = archive_entry_size(e);
        ino->size = size > 0 ? (uint64_t)size : 0;
        ino->layer = a->layer;
        ino->ordinal = a->ordinal;
        ino->spill_off = a->spill_off;
    } else if (type == AE_IFLNK) {
        ino->target = xstrdup(archive_entry_symlink(e));
    } else if (type == AE_IFCHR || type == AE_IFBLK) {
        ino->devno = (uint32_t)makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
    }
    img_node *n;
    r = child_add(a->t, dir, base, ino, a->layer, &n, a->err);
    if (r < 0)
        inode_unref(a->t, ino); /* never linked: nlink was 0 */
    parts_free(&parts);
    return r;
}

/* ---- opening layers ---------------------------------------------------------------- */

void img_archive_freep(struct archive **a)
{
    if (*a)
        archive_read_free(*a);
}

const char *img_layer_label(const image_layer_src *src)
{
    return src->label ? src->label : src->path ? src->path : "layer";
}

void img_archive_add_filters(struct archive *a)
{
    /* Only in-process decompressors: no filter that would run an external program. */
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_bzip2(a);
}

int img_layer_open(const image_layer_src *src, struct archive **out, hypr_error *err)
{
    *out = NULL;
    struct archive *a = archive_read_new();
    if (!a)
        abort();
    img_archive_add_filters(a);
    archive_read_support_format_tar(a);
    int r = src->path ? archive_read_open_filename(a, src->path, 256 * 1024)
                      : archive_read_open_memory(a, src->data, src->len);
    if (r != ARCHIVE_OK) {
        int e = archive_errno(a);
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, e > 0 ? e : EINVAL, "%s: %s", img_layer_label(src),
                     archive_error_string(a));
        archive_read_free(a);
        return r;
    }
    *out = a;
    return 0;
}

/* An unlinked temp file in dir for a layer's file contents. */
static int spill_open(const char *dir, hypr_error *err)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        _cleanup_free_ char *tmpl = path_join(dir, ".spill-XXXXXX");
        fd = mkostemp(tmpl, O_CLOEXEC);
        if (fd >= 0)
            unlink(tmpl);
    }
    if (fd < 0)
        return hypr_err(err, errno == ENOSPC ? HYPR_RESOURCE_EXHAUSTED : HYPR_INTERNAL, errno,
                        "create a temp file in %s: %s", dir, strerror(errno));
    return fd;
}

static int spill_write(int fd, const char *buf, size_t len, const char *dir, hypr_error *err)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            return hypr_err(err,
                            e == ENOSPC || e == EDQUOT ? HYPR_RESOURCE_EXHAUSTED : HYPR_INTERNAL, e,
                            "spill layer data to %s: %s", dir, strerror(e));
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

#define SPILL_CHUNK (256 * 1024)

/* Copies the current entry's data to the spill file; *pos advances. */
static int spill_entry(struct archive *a, const image_layer_src *layer, struct archive_entry *e,
                       int fd, const char *dir, char *buf, uint64_t *pos, hypr_error *err)
{
    for (;;) {
        la_ssize_t m = archive_read_data(a, buf, SPILL_CHUNK);
        if (m < 0)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EIO, "%s: %s: %s", img_layer_label(layer),
                            archive_entry_pathname(e), archive_error_string(a));
        if (m == 0)
            return 0;
        int r = spill_write(fd, buf, (size_t)m, dir, err);
        if (r < 0)
            return r;
        *pos += (uint64_t)m;
    }
}

/* Reads every header of a layer into entry copies (and, with a spill dir,
 * every regular file's contents into the spill file): the expensive part
 * (decompression) of applying a layer, which can run for several layers in
 * parallel; applying the copies in order is cheap. */
int img_layer_scan(const image_layer_src *layer, const char *spill_dir,
                   const image_progress *cancel, img_scan *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    out->spill_fd = -1;
    _cleanup_archive_ struct archive *a = NULL;
    img_layer_check *check = NULL; /* owned by a */
    int r = layer->diff_id ? img_layer_open_checked(layer, &a, &check, err)
                           : img_layer_open(layer, &a, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *buf = NULL;
    if (spill_dir) {
        if ((out->spill_fd = spill_open(spill_dir, err)) < 0)
            return out->spill_fd;
        buf = xmalloc(SPILL_CHUNK);
    }
    uint64_t pos = 0;
    struct archive_entry *e;
    for (int64_t ordinal = 0;; ordinal++) {
        if (img_cancelled(cancel)) {
            img_scan_free(out);
            return hypr_err(err, HYPR_CANCELLED, ECANCELED, "cancelled");
        }
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar < ARCHIVE_WARN || (ar == ARCHIVE_WARN && !archive_entry_pathname(e))) {
            /* An empty (0-byte) layer is a valid empty tar for some tools. */
            if (ordinal == 0 && archive_filter_bytes(a, -1) == 0)
                break;
            r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: %s", img_layer_label(layer),
                         archive_error_string(a) ? archive_error_string(a) : "read error");
            img_scan_free(out);
            return r;
        }
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 64;
            out->entries = xrealloc(out->entries, out->cap * sizeof(*out->entries));
            out->spill_offs = xrealloc(out->spill_offs, out->cap * sizeof(*out->spill_offs));
        }
        out->spill_offs[out->n] = -1;
        if (buf && archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e) &&
            archive_entry_size(e) > 0) {
            out->spill_offs[out->n] = (int64_t)pos;
            r = spill_entry(a, layer, e, out->spill_fd, spill_dir, buf, &pos, err);
            if (r < 0) {
                img_scan_free(out);
                return r;
            }
        }
        out->entries[out->n] = archive_entry_clone(e);
        if (!out->entries[out->n])
            abort();
        out->n++;
    }
    if (check && (r = img_layer_check_finish(check, layer->diff_id, err)) < 0) {
        img_scan_free(out);
        return r;
    }
    return 0;
}

void img_scan_free(img_scan *s)
{
    for (size_t i = 0; i < s->n; i++)
        archive_entry_free(s->entries[i]);
    free(s->entries);
    free(s->spill_offs);
    if (s->spill_fd >= 0)
        close(s->spill_fd);
    memset(s, 0, sizeof(*s));
    s->spill_fd = -1;
}

void image_tree_set_spill_dir(image_tree *t, const char *dir)
{
    free(t->spill_dir);
    t->spill_dir = dir ? xstrdup(dir) : NULL;
}

/* The tree keeps a layer's spill file for the squashfs writer. */
static void keep_spill(image_tree *t, img_scan *scan, int index)
{
    if (scan->spill_fd < 0 || index < 0)
        return;
    if ((size_t)index >= t->n_spill) {
        t->spill_fds = xrealloc(t->spill_fds, ((size_t)index + 1) * sizeof(int));
        for (size_t i = t->n_spill; i <= (size_t)index; i++)
            t->spill_fds[i] = -1;
        t->n_spill = (size_t)index + 1;
    }
    if (t->spill_fds[index] >= 0)
        close(t->spill_fds[index]);
    t->spill_fds[index] = TAKE_FD(scan->spill_fd);
}

int img_tree_apply_scan(image_tree *t, img_scan *scan, int index, const char *label,
                        hypr_error *err)
{
    apply_ctx ctx = {.t = t, .layer = index, .label = label, .err = err};
    keep_spill(t, scan, index);
    for (size_t i = 0; i < scan->n; i++) {
        ctx.ordinal = (int64_t)i;
        ctx.spill_off = scan->spill_offs[i];
        t->entries++;
        int r = apply_entry(&ctx, scan->entries[i]);
        if (r < 0)
            return hypr_err_prefix(err, "%s", label);
    }
    return 0;
}

int image_tree_apply_layer(image_tree *t, const image_layer_src *layer, int index,
                           const image_progress *cancel, hypr_error *err)
{
    img_scan scan;
    int r = img_layer_scan(layer, t->spill_dir, cancel, &scan, err);
    if (r < 0)
        return r;
    r = img_tree_apply_scan(t, &scan, index, img_layer_label(layer), err);
    img_scan_free(&scan);
    return r;
}

/* ---- lookups (tests, import) --------------------------------------------------------- */

static img_node *lookup_node(const image_tree *t, const char *path)
{
    path_parts parts;
    if (split_path(path ? path : "", &parts, true) < 0)
        return NULL;
    img_node *cur = t->root;
    for (size_t i = 0; cur && i < parts.n; i++)
        cur = child_find(cur, parts.v[i], NULL);
    parts_free(&parts);
    return cur;
}

int image_tree_lookup(const image_tree *t, const char *path, image_tree_stat *st)
{
    memset(st, 0, sizeof(*st));
    img_node *n = lookup_node(t, path);
    if (!n)
        return -ENOENT;
    const img_inode *ino = n->ino;
    st->mode = ino->mode;
    st->uid = ino->uid;
    st->gid = ino->gid;
    st->size = ino->size;
    st->nlink = ino->nlink;
    st->mtime = ino->mtime;
    st->rdev_major = major(ino->devno);
    st->rdev_minor = minor(ino->devno);
    st->target = ino->target;
    st->n_children = n->n_children;
    st->n_xattrs = ino->n_xattrs;
    return 0;
}

const char *image_tree_xattr(const image_tree *t, const char *path, const char *key, size_t *len)
{
    img_node *n = lookup_node(t, path);
    for (size_t i = 0; n && i < n->ino->n_xattrs; i++) {
        if (!strcmp(n->ino->xattrs[i].key, key)) {
            if (len)
                *len = n->ino->xattrs[i].len;
            return n->ino->xattrs[i].value;
        }
    }
    return NULL;
}

/* ---- a host directory (import) ------------------------------------------------------- */

typedef struct hardlink_seen {
    dev_t dev;
    ino_t ino;
    img_inode *inode;
} hardlink_seen;

typedef struct dir_walk {
    image_tree *t;
    const image_progress *cancel;
    hardlink_seen *links;
    size_t n_links;
    hypr_error *err;
} dir_walk;

static void meta_from_stat(img_inode *ino, const struct stat *st)
{
    ino->mode = st->st_mode;
    ino->uid = st->st_uid;
    ino->gid = st->st_gid;
    ino->mtime = st->st_mtime;
}

static int walk_dir(dir_walk *w, img_node *node, int dfd, const char *host_path)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        return hypr_err(w->err, HYPR_INVALID_ARGUMENT, e, "open %s: %s", host_path, strerror(e));
    }
    int r = 0;
    struct dirent *de;
    while (r >= 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (img_cancelled(w->cancel)) {
            r = hypr_err(w->err, HYPR_CANCELLED, ECANCELED, "cancelled");
            break;
        }
        _cleanup_free_ char *child_path = path_join(host_path, de->d_name);
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = hypr_err(w->err, HYPR_INVALID_ARGUMENT, errno, "stat %s: %s", child_path,
                         strerror(errno));
            break;
        }
        if (strlen(de->d_name) > IMG_MAX_NAME || S_ISSOCK(st.st_mode))
            continue;
        img_inode *ino = NULL;
        if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
            for (size_t i = 0; i < w->n_links && !ino; i++)
                if (w->links[i].dev == st.st_dev && w->links[i].ino == st.st_ino)
                    ino = w->links[i].inode;
        }
        bool fresh = !ino;
        if (fresh) {
            ino = inode_new(w->t, st.st_mode);
            meta_from_stat(ino, &st);
            if (S_ISREG(st.st_mode)) {
                ino->size = (uint64_t)st.st_size;
                ino->host_path = xstrdup(child_path);
            } else if (S_ISLNK(st.st_mode)) {
                char *target = xmalloc(IMG_MAX_TARGET + 1);
                ssize_t n = readlinkat(dirfd(d), de->d_name, target, IMG_MAX_TARGET);
                target[n > 0 ? n : 0] = '\0';
                ino->target = target;
            } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
                ino->devno = (uint32_t)st.st_rdev;
            }
            if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
                w->links = xrealloc(w->links, (w->n_links + 1) * sizeof(*w->links));
                w->links[w->n_links++] = (hardlink_seen){st.st_dev, st.st_ino, ino};
            }
        }
        img_node *child;
        r = child_add(w->t, node, de->d_name, ino, 0, &child, w->err);
        if (r < 0) {
            if (fresh)
                inode_unref(w->t, ino);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                r = hypr_err(w->err, HYPR_INVALID_ARGUMENT, errno, "open %s: %s", child_path,
                             strerror(errno));
                break;
            }
            r = walk_dir(w, child, cfd, child_path);
        }
    }
    closedir(d);
    return r;
}

int image_tree_add_directory(image_tree *t, const char *dir, const image_progress *cancel,
                             hypr_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, errno, "open %s: %s", dir, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0)
        meta_from_stat(t->root->ino, &st);
    dir_walk w = {.t = t, .cancel = cancel, .err = err};
    int r = walk_dir(&w, t->root, fd, dir);
    free(w.links);
    return r;
}
