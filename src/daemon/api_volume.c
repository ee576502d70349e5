/* Volume RPCs: CreateVolume, DeleteVolume, GetVolume (with its size, measured on
 * the pool), PruneVolumes, and the message and filters ListVolumes uses. The
 * store's logic is volstore.c's. */
#define LOG_MODULE "api"
#include "api.h"
#include "prune_filter.h"
#include "volstore.h"
#include "volume/volume.h"

#include <string.h>

void api_volume_message_free(ProtobufCMessage *msg)
{
    Hypr__V1__Volume *m = (Hypr__V1__Volume *)msg;
    if (!m)
        return;
    api_labels_free((ProtobufCMessage **)m->labels, m->n_labels);
    strv_free(m->vm_ids);
    free(m);
}

int api_volume_message(daemon_ctx *d, const void *rec, ProtobufCMessage **out, hypr_error *err)
{
    const store_volume *v = rec;
    char **users = NULL;
    int r = volstore_users(d, v->name, &users, NULL, err);
    if (r < 0)
        return r;
    Hypr__V1__Volume *m = xmalloc(sizeof(*m));
    hypr__v1__volume__init(m);
    m->name = v->name;
    m->driver = v->driver ? v->driver : "local";
    m->mountpoint = v->mountpoint ? v->mountpoint : "";
    m->stack = v->stack ? v->stack : "";
    m->scope = "local";
    m->anonymous = v->anonymous;
    m->created_at = v->created_at;
    m->n_labels = api_labels_entries(v->labels, &hypr__v1__volume__labels_entry__descriptor,
                                     (ProtobufCMessage ***)&m->labels);
    m->vm_ids = users; /* the VMs' names, as Docker's UsageData does not say */
    m->n_vm_ids = strv_length(users);
    *out = &m->base;
    return 0;
}

/* ListVolumes' --filter: dangling=true|false, label=K[=V], name=SUBSTRING; AND
 * across keys, OR within one (Docker's rule). */
int api_select_volumes(daemon_ctx *d, const ProtobufCMessage *msg, const void *recs, size_t n,
                       bool *keep, hypr_error *err)
{
    const Hypr__V1__ListVolumesRequest *req = (const Hypr__V1__ListVolumesRequest *)msg;
    _cleanup_strv_ char **dangling = NULL, **labels = NULL, **names = NULL;
    for (size_t i = 0; i < req->n_filters; i++) {
        const char *f = req->filters[i], *eq = strchr(f, '=');
        if (!eq)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid filter '%s': expected KEY=VALUE", f);
        size_t k = (size_t)(eq - f);
        const char *val = eq + 1;
        if (k == 8 && !strncmp(f, "dangling", k)) {
            if (strcmp(val, "true") && strcmp(val, "false") && strcmp(val, "1") && strcmp(val, "0"))
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "invalid filter 'dangling=%s': use true or false", val);
            dangling = strv_append(dangling, val);
        } else if (k == 5 && !strncmp(f, "label", k)) {
            labels = strv_append(labels, val);
        } else if (k == 4 && !strncmp(f, "name", k)) {
            names = strv_append(names, val);
        } else {
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid filter '%.*s': volumes filter on dangling, label and name",
                            (int)k, f);
        }
    }
    const store_volume *vols = recs;
    for (size_t i = 0; i < n; i++) {
        _cleanup_strv_ char **users = NULL;
        if (dangling && volstore_users(d, vols[i].name, &users, NULL, err) < 0)
            return -EIO;
        bool is_dangling = users == NULL, any = !dangling;
        for (size_t k = 0; dangling && dangling[k]; k++)
            any = any || (is_dangling == (dangling[k][0] == 't' || dangling[k][0] == '1'));
        _cleanup_strv_ char **have = disk_labels_from_json(vols[i].labels);
        bool lab = true;
        for (size_t k = 0; labels && labels[k]; k++)
            lab = lab && filter_labels_have(have, labels[k]);
        bool nm = !names;
        for (size_t k = 0; names && names[k]; k++)
            nm = nm || strstr(vols[i].name, names[k]);
        keep[i] = any && lab && nm;
    }
    return 0;
}

