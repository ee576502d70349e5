/* A pull, start to end, on the calling (worker) thread: resolve the reference
 * and platform, fetch the manifest and config, download the layers, apply
 * them and write the squashfs into a temp dir of the image store. The result
 * is staged; the daemon's loop thread commits it (or discards it when the
 * client went away), so an interrupted pull never leaves a registered image. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <string.h>
#include <sys/stat.h>

#define MAX_CONFIG (16u * 1024 * 1024)

/* ---- progress --------------------------------------------------------------------- */

void image_progress_init(image_progress *p, void (*notify)(void *ud), void *ud)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    atomic_init(&p->cancelled, false);
    p->phase = IMAGE_PHASE_RESOLVING;
    p->notify = notify;
    p->ud = ud;
}

void image_progress_destroy(image_progress *p)
{
    for (size_t i = 0; i < p->n_layers; i++)
        free(p->layers[i].digest);
    free(p->layers);
    free(p->message);
    free(p->digest);
    pthread_mutex_destroy(&p->lock);
}

void image_progress_cancel(image_progress *p)
{
    atomic_store(&p->cancelled, true);
}

bool image_progress_cancelled(const image_progress *p)
{
    return atomic_load(&((image_progress *)p)->cancelled);
}

static void changed(image_progress *p)
{
    p->generation++;
    pthread_mutex_unlock(&p->lock);
    if (p->notify)
        p->notify(p->ud);
}

void image_progress_set_phase(image_progress *p, image_phase phase, const char *message)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->phase = phase;
    free(p->message);
    p->message = message ? xstrdup(message) : NULL;
    changed(p);
}

void image_progress_set_layers(image_progress *p, const image_descriptor *layers, size_t n)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_layers; i++)
        free(p->layers[i].digest);
    free(p->layers);
    p->layers = xcalloc(n ? n : 1, sizeof(*p->layers));
    p->n_layers = n;
    for (size_t i = 0; i < n; i++) {
        p->layers[i].digest = xstrdup(layers[i].digest);
        p->layers[i].total = layers[i].size > 0 ? (uint64_t)layers[i].size : 0;
        p->layers[i].status = "waiting";
    }
    changed(p);
}

void image_progress_layer(image_progress *p, size_t i, uint64_t done, const char *status)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    if (i >= p->n_layers || (p->layers[i].done == done && !strcmp(p->layers[i].status, status))) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->layers[i].done = done;
    p->layers[i].status = status;
    changed(p);
}

void image_progress_set_digest(image_progress *p, const char *digest)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    free(p->digest);
    p->digest = digest ? xstrdup(digest) : NULL;
    changed(p);
}

/* ---- the pull ------------------------------------------------------------------------ */

