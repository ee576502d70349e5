/* Which records ListVms and ListImages answer with: the request's filters
 * (list_filter.h) over the store's records, with what the filters name (the
 * image of ancestor=, the VM or image of before=/since=, networks' IDs, images'
 * exposed ports) looked up here. */
#define LOG_MODULE "api"
#include "api.h"
#include "image/image.h"
#include "list_filter.h"

#include <stdlib.h>
#include <string.h>

/* The request's filters, its label_filter map (the older field) as label= ones. */
static int parse_request(list_filter_kind kind, char *const *filters, size_t n_filters,
                         Hypr__V1__ListVmsRequest__LabelFilterEntry *const *labels, size_t n_labels,
                         list_filters *out, hypr_error *err)
{
    _cleanup_strv_ char **specs = NULL;
    for (size_t i = 0; i < n_filters; i++)
        specs = strv_append(specs, filters[i] ? filters[i] : "");
    for (size_t i = 0; i < n_labels; i++) {
        _cleanup_free_ char *s =
            str_empty(labels[i]->value)
                ? xasprintf("label=%s", labels[i]->key ? labels[i]->key : "")
                : xasprintf("label=%s=%s", labels[i]->key ? labels[i]->key : "", labels[i]->value);
        specs = strv_append(specs, s);
    }
    return list_filters_parse(kind, specs, strv_length(specs), out, err);
}

static int64_t *resolve_orders(char *const *values, size_t count, void *ud,
                               int (*order_of)(void *ud, const char *ref, int64_t *order,
                                               hypr_error *err),
                               hypr_error *err)
{
    int64_t *orders = xcalloc(count ? count : 1, sizeof(*orders));
    for (size_t i = 0; i < count; i++) {
        if (order_of(ud, values[i], &orders[i], err) < 0) {
            free(orders);
            return NULL;
        }
    }
    return orders;
}

/* before=/since=: each value's order; NOT_FOUND when one names nothing. */
static int resolve_before_since(list_filters *f, void *ud,
                                int (*order_of)(void *ud, const char *ref, int64_t *order,
                                                hypr_error *err),
                                hypr_error *err)
{
    char *const *before = list_filters_values(f, LF_BEFORE);
    char *const *since = list_filters_values(f, LF_SINCE);
    if (before &&
        !(f->before_order = resolve_orders(before, strv_length(before), ud, order_of, err)))
        return -ENOENT;
    if (since && !(f->since_order = resolve_orders(since, strv_length(since), ud, order_of, err)))
        return -ENOENT;
    return 0;
}

/* ---- VMs -------------------------------------------------------------------------------- */

typedef struct vm_lookup {
    daemon_ctx *d;
    const store_vm *vms;
    size_t n;
} vm_lookup;

/* A VM's order is its position in the store's list (created_at, then insertion). */
static int vm_order(void *ud, const char *ref, int64_t *order, hypr_error *err)
{
    const vm_lookup *l = ud;
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(l->d->db, ref, &rec, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < l->n; i++) {
        if (!strcmp(l->vms[i].id, rec.id)) {
            *order = (int64_t)i;
            return 0;
        }
    }
    return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "no such VM: %s", ref);
}

/* ancestor=: the IDs of the images the values name (a value naming none matches nothing). */
static void resolve_ancestors(daemon_ctx *d, list_filters *f)
{
    for (char *const *v = list_filters_values(f, LF_ANCESTOR); v && *v; v++) {
        _cleanup_store_image_ store_image img = {0};
        if (image_store_find(d->db, *v, &img, NULL) == 0)
            f->ancestor_ids = strv_append(f->ancestor_ids, img.id);
    }
}

/* The IDs of a VM's networks, from the store's list of networks. */
static char **network_ids(const store_network *nets, size_t n, char *const *names)
{
    char **ids = NULL;
    for (size_t i = 0; i < n; i++)
        if (strv_contains(names, nets[i].name))
            ids = strv_append(ids, nets[i].id);
    return ids;
}

/* The ports an image exposes ("80/tcp"). */
static list_filter_port *image_exposed(daemon_ctx *d, const char *image_id, char ***keep, size_t *n)
{
    *n = 0;
    _cleanup_store_image_ store_image img = {0};
    _cleanup_image_info_ image_info info = {0};
    if (!image_id || image_store_find(d->db, image_id, &img, NULL) < 0 || !img.manifest ||
        image_info_from_json(img.manifest, &info, NULL) < 0)
        return NULL;
    *keep = TAKE_PTR(info.config.exposed_ports);
    size_t count = strv_length(*keep);
    list_filter_port *ports = xcalloc(count ? count : 1, sizeof(*ports));
    for (size_t i = 0; i < count; i++) {
        char *slash = strchr((*keep)[i], '/');
        if (slash)
            *slash = '\0';
        ports[*n].port = (uint32_t)strtoul((*keep)[i], NULL, 10);
        ports[(*n)++].proto = slash ? slash + 1 : "tcp";
    }
    return ports;
}

