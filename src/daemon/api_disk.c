/* GetDiskUsage (`hypr system df`): what hypr keeps on disk, by kind, and how
 * much of it a prune would give back.
 *
 *   Images        image directories (squashfs + manifest.json) and the layer blob
 *                 cache; active = used by a VM record; reclaimable = unused images
 *                 and the blobs no used image references and no pull holds
 *   VMs           each VM's files in the run dir (initrd, sockets) and its writable
 *                 layer (<data>/layers/<id>.ext4, the space it takes), and those of
 *                 VMs without a record (reclaimable); active = running
 *   Local Volumes volume directories; active = named by a VM record
 *   Build Cache   <data>/cache/build; all of it reclaimable
 *   Logs          <data>/logs/<id>.log*; active = of a running VM
 *
 * The directory walks run on the thread pool; which object is in use is
 * decided on the loop from the store and the running VMs once they are done. */
#define LOG_MODULE "api"
#include "api.h"
#include "image/image.h"
#include "vm.h"

#include <string.h>

typedef struct df_work {
    disk_job job; /* first: the call's data */
    uv_work_t req;
    bool verbose;
    char *data_dir, *run_dir;
    store_image *imgs;
    size_t n_imgs;
    store_volume *vols;
    size_t n_vols;
    /* filled on the pool */
    uint64_t *img_sizes, *vol_sizes;
    image_blob_file *blobs;
    size_t n_blobs;
    disk_files run, logs, build;
} df_work;

static void df_run(uv_work_t *req)
{
    df_work *w = req->data;
    for (size_t i = 0; i < w->n_imgs; i++)
        w->img_sizes[i] = disk_path_size(w->imgs[i].path);
    for (size_t i = 0; i < w->n_vols; i++)
        w->vol_sizes[i] = disk_path_size(w->vols[i].mountpoint);
    if (image_blobs_list(w->data_dir, &w->blobs, &w->n_blobs, NULL) < 0)
        w->n_blobs = 0;
    _cleanup_free_ char *logs = path_join(w->data_dir, "logs");
    _cleanup_free_ char *build = path_join(w->data_dir, DISK_BUILD_CACHE_DIR);
    disk_list_dir(w->run_dir, true, &w->run);
    /* The VMs' writable layers count with their other files. */
    _cleanup_free_ char *layers = path_join(w->data_dir, "layers");
    disk_files more = {0};
    disk_list_dir(layers, true, &more);
    for (size_t i = 0; i < more.n; i++) {
        if (w->run.n == w->run.cap) {
            w->run.cap = w->run.cap ? 2 * w->run.cap : 16;
            w->run.v = xrealloc(w->run.v, w->run.cap * sizeof(*w->run.v));
        }
        w->run.v[w->run.n++] = more.v[i];
    }
    free(more.v);
    disk_list_dir(logs, true, &w->logs);
    disk_list_dir(build, false, &w->build);
}

static void df_free(df_work *w)
{
    free(w->data_dir);
    free(w->run_dir);
    store_images_free(w->imgs, w->n_imgs);
    store_volumes_free(w->vols, w->n_vols);
    free(w->img_sizes);
    free(w->vol_sizes);
    image_blob_files_free(w->blobs, w->n_blobs);
    disk_files_free(&w->run);
    disk_files_free(&w->logs);
    disk_files_free(&w->build);
    free(w);
}

/* ---- the answer ------------------------------------------------------------------------ */

enum { ROW_IMAGES, ROW_VMS, ROW_VOLUMES, ROW_BUILD, ROW_LOGS, N_ROWS };

typedef struct df_reply {
    Hypr__V1__DiskUsageSummary rows[N_ROWS];
    Hypr__V1__DiskUsageSummary *row_ptrs[N_ROWS];
    Hypr__V1__DiskUsageItem **items;
    size_t n_items;
    bool verbose;
} df_reply;

static void row_add(df_reply *r, int row, uint64_t size, bool active, bool reclaimable)
{
    r->rows[row].total++;
    r->rows[row].active += active;
    r->rows[row].size_bytes += size;
    if (reclaimable)
        r->rows[row].reclaimable_bytes += size;
}

