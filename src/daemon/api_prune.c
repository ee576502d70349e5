/* PruneSystem (`hypr system prune`): stopped VMs, networks no VM uses, dangling
 * (with all: unused) images, with volumes unused volumes, then what no record
 * owns any more: layer blobs no image references, logs and run-dir files of VMs
 * that are gone, and the build cache.
 *
 * In three steps, so the loop never walks a directory and never deletes
 * anything it has not just checked is unused:
 *   1. loop: parse the filters (a bad one fails the call, nothing is touched),
 *      pick the candidates from the store;
 *      pool: measure them, list the logs, run and build-cache dirs;
 *   2. loop: delete the records that are still unused now (a VM started, or an
 *      image a new VM took, in the meantime stays), pick the orphan files
 *      among the listed ones, snapshot what the remaining images reference;
 *      pool: remove the directories and files, collect the blobs;
 *   3. loop: answer.
 * The response's images_deleted holds Docker's lines ("untagged: name:tag",
 * "deleted: sha256:<id>"); files_deleted counts the orphan files and the build
 * cache entries removed. Objects without labels (blobs, files, build cache)
 * never match a label= filter. */
#define LOG_MODULE "api"
#include "api.h"
#include "image/image.h"
#include "netmgr.h"
#include "prune_filter.h"
#include "vm.h"
#include "volstore.h"
#include "volume/volume.h"

#include <string.h>

typedef struct prune_file {
    char *path;
    uint64_t size;
} prune_file;

typedef struct prune_work {
    disk_job job; /* first: the call's data */
    uv_work_t req;
    prune_filters f;
    bool all, volumes;
    char *data_dir, *run_dir;
    /* step 1: the candidates and their sizes */
    store_vm *vms;
    size_t n_vms;
    store_image *imgs;
    size_t n_imgs;
    store_volume *vols;
    size_t n_vols;
    uint64_t *img_sizes, *vol_sizes;
    disk_files run, logs, build;
    /* step 2: what the pool removes (sizes counted as it goes) */
    char **image_dirs, **volume_dirs;
    prune_file *files, *cache;
    size_t n_files, n_cache;
    image_blob_gc *gc;
    int64_t blobs_before_s;
    /* the answer */
    char **vms_deleted, **networks_deleted, **images_deleted, **volumes_deleted;
    uint32_t blobs_deleted, files_deleted;
    uint64_t reclaimed;
} prune_work;

static void prune_free(prune_work *w)
{
    prune_filters_clear(&w->f);
    free(w->data_dir);
    free(w->run_dir);
    store_vms_free(w->vms, w->n_vms);
    store_images_free(w->imgs, w->n_imgs);
    store_volumes_free(w->vols, w->n_vols);
    free(w->img_sizes);
    free(w->vol_sizes);
    disk_files_free(&w->run);
    disk_files_free(&w->logs);
    disk_files_free(&w->build);
    strv_free(w->image_dirs);
    strv_free(w->volume_dirs);
    for (size_t i = 0; i < w->n_files; i++)
        free(w->files[i].path);
    free(w->files);
    for (size_t i = 0; i < w->n_cache; i++)
        free(w->cache[i].path);
    free(w->cache);
    image_blob_gc_free(w->gc);
    strv_free(w->vms_deleted);
    strv_free(w->networks_deleted);
    strv_free(w->images_deleted);
    strv_free(w->volumes_deleted);
    free(w);
}

/* Answers (if the client is still there) and frees the work. */
static void prune_finish(prune_work *w, hypr_error *err)
{
    rpc_call *call = w->job.call;
    if (call)
        rpc_call_set_data(call, NULL);
    if (call && err) {
        api_fail(call, err);
    } else if (call) {
        Hypr__V1__PruneSystemResponse resp = HYPR__V1__PRUNE_SYSTEM_RESPONSE__INIT;
        resp.n_vms_deleted = strv_length(w->vms_deleted);
        resp.vms_deleted = w->vms_deleted;
        resp.n_networks_deleted = strv_length(w->networks_deleted);
        resp.networks_deleted = w->networks_deleted;
        resp.n_images_deleted = strv_length(w->images_deleted);
        resp.images_deleted = w->images_deleted;
        resp.n_volumes_deleted = strv_length(w->volumes_deleted);
        resp.volumes_deleted = w->volumes_deleted;
        resp.blobs_deleted = w->blobs_deleted;
        resp.files_deleted = w->files_deleted;
        resp.space_reclaimed_bytes = w->reclaimed;
        rpc_call_reply(call, &resp.base);
    }
    prune_free(w);
}

