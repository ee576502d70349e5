/* List and Get RPCs over the state: records from the store become API messages. */
#define LOG_MODULE "api"
#include "api.h"
#include "image/image.h"
#include "netmgr.h"
#include "vm.h"

#include <assert.h>
#include <jansson.h>
#include <string.h>

/* ---- VMs ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    Hypr__V1__VMStatus status;
} vm_statuses[] = {
    {"created", HYPR__V1__VMSTATUS__VM_STATUS_CREATED},
    {"booting", HYPR__V1__VMSTATUS__VM_STATUS_BOOTING},
    {"running", HYPR__V1__VMSTATUS__VM_STATUS_RUNNING},
    {"stopping", HYPR__V1__VMSTATUS__VM_STATUS_STOPPING},
    {"stopped", HYPR__V1__VMSTATUS__VM_STATUS_STOPPED},
    {"failed", HYPR__V1__VMSTATUS__VM_STATUS_FAILED},
    {"restarting", HYPR__V1__VMSTATUS__VM_STATUS_RESTARTING},
};

static Hypr__V1__VMStatus vm_status_from_string(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(vm_statuses); i++)
        if (strcmp(vm_statuses[i].name, s) == 0)
            return vm_statuses[i].status;
    return HYPR__V1__VMSTATUS__VM_STATUS_UNSPECIFIED;
}

Hypr__V1__VM *api_vm_message(daemon_ctx *d, const store_vm *vm)
{
    Hypr__V1__VM *m = xmalloc(sizeof(*m));
    hypr__v1__vm__init(m);
    m->id = (char *)vm->id;
    m->name = vm->name;
    m->status = d && vm_is_paused(d, vm->id) ? HYPR__V1__VMSTATUS__VM_STATUS_PAUSED
                                             : vm_status_from_string(vm->status);
    m->ip_address = vm->ip_address ? vm->ip_address : "";
    m->exit_code = vm->exit_code;
    m->error = vm->error ? vm->error : "";
    m->created_at = vm->created_at;
    m->started_at = vm->started_at;
    m->stopped_at = vm->stopped_at;
    m->pid = vm->pid;
    m->image_id = vm->image_id ? vm->image_id : "";
    m->restart_count = (uint32_t)vm->restart_count;
    m->stack = vm->stack ? vm->stack : "";
    if (vm->config_len > 0)
        m->config = hypr__v1__vmconfig__unpack(NULL, vm->config_len, (const uint8_t *)vm->config);
    struct vm_net *net = d ? vm_running_net(d, vm->id) : NULL;
    if (net)
        m->n_networks = (size_t)netmgr_vm_attachments(net, &m->networks);
    return m;
}

void api_vm_message_free(Hypr__V1__VM *m)
{
    if (!m)
        return;
    if (m->config)
        hypr__v1__vmconfig__free_unpacked(m->config, NULL);
    for (size_t i = 0; i < m->n_networks; i++)
        free(m->networks[i]);
    free(m->networks);
    free(m);
}

static int vm_message(daemon_ctx *d, const void *rec, ProtobufCMessage **out, hypr_error *err)
{
    *out = &api_vm_message(d, rec)->base;
    return 0;
}

static void vm_message_release(ProtobufCMessage *msg)
{
    api_vm_message_free((Hypr__V1__VM *)msg);
}

/* Images: entrypoint/env/ports/... come from the image's manifest.json (api_image.c). */
static int image_message(daemon_ctx *d, const void *rec, ProtobufCMessage **out, hypr_error *err)
{
    *out = api_image_message(rec);
    return 0;
}

/* ---- labels: a map field's entries <-> the JSON object text the store keeps ------- */

static const ProtobufCFieldDescriptor *entry_field(const ProtobufCMessageDescriptor *desc,
                                                   const char *name)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, name);
    assert(f && f->type == PROTOBUF_C_TYPE_STRING);
    return f;
}

static char **entry_string(const ProtobufCMessage *e, const char *name)
{
    return (char **)((char *)e + entry_field(e->descriptor, name)->offset);
}

char *api_labels_json(ProtobufCMessage *const *entries, size_t n)
{
    if (n == 0)
        return NULL;
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, *entry_string(entries[i], "key"),
                            json_string(*entry_string(entries[i], "value")));
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

size_t api_labels_entries(const char *json, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage ***out)
{
    *out = NULL;
    json_t *o = json ? json_loads(json, 0, NULL) : NULL;
    size_t n = 0;
    if (json_is_object(o) && json_object_size(o) > 0) {
        *out = xcalloc(json_object_size(o), sizeof(**out));
        const char *key;
        json_t *value;
        json_object_foreach(o, key, value)
        {
            if (!json_is_string(value))
                continue;
            ProtobufCMessage *e = xcalloc(1, desc->sizeof_message);
            desc->message_init(e);
            *entry_string(e, "key") = xstrdup(key);
            *entry_string(e, "value") = xstrdup(json_string_value(value));
            (*out)[n++] = e;
        }
    }
    json_decref(o);
    return n;
}

void api_labels_free(ProtobufCMessage **entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(*entry_string(entries[i], "key"));
        free(*entry_string(entries[i], "value"));
        free(entries[i]);
    }
    free(entries);
}

