/* Image RPCs: PullImage (server stream), ImportImage, DeleteImage,
 * GetImageHistory, and the Image message built from a store row + its
 * manifest.json (used by ListImages/GetImage too).
 *
 * Pulls and imports are blocking work (network, decompression, squashfs): they
 * run on libuv's thread pool. The worker only updates an image_progress and
 * wakes the loop with uv_async_send; only the loop thread touches the call.
 * The staged result is committed (rename + one transaction) on the loop thread
 * after the worker ends, and discarded if the client has gone away, so a
 * cancelled pull never leaves an image registered. */
#define LOG_MODULE "api"
#include "api.h"
#include "metrics_daemon.h"
#include "image/image.h"
#include "vm.h"

#include <string.h>
#include <sys/stat.h>

/* ---- Image messages ----------------------------------------------------------------- */

typedef struct image_msg {
    Hypr__V1__Image m; /* first: the message pointer is the wrapper's */
    image_info info;
    Hypr__V1__Image__LabelsEntry *label_items;
    Hypr__V1__Image__LabelsEntry **label_ptrs;
    char *repo_tag;
} image_msg;

static size_t strv_len0(char **v)
{
    return v ? strv_length(v) : 0;
}

ProtobufCMessage *api_image_message(const store_image *img)
{
    image_msg *w = xcalloc(1, sizeof(*w));
    Hypr__V1__Image *m = &w->m;
    hypr__v1__image__init(m);
    m->id = (char *)img->id;
    m->name = img->name ? img->name : "";
    m->tag = img->tag ? img->tag : "";
    m->digest = img->digest ? img->digest : "";
    m->size_bytes = img->size_bytes;
    m->created_at = img->created_at;
    m->path = img->path ? img->path : "";
    if (img->name && img->tag) {
        w->repo_tag = xasprintf("%s:%s", img->name, img->tag);
        m->n_repo_tags = 1;
        m->repo_tags = &w->repo_tag;
    }
    if (image_info_from_json(img->manifest, &w->info, NULL) < 0)
        return &m->base; /* an imported/foreign row without manifest.json: basics only */
    image_config *c = &w->info.config;
    if (c->created > 0) /* when the image was made (its config's "created"), as Docker shows */
        m->created_at = c->created;
    m->n_entrypoint = strv_len0(c->entrypoint);
    m->entrypoint = c->entrypoint;
    m->n_cmd = strv_len0(c->cmd);
    m->cmd = c->cmd;
    m->n_env = strv_len0(c->env);
    m->env = c->env;
    m->workdir = c->workdir ? c->workdir : "";
    m->stop_signal = c->stop_signal ? c->stop_signal : "";
    m->user = c->user ? c->user : "";
    m->n_exposed_ports = strv_len0(c->exposed_ports);
    m->exposed_ports = c->exposed_ports;
    m->n_volumes = strv_len0(c->volumes);
    m->volumes = c->volumes;
    m->architecture = c->platform.arch ? c->platform.arch : "";
    m->os = c->platform.os ? c->platform.os : "";
    m->variant = c->platform.variant ? c->platform.variant : "";
    size_t nl = strv_len0(c->labels) / 2;
    if (nl) {
        w->label_items = xcalloc(nl, sizeof(*w->label_items));
        w->label_ptrs = xcalloc(nl, sizeof(*w->label_ptrs));
        for (size_t i = 0; i < nl; i++) {
            hypr__v1__image__labels_entry__init(&w->label_items[i]);
            w->label_items[i].key = c->labels[2 * i];
            w->label_items[i].value = c->labels[2 * i + 1];
            w->label_ptrs[i] = &w->label_items[i];
        }
        m->n_labels = nl;
        m->labels = w->label_ptrs;
    }
    return &m->base;
}

void api_image_message_free(ProtobufCMessage *msg)
{
    image_msg *w = (image_msg *)msg;
    if (!w)
        return;
    image_info_clear(&w->info);
    free(w->label_items);
    free(w->label_ptrs);
    free(w->repo_tag);
    free(w);
}

/* ---- PullImage / ImportImage workers ---------------------------------------------------- */

typedef enum { JOB_PULL, JOB_IMPORT } job_kind;

