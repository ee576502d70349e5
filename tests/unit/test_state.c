#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "state/state.h"
#include "test_helpers.h"

/* An ID that starts with prefix; the rest is random hex. */
static void make_id(char out[HYPR_ID_LEN + 1], const char *prefix)
{
    assert_int_equal(id_generate(out), 0);
    memcpy(out, prefix, strlen(prefix));
}

/* Runs one integer query on the database file directly (schema checks). */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void fill_vm(store_vm *vm, const char *id_prefix, const char *name)
{
    memset(vm, 0, sizeof(*vm));
    make_id(vm->id, id_prefix);
    vm->name = (char *)name;
    vm->image = (char *)"busybox";
    vm->status = (char *)"running";
    vm->config = (char *)"{\"cpus\":2}";
    vm->config_len = strlen(vm->config);
    vm->pid = 1234;
    vm->created_at = 1700000000;
}

static store_port ports2[] = {
    {(char *)"127.0.0.1", 8080, 80, (char *)"tcp"},
    {NULL, 5353, 53, (char *)"udp"},
};
static char *nets2[] = {(char *)"default", (char *)"backend", NULL};
static store_vm_volume vols1[] = {{(char *)"data", (char *)"/data", true}};

/* ---- open / migrations ------------------------------------------------------ */

static void test_open_creates(void **state)
{
    store_fixture *f = *state;
    struct stat stbuf;
    assert_int_equal(stat(f->path, &stbuf), 0);
    assert_int_equal(stbuf.st_mode & 0777, 0600);
    assert_int_equal(store_schema_version(f->s), store_latest_version());
    assert_true(store_latest_version() >= 2);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), store_latest_version());
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_migrate_from_v1(void **state)
{
    store_fixture *f = *state;
    _cleanup_free_ char *path = path_join(f->dir, "old.db");
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store *s = NULL;
    assert_int_equal(store_open_at_version(path, 1, &s, &err), 0);
    assert_int_equal(store_schema_version(s), 1);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = "
                                   "'ip_allocations'"),
                     0);
    /* Rows as a v1 hyprd wrote them (today's code writes columns v1 lacks). */
    store_close(s);
    static const char v1_rows[] =
        "INSERT INTO vms (id, name, image, status, created_at) VALUES "
        "('a100000000000000000000000000000000000000000000000000000000000000', 'old-vm', "
        "'busybox', 'stopped', 1);"
        "INSERT INTO vm_ports (vm_id, host_ip, host_port, guest_port, protocol) VALUES "
        "('a100000000000000000000000000000000000000000000000000000000000000', '127.0.0.1', "
        "8080, 80, 'tcp'), "
        "('a100000000000000000000000000000000000000000000000000000000000000', '127.0.0.1', "
        "5353, 53, 'udp');"
        "INSERT INTO vm_networks (vm_id, network) VALUES "
        "('a100000000000000000000000000000000000000000000000000000000000000', 'bridge'), "
        "('a100000000000000000000000000000000000000000000000000000000000000', 'back');"
        "INSERT INTO vms (id, name, status) VALUES "
        "('b100000000000000000000000000000000000000000000000000000000000000', 'gone', "
        "'created');";
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, v1_rows, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(store_open_at_version(path, 1, &s, &err), 0);
    store_kv kv = {(char *)"hypervisor", (char *)"qemu"};
    assert_int_equal(store_settings_set(s, &kv, 1, &err), 0);
    /* Deleting a VM on the old schema must not touch tables it does not have. */
    assert_int_equal(
        store_vm_delete(s, "b100000000000000000000000000000000000000000000000000000000000000",
                        &err),
        0);
    store_close(s);

    assert_int_equal(store_open(path, &s, &err), 0);
    assert_int_equal(store_schema_version(s), store_latest_version());
    store_vm got;
    assert_int_equal(store_vm_find(s, "old-vm", &got, &err), 0);
    assert_string_equal(got.id, "a100000000000000000000000000000000000000000000000000000000000000");
    assert_false(got.manual_stop); /* v3's column, defaulted */
    assert_int_equal(got.n_ports, 2);
    assert_int_equal(strv_length(got.networks), 2);
    store_vm_clear(&got);
    _cleanup_free_ char *value = NULL;
    assert_int_equal(store_setting_get(s, "hypervisor", &value, &err), 0);
    assert_string_equal(value, "qemu");
    store_close(s);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = "
                                   "'ip_allocations'"),
                     1);
    assert_int_equal(raw_int(path,
                             "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                             "('vms_status', 'vm_networks_network', 'images_digest')"),
                     3);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), store_latest_version());
}