/* ---- step 1: candidates ---------------------------------------------------------------- */

static bool vm_prunable(daemon_ctx *d, const store_vm *vm, const prune_filters *f)
{
    static const char *const stopped[] = {"created", "stopped", "failed"};
    bool is_stopped = false;
    for (size_t i = 0; i < ARRAY_SIZE(stopped); i++)
        is_stopped = is_stopped || (vm->status && !strcmp(vm->status, stopped[i]));
    if (!is_stopped || vm_running_status(d, vm->id))
        return false;
    _cleanup_strv_ char **labels = disk_vm_labels(vm);
    return prune_filters_match(f, vm->created_at, labels);
}

/* Splits the VM records into the candidates (kept in w) and the others (*rest). */
static void pick_vms(prune_work *w, store_vm *all, size_t n, store_vm **rest, size_t *n_rest)
{
    w->vms = xcalloc(n ? n : 1, sizeof(*w->vms));
    *rest = xcalloc(n ? n : 1, sizeof(**rest));
    *n_rest = 0;
    for (size_t i = 0; i < n; i++) {
        if (vm_prunable(w->job.d, &all[i], &w->f))
            w->vms[w->n_vms++] = all[i];
        else
            (*rest)[(*n_rest)++] = all[i];
    }
    free(all);
}

static void pick_images(prune_work *w, store_image *all, size_t n, const store_vm *rest,
                        size_t n_rest)
{
    w->imgs = xcalloc(n ? n : 1, sizeof(*w->imgs));
    for (size_t i = 0; i < n; i++) {
        _cleanup_strv_ char **labels = disk_image_labels(&all[i]);
        bool dangling = str_empty(all[i].tag);
        if ((w->all || dangling) && prune_filters_match(&w->f, all[i].created_at, labels) &&
            disk_image_users(rest, n_rest, all[i].id) == 0)
            w->imgs[w->n_imgs++] = all[i];
        else
            store_image_clear(&all[i]);
    }
    free(all);
}

static void pick_volumes(prune_work *w, store_volume *all, size_t n, const store_vm *rest,
                         size_t n_rest)
{
    w->vols = xcalloc(n ? n : 1, sizeof(*w->vols));
    for (size_t i = 0; i < n; i++) {
        _cleanup_strv_ char **labels = disk_labels_from_json(all[i].labels);
        if (w->volumes && prune_filters_match(&w->f, all[i].created_at, labels) &&
            disk_volume_users(rest, n_rest, all[i].name) == 0)
            w->vols[w->n_vols++] = all[i];
        else
            store_volume_clear(&all[i]);
    }
    free(all);
}

static int pick_candidates(prune_work *w, hypr_error *err)
{
    store *db = w->job.d->db;
    store_vm *vms = NULL, *rest = NULL;
    store_image *imgs = NULL;
    store_volume *vols = NULL;
    size_t n_vms = 0, n_rest = 0, n_imgs = 0, n_vols = 0;
    int r = store_vm_list(db, &vms, &n_vms, err);
    if (r < 0)
        return r;
    pick_vms(w, vms, n_vms, &rest, &n_rest);
    if ((r = store_image_list(db, &imgs, &n_imgs, err)) >= 0)
        pick_images(w, imgs, n_imgs, rest, n_rest);
    if (r >= 0 && (r = store_volume_list(db, &vols, &n_vols, err)) >= 0)
        pick_volumes(w, vols, n_vols, rest, n_rest);
    store_vms_free(rest, n_rest);
    w->img_sizes = xcalloc(w->n_imgs ? w->n_imgs : 1, sizeof(uint64_t));
    w->vol_sizes = xcalloc(w->n_vols ? w->n_vols : 1, sizeof(uint64_t));
    return r;
}