typedef struct image_job {
    job_kind kind;
    uv_work_t work;
    uv_async_t async;
    daemon_ctx *d;
    rpc_call *call;       /* NULL once the call is over */
    api_pull_hooks hooks; /* JOB_PULL: who hears about progress and the end */
    image_progress progress;
    image_pull_opts pull;
    image_import_opts import;
    char *reference, *platform, *data_dir, *source;
    api_registry_opts registry; /* JOB_PULL */
    image_staged staged;
    hypr_error err;
    int result;
    uint64_t sent_generation;
    image_phase sent_phase;
    int64_t sent_ms;
} image_job;

static void job_notify(void *ud)
{
    image_job *j = ud;
    uv_async_send(&j->async);
}

/* Hands the progress snapshot, as one PullProgress message, to the hooks. */
static void send_progress(image_job *j, bool force)
{
    if (!j->call || j->kind != JOB_PULL || !j->hooks.progress || rpc_call_is_finished(j->call))
        return;
    image_progress *p = &j->progress;
    pthread_mutex_lock(&p->lock);
    int64_t now = time_monotonic_ms();
    bool due = p->generation != j->sent_generation &&
               (force || p->phase != j->sent_phase || now - j->sent_ms >= 100);
    if (!due) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    Hypr__V1__PullProgress msg = HYPR__V1__PULL_PROGRESS__INIT;
    msg.phase = (Hypr__V1__PullProgress__Phase)p->phase;
    size_t n = p->n_layers;
    Hypr__V1__LayerProgress *items = xcalloc(n ? n : 1, sizeof(*items));
    Hypr__V1__LayerProgress **ptrs = xcalloc(n ? n : 1, sizeof(*ptrs));
    char **digests = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        hypr__v1__layer_progress__init(&items[i]);
        digests[i] = xstrdup(p->layers[i].digest);
        items[i].digest = digests[i];
        items[i].done_bytes = p->layers[i].done;
        items[i].total_bytes = p->layers[i].total;
        items[i].status = (char *)p->layers[i].status;
        ptrs[i] = &items[i];
    }
    msg.n_layers = n;
    msg.layers = ptrs;
    _cleanup_free_ char *message = p->message ? xstrdup(p->message) : NULL;
    _cleanup_free_ char *digest = p->digest ? xstrdup(p->digest) : NULL;
    msg.message = message ? message : "";
    msg.digest = digest ? digest : "";
    j->sent_generation = p->generation;
    j->sent_phase = p->phase;
    j->sent_ms = now;
    pthread_mutex_unlock(&p->lock);
    j->hooks.progress(j->call, &msg, j->hooks.ud);
    for (size_t i = 0; i < n; i++)
        free(digests[i]);
    free(digests);
    free(items);
    free(ptrs);
}

static void on_async(uv_async_t *h)
{
    send_progress(h->data, false);
}

static void job_free(uv_handle_t *h)
{
    image_job *j = h->data;
    if (j->hooks.free_ud)
        j->hooks.free_ud(j->hooks.ud);
    image_progress_destroy(&j->progress);
    image_staged_clear(&j->staged);
    hypr_error_clear(&j->err);
    free(j->reference);
    free(j->platform);
    free(j->data_dir);
    free(j->source);
    api_registry_opts_clear(&j->registry);
    image_config_clear(&j->import.config);
    free(j);
}

static void work_cb(uv_work_t *w)
{
    image_job *j = w->data;
    if (j->kind == JOB_PULL)
        j->result = image_pull(&j->pull, &j->progress, &j->staged, &j->err);
    else
        j->result = image_import(&j->import, &j->progress, &j->staged, &j->err);
}

static void reply_import(rpc_call *call, const store_image *img)
{
    Hypr__V1__ImportImageResponse resp = HYPR__V1__IMPORT_IMAGE_RESPONSE__INIT;
    ProtobufCMessage *m = api_image_message(img);
    resp.image = (Hypr__V1__Image *)m;
    rpc_call_reply(call, &resp.base);
    api_image_message_free(m);
}