static void test_open_at_version_range(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store *s = NULL;
    assert_int_equal(store_open_at_version(f->path, 0, &s, &err), -EINVAL);
    assert_null(s);
    hypr_error_clear(&err);
    assert_int_equal(store_open_at_version(f->path, store_latest_version() + 1, &s, &err), -EINVAL);
}

static void test_newer_refused(void **state)
{
    store_fixture *f = *state;
    _cleanup_free_ char *path = path_join(f->dir, "future.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    _cleanup_free_ char *sql = xasprintf("PRAGMA user_version = %d", store_latest_version() + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store *s = NULL;
    int r = store_open(path, &s, &err);
    assert_true(r < 0);
    assert_null(s);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    _cleanup_free_ char *want =
        xasprintf("database schema version %d is newer than this hyprd supports (%d)",
                  store_latest_version() + 1, store_latest_version());
    assert_non_null(strstr(err.message, want));
    assert_non_null(strstr(err.message, path));
}

static void test_garbage_refused(void **state)
{
    store_fixture *f = *state;
    _cleanup_free_ char *path = path_join(f->dir, "garbage.db");
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)('a' + i % 26);
    assert_int_equal(write_file_atomic(path, junk, sizeof(junk), 0600), 0);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store *s = NULL;
    int r = store_open(path, &s, &err);
    assert_true(r < 0);
    assert_null(s);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "not a hypr database"));
}

static void test_open_missing_dir(void **state)
{
    store_fixture *f = *state;
    _cleanup_free_ char *path = path_join(f->dir, "no/such/dir/hypr.db");
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store *s = NULL;
    assert_true(store_open(path, &s, &err) < 0);
    assert_non_null(strstr(err.message, path));
}

static void test_reopen_keeps_data(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm vm;
    fill_vm(&vm, "", "keeper");
    vm.volumes = vols1;
    vm.n_volumes = 1;
    assert_int_equal(store_vm_insert(f->s, &vm, &err), 0);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    store_vm got;
    assert_int_equal(store_vm_find(f->s, vm.id, &got, &err), 0);
    assert_string_equal(got.name, "keeper");
    assert_int_equal(got.n_volumes, 1);
    assert_true(got.volumes[0].read_only);
    store_vm_clear(&got);
}

/* ---- VMs -------------------------------------------------------------------- */

