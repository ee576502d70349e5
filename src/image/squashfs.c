/* The tree -> rootfs.squashfs, with libsquashfs. File contents are streamed
 * from the layer archives (a second read of each layer that still has live
 * files, stopping at its last one) or from host files (import) straight into
 * the block processor: there is never an extracted rootfs on disk.
 *
 * Layout follows what squashfs-tools-ng's writers produce: data blocks and
 * fragments first, then the inode table (children before their directory,
 * so every directory listing knows its entries' inode references), the
 * directory table, fragment, ID and xattr tables, and the super block last. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <sqfs/block.h>
#include <sqfs/block_processor.h>
#include <sqfs/block_writer.h>
#include <sqfs/compressor.h>
#include <sqfs/dir_writer.h>
#include <sqfs/error.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/meta_writer.h>
#include <sqfs/super.h>
#include <sqfs/xattr_writer.h>

#define BLOCK_SIZE  (128 * 1024)
#define DEVBLK_SIZE 4096
#define ZSTD_LEVEL  3
#define READ_CHUNK  (128 * 1024)

/* ---- output file: pwrite on our fd, keeping errno for the message ----------------- */

typedef struct out_file {
    sqfs_file_t base;
    int fd;
    sqfs_u64 size;
    int saved_errno;
} out_file;

static void out_destroy(sqfs_object_t *o)
{
    out_file *f = (out_file *)o;
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

/* After a write error (ENOSPC) the file swallows further I/O and the error is
 * reported by us: libsquashfs 1.2 leaks its in-flight blocks when an I/O error
 * surfaces inside the block processor, so it is never shown one. */
static int out_read_at(sqfs_file_t *base, sqfs_u64 off, void *buf, size_t len)
{
    out_file *f = (out_file *)base;
    if (f->saved_errno) {
        memset(buf, 0, len);
        return 0;
    }
    if (off + len > f->size)
        return SQFS_ERROR_OUT_OF_BOUNDS;
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(f->fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            f->saved_errno = n < 0 ? errno : EIO;
            return SQFS_ERROR_IO;
        }
        done += (size_t)n;
    }
    return 0;
}

static int out_write_at(sqfs_file_t *base, sqfs_u64 off, const void *buf, size_t len)
{
    out_file *f = (out_file *)base;
    for (size_t done = 0; done < len && !f->saved_errno;) {
        ssize_t n = pwrite(f->fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            f->saved_errno = n < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)n;
    }
    if (off + len > f->size)
        f->size = off + len;
    return 0;
}

static sqfs_u64 out_get_size(const sqfs_file_t *base)
{
    return ((const out_file *)base)->size;
}

static int out_truncate(sqfs_file_t *base, sqfs_u64 size)
{
    out_file *f = (out_file *)base;
    if (!f->saved_errno && ftruncate(f->fd, (off_t)size) < 0)
        f->saved_errno = errno;
    f->size = size;
    return 0;
}

/* ---- the writer ------------------------------------------------------------------- */

typedef struct sqfs_out {
    out_file *file;
    sqfs_compressor_t *cmp;
    sqfs_block_writer_t *blkwr;
    sqfs_frag_table_t *frag;
    sqfs_block_processor_t *data;
    sqfs_id_table_t *ids;
    sqfs_xattr_writer_t *xwr;
    sqfs_meta_writer_t *im, *dm;
    sqfs_dir_writer_t *dirw;
    sqfs_super_t super;
    uint32_t n_inodes;
    const char *path;
    hypr_error *err;
} sqfs_out;

static void sqfs_out_free(sqfs_out *w, bool failed)
{
    /* After a failure the block processor may still hold queued blocks that
     * its destructor does not free (libsquashfs 1.2): let it drain first. */
    if (failed && w->data)
        sqfs_block_processor_finish(w->data);
    sqfs_destroy(w->dirw);
    sqfs_destroy(w->dm);
    sqfs_destroy(w->im);
    sqfs_destroy(w->xwr);
    sqfs_destroy(w->ids);
    sqfs_destroy(w->data);
    sqfs_destroy(w->frag);
    sqfs_destroy(w->blkwr);
    sqfs_destroy(w->cmp);
    if (w->file)
        sqfs_destroy(&w->file->base);
}