/* Commits the staged image (loop thread); fills img. */
static int job_commit(image_job *j, store_image *img, hypr_error *err)
{
    daemon_ctx *d = j->d;
    send_progress(j, true);
    int r = image_staged_commit(&j->staged, d->db, img, err);
    if (r < 0) {
        image_staged_discard(&j->staged);
        return r;
    }
    _cleanup_free_ char *ref = xasprintf("%s:%s", img->name, img->tag ? img->tag : "");
    char *attrs[] = {"name", ref, "digest", img->digest ? img->digest : "", NULL};
    if (j->kind == JOB_IMPORT) {
        log_info("imported %s (%s) from %s", ref, img->id, j->source);
        event_publish(d->events, "image.imported", img->id, ref, attrs);
    } else if (!j->staged.up_to_date) {
        log_info("pulled %s (%s)", ref, img->id);
        event_publish(d->events, "image.pulled", img->id, ref, attrs);
    }
    return 0;
}

static void after_work_cb(uv_work_t *w, int status)
{
    image_job *j = w->data;
    rpc_call *call = j->call;
    bool gone = !call || rpc_call_is_finished(call) || status == UV_ECANCELED;
    _cleanup_store_image_ store_image img = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = j->result;
    if (r < 0 || gone) {
        image_staged_discard(&j->staged);
        if (gone && r >= 0)
            log_info("%s %s: client went away; discarded", j->kind == JOB_PULL ? "pull" : "import",
                     j->reference);
        err = j->err;
        j->err = (hypr_error)HYPR_ERROR_INIT;
        if (r >= 0)
            r = -ECANCELED;
    } else {
        r = job_commit(j, &img, &err);
    }
    /* The call is no longer the job's: the hooks may finish it or hand it on. */
    j->call = NULL;
    if (call)
        rpc_call_set_data(call, NULL);
    if (!gone) {
        if (r < 0)
            j->kind == JOB_PULL ? j->hooks.done(call, NULL, &err, j->hooks.ud)
                                : api_fail(call, &err);
        else
            j->kind == JOB_PULL ? j->hooks.done(call, &img, NULL, j->hooks.ud)
                                : reply_import(call, &img);
    }
    uv_close((uv_handle_t *)&j->async, job_free);
}

/* The call is over (finished, or cancelled by the client / shutdown). */
void api_image_job_close(rpc_call *call, bool cancelled)
{
    image_job *j = rpc_call_get_data(call);
    if (!j)
        return;
    if (cancelled) {
        log_info("%s %s: cancelled by the client", j->kind == JOB_PULL ? "pull" : "import",
                 j->reference);
        image_progress_cancel(&j->progress);
    }
    j->call = NULL;
    rpc_call_set_data(call, NULL);
}

static image_job *job_new(rpc_call *call, job_kind kind)
{
    daemon_ctx *d = api_daemon(call);
    image_job *j = xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->d = d;
    j->call = call;
    j->work.data = j;
    j->async.data = j;
    j->data_dir = xstrdup(d->data_dir);
    image_progress_init(&j->progress, job_notify, j);
    uv_async_init(d->loop, &j->async, on_async);
    return j;
}

static void job_start(image_job *j)
{
    rpc_call_set_data(j->call, j);
    int r = uv_queue_work(j->d->loop, &j->work, work_cb, after_work_cb);
    if (r < 0) {
        rpc_call *call = j->call;
        rpc_call_set_data(call, NULL);
        j->call = NULL;
        hypr_err(&j->err, HYPR_INTERNAL, -r, "queue work: %s", uv_strerror(r));
        if (j->kind == JOB_PULL)
            j->hooks.done(call, NULL, &j->err, j->hooks.ud);
        else
            api_fail(call, &j->err);
        uv_close((uv_handle_t *)&j->async, job_free);
    }
}

void api_registry_opts_get(daemon_ctx *d, api_registry_opts *out)
{
    _cleanup_free_ char *insecure = settings_get(d, "insecure_registries");
    out->insecure = strv_split(insecure, ", ");
    out->certs_dir = settings_get(d, "registry_certs_dir");
    out->ca_file = getenv("HYPR_REGISTRY_CA_FILE");
}

void api_registry_opts_clear(api_registry_opts *o)
{
    strv_free(o->insecure);
    free(o->certs_dir);
    *o = (api_registry_opts){0};
}

