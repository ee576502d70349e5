/* The IPAM's rows: one per allocated address of a network. The bitmap lives in
 * src/net; this file only records and lists what it hands out. */
#define LOG_MODULE "state"

#include <string.h>

#include "state/store-private.h"

void store_ip_allocations_free(store_ip_allocation *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].network);
        free(a[i].address);
        free(a[i].vm_id);
    }
    free(a);
}

static int check_key(const char *network, const char *address, hypr_error *err)
{
    if (str_empty(network))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no network given");
    if (address && str_empty(address))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no address given");
    return 0;
}

typedef struct ip_row {
    const char *network, *address, *vm_id;
} ip_row;

static int ip_allocate_tx(store *s, void *ud, hypr_error *err)
{
    const ip_row *row = ud;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r =
        store_prepare(s, "INSERT INTO ip_allocations (network, address, vm_id) VALUES (?1, ?2, ?3)",
                      &st, err, "allocate %s in network %s", row->address, row->network);
    if (r < 0)
        return r;
    store_binder b = STORE_BINDER(st);
    bind_text(&b, row->network);
    bind_text(&b, row->address);
    bind_text(&b, row->vm_id);
    int rc = b.rc != SQLITE_OK ? b.rc : sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return hypr_err(err, HYPR_ALREADY_EXISTS, EEXIST,
                        "address %s is already allocated in network %s", row->address,
                        row->network);
    return store_db_error(s, rc, err, "allocate %s in network %s", row->address, row->network);
}

int store_ip_allocate(store *s, const char *network, const char *address, const char *vm_id,
                      hypr_error *err)
{
    int r = check_key(network, address ? address : "", err);
    if (r < 0)
        return r;
    STORE_LOCKED(s);
    ip_row row = {network, address, vm_id};
    return store_tx_run(s, ip_allocate_tx, &row, err, "allocate %s in network %s", address,
                        network);
}

static int ip_release_tx(store *s, void *ud, hypr_error *err)
{
    const ip_row *row = ud;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s, "DELETE FROM ip_allocations WHERE network = ?1 AND address = ?2", &st,
                          err, "release %s in network %s", row->address, row->network);
    if (r < 0)
        return r;
    store_binder b = STORE_BINDER(st);
    bind_text(&b, row->network);
    bind_text(&b, row->address);
    int rc = b.rc != SQLITE_OK ? b.rc : sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_db_error(s, rc, err, "release %s in network %s", row->address, row->network);
    if (sqlite3_changes(s->db) == 0)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "address %s is not allocated in network %s",
                        row->address, row->network);
    return 0;
}

int store_ip_release(store *s, const char *network, const char *address, hypr_error *err)
{
    int r = check_key(network, address ? address : "", err);
    if (r < 0)
        return r;
    STORE_LOCKED(s);
    ip_row row = {network, address, NULL};
    return store_tx_run(s, ip_release_tx, &row, err, "release %s in network %s", address, network);
}

/* Reads every row st yields (network, address, vm_id). */
static int read_rows(store *s, sqlite3_stmt *st, store_ip_allocation **out, size_t *n,
                     hypr_error *err, const char *op)
{
    store_ip_allocation *rows = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            rows = xrealloc(rows, cap * sizeof(*rows));
        }
        store_row row = STORE_ROW(st);
        rows[count].network = row_text(&row);
        rows[count].address = row_text(&row);
        rows[count].vm_id = row_text(&row);
        count++;
    }
    if (rc != SQLITE_DONE) {
        store_ip_allocations_free(rows, count);
        return store_db_error(s, rc, err, "%s", op);
    }
    *out = rows;
    *n = count;
    return 0;
}

typedef struct ip_list {
    const char *network;
    store_ip_allocation **out;
    size_t *n;
} ip_list;

static int ip_list_tx(store *s, void *ud, hypr_error *err)
{
    ip_list *l = ud;
    _cleanup_free_ char *op = xasprintf("list addresses of network %s", l->network);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s,
                          "SELECT network, address, vm_id FROM ip_allocations WHERE network = ?1 "
                          "ORDER BY address",
                          &st, err, "%s", op);
    if (r < 0)
        return r;
    store_binder b = STORE_BINDER(st);
    bind_text(&b, l->network);
    if (b.rc != SQLITE_OK)
        return store_db_error(s, b.rc, err, "%s", op);
    return read_rows(s, st, l->out, l->n, err, op);
}

int store_ip_list(store *s, const char *network, store_ip_allocation **out, size_t *n,
                  hypr_error *err)
{
    *out = NULL;
    *n = 0;
    int r = check_key(network, NULL, err);
    if (r < 0)
        return r;
    STORE_LOCKED(s);
    ip_list l = {network, out, n};
    return store_tx_run(s, ip_list_tx, &l, err, "list addresses of network %s", network);
}

typedef struct ip_release_vm {
    const char *network, *vm_id;
    store_ip_allocation *rows;
    size_t n;
} ip_release_vm;

static int ip_release_vm_tx(store *s, void *ud, hypr_error *err)
{
    ip_release_vm *rv = ud;
    _cleanup_free_ char *op = xasprintf("release addresses of VM %s", rv->vm_id);
    const char *where = rv->network ? "vm_id = ?1 AND network = ?2" : "vm_id = ?1";
    _cleanup_free_ char *select = xasprintf(
        "SELECT network, address, vm_id FROM ip_allocations WHERE %s ORDER BY network, address",
        where);
    _cleanup_free_ char *delete = xasprintf("DELETE FROM ip_allocations WHERE %s", where);
    _cleanup_stmt_ sqlite3_stmt *sel = NULL, *del = NULL;
    int r = store_prepare(s, select, &sel, err, "%s", op);
    if (r < 0)
        return r;
    r = store_prepare(s, delete, &del, err, "%s", op);
    if (r < 0)
        return r;
    store_binder bs = STORE_BINDER(sel), bd = STORE_BINDER(del);
    bind_text(&bs, rv->vm_id);
    bind_text(&bd, rv->vm_id);
    if (rv->network) {
        bind_text(&bs, rv->network);
        bind_text(&bd, rv->network);
    }
    if (bs.rc != SQLITE_OK || bd.rc != SQLITE_OK)
        return store_db_error(s, bs.rc != SQLITE_OK ? bs.rc : bd.rc, err, "%s", op);
    r = read_rows(s, sel, &rv->rows, &rv->n, err, op);
    if (r < 0)
        return r;
    int rc = sqlite3_step(del);
    if (rc != SQLITE_DONE) {
        store_ip_allocations_free(rv->rows, rv->n);
        rv->rows = NULL;
        rv->n = 0;
        return store_db_error(s, rc, err, "%s", op);
    }
    return 0;
}

int store_ip_release_vm(store *s, const char *network, const char *vm_id,
                        store_ip_allocation **released, size_t *n_released, hypr_error *err)
{
    if (released)
        *released = NULL;
    if (n_released)
        *n_released = 0;
    if (str_empty(vm_id))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no VM given");
    if (network && str_empty(network))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no network given");
    STORE_LOCKED(s);
    ip_release_vm rv = {network, vm_id, NULL, 0};
    int r = store_tx_run(s, ip_release_vm_tx, &rv, err, "release addresses of VM %s", vm_id);
    if (r < 0) {
        store_ip_allocations_free(rv.rows, rv.n);
        return r;
    }
    if (released) {
        *released = rv.rows;
        if (n_released)
            *n_released = rv.n;
    } else {
        store_ip_allocations_free(rv.rows, rv.n);
    }
    return 0;
}