static const char *sqfs_strerror(int code)
{
    switch (code) {
    case SQFS_ERROR_ALLOC:
        return "out of memory";
    case SQFS_ERROR_IO:
        return "I/O error";
    case SQFS_ERROR_COMPRESSOR:
        return "compressor error";
    case SQFS_ERROR_OVERFLOW:
        return "value too large for squashfs";
    case SQFS_ERROR_UNSUPPORTED:
        return "unsupported";
    default:
        return "internal error";
    }
}

/* Turns a libsquashfs error into a hypr_error naming the step. */
static int sq_fail(sqfs_out *w, int code, const char *what)
{
    int e = w->file ? w->file->saved_errno : 0;
    if (code == SQFS_ERROR_IO && e)
        return hypr_err(w->err,
                        e == ENOSPC || e == EDQUOT ? HYPR_RESOURCE_EXHAUSTED : HYPR_INTERNAL, e,
                        "write %s: %s: %s", w->path, what, strerror(e));
    return hypr_err(w->err, HYPR_INTERNAL, EIO, "write %s: %s: %s", w->path, what,
                    sqfs_strerror(code));
}

static int sqfs_out_open(sqfs_out *w, const char *path, hypr_error *err)
{
    memset(w, 0, sizeof(*w));
    w->path = path;
    w->err = err;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "create %s: %s", path, strerror(errno));
    w->file = xcalloc(1, sizeof(*w->file));
    w->file->fd = fd;
    w->file->base.base.destroy = out_destroy;
    w->file->base.read_at = out_read_at;
    w->file->base.write_at = out_write_at;
    w->file->base.get_size = out_get_size;
    w->file->base.truncate = out_truncate;

    sqfs_compressor_config_t cfg;
    int r = sqfs_compressor_config_init(&cfg, SQFS_COMP_ZSTD, BLOCK_SIZE, 0);
    if (r)
        return sq_fail(w, r, "compressor config");
    cfg.level = ZSTD_LEVEL;
    r = sqfs_compressor_create(&cfg, &w->cmp);
    if (r)
        return sq_fail(w, r, "create zstd compressor");
    r = sqfs_super_init(&w->super, BLOCK_SIZE, 0, SQFS_COMP_ZSTD);
    if (r)
        return sq_fail(w, r, "super block");
    r = sqfs_super_write(&w->super, &w->file->base);
    if (r)
        return sq_fail(w, r, "super block");
    r = w->cmp->write_options(w->cmp, &w->file->base);
    if (r < 0)
        return sq_fail(w, r, "compressor options");
    if (r > 0)
        w->super.flags |= SQFS_FLAG_COMPRESSOR_OPTIONS;
    w->blkwr = sqfs_block_writer_create(&w->file->base, DEVBLK_SIZE, 0);
    w->frag = sqfs_frag_table_create(0);
    if (!w->blkwr || !w->frag)
        return sq_fail(w, SQFS_ERROR_ALLOC, "block writer");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned workers = cpus > 1 ? (unsigned)(cpus > 16 ? 16 : cpus) : 1;
    w->data =
        sqfs_block_processor_create(BLOCK_SIZE, w->cmp, workers, 8 * workers, w->blkwr, w->frag);
    w->ids = sqfs_id_table_create(0);
    w->xwr = sqfs_xattr_writer_create(0);
    w->im = sqfs_meta_writer_create(&w->file->base, w->cmp, 0);
    w->dm = sqfs_meta_writer_create(&w->file->base, w->cmp, SQFS_META_WRITER_KEEP_IN_MEMORY);
    if (!w->data || !w->ids || !w->xwr || !w->im || !w->dm)
        return sq_fail(w, SQFS_ERROR_ALLOC, "writer setup");
    w->dirw = sqfs_dir_writer_create(w->dm, 0);
    if (!w->dirw)
        return sq_fail(w, SQFS_ERROR_ALLOC, "directory writer");
    return 0;
}