static void test_vm_crud(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm vm;
    fill_vm(&vm, "ab1", "web");
    vm.ports = ports2;
    vm.n_ports = 2;
    vm.networks = nets2;
    vm.volumes = vols1;
    vm.n_volumes = 1;
    assert_int_equal(store_vm_insert(f->s, &vm, &err), 0);

    store_vm got;
    /* by full ID, name, prefix */
    const char *refs[] = {vm.id, "web", "ab1", "a"};
    for (size_t i = 0; i < ARRAY_SIZE(refs); i++) {
        assert_int_equal(store_vm_find(f->s, refs[i], &got, &err), 0);
        assert_string_equal(got.id, vm.id);
        assert_string_equal(got.name, "web");
        assert_string_equal(got.image, "busybox");
        assert_null(got.image_id);
        assert_string_equal(got.status, "running");
        assert_int_equal(got.config_len, vm.config_len);
        assert_memory_equal(got.config, vm.config, vm.config_len);
        assert_int_equal(got.pid, 1234);
        assert_int_equal(got.created_at, 1700000000);
        assert_int_equal(got.stopped_at, 0);
        assert_int_equal(got.n_ports, 2);
        assert_string_equal(got.ports[0].host_ip, "127.0.0.1");
        assert_int_equal(got.ports[0].host_port, 8080);
        assert_int_equal(got.ports[0].guest_port, 80);
        assert_string_equal(got.ports[1].protocol, "udp");
        assert_null(got.ports[1].host_ip);
        assert_int_equal(strv_length(got.networks), 2);
        assert_string_equal(got.networks[0], "default");
        assert_string_equal(got.networks[1], "backend");
        assert_int_equal(got.n_volumes, 1);
        assert_string_equal(got.volumes[0].target, "/data");
        store_vm_clear(&got);
    }

    /* duplicate name and duplicate ID */
    store_vm dup;
    fill_vm(&dup, "cd", "web");
    assert_int_equal(store_vm_insert(f->s, &dup, &err), -EEXIST);
    assert_int_equal(err.status, HYPR_ALREADY_EXISTS);
    assert_string_equal(err.message, "VM name \"web\" is already in use");
    fill_vm(&dup, "", "web2");
    memcpy(dup.id, vm.id, sizeof(dup.id));
    hypr_error_clear(&err);
    assert_int_equal(store_vm_insert(f->s, &dup, &err), -EEXIST);
    assert_non_null(strstr(err.message, "VM ID"));

    /* a second VM with a shared prefix makes "ab" ambiguous, "ab1" still unique */
    store_vm vm2;
    fill_vm(&vm2, "ab2", "db");
    assert_int_equal(store_vm_insert(f->s, &vm2, &err), 0);
    hypr_error_clear(&err);
    assert_int_equal(store_vm_find(f->s, "ab", &got, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "VM ID prefix \"ab\" is ambiguous (matches 2 VMs)");
    assert_null(got.name);
    assert_int_equal(store_vm_find(f->s, "ab2", &got, &err), 0);
    assert_string_equal(got.name, "db");
    store_vm_clear(&got);

    /* a name wins over an ID prefix */
    store_vm named;
    fill_vm(&named, "ee", "ab1");
    assert_int_equal(store_vm_insert(f->s, &named, &err), 0);
    assert_int_equal(store_vm_find(f->s, "ab1", &got, &err), 0);
    assert_string_equal(got.id, named.id);
    store_vm_clear(&got);

    /* list in creation order */
    store_vm *list = NULL;
    size_t n = 0;
    assert_int_equal(store_vm_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "web");
    assert_int_equal(list[0].n_ports, 2);
    assert_int_equal(list[1].n_ports, 0);
    assert_null(list[1].networks);
    store_vms_free(list, n);

    /* update replaces columns and links */
    store_vm upd = vm;
    upd.name = (char *)"web-renamed";
    upd.status = (char *)"stopped";
    upd.exit_code = 137;
    upd.error = (char *)"killed";
    upd.config = NULL;
    upd.config_len = 0;
    store_port one_port = {NULL, 9090, 90, NULL};
    upd.ports = &one_port;
    upd.n_ports = 1;
    upd.networks = NULL;
    upd.volumes = NULL;
    upd.n_volumes = 0;
    assert_int_equal(store_vm_update(f->s, &upd, &err), 0);
    assert_int_equal(store_vm_find(f->s, "web-renamed", &got, &err), 0);
    assert_string_equal(got.status, "stopped");
    assert_int_equal(got.exit_code, 137);
    assert_string_equal(got.error, "killed");
    assert_null(got.config);
    assert_int_equal(got.config_len, 0);
    assert_int_equal(got.n_ports, 1);
    assert_string_equal(got.ports[0].protocol, "tcp");
    assert_null(got.networks);
    assert_int_equal(got.n_volumes, 0);
    store_vm_clear(&got);
    hypr_error_clear(&err);
    assert_int_equal(store_vm_find(f->s, "web", &got, &err), -ENOENT);

    /* update into another VM's name */
    upd.name = (char *)"db";
    hypr_error_clear(&err);
    assert_int_equal(store_vm_update(f->s, &upd, &err), -EEXIST);
    assert_string_equal(err.message, "VM name \"db\" is already in use");

    /* update of a missing VM */
    store_vm ghost;
    fill_vm(&ghost, "", "ghost");
    hypr_error_clear(&err);
    assert_int_equal(store_vm_update(f->s, &ghost, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);

    /* delete */
    assert_int_equal(store_vm_delete(f->s, vm.id, &err), 0);
    hypr_error_clear(&err);
    assert_int_equal(store_vm_find(f->s, vm.id, &got, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    hypr_error_clear(&err);
    assert_int_equal(store_vm_delete(f->s, vm.id, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
}

static void test_vm_not_found_and_invalid(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm got;
    assert_int_equal(store_vm_find(f->s, "web", &got, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    assert_string_equal(err.message, "no such VM: web");
    hypr_error_clear(&err);
    assert_int_equal(store_vm_find(f->s, "", &got, &err), -EINVAL);
    /* NULL error records are allowed */
    assert_int_equal(store_vm_find(f->s, "web", &got, NULL), -ENOENT);

    store_vm vm;
    fill_vm(&vm, "", "x");
    strcpy(vm.id, "not-hex");
    hypr_error_clear(&err);
    assert_int_equal(store_vm_insert(f->s, &vm, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    fill_vm(&vm, "", "");
    assert_int_equal(store_vm_insert(f->s, &vm, NULL), -EINVAL);
    fill_vm(&vm, "", "q");
    vm.name = NULL;
    assert_int_equal(store_vm_insert(f->s, &vm, NULL), -EINVAL);

    /* a quote in a name is data, not SQL */
    fill_vm(&vm, "", "x'); DROP TABLE vms; --");
    assert_int_equal(store_vm_insert(f->s, &vm, &err), 0);
    assert_int_equal(store_vm_find(f->s, "x'); DROP TABLE vms; --", &got, &err), 0);
    store_vm_clear(&got);
}

static void test_vm_links_cascade(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm vm;
    fill_vm(&vm, "", "linked");
    vm.ports = ports2;
    vm.n_ports = 2;
    vm.networks = nets2;
    vm.volumes = vols1;
    vm.n_volumes = 1;
    assert_int_equal(store_vm_insert(f->s, &vm, &err), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vm_ports"), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vm_networks"), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vm_volumes"), 1);
    assert_int_equal(store_vm_delete(f->s, vm.id, &err), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vm_ports"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vm_networks"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vm_volumes"), 0);
}

static void test_vm_insert_atomic(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    /* A link that violates NOT NULL fails after the VM row was written: the whole
     * insert must be undone. */
    store_vm vm;
    fill_vm(&vm, "", "half");
    store_vm_volume bad = {NULL, (char *)"/x", false};
    vm.volumes = &bad;
    vm.n_volumes = 1;
    vm.ports = ports2;
    vm.n_ports = 2;
    assert_true(store_vm_insert(f->s, &vm, &err) < 0);
    assert_non_null(strstr(err.message, "half"));
    store_vm got;
    assert_int_equal(store_vm_find(f->s, "half", &got, NULL), -ENOENT);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vm_ports"), 0);
}

/* ---- transactions ----------------------------------------------------------- */

typedef struct tx_ctx {
    store_vm *vm;
    int fail_with;
    hypr_error *err;
} tx_ctx;

static int tx_insert_then(store *s, void *ud)
{
    tx_ctx *c = ud;
    int r = store_vm_insert(s, c->vm, c->err);
    if (r < 0)
        return r;
    /* A failing nested write is rolled back alone (savepoint) when fn carries on. */
    r = store_vm_insert(s, c->vm, NULL);
    assert_int_equal(r, -EEXIST);
    return c->fail_with;
}

static void test_transaction_rollback(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm vm;
    fill_vm(&vm, "", "tx");
    tx_ctx c = {&vm, -EIO, NULL};
    assert_int_equal(store_transaction(f->s, tx_insert_then, &c, &err), -EIO);
    assert_non_null(err.message);
    store_vm got;
    assert_int_equal(store_vm_find(f->s, "tx", &got, NULL), -ENOENT);

    c.fail_with = 0;
    hypr_error_clear(&err);
    assert_int_equal(store_transaction(f->s, tx_insert_then, &c, &err), 0);
    assert_int_equal(store_vm_find(f->s, "tx", &got, &err), 0);
    store_vm_clear(&got);

    /* a settings batch with a bad entry leaves nothing behind */
    store_kv kv[] = {{(char *)"a", (char *)"1"}, {(char *)"", (char *)"2"}};
    assert_int_equal(store_settings_set(f->s, kv, 2, &err), -EINVAL);
    char *value = NULL;
    assert_int_equal(store_setting_get(f->s, "a", &value, NULL), -ENOENT);
    assert_null(value);
}

/* ---- settings --------------------------------------------------------------- */

static void test_settings(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_kv kv[] = {
        {(char *)"hypervisor", (char *)"qemu"},
        {(char *)"default_memory", (char *)"512m"},
        {(char *)"kernel", (char *)""},
    };
    assert_int_equal(store_settings_set(f->s, kv, ARRAY_SIZE(kv), &err), 0);
    assert_int_equal(store_settings_set(f->s, NULL, 0, &err), 0);
    _cleanup_free_ char *v = NULL;
    assert_int_equal(store_setting_get(f->s, "hypervisor", &v, &err), 0);
    assert_string_equal(v, "qemu");
    free(TAKE_PTR(v));
    assert_int_equal(store_setting_get(f->s, "kernel", &v, &err), 0);
    assert_string_equal(v, "");
    free(TAKE_PTR(v));
    assert_int_equal(store_setting_get(f->s, "nope", &v, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);

    store_kv change[] = {{(char *)"hypervisor", (char *)"cloud-hypervisor"},
                         {(char *)"kernel", NULL}};
    assert_int_equal(store_settings_set(f->s, change, 2, &err), 0);
    store_kv *list = NULL;
    size_t n = 0;
    assert_int_equal(store_settings_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].key, "default_memory");
    assert_string_equal(list[1].key, "hypervisor");
    assert_string_equal(list[1].value, "cloud-hypervisor");
    store_kv_free(list, n);
}

/* ---- images ----------------------------------------------------------------- */

static void fill_image(store_image *img, const char *id_prefix, const char *name, const char *tag)
{
    memset(img, 0, sizeof(*img));
    make_id(img->id, id_prefix);
    img->name = (char *)name;
    img->tag = (char *)tag;
    img->digest = (char *)"sha256:0123";
    img->path = (char *)"/var/lib/hypr/images/x";
    img->manifest = (char *)"{}";
    img->size_bytes = 5ULL << 32;
    img->created_at = 42;
}

static void test_images(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_image img, img2, img3;
    fill_image(&img, "f0", "docker.io/library/busybox", "latest");
    fill_image(&img2, "f1", "docker.io/library/busybox", "1.36");
    img2.digest = (char *)"sha256:4567";
    fill_image(&img3, "c", "localhost:5000/app", "v1");
    assert_int_equal(store_image_insert(f->s, &img, &err), 0);
    assert_int_equal(store_image_insert(f->s, &img2, &err), 0);
    assert_int_equal(store_image_insert(f->s, &img3, &err), 0);

    _cleanup_free_ char *sha = xasprintf("sha256:%s", img.id);
    _cleanup_free_ char *sha_prefix = xasprintf("sha256:%.6s", img.id);
    const char *to_img[] = {img.id,
                            sha,
                            "docker.io/library/busybox:latest",
                            "docker.io/library/busybox",
                            "docker.io/library/busybox@sha256:0123",
                            "f0",
                            sha_prefix};
    store_image got;
    for (size_t i = 0; i < ARRAY_SIZE(to_img); i++) {
        assert_int_equal(store_image_find(f->s, to_img[i], &got, &err), 0);
        assert_string_equal(got.id, img.id);
        assert_string_equal(got.tag, "latest");
        assert_string_equal(got.manifest, "{}");
        assert_true(got.size_bytes == 5ULL << 32);
        assert_int_equal(got.created_at, 42);
        store_image_clear(&got);
    }
    assert_int_equal(store_image_find(f->s, "docker.io/library/busybox:1.36", &got, &err), 0);
    assert_string_equal(got.id, img2.id);
    store_image_clear(&got);
    assert_int_equal(store_image_find(f->s, "localhost:5000/app:v1", &got, &err), 0);
    assert_string_equal(got.id, img3.id);
    store_image_clear(&got);

    hypr_error_clear(&err);
    assert_int_equal(store_image_find(f->s, "localhost:5000/app", &got, &err), -ENOENT);
    assert_string_equal(err.message, "no such image: localhost:5000/app");
    hypr_error_clear(&err);
    assert_int_equal(store_image_find(f->s, "f", &got, &err), -EINVAL);
    assert_string_equal(err.message, "image ID prefix \"f\" is ambiguous (matches 2 images)");

    /* same name:tag again */
    store_image dup;
    fill_image(&dup, "", "docker.io/library/busybox", "latest");
    hypr_error_clear(&err);
    assert_int_equal(store_image_insert(f->s, &dup, &err), -EEXIST);
    assert_int_equal(err.status, HYPR_ALREADY_EXISTS);
    assert_non_null(strstr(err.message, "docker.io/library/busybox:latest"));

    store_image *list = NULL;
    size_t n = 0;
    assert_int_equal(store_image_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    store_images_free(list, n);

    assert_int_equal(store_image_delete(f->s, sha, &err), 0);
    hypr_error_clear(&err);
    assert_int_equal(store_image_delete(f->s, img.id, &err), -ENOENT);
    assert_int_equal(store_image_find(f->s, "docker.io/library/busybox", &got, NULL), -ENOENT);
}

/* ---- networks, volumes, stacks ---------------------------------------------- */

static void test_networks(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_network net = {.name = (char *)"default",
                         .driver = (char *)"bridge",
                         .subnet = (char *)"10.88.0.0/16",
                         .gateway = (char *)"10.88.0.1",
                         .bridge = (char *)"vbr0",
                         .internal = true,
                         .created_at = 7};
    make_id(net.id, "0a");
    store_network other = {.name = (char *)"backend"};
    make_id(other.id, "0b");
    assert_int_equal(store_network_insert(f->s, &net, &err), 0);
    assert_int_equal(store_network_insert(f->s, &other, &err), 0);
    assert_int_equal(store_network_insert(f->s, &net, &err), -EEXIST);
    make_id(other.id, "0c");
    hypr_error_clear(&err);
    assert_int_equal(store_network_insert(f->s, &other, &err), -EEXIST);
    assert_string_equal(err.message, "network name \"backend\" is already in use");

    store_network got;
    const char *refs[] = {net.id, "default", "0a"};
    for (size_t i = 0; i < ARRAY_SIZE(refs); i++) {
        assert_int_equal(store_network_find(f->s, refs[i], &got, &err), 0);
        assert_string_equal(got.name, "default");
        assert_string_equal(got.subnet, "10.88.0.0/16");
        assert_true(got.internal);
        assert_null(got.labels);
        store_network_clear(&got);
    }
    hypr_error_clear(&err);
    assert_int_equal(store_network_find(f->s, "0", &got, &err), -EINVAL);
    assert_string_equal(err.message, "network ID prefix \"0\" is ambiguous (matches 2 networks)");

    store_network *list = NULL;
    size_t n = 0;
    assert_int_equal(store_network_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "backend");
    store_networks_free(list, n);

    assert_int_equal(store_network_delete(f->s, net.id, &err), 0);
    hypr_error_clear(&err);
    assert_int_equal(store_network_find(f->s, "default", &got, &err), -ENOENT);
    assert_string_equal(err.message, "no such network: default");
}

static void test_volumes(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_volume v = {.name = (char *)"data",
                      .driver = (char *)"local",
                      .mountpoint = (char *)"/var/lib/hypr/volumes/data",
                      .labels = (char *)"{\"a\":\"b\"}",
                      .stack = (char *)"shop",
                      .created_at = 9};
    assert_int_equal(store_volume_insert(f->s, &v, &err), 0);
    assert_int_equal(store_volume_insert(f->s, &v, &err), -EEXIST);
    assert_string_equal(err.message, "volume name \"data\" is already in use");
    store_volume got;
    assert_int_equal(store_volume_find(f->s, "data", &got, &err), 0);
    assert_string_equal(got.labels, "{\"a\":\"b\"}");
    assert_string_equal(got.stack, "shop");
    assert_int_equal(got.created_at, 9);
    store_volume_clear(&got);
    hypr_error_clear(&err);
    assert_int_equal(store_volume_find(f->s, "dat", &got, &err), -ENOENT);
    assert_string_equal(err.message, "no such volume: dat");

    store_volume *list = NULL;
    size_t n = 0;
    assert_int_equal(store_volume_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    store_volumes_free(list, n);
    assert_int_equal(store_volume_delete(f->s, "data", &err), 0);
    assert_int_equal(store_volume_delete(f->s, "data", &err), -ENOENT);
}

static void test_stacks(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_stack st = {.name = (char *)"shop", .compose = (char *)"services: {}\n"};
    make_id(st.id, "5");
    assert_int_equal(store_stack_insert(f->s, &st, &err), 0);
    store_stack dup = {.name = (char *)"shop"};
    make_id(dup.id, "6");
    assert_int_equal(store_stack_insert(f->s, &dup, &err), -EEXIST);
    assert_string_equal(err.message, "stack name \"shop\" is already in use");
    dup.name = (char *)"other";
    memcpy(dup.id, st.id, sizeof(dup.id));
    hypr_error_clear(&err);
    assert_int_equal(store_stack_insert(f->s, &dup, &err), -EEXIST);
    assert_non_null(strstr(err.message, "stack ID"));

    store_stack got;
    assert_int_equal(store_stack_find(f->s, "shop", &got, &err), 0);
    assert_string_equal(got.status, "created");
    assert_string_equal(got.compose, "services: {}\n");
    store_stack_clear(&got);
    assert_int_equal(store_stack_find(f->s, "5", &got, &err), 0);
    assert_string_equal(got.id, st.id);
    store_stack_clear(&got);

    store_stack *list = NULL;
    size_t n = 0;
    assert_int_equal(store_stack_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    store_stacks_free(list, n);
    assert_int_equal(store_stack_delete(f->s, "shop", &err), 0);
    hypr_error_clear(&err);
    assert_int_equal(store_stack_find(f->s, "shop", &got, &err), -ENOENT);
    assert_string_equal(err.message, "no such stack: shop");
}

/* ---- threads ---------------------------------------------------------------- */

typedef struct thread_arg {
    store *s;
    int n;
    int failures;
} thread_arg;

static void *insert_many(void *p)
{
    thread_arg *a = p;
    for (int i = 0; i < 25; i++) {
        store_vm vm;
        _cleanup_free_ char *name = xasprintf("t%d-%d", a->n, i);
        fill_vm(&vm, "", name);
        vm.ports = ports2;
        vm.n_ports = 2;
        if (store_vm_insert(a->s, &vm, NULL) < 0)
            a->failures++;
        store_vm got;
        if (store_vm_find(a->s, name, &got, NULL) < 0 || got.n_ports != 2)
            a->failures++;
        store_vm_clear(&got);
    }
    return NULL;
}

/* The daemon may call the store from its thread pool; one handle must be safe. */
static void test_concurrent_inserts_from_four_threads(void **state)
{
    store_fixture *f = *state;
    pthread_t t[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){f->s, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, insert_many, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    store_counts c;
    assert_int_equal(store_count(f->s, &c, NULL), 0);
    assert_int_equal(c.vms, 100);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM vm_ports"), 200);
}

/* ---- counts and frees ------------------------------------------------------- */

static void test_counts_per_kind_and_image_bytes(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_counts c;
    assert_int_equal(store_count(f->s, &c, &err), 0);
    assert_int_equal(c.vms + c.images + c.networks + c.volumes + c.stacks, 0);
    assert_true(c.images_size_bytes == 0);

    const char *statuses[] = {"running", "booting", "restarting", "stopped", "created"};
    for (size_t i = 0; i < ARRAY_SIZE(statuses); i++) {
        store_vm vm;
        _cleanup_free_ char *name = xasprintf("vm%zu", i);
        fill_vm(&vm, "", name);
        vm.status = (char *)statuses[i];
        assert_int_equal(store_vm_insert(f->s, &vm, &err), 0);
    }
    store_image a, b;
    fill_image(&a, "", "a", "latest");
    a.size_bytes = 100;
    fill_image(&b, "", "b", "latest");
    b.size_bytes = 23;
    assert_int_equal(store_image_insert(f->s, &a, &err), 0);
    assert_int_equal(store_image_insert(f->s, &b, &err), 0);
    store_network net = {.name = (char *)"n"};
    make_id(net.id, "");
    assert_int_equal(store_network_insert(f->s, &net, &err), 0);
    store_volume vol = {.name = (char *)"v"};
    assert_int_equal(store_volume_insert(f->s, &vol, &err), 0);

    assert_int_equal(store_count(f->s, &c, &err), 0);
    assert_int_equal(c.vms, 5);
    assert_int_equal(c.vms_running, 3);
    assert_int_equal(c.images, 2);
    assert_true(c.images_size_bytes == 123);
    assert_int_equal(c.networks, 1);
    assert_int_equal(c.volumes, 1);
    assert_int_equal(c.stacks, 0);
}

static void test_free_null(void **state)
{
    (void)state;
    store_close(NULL);
    store_kv_free(NULL, 0);
    store_vm_clear(NULL);
    store_vms_free(NULL, 0);
    store_image_clear(NULL);
    store_images_free(NULL, 0);
    store_network_clear(NULL);
    store_networks_free(NULL, 0);
    store_volume_clear(NULL);
    store_volumes_free(NULL, 0);
    store_stack_clear(NULL);
    store_stacks_free(NULL, 0);
    store_vm empty = {0};
    store_vm_clear(&empty);
}

int main(void)
{
    hypr_log_init("error");
#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_creates),
        T(test_migrate_from_v1),
        T(test_open_at_version_range),
        T(test_newer_refused),
        T(test_garbage_refused),
        T(test_open_missing_dir),
        T(test_reopen_keeps_data),
        T(test_vm_crud),
        T(test_vm_not_found_and_invalid),
        T(test_vm_links_cascade),
        T(test_vm_insert_atomic),
        T(test_transaction_rollback),
        T(test_settings),
        T(test_images),
        T(test_networks),
        T(test_volumes),
        T(test_stacks),
        T(test_concurrent_inserts_from_four_threads),
        T(test_counts_per_kind_and_image_bytes),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