static bool vm_up(const store_vm *vm)
{
    static const char *const up[] = {"running", "booting", "restarting", "stopping"};
    for (size_t i = 0; i < ARRAY_SIZE(up); i++)
        if (vm->status && strcmp(vm->status, up[i]) == 0)
            return true;
    return false;
}

static bool vm_selected(daemon_ctx *d, const list_filters *f, const store_vm *vm, int64_t order,
                        const store_network *nets, size_t n_nets)
{
    _cleanup_strv_ char **labels = disk_vm_labels(vm);
    _cleanup_strv_ char **net_ids = network_ids(nets, n_nets, vm->networks);
    _cleanup_strv_ char **volumes = NULL;
    for (size_t i = 0; i < vm->n_volumes; i++) {
        volumes = strv_append(volumes, vm->volumes[i].source ? vm->volumes[i].source : "");
        volumes = strv_append(volumes, vm->volumes[i].target ? vm->volumes[i].target : "");
    }
    _cleanup_free_ list_filter_port *published =
        xcalloc(vm->n_ports ? vm->n_ports : 1, sizeof(*published));
    for (size_t i = 0; i < vm->n_ports; i++)
        published[i] = (list_filter_port){(uint32_t)vm->ports[i].guest_port, vm->ports[i].protocol};
    _cleanup_strv_ char **exposed_text = NULL;
    size_t n_exposed = 0;
    _cleanup_free_ list_filter_port *exposed =
        list_filters_values(f, LF_EXPOSE)
            ? image_exposed(d, vm->image_id, &exposed_text, &n_exposed)
            : NULL;
    const list_filter_vm m = {
        .id = vm->id,
        .name = vm->name,
        .status = vm->status,
        .exit_code = vm->exit_code,
        .labels = labels,
        .image = vm->image,
        .image_id = vm->image_id,
        .networks = vm->networks,
        .network_ids = net_ids,
        .volumes = volumes,
        .published = published,
        .n_published = vm->n_ports,
        .exposed = exposed,
        .n_exposed = n_exposed,
        .order = order,
    };
    return list_filters_match_vm(f, &m);
}

int api_select_vms(daemon_ctx *d, const ProtobufCMessage *msg, const void *recs, size_t n,
                   bool *keep, hypr_error *err)
{
    const Hypr__V1__ListVmsRequest *req = (const Hypr__V1__ListVmsRequest *)msg;
    const store_vm *vms = recs;
    _cleanup_list_filters_ list_filters f = {0};
    int r = parse_request(LIST_FILTER_VMS, req->filters, req->n_filters, req->label_filter,
                          req->n_label_filter, &f, err);
    if (r < 0)
        return r;
    vm_lookup l = {d, vms, n};
    if ((r = resolve_before_since(&f, &l, vm_order, err)) < 0)
        return r;
    resolve_ancestors(d, &f);
    store_network *nets = NULL;
    size_t n_nets = 0;
    if (list_filters_values(&f, LF_NETWORK) &&
        (r = store_network_list(d->db, &nets, &n_nets, err)) < 0)
        return r;
    bool stopped_too = req->all || list_filters_want_stopped(&f);
    for (size_t i = 0; i < n; i++)
        keep[i] = (stopped_too || vm_up(&vms[i])) &&
                  vm_selected(d, &f, &vms[i], (int64_t)i, nets, n_nets);
    store_networks_free(nets, n_nets);
    return 0;
}

/* ---- images ----------------------------------------------------------------------------- */

static int image_order(void *ud, const char *ref, int64_t *order, hypr_error *err)
{
    daemon_ctx *d = ud;
    _cleanup_store_image_ store_image img = {0};
    int r = image_store_find(d->db, ref, &img, err);
    if (r >= 0)
        *order = img.created_at;
    return r;
}

int api_select_images(daemon_ctx *d, const ProtobufCMessage *msg, const void *recs, size_t n,
                      bool *keep, hypr_error *err)
{
    const Hypr__V1__ListImagesRequest *req = (const Hypr__V1__ListImagesRequest *)msg;
    const store_image *imgs = recs;
    _cleanup_list_filters_ list_filters f = {0};
    int r = list_filters_parse(LIST_FILTER_IMAGES, req->filters, req->n_filters, &f, err);
    if (r < 0 || (r = resolve_before_since(&f, d, image_order, err)) < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        _cleanup_strv_ char **labels =
            list_filters_values(&f, LF_LABEL) ? disk_image_labels(&imgs[i]) : NULL;
        const list_filter_image m = {imgs[i].id, imgs[i].name, imgs[i].tag, labels,
                                     imgs[i].created_at};
        keep[i] = list_filters_match_image(&f, &m);
    }
    return 0;
}
