/* VMs and their links: ports, networks and volumes (child rows deleted with the VM). */
#define LOG_MODULE "state"

#include <string.h>

#include "state/store-private.h"

#define VM_COLUMNS                                                                                 \
    "id, name, image, image_id, status, config, ip_address, error, stack, exit_code, pid, "        \
    "restart_count, created_at, started_at, stopped_at, manual_stop"

void store_vm_clear(store_vm *vm)
{
    if (!vm)
        return;
    free(vm->name);
    free(vm->image);
    free(vm->image_id);
    free(vm->status);
    free(vm->config);
    free(vm->ip_address);
    free(vm->error);
    free(vm->stack);
    for (size_t i = 0; vm->ports && i < vm->n_ports; i++) {
        free(vm->ports[i].host_ip);
        free(vm->ports[i].protocol);
    }
    free(vm->ports);
    strv_free(vm->networks);
    for (size_t i = 0; vm->volumes && i < vm->n_volumes; i++) {
        free(vm->volumes[i].source);
        free(vm->volumes[i].target);
    }
    free(vm->volumes);
    memset(vm, 0, sizeof(*vm));
}

ENTITY_CLEAR(store_vm, store_vm_clear)

static void vm_read_row(store_row *r, void *obj)
{
    store_vm *vm = obj;
    row_id(r, vm->id);
    vm->name = row_text(r);
    vm->image = row_text(r);
    vm->image_id = row_text(r);
    vm->status = row_text(r);
    vm->config = row_blob(r, &vm->config_len);
    vm->ip_address = row_text(r);
    vm->error = row_text(r);
    vm->stack = row_text(r);
    vm->exit_code = (int)row_int64(r);
    vm->pid = (int)row_int64(r);
    vm->restart_count = (int)row_int64(r);
    vm->created_at = row_int64(r);
    vm->started_at = row_int64(r);
    vm->stopped_at = row_int64(r);
    vm->manual_stop = row_int64(r) != 0;
}

/* Binds every column in VM_COLUMNS order, so ?1 is the id in INSERT and UPDATE alike. */
static void vm_bind(store_binder *b, const void *obj)
{
    const store_vm *vm = obj;
    bind_text(b, vm->id);
    bind_text(b, vm->name);
    bind_text(b, vm->image);
    bind_text(b, vm->image_id);
    bind_text(b, vm->status ? vm->status : "created");
    bind_blob(b, vm->config, vm->config_len);
    bind_text(b, vm->ip_address);
    bind_text(b, vm->error);
    bind_text(b, vm->stack);
    bind_int64(b, vm->exit_code);
    bind_int64(b, vm->pid);
    bind_int64(b, vm->restart_count);
    bind_int64(b, vm->created_at);
    bind_int64(b, vm->started_at);
    bind_int64(b, vm->stopped_at);
    bind_int64(b, vm->manual_stop);
}

/* ---- links ------------------------------------------------------------------- */

typedef struct link_stmts {
    sqlite3_stmt *ports, *networks, *volumes;
} link_stmts;

static void link_stmts_done(link_stmts *l)
{
    sqlite3_finalize(l->ports);
    sqlite3_finalize(l->networks);
    sqlite3_finalize(l->volumes);
}

/* SQL for the three link tables, in link_stmts order. */
typedef struct link_sql {
    const char *ports, *networks, *volumes;
} link_sql;

static const link_sql link_select_sql = {
    .ports = "SELECT host_ip, host_port, guest_port, protocol FROM vm_ports WHERE vm_id = ?1 "
             "ORDER BY rowid",
    .networks = "SELECT network FROM vm_networks WHERE vm_id = ?1 ORDER BY rowid",
    .volumes = "SELECT source, target, read_only FROM vm_volumes WHERE vm_id = ?1 ORDER BY rowid",
};

static const link_sql link_insert_sql = {
    .ports = "INSERT INTO vm_ports (vm_id, host_ip, host_port, guest_port, protocol) "
             "VALUES (?1, ?2, ?3, ?4, ?5)",
    .networks = "INSERT INTO vm_networks (vm_id, network) VALUES (?1, ?2)",
    .volumes = "INSERT INTO vm_volumes (vm_id, source, target, read_only) VALUES (?1, ?2, ?3, ?4)",
};

static int link_stmts_prepare(store *s, link_stmts *l, const link_sql *sql, const char *op,
                              hypr_error *err)
{
    int r = store_prepare(s, sql->ports, &l->ports, err, "%s", op);
    if (r >= 0)
        r = store_prepare(s, sql->networks, &l->networks, err, "%s", op);
    if (r >= 0)
        r = store_prepare(s, sql->volumes, &l->volumes, err, "%s", op);
    return r;
}