/* ---- data: regular files -------------------------------------------------------------- */

typedef struct data_list {
    img_inode **v;
    size_t n, cap;
} data_list;

static int collect_files(img_node *n, void *ud)
{
    data_list *l = ud;
    img_inode *ino = n->ino;
    if (!S_ISREG(ino->mode) || ino->numbered)
        return 0;
    ino->numbered = true; /* reused as "collected"; reset before numbering */
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = ino;
    return 0;
}

static int reset_marks(img_node *n, void *ud)
{
    (void)ud;
    n->ino->numbered = false;
    n->ino->written = false;
    return 0;
}

static int cmp_source(const void *a, const void *b)
{
    const img_inode *x = *(img_inode *const *)a, *y = *(img_inode *const *)b;
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    return (x->ordinal > y->ordinal) - (x->ordinal < y->ordinal);
}

static int io_error(sqfs_out *w)
{
    return w->file->saved_errno ? sq_fail(w, SQFS_ERROR_IO, "file data") : 0;
}

static int begin_file(sqfs_out *w, img_inode *ino)
{
    int e = io_error(w);
    if (e < 0)
        return e;
    free(ino->sq_inode);
    ino->sq_inode = NULL;
    int r =
        sqfs_block_processor_begin_file(w->data, (sqfs_inode_generic_t **)&ino->sq_inode, NULL, 0);
    return r ? sq_fail(w, r, "begin file") : 0;
}

static int end_file(sqfs_out *w)
{
    int r = sqfs_block_processor_end_file(w->data);
    return r ? sq_fail(w, r, "file data") : 0;
}

static int append(sqfs_out *w, const void *buf, size_t n)
{
    int r = sqfs_block_processor_append(w->data, buf, n);
    return r ? sq_fail(w, r, "file data") : 0;
}

/* Streams entries ino[0..n) (all of one layer, by ordinal) from that layer. */
static int stream_layer(sqfs_out *w, const image_layer_src *src, img_inode **inos, size_t n,
                        char *buf, const image_progress *cancel)
{
    _cleanup_archive_ struct archive *a = NULL;
    int r = img_layer_open(src, &a, w->err);
    if (r < 0)
        return r;
    struct archive_entry *e;
    size_t k = 0;
    for (int64_t ordinal = 0; k < n; ordinal++) {
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF || ar < ARCHIVE_WARN)
            return hypr_err(w->err, HYPR_INVALID_ARGUMENT, EIO, "%s: changed while reading: %s",
                            img_layer_label(src),
                            archive_error_string(a) ? archive_error_string(a) : "early end");
        if (ordinal != inos[k]->ordinal)
            continue;
        img_inode *ino = inos[k++];
        if (img_cancelled(cancel))
            return hypr_err(w->err, HYPR_CANCELLED, ECANCELED, "cancelled");
        if ((r = begin_file(w, ino)) < 0)
            return r;
        uint64_t got = 0;
        for (;;) {
            if (img_cancelled(cancel))
                return hypr_err(w->err, HYPR_CANCELLED, ECANCELED, "cancelled");
            la_ssize_t m = archive_read_data(a, buf, READ_CHUNK);
            if (m < 0)
                return hypr_err(w->err, HYPR_INVALID_ARGUMENT, EIO, "%s: %s: %s",
                                img_layer_label(src), archive_entry_pathname(e),
                                archive_error_string(a));
            if (m == 0)
                break;
            if (got + (uint64_t)m > ino->size)
                m = (la_ssize_t)(ino->size - got);
            if (m > 0 && (r = append(w, buf, (size_t)m)) < 0)
                return r;
            got += (uint64_t)m;
            if (got >= ino->size)
                break;
        }
        if (got != ino->size)
            return hypr_err(w->err, HYPR_INVALID_ARGUMENT, EIO,
                            "%s: %s: truncated (%" PRIu64 " of %" PRIu64 " bytes)",
                            img_layer_label(src), archive_entry_pathname(e), got, ino->size);
        if ((r = end_file(w)) < 0)
            return r;
    }
    return 0;
}

