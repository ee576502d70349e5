/* Networks, volumes and stacks: single-table records on the shared row helpers. */
#define LOG_MODULE "state"

#include <string.h>

#include "state/store-private.h"

/* ---- networks --------------------------------------------------------------- */

void store_network_clear(store_network *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->driver);
    free(n->subnet);
    free(n->gateway);
    free(n->bridge);
    free(n->labels);
    memset(n, 0, sizeof(*n));
}
ENTITY_CLEAR(store_network, store_network_clear)

static void network_read_row(store_row *r, void *obj)
{
    store_network *n = obj;
    row_id(r, n->id);
    n->name = row_text(r);
    n->driver = row_text(r);
    n->subnet = row_text(r);
    n->gateway = row_text(r);
    n->bridge = row_text(r);
    n->internal = row_int64(r) != 0;
    n->labels = row_text(r);
    n->created_at = row_int64(r);
}

static void network_bind_row(store_binder *b, const void *obj)
{
    const store_network *n = obj;
    bind_text(b, n->id);
    bind_text(b, n->name);
    bind_text(b, n->driver);
    bind_text(b, n->subnet);
    bind_text(b, n->gateway);
    bind_text(b, n->bridge);
    bind_int64(b, n->internal);
    bind_text(b, n->labels);
    bind_int64(b, n->created_at);
}

static const store_entity network_entity = {
    .table = "networks",
    .columns = "id, name, driver, subnet, gateway, bridge, internal, labels, created_at",
    .key_col = "id",
    .order = "name",
    .noun = "network",
    .nouns = "networks",
    .name_label = "name",
    .has_id = true,
    .size = sizeof(store_network),
    .read_row = network_read_row,
    .bind_row = network_bind_row,
    .clear = store_network_clear_obj,
};

void store_networks_free(store_network *nets, size_t n)
{
    store_records_free(&network_entity, nets, n);
}

int store_network_insert(store *s, const store_network *net, hypr_error *err)
{
    STORE_LOCKED(s);
    return store_insert_record(s, &network_entity, net, net->id, net->name, err);
}

int store_network_delete(store *s, const char *id, hypr_error *err)
{
    STORE_LOCKED(s);
    return store_delete_key(s, &network_entity, id, err);
}

int store_network_find(store *s, const char *ref, store_network *out, hypr_error *err)
{
    STORE_LOCKED(s);
    memset(out, 0, sizeof(*out));
    return store_find_ref(s, &network_entity, ref, out, err);
}

int store_network_list(store *s, store_network **out, size_t *n, hypr_error *err)
{
    STORE_LOCKED(s);
    void *objs;
    int r = store_list_rows(s, &network_entity, &objs, n, err);
    *out = objs;
    return r;
}

/* ---- volumes ---------------------------------------------------------------- */

void store_volume_clear(store_volume *v)
{
    if (!v)
        return;
    free(v->name);
    free(v->driver);
    free(v->mountpoint);
    free(v->labels);
    free(v->stack);
    memset(v, 0, sizeof(*v));
}
ENTITY_CLEAR(store_volume, store_volume_clear)

static void volume_read_row(store_row *r, void *obj)
{
    store_volume *v = obj;
    v->name = row_text(r);
    v->driver = row_text(r);
    v->mountpoint = row_text(r);
    v->labels = row_text(r);
    v->stack = row_text(r);
    v->created_at = row_int64(r);
    v->anonymous = row_int64(r) != 0;
}

static void volume_bind_row(store_binder *b, const void *obj)
{
    const store_volume *v = obj;
    bind_text(b, v->name);
    bind_text(b, v->driver);
    bind_text(b, v->mountpoint);
    bind_text(b, v->labels);
    bind_text(b, v->stack);
    bind_int64(b, v->created_at);
    bind_int64(b, v->anonymous);
}

static const store_entity volume_entity = {
    .table = "volumes",
    .columns = "name, driver, mountpoint, labels, stack, created_at, anonymous",
    .key_col = "name",
    .order = "name",
    .noun = "volume",
    .nouns = "volumes",
    .name_label = "name",
    .has_id = false,
    .size = sizeof(store_volume),
    .read_row = volume_read_row,
    .bind_row = volume_bind_row,
    .clear = store_volume_clear_obj,
};

void store_volumes_free(store_volume *vols, size_t n)
{
    store_records_free(&volume_entity, vols, n);
}

int store_volume_insert(store *s, const store_volume *v, hypr_error *err)
{
    STORE_LOCKED(s);
    return store_insert_record(s, &volume_entity, v, NULL, v->name, err);
}

int store_volume_delete(store *s, const char *name, hypr_error *err)
{
    STORE_LOCKED(s);
    return store_delete_key(s, &volume_entity, name, err);
}

int store_volume_find(store *s, const char *name, store_volume *out, hypr_error *err)
{
    STORE_LOCKED(s);
    memset(out, 0, sizeof(*out));
    return store_find_ref(s, &volume_entity, name, out, err);
}

int store_volume_list(store *s, store_volume **out, size_t *n, hypr_error *err)
{
    STORE_LOCKED(s);
    void *objs;
    int r = store_list_rows(s, &volume_entity, &objs, n, err);
    *out = objs;
    return r;
}

/* ---- stacks ----------------------------------------------------------------- */

void store_stack_clear(store_stack *st)
{
    if (!st)
        return;
    free(st->name);
    free(st->compose);
    free(st->status);
    memset(st, 0, sizeof(*st));
}
ENTITY_CLEAR(store_stack, store_stack_clear)

static void stack_read_row(store_row *r, void *obj)
{
    store_stack *st = obj;
    row_id(r, st->id);
    st->name = row_text(r);
    st->compose = row_text(r);
    st->status = row_text(r);
    st->created_at = row_int64(r);
}

static void stack_bind_row(store_binder *b, const void *obj)
{
    const store_stack *st = obj;
    bind_text(b, st->id);
    bind_text(b, st->name);
    bind_text(b, st->compose);
    bind_text(b, st->status ? st->status : "created");
    bind_int64(b, st->created_at);
}

static const store_entity stack_entity = {
    .table = "stacks",
    .columns = "id, name, compose, status, created_at",
    .key_col = "name",
    .order = "name",
    .noun = "stack",
    .nouns = "stacks",
    .name_label = "name",
    .has_id = true,
    .size = sizeof(store_stack),
    .read_row = stack_read_row,
    .bind_row = stack_bind_row,
    .clear = store_stack_clear_obj,
};

void store_stacks_free(store_stack *sts, size_t n)
{
    store_records_free(&stack_entity, sts, n);
}

int store_stack_insert(store *s, const store_stack *st, hypr_error *err)
{
    STORE_LOCKED(s);
    return store_insert_record(s, &stack_entity, st, st->id, st->name, err);
}

int store_stack_delete(store *s, const char *name, hypr_error *err)
{
    STORE_LOCKED(s);
    return store_delete_key(s, &stack_entity, name, err);
}

int store_stack_find(store *s, const char *ref, store_stack *out, hypr_error *err)
{
    STORE_LOCKED(s);
    memset(out, 0, sizeof(*out));
    return store_find_ref(s, &stack_entity, ref, out, err);
}

int store_stack_list(store *s, store_stack **out, size_t *n, hypr_error *err)
{
    STORE_LOCKED(s);
    void *objs;
    int r = store_list_rows(s, &stack_entity, &objs, n, err);
    *out = objs;
    return r;
}
