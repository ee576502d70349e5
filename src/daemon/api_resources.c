/* List and Get RPCs over the state: records from the store become API messages. */
#define LOG_MODULE "api"
#include "vm.h"
#include "image/image.h"
#include "netmgr.h"

#include <assert.h>
#include <jansson.h>
#include <string.h>

static ProtobufCMessage *vm_message(daemon_ctx *d, const void *rec)
{
    return &vm_to_message(d, rec)->base;
}

static void vm_message_release(ProtobufCMessage *msg)
{
    vm_message_free((Hypr__V1__VM *)msg);
}

/* Like `docker ps`: without `all`, only VMs that are up. */
static bool vm_listed(const void *rec, const ProtobufCMessage *req)
{
    const store_vm *vm = rec;
    if (((const Hypr__V1__ListVmsRequest *)req)->all)
        return true;
    static const char *const up[] = {"running", "booting", "restarting", "stopping"};
    for (size_t i = 0; i < ARRAY_SIZE(up); i++)
        if (vm->status && strcmp(vm->status, up[i]) == 0)
            return true;
    return false;
}

/* Images: entrypoint/env/ports/... come from the image's manifest.json (api_image.c). */
static ProtobufCMessage *image_message(daemon_ctx *d, const void *rec)
{
    return api_image_message(rec);
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

Hypr__V1__Network *api_network_message(daemon_ctx *d, const store_network *net)
{
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
    m->vm_ids = netmgr_network_vms(d, net->name);
    m->n_vm_ids = strv_length(m->vm_ids);
    m->n_labels = api_labels_entries(net->labels, &hypr__v1__network__labels_entry__descriptor,
                                     (ProtobufCMessage ***)&m->labels);
    return m;
}

void api_network_message_free(Hypr__V1__Network *m)
{
    if (!m)
        return;
    strv_free(m->vm_ids);
    api_labels_free((ProtobufCMessage **)m->labels, m->n_labels);
    free(m);
}

static ProtobufCMessage *network_message(daemon_ctx *d, const void *rec)
{
    return &api_network_message(d, rec)->base;
}

static void network_message_free(ProtobufCMessage *msg)
{
    api_network_message_free((Hypr__V1__Network *)msg);
}

static ProtobufCMessage *volume_message(daemon_ctx *d, const void *rec)
{
    const store_volume *v = rec;
    Hypr__V1__Volume *m = xmalloc(sizeof(*m));
    hypr__v1__volume__init(m);
    m->name = v->name;
    m->driver = v->driver ? v->driver : "local";
    m->mountpoint = v->mountpoint ? v->mountpoint : "";
    m->stack = v->stack ? v->stack : "";
    m->created_at = v->created_at;
    return &m->base;
}

static ProtobufCMessage *stack_message(daemon_ctx *d, const void *rec)
{
    const store_stack *st = rec;
    Hypr__V1__Stack *m = xmalloc(sizeof(*m));
    hypr__v1__stack__init(m);
    m->id = (char *)st->id;
    m->name = st->name;
    m->status = st->status ? st->status : "";
    m->compose_file = st->compose ? st->compose : "";
    m->created_at = st->created_at;
    return &m->base;
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
    ProtobufCMessage *(*to_message)(daemon_ctx *d, const void *rec);
    void (*free_message)(ProtobufCMessage *msg);
    bool (*listed)(const void *rec, const ProtobufCMessage *req); /* NULL = all */
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

KIND(vm, store_vm, "VM", "vms", "vm", "id", vm_message_release, vm_listed);
KIND(image, store_image, "image", "images", "image", "id", api_image_message_free, NULL);
KIND(network, store_network, "network", "networks", "network", "id", network_message_free, NULL);
KIND(volume, store_volume, "volume", "volumes", "volume", "name", free_plain, NULL);
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

static void list_reply(rpc_call *call, ProtobufCMessage *req, const resource_kind *k)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    void *recs = NULL;
    size_t n = 0;
    if (k->list(api_daemon(call)->db, &recs, &n, &err) < 0) {
        protobuf_c_message_free_unpacked(req, NULL);
        hypr_err_prefix(&err, "list %ss", k->what);
        api_fail(call, &err);
        return;
    }
    const ProtobufCMessageDescriptor *desc = response_descriptor(call);
    ProtobufCMessage *resp = xcalloc(1, desc->sizeof_message);
    protobuf_c_message_init(desc, resp);
    ProtobufCMessage **items = xcalloc(n, sizeof(*items));
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const void *rec = (char *)recs + i * k->record_size;
        if (!k->listed || k->listed(rec, req))
            items[count++] = k->to_message(api_daemon(call), rec);
    }
    *(size_t *)field_at(resp, desc, k->list_field, true) = count;
    *(ProtobufCMessage ***)field_at(resp, desc, k->list_field, false) = items;
    rpc_call_reply(call, resp);

    for (size_t i = 0; i < count; i++)
        k->free_message(items[i]);
    free(items);
    free(resp);
    for (size_t i = 0; i < n; i++)
        k->clear((char *)recs + i * k->record_size);
    free(recs);
    protobuf_c_message_free_unpacked(req, NULL);
}

static void get_reply(rpc_call *call, ProtobufCMessage *req, const resource_kind *k)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    const char *ref = *(char **)field_at(req, req->descriptor, k->ref_field, false);
    _cleanup_free_ void *rec = xcalloc(1, k->record_size);
    int r = str_empty(ref) ? hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL,
                                      "a %s ID or name is required", k->what)
                           : k->find(api_daemon(call)->db, ref, rec, &err);
    protobuf_c_message_free_unpacked(req, NULL);
    if (r < 0) {
        api_fail(call, &err);
        return;
    }
    const ProtobufCMessageDescriptor *desc = response_descriptor(call);
    _cleanup_free_ ProtobufCMessage *resp = xcalloc(1, desc->sizeof_message);
    protobuf_c_message_init(desc, resp);
    ProtobufCMessage *item = k->to_message(api_daemon(call), rec);
    *(ProtobufCMessage **)field_at(resp, desc, k->get_field, false) = item;
    rpc_call_reply(call, resp);
    k->free_message(item);
    k->clear(rec);
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
RESOURCE_HANDLERS(volume, volumes)
RESOURCE_HANDLERS(stack, stacks)
