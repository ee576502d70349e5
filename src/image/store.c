/* The image store on disk: <data>/images/<name>_<tag>/{rootfs.squashfs,manifest.json}.
 * An image is built in <data>/images/.tmp-XXXXXX and appears under its name
 * and in the state only on commit (rename + one transaction); leftovers of
 * interrupted pulls are removed at daemon start-up. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

char *image_store_dir_name(const char *name, const char *tag, const char *digest)
{
    char *s;
    if (!str_empty(tag))
        s = xasprintf("%s_%s", name, tag);
    else if (digest && strlen(digest) > 19)
        s = xasprintf("%s_%.12s", name, digest + strlen("sha256:"));
    else
        s = xstrdup(name);
    for (char *p = s; *p; p++)
        if (*p == '/' || *p == ':' || *p == '@' || *p == '[' || *p == ']')
            *p = '_';
    return s;
}

int image_store_mktemp(const char *data_dir, char **out, hypr_error *err)
{
    _cleanup_free_ char *images = path_join(data_dir, "images");
    int r = mkdir_p(images, 0700);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "create %s: %s", images, strerror(-r));
    char *tmpl = xasprintf("%s/.tmp-XXXXXX", images);
    if (!mkdtemp(tmpl)) {
        int e = errno;
        free(tmpl);
        return hypr_err(err, e == ENOSPC ? HYPR_RESOURCE_EXHAUSTED : HYPR_INTERNAL, e,
                        "create a temp dir in %s: %s", images, strerror(e));
    }
    *out = tmpl;
    return 0;
}

static int remove_matching(const char *dir, bool (*match)(const char *name))
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!match(de->d_name))
            continue;
        _cleanup_free_ char *p = path_join(dir, de->d_name);
        if (rm_rf(p) == 0) {
            log_info("removed leftover %s", p);
            n++;
        }
    }
    closedir(d);
    return n;
}

static bool is_tmp(const char *name)
{
    return str_startswith(name, ".tmp-");
}

static bool is_partial(const char *name)
{
    return strstr(name, ".partial-") != NULL;
}

int image_store_cleanup(const char *data_dir)
{
    _cleanup_free_ char *images = path_join(data_dir, "images");
    _cleanup_free_ char *blobs = path_join(data_dir, "cache/blobs/sha256");
    /* Shared "<hex>.partial" files are kept: the next pull resumes them (their
     * bytes are re-hashed first). Private ".partial-*" ones cannot be resumed. */
    return remove_matching(images, is_tmp) + remove_matching(blobs, is_partial);
}

/* ---- staging ------------------------------------------------------------------------ */

