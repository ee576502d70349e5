/* The blob cache (<data>/cache/blobs/sha256) outlives the images made from it:
 * a later pull of an image sharing layers reuses them. This file says what is
 * in it, which blobs pulls in flight hold, and removes the blobs no stored
 * image references (system prune).
 *
 * A pull holds its layer digests from the moment it knows them until its
 * staged image is committed or discarded (image_staged_clear). The collector
 * snapshots the images' references on the thread that owns the store, then
 * removes files on a worker thread; a blob is skipped if a pull holds it, or
 * let it go after the snapshot was taken (its image may have been committed
 * since, unseen by the snapshot). The check and the unlink happen under the
 * pin lock, so a pull that takes its pins first never sees its blob vanish. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#define BLOB_DIR "cache/blobs/sha256"

/* ---- pins of pulls in flight ------------------------------------------------------- */

typedef struct pin_entry {
    char *digest;
    unsigned refs;
    uint64_t released; /* the epoch when refs dropped to 0 */
} pin_entry;

static struct {
    pthread_mutex_t lock;
    pin_entry *entries;
    size_t n, cap;
    uint64_t epoch;      /* bumped by each collector's snapshot */
    unsigned collecting; /* collectors between prepare and free */
} pins = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct img_blob_pins {
    char **digests;
};

static pin_entry *pin_find(const char *digest)
{
    for (size_t i = 0; i < pins.n; i++)
        if (strcmp(pins.entries[i].digest, digest) == 0)
            return &pins.entries[i];
    return NULL;
}

img_blob_pins *img_blob_pins_take(const image_descriptor *layers, size_t n)
{
    img_blob_pins *p = xcalloc(1, sizeof(*p));
    pthread_mutex_lock(&pins.lock);
    for (size_t i = 0; i < n; i++) {
        if (!layers[i].digest)
            continue;
        pin_entry *e = pin_find(layers[i].digest);
        if (!e) {
            if (pins.n == pins.cap) {
                pins.cap = pins.cap ? 2 * pins.cap : 16;
                pins.entries = xrealloc(pins.entries, pins.cap * sizeof(*pins.entries));
            }
            e = &pins.entries[pins.n++];
            *e = (pin_entry){.digest = xstrdup(layers[i].digest)};
        }
        e->refs++;
        p->digests = strv_append(p->digests, layers[i].digest);
    }
    pthread_mutex_unlock(&pins.lock);
    return p;
}

void img_blob_pins_release(img_blob_pins *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&pins.lock);
    for (char **d = p->digests; d && *d; d++) {
        pin_entry *e = pin_find(*d);
        if (e && e->refs && --e->refs == 0)
            e->released = pins.epoch;
    }
    pthread_mutex_unlock(&pins.lock);
    strv_free(p->digests);
    free(p);
}

/* With the lock held: held by a pull now, or let go since snapshot `epoch`. */
static bool pinned_locked(const char *digest, uint64_t epoch)
{
    pin_entry *e = pin_find(digest);
    return e && (e->refs > 0 || e->released >= epoch);
}

bool image_blob_held(const char *digest)
{
    pthread_mutex_lock(&pins.lock);
    pin_entry *e = pin_find(digest);
    bool held = e && e->refs > 0;
    pthread_mutex_unlock(&pins.lock);
    return held;
}

/* ---- what the cache holds ------------------------------------------------------------ */

/* "<64 hex>" or "<64 hex>.partial[-...]": the digest, and whether it is a download. */
static bool blob_name(const char *name, char digest[7 + 64 + 1], bool *partial)
{
    size_t i = 0;
    for (; i < 64; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    if (name[64] && !str_startswith(name + 64, ".partial"))
        return false;
    *partial = name[64] != '\0';
    memcpy(digest, "sha256:", 7);
    memcpy(digest + 7, name, 64);
    digest[71] = '\0';
    return true;
}

/* Calls fn for each cache file that names a blob (regular files only). */
static int each_blob(const char *data_dir,
                     int (*fn)(int dfd, const char *name, const char *digest, bool partial,
                               const struct stat *st, void *ud),
                     void *ud, hypr_error *err)
{
    _cleanup_free_ char *dir = path_join(data_dir, BLOB_DIR);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return hypr_err(err, HYPR_INTERNAL, errno, "open %s: %s", dir, strerror(errno));
    }
    int r = 0;
    struct dirent *de;
    while (r >= 0 && (de = readdir(d))) {
        char digest[72];
        bool partial;
        struct stat st;
        if (!blob_name(de->d_name, digest, &partial) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        r = fn(dirfd(d), de->d_name, digest, partial, &st, ud);
    }
    closedir(d);
    return r;
}

typedef struct blob_list {
    image_blob_file *files;
    size_t n, cap;
} blob_list;

static int list_one(int dfd, const char *name, const char *digest, bool partial,
                    const struct stat *st, void *ud)
{
    (void)dfd;
    (void)name;
    blob_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 32;
        l->files = xrealloc(l->files, l->cap * sizeof(*l->files));
    }
    l->files[l->n++] = (image_blob_file){.digest = xstrdup(digest),
                                         .size = (uint64_t)st->st_size,
                                         .mtime = (int64_t)st->st_mtim.tv_sec,
                                         .partial = partial};
    return 0;
}