/* ---- networks ------------------------------------------------------------------------ */

int api_network_message(daemon_ctx *d, const store_network *net, Hypr__V1__Network **out,
                        hypr_error *err)
{
    _cleanup_strv_ char **vm_ids = NULL;
    int r = netmgr_network_vms(d, net->name, false, &vm_ids, err);
    if (r < 0)
        return r;
    Hypr__V1__Network *m = xmalloc(sizeof(*m));
    hypr__v1__network__init(m);
    m->id = (char *)net->id;
    m->name = net->name;
    m->driver = net->driver ? net->driver : "bridge";
    m->subnet = net->subnet ? net->subnet : "";
    m->gateway = net->gateway ? net->gateway : "";
    m->bridge = net->bridge ? net->bridge : "";
    m->internal = net->internal;
    m->created_at = net->created_at;
    m->n_vm_ids = strv_length(vm_ids);
    m->vm_ids = TAKE_PTR(vm_ids);
    m->n_labels = api_labels_entries(net->labels, &hypr__v1__network__labels_entry__descriptor,
                                     (ProtobufCMessage ***)&m->labels);
    *out = m;
    return 0;
}

void api_network_message_free(Hypr__V1__Network *m)
{
    if (!m)
        return;
    strv_free(m->vm_ids);
    api_labels_free((ProtobufCMessage **)m->labels, m->n_labels);
    free(m);
}

static int network_message(daemon_ctx *d, const void *rec, ProtobufCMessage **out, hypr_error *err)
{
    return api_network_message(d, rec, (Hypr__V1__Network **)out, err);
}

static void network_message_free(ProtobufCMessage *msg)
{
    api_network_message_free((Hypr__V1__Network *)msg);
}

static int stack_message(daemon_ctx *d, const void *rec, ProtobufCMessage **out, hypr_error *err)
{
    const store_stack *st = rec;
    Hypr__V1__Stack *m = xmalloc(sizeof(*m));
    hypr__v1__stack__init(m);
    m->id = (char *)st->id;
    m->name = st->name;
    m->status = st->status ? st->status : "";
    m->compose_file = st->compose ? st->compose : "";
    m->created_at = st->created_at;
    *out = &m->base;
    return 0;
}

/* ---- one path for every List and Get RPC ------------------------------------ */

typedef struct resource_kind {
    const char *what;       /* for messages: "VM" */
    const char *list_field; /* repeated field of the List response */
    const char *get_field;  /* message field of the Get response */
    const char *ref_field;  /* field of the Get request naming the record */
    size_t record_size;
    int (*list)(store *s, void **out, size_t *n, hypr_error *err);
    int (*find)(store *s, const char *ref, void *out, hypr_error *err);
    void (*clear)(void *rec);
    /* The message points into the record; free_message frees only the message. */
    int (*to_message)(daemon_ctx *d, const void *rec, ProtobufCMessage **out, hypr_error *err);
    void (*free_message)(ProtobufCMessage *msg);
    /* Which records the List request answers with (keep[i] for the i-th); NULL = all. */
    int (*select)(daemon_ctx *d, const ProtobufCMessage *req, const void *recs, size_t n,
                  bool *keep, hypr_error *err);
} resource_kind;

/* Typed store functions behind the generic signatures above. */
#define STORE_ADAPTERS(prefix, type)                                                               \
    static int prefix##_list(store *s, void **out, size_t *n, hypr_error *err)                     \
    {                                                                                              \
        return store_##prefix##_list(s, (type **)out, n, err);                                     \
    }                                                                                              \
    static int prefix##_find(store *s, const char *ref, void *out, hypr_error *err)                \
    {                                                                                              \
        return store_##prefix##_find(s, ref, out, err);                                            \
    }                                                                                              \
    static void prefix##_clear(void *rec)                                                          \
    {                                                                                              \
        store_##prefix##_clear(rec);                                                               \
    }

STORE_ADAPTERS(vm, store_vm)
/* Images are also found by normalised reference ("busybox" names
 * docker.io/library/busybox:latest in the store). */
static int image_list(store *s, void **out, size_t *n, hypr_error *err)
{
    return store_image_list(s, (store_image **)out, n, err);
}
static int image_find(store *s, const char *ref, void *out, hypr_error *err)
{
    return image_store_find(s, ref, out, err);
}
static void image_clear(void *rec)
{
    store_image_clear(rec);
}
STORE_ADAPTERS(network, store_network)
STORE_ADAPTERS(volume, store_volume)
STORE_ADAPTERS(stack, store_stack)

static void free_plain(ProtobufCMessage *msg)
{
    free(msg);
}

#define KIND(prefix, type, label, plural, single, ref, free_fn, filter)                            \
    static const resource_kind prefix##_kind = {                                                   \
        label,         plural,         single,           ref,     sizeof(type), prefix##_list,     \
        prefix##_find, prefix##_clear, prefix##_message, free_fn, filter}

KIND(vm, store_vm, "VM", "vms", "vm", "id", vm_message_release, api_select_vms);
KIND(image, store_image, "image", "images", "image", "id", api_image_message_free,
     api_select_images);