int img_stage_write(image_staged *st, const char *data_dir, image_tree *tree,
                    const image_layer_src *layers, size_t n_layers, image_progress *progress,
                    hypr_error *err)
{
    int r = image_store_mktemp(data_dir, &st->tmp_dir, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *sq = path_join(st->tmp_dir, "rootfs.squashfs");
    r = image_tree_write_squashfs(tree, layers, n_layers, sq, progress, err);
    if (r < 0)
        return r;
    struct stat s;
    if (stat(sq, &s) < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "stat %s: %s", sq, strerror(errno));
    st->info.size = (uint64_t)s.st_size;
    _cleanup_free_ char *json = image_info_to_json(&st->info);
    _cleanup_free_ char *mpath = path_join(st->tmp_dir, "manifest.json");
    r = write_file_atomic(mpath, json, strlen(json), 0644);
    if (r < 0)
        return hypr_err(err, -r == ENOSPC ? HYPR_RESOURCE_EXHAUSTED : HYPR_INTERNAL, -r,
                        "write %s: %s", mpath, strerror(-r));
    _cleanup_free_ char *dn = image_store_dir_name(st->info.name, st->info.tag, st->info.digest);
    _cleanup_free_ char *images = path_join(data_dir, "images");
    st->final_dir = path_join(images, dn);
    return 0;
}

void image_staged_discard(image_staged *st)
{
    if (st && st->tmp_dir) {
        rm_rf(st->tmp_dir);
        free(st->tmp_dir);
        st->tmp_dir = NULL;
    }
}

void image_staged_clear(image_staged *st)
{
    if (!st)
        return;
    free(st->tmp_dir);
    free(st->final_dir);
    image_info_clear(&st->info);
    store_image_clear(&st->existing);
    img_blob_pins_release(st->pins);
    memset(st, 0, sizeof(*st));
}

/* ---- commit ------------------------------------------------------------------------ */

typedef struct commit_tx {
    const store_image *img;
    const char *old_id; /* row of the same name:tag being replaced, or NULL */
} commit_tx;

static int commit_fn(store *s, void *ud)
{
    commit_tx *tx = ud;
    hypr_error e = HYPR_ERROR_INIT;
    int r = 0;
    if (tx->old_id)
        r = store_image_delete(s, tx->old_id, &e);
    if (r >= 0)
        r = store_image_insert(s, tx->img, &e);
    hypr_error_clear(&e);
    return r;
}

/* sha256 of "<config digest> <name>:<tag>" as hex: the ID of an image whose
 * config is already stored under another name (IDs are unique per row). */
static void derived_id(const image_info *info, char out[HYPR_ID_LEN + 1])
{
    _cleanup_free_ char *seed =
        xasprintf("%s %s:%s", info->config_digest ? info->config_digest : "", info->name,
                  info->tag ? info->tag : "");
    _cleanup_free_ char *d = img_sha256_digest(seed, strlen(seed));
    memcpy(out, d + strlen("sha256:"), HYPR_ID_LEN + 1);
}

int image_staged_commit(image_staged *st, store *db, store_image *img, hypr_error *err)
{
    memset(img, 0, sizeof(*img));
    if (st->up_to_date) {
        *img = st->existing;
        memset(&st->existing, 0, sizeof(st->existing));
        return 0;
    }
    if (!st->tmp_dir || !st->final_dir)
        return hypr_err(err, HYPR_INTERNAL, EINVAL, "nothing staged");
    const image_info *info = &st->info;
    /* The row this replaces (same name and tag), and an ID clash with another name. */
    store_image old = {0};
    _cleanup_free_ char *key = info->tag ? xasprintf("%s:%s", info->name, info->tag)
                                         : xasprintf("%s@%s", info->name, info->digest);
    bool have_old = store_image_find(db, key, &old, NULL) == 0;
    store_image clash = {0};
    if (store_image_find(db, st->id, &clash, NULL) == 0 && (!have_old || strcmp(clash.id, old.id)))
        derived_id(info, st->id);
    store_image_clear(&clash);

    /* Move an older directory of this name aside first, so the rename cannot fail on it. */
    _cleanup_free_ char *aside = NULL;
    struct stat s;
    if (lstat(st->final_dir, &s) == 0) {
        aside = xasprintf("%s.tmp-old", st->tmp_dir);
        if (rename(st->final_dir, aside) < 0) {
            int e = errno;
            store_image_clear(&old);
            return hypr_err(err, HYPR_INTERNAL, e, "move %s aside: %s", st->final_dir, strerror(e));
        }
    }
    if (rename(st->tmp_dir, st->final_dir) < 0) {
        int e = errno;
        if (aside)
            rename(aside, st->final_dir);
        store_image_clear(&old);
        return hypr_err(err, HYPR_INTERNAL, e, "rename %s to %s: %s", st->tmp_dir, st->final_dir,
                        strerror(e));
    }
    _cleanup_free_ char *json = image_info_to_json(info);
    memcpy(img->id, st->id, sizeof(img->id));
    img->name = xstrdup(info->name);
    img->tag = info->tag ? xstrdup(info->tag) : NULL;
    img->digest = info->digest ? xstrdup(info->digest) : NULL;
    img->path = xstrdup(st->final_dir);
    img->manifest = TAKE_PTR(json);
    img->size_bytes = info->size;
    img->created_at = (int64_t)time(NULL);
    commit_tx tx = {.img = img, .old_id = have_old ? old.id : NULL};
    int r = store_transaction(db, commit_fn, &tx, err);
    if (r < 0) {
        /* Undo: the image must not stay on disk without its row. */
        rm_rf(st->final_dir);
        if (aside)
            rename(aside, st->final_dir);
        store_image_clear(&old);
        store_image_clear(img);
        free(st->tmp_dir);
        st->tmp_dir = NULL;
        return hypr_err_prefix(err, "register image %s", key);
    }
    if (aside)
        rm_rf(aside);
    /* An old image of this name elsewhere (another dir name) goes too. */
    if (have_old && old.path && strcmp(old.path, st->final_dir) && strstr(old.path, "/images/"))
        rm_rf(old.path);
    store_image_clear(&old);
    free(st->tmp_dir);
    st->tmp_dir = NULL;
    return 0;
}

int image_store_remove_dir(const char *path)
{
    /* Only ever remove directories of the image store. */
    if (!path || !strstr(path, "/images/"))
        return 0;
    int r = rm_rf(path);
    if (r < 0)
        log_warn("remove %s: %s", path, strerror(-r));
    return r;
}

int image_store_remove(store *db, const store_image *img, hypr_error *err)
{
    int r = store_image_delete(db, img->id, err);
    if (r < 0)
        return r;
    image_store_remove_dir(img->path);
    return 0;
}

typedef struct untag_tx {
    const char *id;
    store_image *img;
} untag_tx;

static int untag_fn(store *s, void *ud)
{
    untag_tx *tx = ud;
    hypr_error e = HYPR_ERROR_INIT;
    int r = store_image_delete(s, tx->id, &e);
    if (r >= 0)
        r = store_image_insert(s, tx->img, &e);
    hypr_error_clear(&e);
    return r;
}

int image_store_untag(store *db, const store_image *img, hypr_error *err)
{
    if (!img->path || !strstr(img->path, "/images/"))
        return hypr_err(err, HYPR_INTERNAL, EINVAL, "image %.12s is not in the image store",
                        img->id);
    /* Out of the name:tag directory a later pull of that name would replace. */
    _cleanup_free_ char *images =
        xstrndup(img->path, (size_t)(strrchr(img->path, '/') - img->path));
    _cleanup_free_ char *name = xasprintf("untagged-%s", img->id);
    _cleanup_free_ char *path = path_join(images, name);
    if (rename(img->path, path) < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "move %s to %s: %s", img->path, path,
                        strerror(errno));
    store_image dangling = *img;
    dangling.name = (char *)"";
    dangling.tag = NULL;
    dangling.path = path;
    untag_tx tx = {.id = img->id, .img = &dangling};
    int r = store_transaction(db, untag_fn, &tx, err);
    if (r < 0) {
        rename(path, img->path);
        return hypr_err_prefix(err, "untag image %.12s", img->id);
    }
    return 0;
}

int image_store_find(store *db, const char *ref, store_image *out, hypr_error *err)
{
    int r = store_image_find(db, ref, out, err);
    if (r != -ENOENT)
        return r;
    /* "busybox" is stored as docker.io/library/busybox:latest. */
    image_ref parsed;
    if (image_ref_parse(ref, &parsed, NULL) < 0)
        return r;
    _cleanup_free_ char *name = image_ref_name(&parsed);
    _cleanup_free_ char *key =
        parsed.tag ? xasprintf("%s:%s", name, parsed.tag) : xasprintf("%s@%s", name, parsed.digest);
    image_ref_clear(&parsed);
    hypr_error e2 = HYPR_ERROR_INIT;
    int r2 = store_image_find(db, key, out, &e2);
    if (r2 == 0) {
        hypr_error_clear(err);
        hypr_error_clear(&e2);
        return 0;
    }
    hypr_error_clear(&e2);
    return r;
}