void api_image_pull(rpc_call *call, const char *reference, const char *platform,
                    const api_pull_hooks *hooks)
{
    daemon_ctx *d = api_daemon(call);
    image_job *j = job_new(call, JOB_PULL);
    j->hooks = *hooks;
    j->reference = xstrdup(reference);
    j->platform = str_empty(platform) ? NULL : xstrdup(platform);
    api_registry_opts_get(d, &j->registry);
    j->pull = (image_pull_opts){
        .reference = j->reference,
        .platform = j->platform,
        .data_dir = j->data_dir,
        .insecure = j->registry.insecure,
        .ca_file = j->registry.ca_file,
        .certs_dir = j->registry.certs_dir,
        .max_parallel = 4,
        .db = d->db,
    };
    log_info("pull %s%s%s", j->reference, j->platform ? " for " : "",
             j->platform ? j->platform : "");
    job_start(j);
}

/* PullImage streams the snapshots as they are. */
static void pull_progress(rpc_call *call, const Hypr__V1__PullProgress *msg, void *ud)
{
    (void)ud;
    rpc_call_send(call, &msg->base);
}

static void pull_done(rpc_call *call, const store_image *img, hypr_error *err, void *ud)
{
    (void)ud;
    metrics_image_pulled(img != NULL, img ? (uint64_t)img->size_bytes : 0);
    if (!img) {
        api_fail(call, err);
        return;
    }
    Hypr__V1__PullProgress msg = HYPR__V1__PULL_PROGRESS__INIT;
    msg.phase = HYPR__V1__PULL_PROGRESS__PHASE__DONE;
    msg.image_id = (char *)img->id;
    msg.digest = img->digest ? img->digest : "";
    /* No message: clients print their own "Status: ..." line from the phase. */
    rpc_call_send(call, &msg.base);
    rpc_call_finish(call, HYPR_OK, NULL);
}

void api_pull_image(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__PullImageRequest *req = (Hypr__V1__PullImageRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_image_ref_ image_ref ref = {0};
    if (image_ref_parse(req->reference, &ref, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    if (d->shutting_down) {
        rpc_call_finish(call, HYPR_UNAVAILABLE, "hyprd is shutting down");
        return;
    }
    const api_pull_hooks hooks = {.progress = pull_progress, .done = pull_done};
    api_image_pull(call, req->reference, req->platform, &hooks);
}

static char **strv_from(char **v, size_t n)
{
    char **out = NULL;
    for (size_t i = 0; i < n; i++)
        out = strv_append(out, v[i]);
    return out;
}

void api_import_image(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__ImportImageRequest *req = (Hypr__V1__ImportImageRequest *)msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (str_empty(req->source) || str_empty(req->reference)) {
        hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL, "import needs a source path and a reference");
        api_fail(call, &err);
        return;
    }
    image_job *j = job_new(call, JOB_IMPORT);
    j->reference = xstrdup(req->reference);
    j->source = xstrdup(req->source);
    image_config *c = &j->import.config;
    c->entrypoint = strv_from(req->entrypoint, req->n_entrypoint);
    c->cmd = strv_from(req->cmd, req->n_cmd);
    c->env = strv_from(req->env, req->n_env);
    c->workdir = str_empty(req->workdir) ? NULL : xstrdup(req->workdir);
    c->user = str_empty(req->user) ? NULL : xstrdup(req->user);
    c->stop_signal = str_empty(req->stop_signal) ? NULL : xstrdup(req->stop_signal);
    c->exposed_ports = strv_from(req->exposed_ports, req->n_exposed_ports);
    c->volumes = strv_from(req->volumes, req->n_volumes);
    for (size_t i = 0; i < req->n_labels; i++) {
        c->labels = strv_append(c->labels, req->labels[i]->key);
        c->labels = strv_append(c->labels, req->labels[i]->value);
    }
    j->import.source = j->source;
    j->import.reference = j->reference;
    j->import.data_dir = j->data_dir;
    job_start(j);
}

/* ---- DeleteImage / GetImageHistory ----------------------------------------------------- */

/* A VM whose image this is refuses the removal, like docker rmi: a running one even
 * with force, a stopped one without (with force, *used says the image must stay). */
static int check_unused(daemon_ctx *d, const store_image *img, bool force, bool *used,
                        hypr_error *err)
{
    *used = false;
    store_vm *vms = NULL;
    size_t n = 0;
    int r = store_vm_list(d->db, &vms, &n, err);
    for (size_t i = 0; r >= 0 && i < n; i++) {
        if (!vms[i].image_id || strcmp(vms[i].image_id, img->id) != 0)
            continue;
        if (vm_running_status(d, vms[i].id))
            r = hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY,
                         "conflict: unable to delete %.12s (cannot be forced) - image is being "
                         "used by running VM %s (%.12s)",
                         img->id, vms[i].name, vms[i].id);
        else if (force)
            *used = true;
        else
            r = hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY,
                         "image %s:%s is used by VM %s (%.12s): remove the VM first or use "
                         "--force",
                         img->name, img->tag ? img->tag : "", vms[i].name, vms[i].id);
    }
    store_vms_free(vms, n);
    return r;
}