/* Resets st, binds the VM id and steps to the first row. */
static int step_with_id(sqlite3_stmt *st, const char *id)
{
    sqlite3_reset(st);
    int rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return rc != SQLITE_OK ? rc : sqlite3_step(st);
}

static int vm_load_one(store *s, link_stmts *l, store_vm *vm, hypr_error *err)
{
    size_t cap = 0;
    int rc;
    for (rc = step_with_id(l->ports, vm->id); rc == SQLITE_ROW; rc = sqlite3_step(l->ports)) {
        if (vm->n_ports == cap) {
            cap = cap ? cap * 2 : 4;
            vm->ports = xrealloc(vm->ports, cap * sizeof(*vm->ports));
        }
        store_port *p = &vm->ports[vm->n_ports++];
        store_row row = STORE_ROW(l->ports);
        p->host_ip = row_text(&row);
        p->host_port = (int)row_int64(&row);
        p->guest_port = (int)row_int64(&row);
        p->protocol = row_text(&row);
    }
    if (rc != SQLITE_DONE)
        return store_db_error(s, rc, err, "read ports of VM %s", vm->name);

    for (rc = step_with_id(l->networks, vm->id); rc == SQLITE_ROW; rc = sqlite3_step(l->networks))
        vm->networks = strv_append(vm->networks, (const char *)sqlite3_column_text(l->networks, 0));
    if (rc != SQLITE_DONE)
        return store_db_error(s, rc, err, "read networks of VM %s", vm->name);

    cap = 0;
    for (rc = step_with_id(l->volumes, vm->id); rc == SQLITE_ROW; rc = sqlite3_step(l->volumes)) {
        if (vm->n_volumes == cap) {
            cap = cap ? cap * 2 : 4;
            vm->volumes = xrealloc(vm->volumes, cap * sizeof(*vm->volumes));
        }
        store_vm_volume *v = &vm->volumes[vm->n_volumes++];
        store_row row = STORE_ROW(l->volumes);
        v->source = row_text(&row);
        v->target = row_text(&row);
        v->read_only = row_int64(&row) != 0;
    }
    if (rc != SQLITE_DONE)
        return store_db_error(s, rc, err, "read volumes of VM %s", vm->name);
    return 0;
}