int image_blobs_list(const char *data_dir, image_blob_file **out, size_t *n, hypr_error *err)
{
    blob_list l = {0};
    int r = each_blob(data_dir, list_one, &l, err);
    if (r < 0) {
        image_blob_files_free(l.files, l.n);
        return r;
    }
    *out = l.files;
    *n = l.n;
    return 0;
}

void image_blob_files_free(image_blob_file *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++)
        free(f[i].digest);
    free(f);
}

char **image_layer_digests(const store_image *img)
{
    _cleanup_image_info_ image_info info = {0};
    if (!img->manifest || image_info_from_json(img->manifest, &info, NULL) < 0)
        return NULL;
    return TAKE_PTR(info.layer_digests);
}

/* ---- the collector -------------------------------------------------------------------- */

struct image_blob_gc {
    char **keep; /* sorted digests the snapshot's images reference */
    size_t n_keep;
    uint64_t epoch;
    /* run */
    int64_t before_s;
    uint32_t count;
    uint64_t bytes;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int image_blob_gc_prepare(store *db, image_blob_gc **out, hypr_error *err)
{
    store_image *imgs = NULL;
    size_t n = 0;
    int r = store_image_list(db, &imgs, &n, err);
    if (r < 0)
        return r;
    image_blob_gc *gc = xcalloc(1, sizeof(*gc));
    for (size_t i = 0; i < n; i++) {
        _cleanup_strv_ char **layers = image_layer_digests(&imgs[i]);
        for (char **l = layers; l && *l; l++)
            gc->keep = strv_append(gc->keep, *l);
    }
    store_images_free(imgs, n);
    gc->n_keep = gc->keep ? strv_length(gc->keep) : 0;
    if (gc->n_keep)
        qsort(gc->keep, gc->n_keep, sizeof(char *), cmp_str);
    pthread_mutex_lock(&pins.lock);
    /* Pins let go before any running collector's snapshot matter to none of them. */
    if (pins.collecting == 0) {
        size_t k = 0;
        for (size_t i = 0; i < pins.n; i++) {
            if (pins.entries[i].refs)
                pins.entries[k++] = pins.entries[i];
            else
                free(pins.entries[i].digest);
        }
        pins.n = k;
    }
    gc->epoch = ++pins.epoch;
    pins.collecting++;
    pthread_mutex_unlock(&pins.lock);
    *out = gc;
    return 0;
}

static bool kept(const image_blob_gc *gc, const char *digest)
{
    return gc->n_keep && bsearch(&digest, gc->keep, gc->n_keep, sizeof(char *), cmp_str);
}

static int collect_one(int dfd, const char *name, const char *digest, bool partial,
                       const struct stat *st, void *ud)
{
    (void)partial;
    image_blob_gc *gc = ud;
    if (kept(gc, digest) || (gc->before_s && st->st_mtim.tv_sec >= gc->before_s))
        return 0;
    /* Under the lock only a rename out of the blob's name (the pull that releases
     * its pins on the loop thread must not wait on a big unlink); a crash before
     * the unlink leaves a ".partial-" file, which start-up removes. */
    char doomed[128];
    snprintf(doomed, sizeof(doomed), "%.64s.partial-gc-%d", name, (int)getpid());
    pthread_mutex_lock(&pins.lock);
    bool skip = pinned_locked(digest, gc->epoch);
    int r = skip ? 0 : renameat(dfd, name, dfd, doomed);
    int e = errno;
    pthread_mutex_unlock(&pins.lock);
    if (skip)
        return 0;
    if (r < 0 || (unlinkat(dfd, doomed, 0) < 0 && (e = errno) != ENOENT)) {
        if (e != ENOENT)
            log_warn("remove blob %s: %s", name, strerror(e));
        return 0;
    }
    log_debug("removed unreferenced blob %s (%" PRIu64 " bytes)", name, (uint64_t)st->st_size);
    gc->count++;
    gc->bytes += (uint64_t)st->st_size;
    return 0;
}

int image_blob_gc_run(image_blob_gc *gc, const char *data_dir, int64_t before_s, uint32_t *count,
                      uint64_t *bytes, hypr_error *err)
{
    gc->before_s = before_s;
    gc->count = 0;
    gc->bytes = 0;
    int r = each_blob(data_dir, collect_one, gc, err);
    *count = gc->count;
    *bytes = gc->bytes;
    return r;
}

void image_blob_gc_free(image_blob_gc *gc)
{
    if (!gc)
        return;
    pthread_mutex_lock(&pins.lock);
    pins.collecting--;
    pthread_mutex_unlock(&pins.lock);
    strv_free(gc->keep);
    free(gc);
}