static void measure_run(uv_work_t *req)
{
    prune_work *w = req->data;
    for (size_t i = 0; i < w->n_imgs; i++)
        w->img_sizes[i] = disk_path_size(w->imgs[i].path);
    for (size_t i = 0; i < w->n_vols; i++)
        w->vol_sizes[i] = disk_path_size(w->vols[i].mountpoint);
    _cleanup_free_ char *logs = path_join(w->data_dir, "logs");
    _cleanup_free_ char *build = path_join(w->data_dir, DISK_BUILD_CACHE_DIR);
    disk_list_dir(w->run_dir, true, &w->run);
    disk_list_dir(logs, true, &w->logs);
    disk_list_dir(build, false, &w->build);
}

/* ---- step 2: the records, then what they leave ----------------------------------------- */

static uint64_t vm_files_size(const prune_work *w, const char *id)
{
    uint64_t size = 0;
    for (size_t i = 0; i < w->run.n; i++)
        if (!strcmp(w->run.v[i].vm_id, id))
            size += w->run.v[i].size;
    for (size_t i = 0; i < w->logs.n; i++)
        if (!strcmp(w->logs.v[i].vm_id, id))
            size += w->logs.v[i].size;
    return size;
}

static void delete_vms(prune_work *w)
{
    for (size_t i = 0; i < w->n_vms; i++) {
        const store_vm *vm = &w->vms[i];
        _cleanup_error_ hypr_error e = HYPR_ERROR_INIT;
        /* vm_delete refuses a VM that is running by now. */
        if (vm_running_status(w->job.d, vm->id) ||
            vm_delete(w->job.d, vm->id, false, false, &e) != 0) {
            log_debug("prune: VM %s stays: %s", vm->name, e.message ? e.message : "running");
            continue;
        }
        w->vms_deleted = strv_append(w->vms_deleted, vm->id);
        w->reclaimed += vm_files_size(w, vm->id);
    }
}