static void item_add(df_reply *r, const char *type, const char *id, const char *name, uint64_t size,
                     bool in_use, int64_t created, size_t users)
{
    if (!r->verbose)
        return;
    Hypr__V1__DiskUsageItem *it = xmalloc(sizeof(*it));
    hypr__v1__disk_usage_item__init(it);
    it->type = (char *)type;
    it->id = xstrdup(id);
    it->name = xstrdup(name ? name : "");
    it->size_bytes = size;
    it->in_use = in_use;
    it->created_at = created;
    it->users = (uint32_t)users;
    r->items = xrealloc(r->items, (r->n_items + 1) * sizeof(*r->items));
    r->items[r->n_items++] = it;
}

static void count_images(df_work *w, df_reply *r, const store_vm *vms, size_t n_vms)
{
    char ***layers = xcalloc(w->n_imgs ? w->n_imgs : 1, sizeof(*layers));
    size_t *users = xcalloc(w->n_imgs ? w->n_imgs : 1, sizeof(*users));
    for (size_t i = 0; i < w->n_imgs; i++) {
        const store_image *img = &w->imgs[i];
        users[i] = disk_image_users(vms, n_vms, img->id);
        layers[i] = image_layer_digests(img);
        row_add(r, ROW_IMAGES, w->img_sizes[i], users[i] > 0, users[i] == 0);
        _cleanup_free_ char *name =
            img->tag ? xasprintf("%s:%s", img->name, img->tag)
                     : xasprintf("%s@%s", img->name, img->digest ? img->digest : "");
        item_add(r, "image", img->id, name, w->img_sizes[i], users[i] > 0, img->created_at,
                 users[i]);
    }
    /* The blobs are part of the Images row; not objects of their own in its counts. */
    for (size_t b = 0; b < w->n_blobs; b++) {
        const image_blob_file *f = &w->blobs[b];
        size_t refs = 0, active_refs = 0;
        for (size_t i = 0; i < w->n_imgs; i++) {
            if (!strv_contains(layers[i], f->digest))
                continue;
            refs++;
            active_refs += users[i] > 0;
        }
        bool held = image_blob_held(f->digest);
        r->rows[ROW_IMAGES].size_bytes += f->size;
        if (!active_refs && !held)
            r->rows[ROW_IMAGES].reclaimable_bytes += f->size;
        item_add(r, "blob", f->digest, f->partial ? "partial download" : "", f->size,
                 refs > 0 || held, f->mtime, refs);
    }
    for (size_t i = 0; i < w->n_imgs; i++)
        strv_free(layers[i]);
    free(layers);
    free(users);
}

static const store_vm *vm_by_id(const store_vm *vms, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(vms[i].id, id))
            return &vms[i];
    return NULL;
}

static void count_vms_and_logs(df_work *w, df_reply *r, const store_vm *vms, size_t n_vms)
{
    daemon_ctx *d = w->job.d;
    for (size_t i = 0; i < n_vms; i++) {
        uint64_t size = 0;
        for (size_t k = 0; k < w->run.n; k++)
            if (!strcmp(w->run.v[k].vm_id, vms[i].id))
                size += w->run.v[k].size;
        bool running = vm_running_status(d, vms[i].id) != NULL;
        row_add(r, ROW_VMS, size, running, !running);
        item_add(r, "vm", vms[i].id, vms[i].name, size, running, vms[i].created_at, 0);
    }
    /* Run-dir files of VMs long gone (a crash, an older hyprd): prune removes them. */
    for (size_t k = 0; k < w->run.n; k++) {
        const disk_file *f = &w->run.v[k];
        if (!vm_by_id(vms, n_vms, f->vm_id) && !vm_running_status(d, f->vm_id)) {
            r->rows[ROW_VMS].size_bytes += f->size;
            r->rows[ROW_VMS].reclaimable_bytes += f->size;
        }
    }
    for (size_t k = 0; k < w->logs.n; k++) {
        const disk_file *f = &w->logs.v[k];
        bool running = vm_running_status(d, f->vm_id) != NULL;
        row_add(r, ROW_LOGS, f->size, running, !running);
        item_add(r, "log", f->vm_id, f->name, f->size, running, f->mtime,
                 vm_by_id(vms, n_vms, f->vm_id) ? 1 : 0);
    }
}