KIND(network, store_network, "network", "networks", "network", "id", network_message_free, NULL);
static const resource_kind volume_kind = {"volume",
                                          "volumes",
                                          "volume",
                                          "name",
                                          sizeof(store_volume),
                                          volume_list,
                                          volume_find,
                                          volume_clear,
                                          api_volume_message,
                                          api_volume_message_free,
                                          api_select_volumes};
KIND(stack, store_stack, "stack", "stacks", "stack", "name", free_plain, NULL);

static const ProtobufCMessageDescriptor *response_descriptor(rpc_call *call)
{
    const char *name = strrchr(rpc_call_path(call), '/') + 1;
    return protobuf_c_service_descriptor_get_method_by_name(&hypr__v1__hypr_service__descriptor,
                                                            name)
        ->output;
}

static void *field_at(void *msg, const ProtobufCMessageDescriptor *desc, const char *field,
                      bool quantifier)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(desc, field);
    return (char *)msg + (quantifier ? f->quantifier_offset : f->offset);
}

/* Frees a kind's records and the messages made of them. */
static void release(const resource_kind *k, void *recs, size_t n, ProtobufCMessage **items,
                    size_t count)
{
    for (size_t i = 0; i < count; i++)
        k->free_message(items[i]);
    for (size_t i = 0; i < n; i++)
        k->clear((char *)recs + i * k->record_size);
    free(recs);
}

static void list_reply(rpc_call *call, ProtobufCMessage *msg, const resource_kind *k)
{
    _cleanup_pb_ ProtobufCMessage *req = msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    void *recs = NULL;
    size_t n = 0;
    if (k->list(d->db, &recs, &n, &err) < 0) {
        hypr_err_prefix(&err, "list %ss", k->what);
        api_fail(call, &err);
        return;
    }
    _cleanup_free_ bool *keep = xcalloc(n ? n : 1, sizeof(*keep));
    for (size_t i = 0; i < n; i++)
        keep[i] = true;
    if (k->select && k->select(d, req, recs, n, keep, &err) < 0) {
        release(k, recs, n, NULL, 0);
        api_fail(call, &err);
        return;
    }
    ProtobufCMessage **items = xcalloc(n, sizeof(*items));
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const void *rec = (char *)recs + i * k->record_size;
        if (!keep[i])
            continue;
        if (k->to_message(d, rec, &items[count], &err) < 0) {
            release(k, recs, n, items, count);
            free(items);
            hypr_err_prefix(&err, "list %ss", k->what);
            api_fail(call, &err);
            return;
        }
        count++;
    }
    const ProtobufCMessageDescriptor *desc = response_descriptor(call);
    _cleanup_free_ ProtobufCMessage *resp = xcalloc(1, desc->sizeof_message);
    protobuf_c_message_init(desc, resp);
    *(size_t *)field_at(resp, desc, k->list_field, true) = count;
    *(ProtobufCMessage ***)field_at(resp, desc, k->list_field, false) = items;
    rpc_call_reply(call, resp);
    release(k, recs, n, items, count);
    free(items);
}

static void get_reply(rpc_call *call, ProtobufCMessage *msg, const resource_kind *k)
{
    _cleanup_pb_ ProtobufCMessage *req = msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    const char *ref = *(char **)field_at(req, req->descriptor, k->ref_field, false);
    if (str_empty(ref)) {
        hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL, "a %s ID or name is required", k->what);
        api_fail(call, &err);
        return;
    }
    void *rec = xcalloc(1, k->record_size);
    ProtobufCMessage *item = NULL;
    int r = k->find(d->db, ref, rec, &err);
    if (r >= 0)
        r = k->to_message(d, rec, &item, &err);
    if (r >= 0) {
        const ProtobufCMessageDescriptor *desc = response_descriptor(call);
        _cleanup_free_ ProtobufCMessage *resp = xcalloc(1, desc->sizeof_message);
        protobuf_c_message_init(desc, resp);
        *(ProtobufCMessage **)field_at(resp, desc, k->get_field, false) = item;
        rpc_call_reply(call, resp);
    } else {
        api_fail(call, &err);
    }
    release(k, rec, 1, &item, item ? 1 : 0);
}

#define RESOURCE_HANDLERS(prefix, plural)                                                          \
    void api_list_##plural(rpc_call *call, ProtobufCMessage *msg)                                  \
    {                                                                                              \
        list_reply(call, msg, &prefix##_kind);                                                     \
    }                                                                                              \
    void api_get_##prefix(rpc_call *call, ProtobufCMessage *msg)                                   \
    {                                                                                              \
        get_reply(call, msg, &prefix##_kind);                                                      \
    }

RESOURCE_HANDLERS(vm, vms)
RESOURCE_HANDLERS(image, images)
RESOURCE_HANDLERS(network, networks)
/* GetVolume measures the volume on the pool: api_volume.c. */
void api_list_volumes(rpc_call *call, ProtobufCMessage *msg)
{
    list_reply(call, msg, &volume_kind);
}
RESOURCE_HANDLERS(stack, stacks)