static void delete_networks(prune_work *w)
{
    daemon_ctx *d = w->job.d;
    store_network *nets = NULL;
    size_t n = 0;
    if (store_network_list(d->db, &nets, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        _cleanup_strv_ char **labels = disk_labels_from_json(nets[i].labels);
        _cleanup_strv_ char **users = NULL;
        _cleanup_error_ hypr_error e = HYPR_ERROR_INIT;
        _cleanup_store_network_ store_network gone = {0};
        if (!prune_filters_match(&w->f, nets[i].created_at, labels) ||
            netmgr_network_vms(d, nets[i].name, false, &users, NULL) < 0 || users)
            continue;
        /* Refused for the default network, and for one a VM took meanwhile. */
        if (netmgr_network_remove(d, nets[i].id, false, &gone, &e) < 0) {
            log_debug("prune: network %s stays: %s", nets[i].name, e.message);
            continue;
        }
        w->networks_deleted = strv_append(w->networks_deleted, nets[i].name);
    }
    store_networks_free(nets, n);
}

static void delete_volumes(prune_work *w, const store_vm *vms, size_t n_vms)
{
    daemon_ctx *d = w->job.d;
    for (size_t i = 0; i < w->n_vols; i++) {
        const store_volume *v = &w->vols[i];
        char *trash = NULL;
        /* volstore_delete checks again that no VM uses it (one may have taken it). */
        if (disk_volume_users(vms, n_vms, v->name) ||
            volstore_delete(d, v->name, false, &trash, NULL) < 0)
            continue;
        w->volumes_deleted = strv_append(w->volumes_deleted, v->name);
        /* Only a directory of hypr's own volume store is removed (trash is NULL else). */
        if (trash) {
            w->volume_dirs = strv_append(w->volume_dirs, trash);
            w->reclaimed += w->vol_sizes[i];
        }
        free(trash);
    }
}

static void delete_images(prune_work *w, const store_vm *vms, size_t n_vms)
{
    daemon_ctx *d = w->job.d;
    for (size_t i = 0; i < w->n_imgs; i++) {
        const store_image *img = &w->imgs[i];
        if (disk_image_users(vms, n_vms, img->id) || store_image_delete(d->db, img->id, NULL) < 0)
            continue;
        _cleanup_free_ char *ref = xasprintf("%s:%s", img->name, img->tag ? img->tag : "");
        if (!str_empty(img->tag)) {
            _cleanup_free_ char *line = xasprintf("untagged: %s", ref);
            w->images_deleted = strv_append(w->images_deleted, line);
        }
        _cleanup_free_ char *line = xasprintf("deleted: sha256:%s", img->id);
        w->images_deleted = strv_append(w->images_deleted, line);
        if (img->path)
            w->image_dirs = strv_append(w->image_dirs, img->path);
        w->reclaimed += w->img_sizes[i];
        char *attrs[] = {"name", ref, NULL};
        event_publish(d->events, "image.deleted", img->id, ref, attrs);
        log_info("prune: deleted image %s (%s)", ref, img->id);
    }
}

static bool older(const prune_work *w, int64_t mtime)
{
    return !w->f.has_until || mtime * 1000 < w->f.until_ms;
}

static void add_file(prune_file **v, size_t *n, char *path, uint64_t size)
{
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = (prune_file){.path = path, .size = size};
}

/* Files of VMs that have neither a record nor a hypervisor: left by a crash or
 * an older hyprd. The files of VMs deleted above went with them. */
static void pick_orphans(prune_work *w, const disk_files *files, const char *dir,
                         const store_vm *vms, size_t n_vms)
{
    for (size_t i = 0; i < files->n; i++) {
        const disk_file *f = &files->v[i];
        bool known = strv_contains(w->vms_deleted, f->vm_id) ||
                     vm_running_status(w->job.d, f->vm_id) != NULL;
        for (size_t k = 0; !known && k < n_vms; k++)
            known = !strcmp(vms[k].id, f->vm_id);
        if (!known && older(w, f->mtime))
            add_file(&w->files, &w->n_files, path_join(dir, f->name), f->size);
    }
}

static int plan_removals(prune_work *w, hypr_error *err)
{
    daemon_ctx *d = w->job.d;
    store_vm *vms = NULL;
    size_t n_vms = 0;
    int r = store_vm_list(d->db, &vms, &n_vms, err);
    if (r < 0)
        return r;
    delete_volumes(w, vms, n_vms);
    delete_images(w, vms, n_vms);
    if (!w->f.labels) {
        _cleanup_free_ char *logs = path_join(w->data_dir, "logs");
        _cleanup_free_ char *build = path_join(w->data_dir, DISK_BUILD_CACHE_DIR);
        pick_orphans(w, &w->logs, logs, vms, n_vms);
        pick_orphans(w, &w->run, w->run_dir, vms, n_vms);
        for (size_t i = 0; i < w->build.n; i++)
            if (older(w, w->build.v[i].mtime))
                add_file(&w->cache, &w->n_cache, path_join(build, w->build.v[i].name),
                         w->build.v[i].size);
        /* After the images went: the snapshot is of the ones that stay. */
        r = image_blob_gc_prepare(d->db, &w->gc, err);
        w->blobs_before_s = w->f.has_until ? w->f.until_ms / 1000 : 0;
    }
    store_vms_free(vms, n_vms);
    return r;
}

static void remove_run(uv_work_t *req)
{
    prune_work *w = req->data;
    for (char **p = w->image_dirs; p && *p; p++)
        image_store_remove_dir(*p);
    for (char **p = w->volume_dirs; p && *p; p++)
        (void)volume_dir_remove(*p, NULL); /* never follows a link out of it */
    for (size_t i = 0; i < w->n_files; i++) {
        if (unlink(w->files[i].path) < 0)
            continue;
        w->files_deleted++;
        w->reclaimed += w->files[i].size;
    }
    for (size_t i = 0; i < w->n_cache; i++) {
        if (rm_rf(w->cache[i].path) < 0)
            continue;
        w->files_deleted++;
        w->reclaimed += w->cache[i].size;
    }
    if (w->gc) {
        uint64_t bytes = 0;
        _cleanup_error_ hypr_error e = HYPR_ERROR_INIT;
        if (image_blob_gc_run(w->gc, w->data_dir, w->blobs_before_s, &w->blobs_deleted, &bytes,
                              &e) < 0)
            log_warn("prune: blob cache: %s", e.message);
        w->reclaimed += bytes;
    }
}

/* ---- the steps -------------------------------------------------------------------------- */

static void removed(uv_work_t *req, int status)
{
    prune_work *w = req->data;
    (void)status; /* the work always ran: nothing queued is ever cancelled */
    size_t images = 0;
    for (char **l = w->images_deleted; l && *l; l++)
        images += str_startswith(*l, "deleted: ");
    log_info("prune: %zu VMs, %zu networks, %zu volumes, %zu images, %u blobs, %u files; "
             "%" PRIu64 " bytes reclaimed",
             strv_length(w->vms_deleted), strv_length(w->networks_deleted),
             strv_length(w->volumes_deleted), images, w->blobs_deleted, w->files_deleted,
             w->reclaimed);
    prune_finish(w, NULL);
}

static void measured(uv_work_t *req, int status)
{
    prune_work *w = req->data;
    daemon_ctx *d = w->job.d;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    /* A client gone before anything was deleted: nothing is. */
    if (!w->job.call || status < 0 || d->shutting_down) {
        if (status < 0)
            hypr_err(&err, HYPR_INTERNAL, -status, "prune: %s", uv_strerror(status));
        else
            hypr_err(&err, HYPR_UNAVAILABLE, ESHUTDOWN, "hyprd is shutting down");
        prune_finish(w, &err);
        return;
    }
    delete_vms(w);
    delete_networks(w);
    int r = plan_removals(w, &err);
    if (r < 0)
        log_warn("prune: %s", err.message); /* what was deleted is still reported */
    r = uv_queue_work(d->loop, &w->req, remove_run, removed);
    if (r < 0) {
        log_warn("prune: queue the removals: %s", uv_strerror(r));
        prune_finish(w, NULL);
    }
}

/* The spec of the until filter, for the message refusing it with volumes. */
static const char *until_spec(const Hypr__V1__PruneSystemRequest *req)
{
    for (size_t i = 0; i < req->n_filters; i++)
        if (str_startswith(req->filters[i], "until="))
            return req->filters[i];
    return "until";
}

void api_prune_system(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__PruneSystemRequest *req = (Hypr__V1__PruneSystemRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (d->shutting_down) {
        rpc_call_finish(call, HYPR_UNAVAILABLE, "hyprd is shutting down");
        return;
    }
    prune_work *w = xcalloc(1, sizeof(*w));
    w->job = (disk_job){.call = call, .d = d};
    w->req.data = w;
    w->all = req->all;
    w->volumes = req->volumes;
    w->data_dir = xstrdup(d->data_dir);
    w->run_dir = xstrdup(d->run_dir);
    int r = prune_filters_parse(req->filters, req->n_filters, time_now_ms(), &w->f, &err);
    if (r >= 0 && w->volumes && w->f.has_until)
        r = hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL,
                     "invalid filter '%s': volumes take no until filter (prune them without it)",
                     until_spec(req));
    if (r >= 0 && (r = pick_candidates(w, &err)) < 0)
        hypr_err_prefix(&err, "prune");
    if (r >= 0) {
        rpc_call_set_data(call, &w->job);
        if ((r = uv_queue_work(d->loop, &w->req, measure_run, measured)) < 0) {
            rpc_call_set_data(call, NULL);
            hypr_err(&err, HYPR_INTERNAL, -r, "prune: %s", uv_strerror(r));
        }
    }
    if (r < 0) {
        w->job.call = NULL;
        api_fail(call, &err);
        prune_free(w);
    }
}