/* A file's bytes from the spill file its layer was copied to while it was read. */
static int stream_spilled(sqfs_out *w, int fd, img_inode *ino, char *buf,
                          const image_progress *cancel)
{
    int r = begin_file(w, ino);
    if (r < 0)
        return r;
    uint64_t got = 0;
    while (got < ino->size) {
        if (img_cancelled(cancel))
            return hypr_err(w->err, HYPR_CANCELLED, ECANCELED, "cancelled");
        size_t want = ino->size - got < READ_CHUNK ? (size_t)(ino->size - got) : READ_CHUNK;
        ssize_t m = pread(fd, buf, want, (off_t)((uint64_t)ino->spill_off + got));
        if (m < 0 && errno == EINTR)
            continue;
        if (m < 0)
            return hypr_err(w->err, HYPR_INTERNAL, errno, "read spilled layer data: %s",
                            strerror(errno));
        if (m == 0)
            return hypr_err(w->err, HYPR_INVALID_ARGUMENT, EIO,
                            "layer %d: a file is truncated (%" PRIu64 " of %" PRIu64 " bytes)",
                            ino->layer, got, ino->size);
        if ((r = append(w, buf, (size_t)m)) < 0)
            return r;
        got += (uint64_t)m;
    }
    return end_file(w);
}

static int spill_fd_of(const image_tree *t, const img_inode *ino)
{
    if (ino->spill_off < 0 || ino->layer < 0 || (size_t)ino->layer >= t->n_spill)
        return -1;
    return t->spill_fds[ino->layer];
}