void api_create_volume(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *m __attribute__((unused)) = msg;
    const Hypr__V1__CreateVolumeRequest *req = (const Hypr__V1__CreateVolumeRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (!str_empty(req->driver) && strcmp(req->driver, "local") != 0) {
        hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL,
                 "volume driver \"%s\" is not supported: hypr has the local driver only",
                 req->driver);
        api_fail(call, &err);
        return;
    }
    _cleanup_free_ char *labels =
        api_labels_json((ProtobufCMessage *const *)req->labels, req->n_labels);
    _cleanup_store_volume_ store_volume v = {0};
    bool created;
    ProtobufCMessage *item = NULL;
    if (volstore_create(d, req->name, labels, false, &v, &created, &err) < 0 ||
        api_volume_message(d, &v, &item, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    Hypr__V1__CreateVolumeResponse resp = HYPR__V1__CREATE_VOLUME_RESPONSE__INIT;
    resp.volume = (Hypr__V1__Volume *)item;
    rpc_call_reply(call, &resp.base);
    api_volume_message_free(item);
}

void api_delete_volume(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *m __attribute__((unused)) = msg;
    const Hypr__V1__DeleteVolumeRequest *req = (const Hypr__V1__DeleteVolumeRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    char *trash = NULL;
    if (str_empty(req->name)) {
        hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL, "a volume name is required");
        api_fail(call, &err);
        return;
    }
    if (volstore_delete(d, req->name, req->force, &trash, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    volstore_trash_remove(d, trash ? strv_append(NULL, trash) : NULL);
    free(trash);
    Hypr__V1__DeleteVolumeResponse resp = HYPR__V1__DELETE_VOLUME_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
}

/* ---- GetVolume and PruneVolumes: sizes and removals on the pool -------------------- */

typedef struct volume_job {
    disk_job job; /* first: the call's data */
    uv_work_t req;
    Hypr__V1__Volume *item; /* GetVolume */
    store_volume rec;
    char **trash; /* PruneVolumes: the directories to measure and remove */
    char **deleted;
    uint64_t bytes;
} volume_job;

static void job_free(volume_job *w)
{
    api_volume_message_free(w->item ? &w->item->base : NULL);
    store_volume_clear(&w->rec);
    strv_free(w->trash);
    strv_free(w->deleted);
    free(w);
}

static void get_run(uv_work_t *req)
{
    volume_job *w = req->data;
    if (volume_dir_usage(w->rec.mountpoint, &w->bytes, NULL) < 0)
        w->bytes = 0;
}

static void prune_run(uv_work_t *req)
{
    volume_job *w = req->data;
    for (size_t i = 0; w->trash && w->trash[i]; i++) {
        uint64_t b = 0;
        _cleanup_error_ hypr_error e = HYPR_ERROR_INIT;
        if (volume_dir_usage(w->trash[i], &b, NULL) == 0)
            w->bytes += b;
        if (volume_dir_remove(w->trash[i], &e) < 0)
            log_warn("remove %s: %s", w->trash[i], e.message);
    }
}

static void job_done(uv_work_t *req, int status)
{
    volume_job *w = req->data;
    rpc_call *call = w->job.call;
    if (call) {
        rpc_call_set_data(call, NULL);
        if (w->item) {
            w->item->size_bytes = w->bytes;
            Hypr__V1__GetVolumeResponse resp = HYPR__V1__GET_VOLUME_RESPONSE__INIT;
            resp.volume = w->item;
            rpc_call_reply(call, &resp.base);
        } else {
            Hypr__V1__PruneVolumesResponse resp = HYPR__V1__PRUNE_VOLUMES_RESPONSE__INIT;
            resp.deleted = w->deleted;
            resp.n_deleted = strv_length(w->deleted);
            resp.reclaimed_bytes = w->bytes;
            rpc_call_reply(call, &resp.base);
        }
    }
    job_free(w);
}

static void job_queue(rpc_call *call, volume_job *w, uv_work_cb run)
{
    w->job.call = call;
    w->job.d = api_daemon(call);
    w->req.data = w;
    rpc_call_set_data(call, &w->job);
    uv_queue_work(w->job.d->loop, &w->req, run, job_done);
}

void api_get_volume(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *m __attribute__((unused)) = msg;
    const Hypr__V1__GetVolumeRequest *req = (const Hypr__V1__GetVolumeRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    volume_job *w = xcalloc(1, sizeof(*w));
    ProtobufCMessage *item = NULL;
    if (str_empty(req->name))
        hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL, "a volume name is required");
    else if (store_volume_find(d->db, req->name, &w->rec, &err) == 0)
        (void)api_volume_message(d, &w->rec, &item, &err);
    if (!item) {
        job_free(w);
        api_fail(call, &err);
        return;
    }
    w->item = (Hypr__V1__Volume *)item;
    job_queue(call, w, get_run);
}

/* Without all only anonymous volumes go (Docker 23+); with it every unused one. */
void api_prune_volumes(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *m __attribute__((unused)) = msg;
    const Hypr__V1__PruneVolumesRequest *req = (const Hypr__V1__PruneVolumesRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    prune_filters f = {0};
    store_volume *vols = NULL;
    size_t n = 0;
    if (prune_filters_parse(req->filters, req->n_filters, time_now_ms(), &f, &err) < 0 ||
        store_volume_list(d->db, &vols, &n, &err) < 0) {
        prune_filters_clear(&f);
        api_fail(call, &err);
        return;
    }
    volume_job *w = xcalloc(1, sizeof(*w));
    for (size_t i = 0; i < n; i++) {
        _cleanup_strv_ char **labels = disk_labels_from_json(vols[i].labels);
        if ((!req->all && !vols[i].anonymous) ||
            !prune_filters_match(&f, vols[i].created_at, labels))
            continue;
        char *trash = NULL;
        _cleanup_error_ hypr_error e = HYPR_ERROR_INIT;
        if (volstore_delete(d, vols[i].name, false, &trash, &e) < 0)
            continue; /* in use */
        w->deleted = strv_append(w->deleted, vols[i].name);
        if (trash)
            w->trash = strv_append(w->trash, trash);
        free(trash);
    }
    store_volumes_free(vols, n);
    prune_filters_clear(&f);
    job_queue(call, w, prune_run);
}