static void count_volumes_and_cache(df_work *w, df_reply *r, const store_vm *vms, size_t n_vms)
{
    for (size_t i = 0; i < w->n_vols; i++) {
        const store_volume *v = &w->vols[i];
        size_t users = disk_volume_users(vms, n_vms, v->name);
        row_add(r, ROW_VOLUMES, w->vol_sizes[i], users > 0, users == 0);
        item_add(r, "volume", v->name, v->name, w->vol_sizes[i], users > 0, v->created_at, users);
    }
    for (size_t k = 0; k < w->build.n; k++) {
        const disk_file *f = &w->build.v[k];
        row_add(r, ROW_BUILD, f->size, false, true);
        item_add(r, "build-cache", f->name, f->name, f->size, false, f->mtime, 0);
    }
}

static void df_reply_free(df_reply *r)
{
    for (size_t i = 0; i < r->n_items; i++) {
        free(r->items[i]->id);
        free(r->items[i]->name);
        free(r->items[i]);
    }
    free(r->items);
}

static void df_done(uv_work_t *req, int status)
{
    df_work *w = req->data;
    rpc_call *call = w->job.call;
    if (!call) {
        df_free(w);
        return;
    }
    rpc_call_set_data(call, NULL);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm *vms = NULL;
    size_t n_vms = 0;
    if (status < 0 || store_vm_list(w->job.d->db, &vms, &n_vms, &err) < 0) {
        if (status < 0)
            hypr_err(&err, HYPR_INTERNAL, -status, "disk usage: %s", uv_strerror(status));
        else
            hypr_err_prefix(&err, "disk usage");
        api_fail(call, &err);
        df_free(w);
        return;
    }
    static const char *const types[N_ROWS] = {"Images", "VMs", "Local Volumes", "Build Cache",
                                              "Logs"};
    df_reply r = {.verbose = w->verbose};
    for (int i = 0; i < N_ROWS; i++) {
        hypr__v1__disk_usage_summary__init(&r.rows[i]);
        r.rows[i].type = (char *)types[i];
        r.row_ptrs[i] = &r.rows[i];
    }
    count_images(w, &r, vms, n_vms);
    count_vms_and_logs(w, &r, vms, n_vms);
    count_volumes_and_cache(w, &r, vms, n_vms);
    Hypr__V1__DiskUsageResponse resp = HYPR__V1__DISK_USAGE_RESPONSE__INIT;
    resp.n_summary = N_ROWS;
    resp.summary = r.row_ptrs;
    resp.n_items = r.n_items;
    resp.items = r.items;
    rpc_call_reply(call, &resp.base);
    df_reply_free(&r);
    store_vms_free(vms, n_vms);
    df_free(w);
}

void api_get_disk_usage(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__DiskUsageRequest *req = (Hypr__V1__DiskUsageRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    df_work *w = xcalloc(1, sizeof(*w));
    w->job = (disk_job){.call = call, .d = d};
    w->req.data = w;
    w->verbose = req->verbose;
    w->data_dir = xstrdup(d->data_dir);
    w->run_dir = xstrdup(d->run_dir);
    if (store_image_list(d->db, &w->imgs, &w->n_imgs, &err) < 0 ||
        store_volume_list(d->db, &w->vols, &w->n_vols, &err) < 0) {
        hypr_err_prefix(&err, "disk usage");
        api_fail(call, &err);
        df_free(w);
        return;
    }
    w->img_sizes = xcalloc(w->n_imgs ? w->n_imgs : 1, sizeof(uint64_t));
    w->vol_sizes = xcalloc(w->n_vols ? w->n_vols : 1, sizeof(uint64_t));
    rpc_call_set_data(call, &w->job);
    int r = uv_queue_work(d->loop, &w->req, df_run, df_done);
    if (r < 0) {
        rpc_call_set_data(call, NULL);
        df_free(w);
        hypr_err(&err, HYPR_INTERNAL, -r, "disk usage: %s", uv_strerror(r));
        api_fail(call, &err);
    }
}

void api_disk_call_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    disk_job *j = rpc_call_get_data(call);
    if (j)
        j->call = NULL;
}