static bool layer_type_ok(const char *mt)
{
    if (!mt)
        return true;
    static const char *const ok[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
        if (!strcmp(mt, ok[i]))
            return true;
    return false;
}

/* The downloads, on their own thread while the calling one reads each layer
 * as soon as its blob is in the cache. */
typedef struct fetch_run {
    registry_client *reg;
    const char *data_dir;
    blob_job *jobs;
    size_t n;
    int max_parallel;
    img_blob_gate *gate;
    image_progress *progress;
    hypr_error err;
    int result;
    int64_t ms;
} fetch_run;

static void *fetch_thread(void *ud)
{
    fetch_run *f = ud;
    int64_t t0 = time_monotonic_ms();
    f->result = blobs_fetch(f->reg, f->data_dir, f->jobs, f->n, f->max_parallel, f->gate,
                            f->progress, &f->err);
    f->ms = time_monotonic_ms() - t0;
    if (f->result >= 0) /* the layers still being read are the conversion now */
        image_progress_set_phase(f->progress, IMAGE_PHASE_CONVERTING,
                                 "Converting layers to squashfs");
    return NULL;
}

/* Downloads the layers while applying them to tree. */
static int fetch_and_apply(fetch_run *f, image_tree *tree, const image_layer_src *srcs,
                           image_progress *progress, hypr_error *err)
{
    img_blob_gate gate;
    img_blob_gate_init(&gate, f->n);
    f->gate = &gate;
    f->result = 0;
    f->err = (hypr_error)HYPR_ERROR_INIT;
    pthread_t tid;
    bool threaded = pthread_create(&tid, NULL, fetch_thread, f) == 0;
    if (!threaded)
        fetch_thread(f);
    int64_t t0 = time_monotonic_ms();
    hypr_error aerr = HYPR_ERROR_INIT;
    int r = img_tree_apply_layers(tree, srcs, f->n, &gate, progress, &aerr);
    int64_t apply_ms = time_monotonic_ms() - t0;
    if (r < 0)
        img_blob_gate_abort(&gate);
    if (threaded)
        pthread_join(tid, NULL);
    log_debug("pull: blobs in %" PRId64 " ms, %zu layers applied in %" PRId64
              " ms (overlapping), %zu inodes",
              f->ms, f->n, apply_ms, image_tree_count(tree));
    /* A reader's own failure (a bad layer) stopped the downloads: it is the
     * reason. Otherwise a failed download is, and the readers only gave up. */
    bool reader_failed = r < 0 && aerr.status != HYPR_CANCELLED;
    if (f->result < 0 && !reader_failed) {
        hypr_error_clear(&aerr);
        aerr = f->err;
        r = f->result;
    } else {
        hypr_error_clear(&f->err);
    }
    if (r < 0 && err) {
        hypr_error_clear(err);
        *err = aerr;
    } else
        hypr_error_clear(&aerr);
    img_blob_gate_destroy(&gate);
    return r;
}

/* The image already in the store under this name (same manifest and config)? */
static bool already_present(const image_pull_opts *o, const char *name, const image_ref *ref,
                            const char *digest, const char *config_digest, store_image *out)
{
    if (!o->db)
        return false;
    _cleanup_free_ char *key =
        ref->tag ? xasprintf("%s:%s", name, ref->tag) : xasprintf("%s@%s", name, digest);
    store_image img;
    if (store_image_find(o->db, key, &img, NULL) < 0)
        return false;
    _cleanup_image_info_ image_info info = {0};
    bool same = img.digest && !strcmp(img.digest, digest) &&
                image_info_from_json(img.manifest, &info, NULL) == 0 && info.config_digest &&
                !strcmp(info.config_digest, config_digest);
    struct stat st;
    if (same && img.path) {
        _cleanup_free_ char *sq = path_join(img.path, "rootfs.squashfs");
        same = stat(sq, &st) == 0;
    }
    if (!same) {
        store_image_clear(&img);
        return false;
    }
    *out = img;
    return true;
}

/* The image manifest for ref (digest: of what the reference names); for an
 * index, the entry that matches want. */
static int resolve_manifest(registry_client *reg, const image_ref *ref, const image_platform *want,
                            image_manifest *out, char **digest, hypr_error *err)
{
    _cleanup_free_ char *body = NULL, *ctype = NULL;
    size_t len = 0;
    int r = registry_get_manifest(reg, ref->digest ? ref->digest : ref->tag, &body, &len, &ctype,
                                  digest, err);
    if (r < 0)
        return r;
    _cleanup_image_manifest_ image_manifest idx = {0};
    if ((r = image_manifest_parse(ctype, body, len, &idx, err)) < 0)
        return r;
    if (idx.kind != IMAGE_MEDIA_OCI_INDEX && idx.kind != IMAGE_MEDIA_DOCKER_LIST) {
        *out = idx;
        memset(&idx, 0, sizeof(idx));
        return 0;
    }
    const image_descriptor *d;
    if ((r = image_index_select(&idx, want, &d, err)) < 0)
        return r;
    _cleanup_free_ char *entry_body = NULL, *entry_ctype = NULL, *entry_digest = NULL;
    if ((r = registry_get_manifest(reg, d->digest, &entry_body, &len, &entry_ctype, &entry_digest,
                                   err)) < 0 ||
        (r = image_manifest_parse(entry_ctype, entry_body, len, out, err)) < 0)
        return r;
    if (out->kind != IMAGE_MEDIA_OCI_MANIFEST && out->kind != IMAGE_MEDIA_DOCKER_MANIFEST)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "index entry %s is not an image manifest", d->digest);
    return 0;
}