void api_delete_image(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__DeleteImageRequest *req = (Hypr__V1__DeleteImageRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_image_ store_image img = {0};
    int r = str_empty(req->id) ? hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL,
                                          "an image ID or reference is required")
                               : image_store_find(d->db, req->id, &img, &err);
    bool used = false;
    if (r >= 0)
        r = check_unused(d, &img, req->force, &used, &err);
    if (r >= 0)
        r = used ? image_store_untag(d->db, &img, &err) : image_store_remove(d->db, &img, &err);
    if (r < 0) {
        api_fail(call, &err);
        return;
    }
    _cleanup_free_ char *ref = xasprintf("%s:%s", img.name, img.tag ? img.tag : "");
    if (used) { /* a stopped VM keeps it: untagged only, as docker rmi -f */
        char *attrs[] = {"name", ref, NULL};
        event_publish(d->events, "image.untagged", img.id, ref, attrs);
        log_info("untagged image %s (%s): a VM still uses it", ref, img.id);
        Hypr__V1__DeleteImageResponse resp = HYPR__V1__DELETE_IMAGE_RESPONSE__INIT;
        rpc_call_reply(call, &resp.base);
        return;
    }
    _cleanup_free_ char *deleted = xasprintf("sha256:%s", img.id);
    char *attrs[] = {"name", ref, NULL};
    event_publish(d->events, "image.deleted", img.id, ref, attrs);
    log_info("deleted image %s (%s)", ref, img.id);
    Hypr__V1__DeleteImageResponse resp = HYPR__V1__DELETE_IMAGE_RESPONSE__INIT;
    char *list[] = {deleted};
    resp.n_deleted = 1;
    resp.deleted = list;
    rpc_call_reply(call, &resp.base);
}

void api_get_image_history(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__GetImageHistoryRequest *req = (Hypr__V1__GetImageHistoryRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_image_ store_image img = {0};
    _cleanup_image_info_ image_info info = {0};
    int r = str_empty(req->id) ? hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL,
                                          "an image ID or reference is required")
                               : image_store_find(d->db, req->id, &img, &err);
    if (r >= 0 && image_info_from_json(img.manifest, &info, &err) < 0)
        r = hypr_err_prefix(&err, "image %s", img.id);
    if (r < 0) {
        api_fail(call, &err);
        return;
    }
    size_t n = info.config.n_history;
    _cleanup_free_ Hypr__V1__ImageHistoryEntry *items = xcalloc(n ? n : 1, sizeof(*items));
    _cleanup_free_ Hypr__V1__ImageHistoryEntry **ptrs = xcalloc(n ? n : 1, sizeof(*ptrs));
    for (size_t i = 0; i < n; i++) {
        /* newest first, like docker history */
        const image_history *h = &info.config.history[n - 1 - i];
        hypr__v1__image_history_entry__init(&items[i]);
        items[i].created_by = h->created_by ? h->created_by : "";
        items[i].created_at = h->created;
        items[i].size_bytes = h->size;
        items[i].comment = h->comment ? h->comment : "";
        items[i].empty_layer = h->empty_layer;
        ptrs[i] = &items[i];
    }
    Hypr__V1__GetImageHistoryResponse resp = HYPR__V1__GET_IMAGE_HISTORY_RESPONSE__INIT;
    resp.n_history = n;
    resp.history = ptrs;
    rpc_call_reply(call, &resp.base);
}