static int stream_host_file(sqfs_out *w, img_inode *ino, char *buf)
{
    _cleanup_close_ int fd = open(ino->host_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return hypr_err(w->err, HYPR_INVALID_ARGUMENT, errno, "open %s: %s", ino->host_path,
                        strerror(errno));
    int r = begin_file(w, ino);
    if (r < 0)
        return r;
    uint64_t got = 0;
    while (got < ino->size) {
        ssize_t m = read(fd, buf, READ_CHUNK);
        if (m < 0 && errno == EINTR)
            continue;
        if (m < 0)
            return hypr_err(w->err, HYPR_INVALID_ARGUMENT, errno, "read %s: %s", ino->host_path,
                            strerror(errno));
        if (m == 0)
            break;
        if (got + (uint64_t)m > ino->size)
            m = (ssize_t)(ino->size - got);
        if ((r = append(w, buf, (size_t)m)) < 0)
            return r;
        got += (uint64_t)m;
    }
    if (got != ino->size)
        return hypr_err(w->err, HYPR_INVALID_ARGUMENT, EIO, "%s: changed while importing",
                        ino->host_path);
    return end_file(w);
}

static int write_data(sqfs_out *w, image_tree *t, const image_layer_src *layers, size_t n_layers,
                      const image_progress *cancel)
{
    data_list l = {0};
    img_tree_walk(t->root, collect_files, &l);
    img_tree_walk(t->root, reset_marks, NULL);
    qsort(l.v, l.n, sizeof(*l.v), cmp_source);
    char *buf = xmalloc(READ_CHUNK);
    int r = 0;
    for (size_t i = 0; i < l.n && r >= 0;) {
        img_inode *ino = l.v[i];
        if (img_cancelled(cancel)) {
            r = hypr_err(w->err, HYPR_CANCELLED, ECANCELED, "cancelled");
            break;
        }
        if (ino->host_path) {
            r = stream_host_file(w, ino, buf);
            i++;
        } else if (ino->layer < 0 || ino->size == 0) {
            /* empty (or sourceless) file: an inode without blocks */
            r = begin_file(w, ino);
            if (r >= 0)
                r = end_file(w);
            i++;
        } else if (spill_fd_of(t, ino) >= 0) {
            r = stream_spilled(w, spill_fd_of(t, ino), ino, buf, cancel);
            i++;
        } else if ((size_t)ino->layer >= n_layers) {
            r = hypr_err(w->err, HYPR_INTERNAL, EINVAL, "file data refers to a missing layer");
        } else {
            size_t j = i;
            while (j < l.n && l.v[j]->layer == ino->layer && !l.v[j]->host_path &&
                   l.v[j]->size > 0 && spill_fd_of(t, l.v[j]) < 0)
                j++;
            r = stream_layer(w, &layers[ino->layer], &l.v[i], j - i, buf, cancel);
            i = j;
        }
    }
    free(buf);
    free(l.v);
    if (r < 0)
        return r;
    int sr = sqfs_block_processor_finish(w->data);
    if (sr)
        return sq_fail(w, sr, "finish data blocks");
    return io_error(w);
}

/* ---- inodes and directories ------------------------------------------------------------ */

static void number_inodes(img_node *n, uint32_t *counter)
{
    for (size_t i = 0; i < n->n_children; i++) {
        img_node *c = n->children[i];
        if (S_ISDIR(c->ino->mode))
            number_inodes(c, counter);
        else if (!c->ino->numbered) {
            c->ino->numbered = true;
            c->ino->ino_num = ++*counter;
        }
    }
    n->ino->numbered = true;
    n->ino->ino_num = ++*counter;
}

static int xattr_index(sqfs_out *w, const img_inode *ino, uint32_t *out)
{
    *out = 0xFFFFFFFF;
    if (!ino->n_xattrs)
        return 0;
    int r = sqfs_xattr_writer_begin(w->xwr, 0);
    if (r)
        return sq_fail(w, r, "xattrs");
    for (size_t i = 0; i < ino->n_xattrs; i++) {
        r = sqfs_xattr_writer_add(w->xwr, ino->xattrs[i].key, ino->xattrs[i].value,
                                  ino->xattrs[i].len);
        if (r == SQFS_ERROR_UNSUPPORTED) {
            log_debug("squashfs cannot store xattr %s: skipped", ino->xattrs[i].key);
            continue;
        }
        if (r)
            return sq_fail(w, r, "xattrs");
    }
    r = sqfs_xattr_writer_end(w->xwr, out);
    return r ? sq_fail(w, r, "xattrs") : 0;
}

static sqfs_inode_generic_t *special_inode(const img_inode *ino)
{
    size_t extra = S_ISLNK(ino->mode) && ino->target ? strlen(ino->target) : 0;
    sqfs_inode_generic_t *in = xcalloc(1, sizeof(*in) + extra + 1);
    switch (ino->mode & S_IFMT) {
    case S_IFLNK:
        in->base.type = SQFS_INODE_SLINK;
        in->data.slink.nlink = ino->nlink;
        in->data.slink.target_size = (sqfs_u32)extra;
        memcpy(in->extra, ino->target ? ino->target : "", extra);
        in->payload_bytes_available = in->payload_bytes_used = (sqfs_u32)extra;
        break;
    case S_IFCHR:
    case S_IFBLK:
        in->base.type = S_ISCHR(ino->mode) ? SQFS_INODE_CDEV : SQFS_INODE_BDEV;
        in->data.dev.nlink = ino->nlink;
        in->data.dev.devno = ino->devno;
        break;
    case S_IFSOCK:
        in->base.type = SQFS_INODE_SOCKET;
        in->data.ipc.nlink = ino->nlink;
        break;
    default:
        in->base.type = SQFS_INODE_FIFO;
        in->data.ipc.nlink = ino->nlink;
        break;
    }
    return in;
}

static void set_nlink(sqfs_inode_generic_t *in, uint32_t nlink)
{
    switch (in->base.type) {
    case SQFS_INODE_FILE:
        if (nlink > 1) {
            sqfs_inode_make_extended(in);
            in->data.file_ext.nlink = nlink;
        }
        break;
    case SQFS_INODE_EXT_FILE:
        in->data.file_ext.nlink = nlink;
        break;
    case SQFS_INODE_SLINK:
        in->data.slink.nlink = nlink;
        break;
    case SQFS_INODE_EXT_SLINK:
        in->data.slink_ext.nlink = nlink;
        break;
    case SQFS_INODE_BDEV:
    case SQFS_INODE_CDEV:
        in->data.dev.nlink = nlink;
        break;
    case SQFS_INODE_EXT_BDEV:
    case SQFS_INODE_EXT_CDEV:
        in->data.dev_ext.nlink = nlink;
        break;
    case SQFS_INODE_FIFO:
    case SQFS_INODE_SOCKET:
        in->data.ipc.nlink = nlink;
        break;
    case SQFS_INODE_EXT_FIFO:
    case SQFS_INODE_EXT_SOCKET:
        in->data.ipc_ext.nlink = nlink;
        break;
    default:
        break;
    }
}

/* Fills the common fields and appends the inode to the inode table. */
static int emit_inode(sqfs_out *w, img_inode *ino, sqfs_inode_generic_t *in, uint32_t nlink)
{
    uint32_t xidx;
    int r = xattr_index(w, ino, &xidx);
    if (r < 0)
        return r;
    in->base.mode = (sqfs_u16)(ino->mode & 0xFFFF);
    in->base.mod_time = ino->mtime < 0            ? 0
                        : ino->mtime > UINT32_MAX ? UINT32_MAX
                                                  : (sqfs_u32)ino->mtime;
    in->base.inode_number = ino->ino_num;
    if ((r = sqfs_inode_set_xattr_index(in, xidx)) != 0)
        return sq_fail(w, r, "inode xattrs");
    set_nlink(in, nlink);
    if ((r = sqfs_id_table_id_to_index(w->ids, ino->uid, &in->base.uid_idx)) != 0 ||
        (r = sqfs_id_table_id_to_index(w->ids, ino->gid, &in->base.gid_idx)) != 0)
        return sq_fail(w, r, "id table (more than 65536 distinct owners?)");
    sqfs_u64 block;
    sqfs_u32 offset;
    sqfs_meta_writer_get_position(w->im, &block, &offset);
    ino->ino_ref = (block << 16) | offset;
    r = sqfs_meta_writer_write_inode(w->im, in);
    if (r)
        return sq_fail(w, r, "inode table");
    ino->written = true;
    return 0;
}

static int emit_node(sqfs_out *w, img_node *n)
{
    img_inode *ino = n->ino;
    if (ino->written)
        return 0;
    sqfs_inode_generic_t *in;
    if (S_ISREG(ino->mode)) {
        in = ino->sq_inode;
        if (!in)
            return hypr_err(w->err, HYPR_INTERNAL, EIO, "file without data inode");
        ino->sq_inode = NULL;
    } else {
        in = special_inode(ino);
    }
    int r = emit_inode(w, ino, in, ino->nlink);
    sqfs_free(in);
    return r;
}

static int emit_dir(sqfs_out *w, img_node *dir)
{
    uint32_t subdirs = 0;
    for (size_t i = 0; i < dir->n_children; i++) {
        img_node *c = dir->children[i];
        int r = S_ISDIR(c->ino->mode) ? emit_dir(w, c) : emit_node(w, c);
        if (r < 0)
            return r;
        subdirs += S_ISDIR(c->ino->mode);
    }
    int r = sqfs_dir_writer_begin(w->dirw, 0);
    if (r)
        return sq_fail(w, r, "directory table");
    for (size_t i = 0; i < dir->n_children; i++) {
        img_node *c = dir->children[i];
        r = sqfs_dir_writer_add_entry(w->dirw, c->name, c->ino->ino_num, c->ino->ino_ref,
                                      (sqfs_u16)c->ino->mode);
        if (r)
            return sq_fail(w, r, "directory entry");
    }
    if ((r = sqfs_dir_writer_end(w->dirw)) != 0)
        return sq_fail(w, r, "directory table");
    uint32_t parent = dir->parent ? dir->parent->ino->ino_num : w->n_inodes + 1;
    sqfs_inode_generic_t *in =
        sqfs_dir_writer_create_inode(w->dirw, 2 + subdirs, 0xFFFFFFFF, parent);
    if (!in)
        return sq_fail(w, SQFS_ERROR_ALLOC, "directory inode");
    r = emit_inode(w, dir->ino, in, 2 + subdirs);
    sqfs_free(in);
    return r;
}

static int finish(sqfs_out *w, image_tree *t)
{
    uint32_t count = 0;
    number_inodes(t->root, &count);
    w->n_inodes = count;
    w->super.inode_count = count;
    w->super.inode_table_start = w->file->size;
    int r = emit_dir(w, t->root);
    if (r < 0)
        return r;
    if ((r = sqfs_meta_writer_flush(w->im)) || (r = sqfs_meta_writer_flush(w->dm)))
        return sq_fail(w, r, "metadata");
    w->super.root_inode_ref = t->root->ino->ino_ref;
    w->super.directory_table_start = w->file->size;
    if ((r = sqfs_meta_write_write_to_file(w->dm)))
        return sq_fail(w, r, "directory table");
    if ((r = sqfs_frag_table_write(w->frag, &w->file->base, &w->super, w->cmp)))
        return sq_fail(w, r, "fragment table");
    if ((r = sqfs_id_table_write(w->ids, &w->file->base, &w->super, w->cmp)))
        return sq_fail(w, r, "id table");
    if ((r = sqfs_xattr_writer_flush(w->xwr, &w->file->base, &w->super, w->cmp)))
        return sq_fail(w, r, "xattr table");
    w->super.bytes_used = w->file->size;
    if ((r = sqfs_super_write(&w->super, &w->file->base)) || (r = io_error(w)) < 0)
        return r < 0 ? r : sq_fail(w, r, "super block");
    /* Pad to the device block size, as the kernel reads whole blocks. */
    size_t pad = (size_t)(w->file->size % DEVBLK_SIZE);
    if (pad) {
        char zeros[DEVBLK_SIZE] = {0};
        if ((r = w->file->base.write_at(&w->file->base, w->file->size, zeros, DEVBLK_SIZE - pad)))
            return sq_fail(w, r, "padding");
    }
    if ((r = io_error(w)) < 0)
        return r;
    if (fsync(w->file->fd) < 0) {
        w->file->saved_errno = errno;
        return sq_fail(w, SQFS_ERROR_IO, "fsync");
    }
    return 0;
}

int image_tree_write_squashfs(image_tree *t, const image_layer_src *layers, size_t n_layers,
                              const char *out_path, const image_progress *cancel, hypr_error *err)
{
    sqfs_out w;
    int r = sqfs_out_open(&w, out_path, err);
    if (r >= 0) {
        img_tree_walk(t->root, reset_marks, NULL);
        r = write_data(&w, t, layers, n_layers, cancel);
    }
    if (r >= 0) {
        img_tree_walk(t->root, reset_marks, NULL);
        r = finish(&w, t);
    }
    sqfs_out_free(&w, r < 0);
    if (r < 0)
        unlink(out_path);
    return r;
}