/* The image config of man, checked against it: a linux image, one diff_id a layer. */
static int fetch_config(registry_client *reg, const image_manifest *man, const image_platform *want,
                        image_config *cfg, hypr_error *err)
{
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    int r;
    if ((r = registry_get_blob_mem(reg, man->config.digest, MAX_CONFIG, &body, &len, err)) < 0 ||
        (r = image_config_parse(body, len, cfg, err)) < 0)
        return r;
    if (cfg->platform.os && strcmp(cfg->platform.os, "linux"))
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOTSUP,
                        "image is for %s, hypr runs linux images", cfg->platform.os);
    if (!cfg->platform.arch && want->arch)
        cfg->platform.arch = xstrdup(want->arch);
    /* Each layer's uncompressed content is checked against the config's diff_ids. */
    if (cfg->diff_ids && strv_length(cfg->diff_ids) != man->n_layers)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "image config lists %zu diff_ids for %zu layers",
                        strv_length(cfg->diff_ids), man->n_layers);
    return 0;
}

/* What a pull keeps per layer: its download and where the tree reads it from. */
typedef struct pull_layers {
    size_t n;
    blob_job *jobs;
    image_layer_src *srcs;
    char **labels, **paths; /* NULL-terminated; srcs point into them */
} pull_layers;

static void pull_layers_init(pull_layers *l, const char *data_dir, const image_manifest *man,
                             const image_config *cfg)
{
    l->n = man->n_layers;
    l->jobs = xcalloc(l->n ? l->n : 1, sizeof(*l->jobs));
    l->srcs = xcalloc(l->n ? l->n : 1, sizeof(*l->srcs));
    l->labels = xcalloc(l->n + 1, sizeof(char *));
    l->paths = xcalloc(l->n + 1, sizeof(char *));
    for (size_t i = 0; i < l->n; i++) {
        l->jobs[i].digest = man->layers[i].digest;
        l->jobs[i].size = man->layers[i].size;
        l->jobs[i].progress_index = i;
        l->labels[i] = xasprintf("layer %.19s", man->layers[i].digest);
        l->paths[i] = blobs_cache_path(data_dir, man->layers[i].digest);
        l->srcs[i].path = l->paths[i];
        l->srcs[i].label = l->labels[i];
        if (cfg->diff_ids && str_startswith(cfg->diff_ids[i], "sha256:"))
            l->srcs[i].diff_id = cfg->diff_ids[i];
    }
}

static void pull_layers_clear(pull_layers *l)
{
    for (size_t i = 0; l->jobs && i < l->n; i++)
        free(l->jobs[i].path);
    free(l->jobs);
    free(l->srcs);
    strv_free(l->labels);
    strv_free(l->paths);
}

/* The pull once the reference and platform are known; image_pull undoes a
 * partial result. */