static int vm_load_links(store *s, void *objs, size_t n, hypr_error *err)
{
    _cleanup_(link_stmts_done) link_stmts l = {0};
    int r = link_stmts_prepare(s, &l, &link_select_sql, "read VM links", err);
    if (r < 0)
        return r;
    store_vm *vms = objs;
    for (size_t i = 0; i < n; i++) {
        r = vm_load_one(s, &l, &vms[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int link_step(store *s, sqlite3_stmt *st, int bind_rc, const char *what, const store_vm *vm,
                     hypr_error *err)
{
    int rc = bind_rc != SQLITE_OK ? bind_rc : sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_db_error(s, rc, err, "save %s of VM %s", what, vm->name);
    return 0;
}

static int vm_write_links(store *s, const store_vm *vm, hypr_error *err)
{
    _cleanup_(link_stmts_done) link_stmts l = {0};
    int r = link_stmts_prepare(s, &l, &link_insert_sql, "save VM links", err);
    if (r < 0)
        return r;
    for (size_t i = 0; vm->ports && i < vm->n_ports; i++) {
        const store_port *p = &vm->ports[i];
        sqlite3_reset(l.ports);
        store_binder b = STORE_BINDER(l.ports);
        bind_text(&b, vm->id);
        bind_text(&b, p->host_ip);
        bind_int64(&b, p->host_port);
        bind_int64(&b, p->guest_port);
        bind_text(&b, p->protocol ? p->protocol : "tcp");
        r = link_step(s, l.ports, b.rc, "ports", vm, err);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; vm->networks && vm->networks[i]; i++) {
        sqlite3_reset(l.networks);
        store_binder b = STORE_BINDER(l.networks);
        bind_text(&b, vm->id);
        bind_text(&b, vm->networks[i]);
        r = link_step(s, l.networks, b.rc, "networks", vm, err);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; vm->volumes && i < vm->n_volumes; i++) {
        const store_vm_volume *v = &vm->volumes[i];
        sqlite3_reset(l.volumes);
        store_binder b = STORE_BINDER(l.volumes);
        bind_text(&b, vm->id);
        bind_text(&b, v->source);
        bind_text(&b, v->target);
        bind_int64(&b, v->read_only);
        r = link_step(s, l.volumes, b.rc, "volumes", vm, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static const store_entity vm_entity = {
    .table = "vms",
    .columns = VM_COLUMNS,
    .key_col = "id",
    .order = "created_at, rowid",
    .noun = "VM",
    .nouns = "VMs",
    .name_label = "name",
    .has_id = true,
    .size = sizeof(store_vm),
    .read_row = vm_read_row,
    .bind_row = vm_bind,
    .clear = store_vm_clear_obj,
    .load_links = vm_load_links,
};

/* ---- public ------------------------------------------------------------------ */

void store_vms_free(store_vm *vms, size_t n)
{
    store_records_free(&vm_entity, vms, n);
}

static int vm_insert_tx(store *s, void *ud, hypr_error *err)
{
    const store_vm *vm = ud;
    int r = store_insert_record(s, &vm_entity, vm, vm->id, vm->name, err);
    if (r < 0)
        return r;
    return vm_write_links(s, vm, err);
}

int store_vm_insert(store *s, const store_vm *vm, hypr_error *err)
{
    STORE_LOCKED(s);
    int r = store_check_id_name(&vm_entity, vm->id, vm->name, err);
    if (r < 0)
        return r;
    return store_tx_run(s, vm_insert_tx, (void *)vm, err, "insert VM %s", vm->name);
}

static int vm_update_tx(store *s, void *ud, hypr_error *err)
{
    const store_vm *vm = ud;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s,
                          "UPDATE vms SET name = ?2, image = ?3, image_id = ?4, status = ?5, "
                          "config = ?6, ip_address = ?7, error = ?8, stack = ?9, exit_code = ?10, "
                          "pid = ?11, restart_count = ?12, created_at = ?13, started_at = ?14, "
                          "stopped_at = ?15, manual_stop = ?16 WHERE id = ?1",
                          &st, err, "update VM");
    if (r < 0)
        return r;
    store_binder b = STORE_BINDER(st);
    vm_bind(&b, vm);
    if (b.rc != SQLITE_OK)
        return store_db_error(s, b.rc, err, "update VM %s", vm->name);
    r = store_step_write(s, st, &vm_entity, "update", vm->id, vm->name, err);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "no such VM: %s", vm->id);

    /* Links are replaced wholesale: simpler than diffing, and a VM has a handful. */
    static const char *const clear_sql[] = {
        "DELETE FROM vm_ports WHERE vm_id = ?1",
        "DELETE FROM vm_networks WHERE vm_id = ?1",
        "DELETE FROM vm_volumes WHERE vm_id = ?1",
    };
    for (size_t i = 0; i < ARRAY_SIZE(clear_sql); i++) {
        _cleanup_stmt_ sqlite3_stmt *del = NULL;
        r = store_prepare(s, clear_sql[i], &del, err, "update VM links");
        if (r < 0)
            return r;
        int rc = step_with_id(del, vm->id);
        if (rc != SQLITE_DONE)
            return store_db_error(s, rc, err, "update links of VM %s", vm->name);
    }
    return vm_write_links(s, vm, err);
}

int store_vm_update(store *s, const store_vm *vm, hypr_error *err)
{
    STORE_LOCKED(s);
    int r = store_check_id_name(&vm_entity, vm->id, vm->name, err);
    if (r < 0)
        return r;
    return store_tx_run(s, vm_update_tx, (void *)vm, err, "update VM %s", vm->name);
}

static int vm_delete_tx(store *s, void *ud, hypr_error *err)
{
    const char *id = ud;
    /* Links go by ON DELETE CASCADE; addresses have no foreign key (see migrations.c). */
    if (s->version >= 2) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_prepare(s, "DELETE FROM ip_allocations WHERE vm_id = ?1", &st, err,
                              "release VM addresses");
        if (r < 0)
            return r;
        int rc = step_with_id(st, id);
        if (rc != SQLITE_DONE)
            return store_db_error(s, rc, err, "release addresses of VM %s", id);
    }
    return store_delete_key(s, &vm_entity, id, err);
}

int store_vm_delete(store *s, const char *id, hypr_error *err)
{
    STORE_LOCKED(s);
    if (str_empty(id))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no VM ID given");
    return store_tx_run(s, vm_delete_tx, (void *)id, err, "delete VM %s", id);
}

int store_vm_find(store *s, const char *ref, store_vm *out, hypr_error *err)
{
    STORE_LOCKED(s);
    memset(out, 0, sizeof(*out));
    return store_find_ref(s, &vm_entity, ref, out, err);
}

int store_vm_list(store *s, store_vm **out, size_t *n, hypr_error *err)
{
    STORE_LOCKED(s);
    void *objs;
    int r = store_list_rows(s, &vm_entity, &objs, n, err);
    *out = objs;
    return r;
}