static int pull_resolved(const image_pull_opts *o, const image_ref *ref, const image_platform *want,
                         image_progress *progress, image_staged *out, hypr_error *err)
{
    _cleanup_free_ char *name = image_ref_name(ref);
    _cleanup_free_ char *full = image_ref_string(ref);
    _cleanup_free_ char *resolving = xasprintf("Resolving %s", full);
    image_progress_set_phase(progress, IMAGE_PHASE_RESOLVING, resolving);
    registry_opts ro = {.ref = ref,
                        .insecure = o->insecure,
                        .ca_file = o->ca_file,
                        .certs_dir = o->certs_dir,
                        .config_dir = o->config_dir,
                        .cancel = progress};
    _cleanup_(registry_client_freep) registry_client *reg = NULL;
    int r;
    if ((r = registry_client_new(&ro, &reg, err)) < 0 || (r = registry_ping(reg, err)) < 0)
        return r;
    _cleanup_image_manifest_ image_manifest man = {0};
    _cleanup_free_ char *digest = NULL;
    if ((r = resolve_manifest(reg, ref, want, &man, &digest, err)) < 0)
        return r;
    image_progress_set_digest(progress, digest);
    for (size_t i = 0; i < man.n_layers; i++)
        if (!layer_type_ok(man.layers[i].media_type))
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOTSUP,
                            "layer %s: unsupported media type %s (not a container image?)",
                            man.layers[i].digest, man.layers[i].media_type);
    if (already_present(o, name, ref, digest, man.config.digest, &out->existing)) {
        out->up_to_date = true;
        memcpy(out->id, out->existing.id, sizeof(out->id));
        return 0;
    }
    _cleanup_image_config_ image_config cfg = {0};
    if ((r = fetch_config(reg, &man, want, &cfg, err)) < 0)
        return r;

    /* Layers: held from here on, so a prune running meanwhile leaves their blobs. */
    out->pins = img_blob_pins_take(man.layers, man.n_layers);
    image_progress_set_layers(progress, man.layers, man.n_layers);
    image_progress_set_phase(progress, IMAGE_PHASE_DOWNLOADING, NULL);
    _cleanup_(pull_layers_clear) pull_layers layers = {0};
    pull_layers_init(&layers, o->data_dir, &man, &cfg);
    _cleanup_(image_tree_freep) image_tree *tree = image_tree_new();
    {
        /* Decompress each layer once: file contents go to a spill file next to the store. */
        _cleanup_free_ char *spill = path_join(o->data_dir, "images");
        if (mkdir_p(spill, 0700) == 0)
            image_tree_set_spill_dir(tree, spill);
    }
    fetch_run fr = {.reg = reg,
                    .data_dir = o->data_dir,
                    .jobs = layers.jobs,
                    .n = man.n_layers,
                    .max_parallel = o->max_parallel,
                    .progress = progress};
    if ((r = fetch_and_apply(&fr, tree, layers.srcs, progress, err)) < 0)
        return r;
    int64_t t_sq = time_monotonic_ms();
    out->info.name = xstrdup(name);
    out->info.tag = ref->tag ? xstrdup(ref->tag) : NULL;
    out->info.digest = xstrdup(digest);
    out->info.config_digest = xstrdup(man.config.digest);
    for (size_t i = 0; i < man.n_layers; i++)
        out->info.layer_digests = strv_append(out->info.layer_digests, man.layers[i].digest);
    /* history: non-empty entries made the layers, in order */
    for (size_t i = 0, l = 0; i < cfg.n_history; i++)
        if (!cfg.history[i].empty_layer && l < man.n_layers)
            cfg.history[i].size = (uint64_t)man.layers[l++].size;
    out->info.config = cfg;
    memset(&cfg, 0, sizeof(cfg));
    r = img_stage_write(out, o->data_dir, tree, layers.srcs, man.n_layers, progress, err);
    log_debug("pull %s: squashfs written in %" PRId64 " ms", full, time_monotonic_ms() - t_sq);
    if (r < 0)
        return r;
    memcpy(out->id, man.config.digest + strlen("sha256:"), HYPR_ID_LEN + 1);
    return 0;
}

int image_pull(const image_pull_opts *o, image_progress *progress, image_staged *out,
               hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_image_ref_ image_ref ref = {0};
    int r = image_ref_parse(o->reference, &ref, err);
    if (r < 0)
        return r;
    _cleanup_image_platform_ image_platform want = {0};
    if (!str_empty(o->platform)) {
        if ((r = image_platform_parse(o->platform, &want, err)) < 0)
            return r;
    } else {
        image_platform_host(&want);
    }
    r = pull_resolved(o, &ref, &want, progress, out, err);
    if (r < 0) {
        if (r != -ECANCELED && err && err->status != HYPR_CANCELLED)
            hypr_err_prefix(err, "pull %s", o->reference);
        image_staged_discard(out);
        image_staged_clear(out);
    }
    return r;
}
