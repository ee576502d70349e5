/* Unit tests of hyprd's core without a hypervisor: the restart policy, settings
 * validation, event filters, and the VM lifecycle's listener interface, driven
 * through real starts that fail in their preparation (a kernel that does not
 * exist), so the notices of a create, a start, an exit and a removal are seen by
 * a fake listener. */
#include "test_helpers.h"

#include "daemon.h"
#include "vm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

/* ---- restart policy ---------------------------------------------------------------- */

static void test_restart_policy_decisions(void **state)
{
    (void)state;
    vm_restart_input in = {
        .policy = "always", .workload_started = true, .failed = true, .restarts = 3};
    assert_true(vm_should_restart(&in));
    in.policy = "unless-stopped";
    assert_true(vm_should_restart(&in));
    in.policy = "no";
    assert_false(vm_should_restart(&in));
    in.policy = NULL;
    assert_false(vm_should_restart(&in));

    /* on-failure:N stops after N restarts; 0 is unlimited */
    in.policy = "on-failure";
    in.max_retries = 3;
    assert_false(vm_should_restart(&in));
    in.restarts = 2;
    assert_true(vm_should_restart(&in));
    in.max_retries = 0;
    in.restarts = 1000;
    assert_true(vm_should_restart(&in));

    /* never after a user's stop, at shutdown, for a clean end, or before the workload ran */
    vm_restart_input base = {.policy = "always", .workload_started = true, .failed = true};
    in = base;
    in.stop_requested = true;
    assert_false(vm_should_restart(&in));
    in = base;
    in.shutting_down = true;
    assert_false(vm_should_restart(&in));
    in = base;
    in.failed = false;
    assert_false(vm_should_restart(&in));
    in = base;
    in.workload_started = false;
    assert_false(vm_should_restart(&in));

    assert_true(vm_policy_restarts_with_daemon("always", 0, 0, false, 0));
    assert_true(vm_policy_restarts_with_daemon("always", 0, 0, true, 0));
    assert_true(vm_policy_restarts_with_daemon("unless-stopped", 0, 0, false, 0));
    assert_false(vm_policy_restarts_with_daemon("unless-stopped", 0, 0, true, 0));
    /* on-failure: a failure with retries left, not a clean exit or a docker stop. */
    assert_true(vm_policy_restarts_with_daemon("on-failure", 0, 7, false, 137));
    assert_true(vm_policy_restarts_with_daemon("on-failure", 3, 2, false, 1));
    assert_false(vm_policy_restarts_with_daemon("on-failure", 3, 3, false, 1));
    assert_false(vm_policy_restarts_with_daemon("on-failure", 0, 0, false, 0));
    assert_false(vm_policy_restarts_with_daemon("on-failure", 0, 0, true, 137));
    assert_false(vm_policy_restarts_with_daemon("no", 0, 0, false, 1));
    assert_false(vm_policy_restarts_with_daemon(NULL, 0, 0, false, 1));
}

static void test_restart_backoff_doubles_up_to_30s(void **state)
{
    (void)state;
    assert_int_equal(vm_restart_delay_ms(0), 500);
    assert_int_equal(vm_restart_delay_ms(1), 500);
    assert_int_equal(vm_restart_delay_ms(2), 1000);
    assert_int_equal(vm_restart_delay_ms(3), 2000);
    assert_int_equal(vm_restart_delay_ms(6), 16000);
    assert_int_equal(vm_restart_delay_ms(7), 30000);
    assert_int_equal(vm_restart_delay_ms(1000000), 30000);
}

/* ---- settings ------------------------------------------------------------------------ */

static int validate(const char *key, const char *value, hypr_error *err)
{
    const setting_def *def = settings_find(key);
    assert_non_null(def);
    hypr_error_clear(err);
    return def->validate(def, value, err);
}

static void test_settings_validation_names_setting_and_rule(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(validate("dns_port", "53", &err), 0);
    assert_int_equal(validate("dns_port", "65535", &err), 0);
    assert_int_equal(validate("dns_port", "0", &err), -EINVAL);
    assert_non_null(strstr(err.message, "dns_port"));
    assert_non_null(strstr(err.message, "from 1 to 65535"));
    assert_int_equal(validate("dns_port", "12x", &err), -EINVAL);
    assert_int_equal(validate("stop_timeout", "3601", &err), -EINVAL);

    assert_int_equal(validate("hypervisor", "qemu", &err), 0);
    assert_int_equal(validate("hypervisor", "vmware", &err), -EINVAL);
    assert_non_null(strstr(err.message, "auto, qemu, cloud-hypervisor, firecracker"));
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);

    assert_int_equal(validate("default_host_ip", "0.0.0.0", &err), 0);
    assert_int_equal(validate("default_host_ip", "1.2.3", &err), -EINVAL);
    assert_int_equal(validate("grpc_tcp_address", "127.0.0.1:41000", &err), 0);
    assert_int_equal(validate("grpc_tcp_address", "localhost:41000", &err), -EINVAL);
    assert_int_equal(validate("grpc_tcp_address", "127.0.0.1:0", &err), -EINVAL);
    assert_int_equal(validate("kernel", "", &err), 0);
    assert_int_equal(validate("kernel", "vmlinux", &err), -EINVAL);
    assert_int_equal(validate("insecure_registries", "a.example:5000,10.0.0.1", &err), 0);
    assert_int_equal(validate("insecure_registries", "a b", &err), -EINVAL);
    assert_null(settings_find("no_such_setting"));

    /* sorted by key: GetSettings returns them in this order */
    size_t n;
    const setting_def *defs = settings_all(&n);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(defs[i - 1].key, defs[i].key) < 0);
}

static void test_settings_update_is_all_or_nothing(void **state)
{
    store_fixture *f = *state;
    daemon_ctx d = {.db = f->s};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_kv batch[] = {{"dns_port", "5353"}, {"hypervisor", "vmware"}};
    assert_int_equal(settings_update(&d, batch, 2, &err), -EINVAL);
    _cleanup_free_ char *port = settings_get(&d, "dns_port");
    assert_string_equal(port, "41003"); /* the valid half was not stored either */

    store_kv unknown[] = {{"nope", "1"}};
    assert_int_equal(settings_update(&d, unknown, 1, &err), -EINVAL);
    assert_non_null(strstr(err.message, "unknown setting"));

    store_kv good[] = {{"dns_port", "5353"}, {"stop_timeout", "3"}};
    assert_int_equal(settings_update(&d, good, 2, &err), 0);
    assert_int_equal(settings_get_int(&d, "dns_port"), 5353);
    assert_int_equal(settings_get_int(&d, "stop_timeout"), 3);
}

/* ---- event filters ------------------------------------------------------------------- */

static void test_event_filters_are_type_prefixes(void **state)
{
    (void)state;
    assert_true(event_filter_matches(NULL, "vm.started"));
    char *none[] = {NULL};
    assert_true(event_filter_matches(none, "image.pulled"));
    char *vm[] = {"vm.", NULL};
    assert_true(event_filter_matches(vm, "vm.started"));
    assert_false(event_filter_matches(vm, "image.pulled"));
    char *two[] = {"image.pulled", "network.", NULL};
    assert_true(event_filter_matches(two, "image.pulled"));
    assert_true(event_filter_matches(two, "network.deleted"));
    assert_false(event_filter_matches(two, "image.deleted"));
    assert_false(event_filter_matches(two, "vm.created"));
}

/* ---- the listener interface ------------------------------------------------------------ */

#define MAX_SEEN 16

typedef struct fake_listener {
    vm_listener l; /* first */
    size_t n;
    vm_notice_kind kinds[MAX_SEEN];
    vm_phase phases[MAX_SEEN];
    char ids[MAX_SEEN][HYPR_ID_LEN + 1];
    char *errors[MAX_SEEN];
    char *names[MAX_SEEN];
} fake_listener;

static void fake_notify(vm_listener *l, daemon_ctx *d, const vm_notice *n)
{
    (void)d;
    fake_listener *f = (fake_listener *)l;
    assert_true(f->n < MAX_SEEN);
    f->kinds[f->n] = n->kind;
    f->phases[f->n] = n->phase;
    snprintf(f->ids[f->n], sizeof(f->ids[0]), "%s", n->id);
    f->errors[f->n] = n->err && n->err->message ? xstrdup(n->err->message) : NULL;
    f->names[f->n] = xstrdup(n->name);
    f->n++;
}

typedef struct lifecycle_env {
    store_fixture *f;
    daemon_ctx d;
    uv_loop_t loop;
    fake_listener fake;
} lifecycle_env;

static const char image_id[] = "1111111111111111111111111111111111111111111111111111111111111111";

static int lifecycle_setup(void **state)
{
    int r = store_fixture_setup(state);
    if (r != 0)
        return r;
    lifecycle_env *e = xcalloc(1, sizeof(*e));
    e->f = *state;
    uv_loop_init(&e->loop);
    e->d.loop = &e->loop;
    e->d.db = e->f->s;
    e->d.data_dir = path_join(e->f->dir, "data");
    e->d.run_dir = path_join(e->f->dir, "run");
    mkdir_p(e->d.data_dir, 0700);
    mkdir_p(e->d.run_dir, 0700);
    /* A kernel that does not exist: every start fails while it is prepared. */
    store_kv kv[] = {{"kernel", "/nonexistent/hypr-test/vmlinux"}};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(settings_update(&e->d, kv, 1, &err), 0);
    store_image img = {.name = "docker.io/library/testimg", .tag = "latest", .path = e->f->dir};
    memcpy(img.id, image_id, sizeof(img.id));
    assert_int_equal(store_image_insert(e->d.db, &img, &err), 0);
    vm_manager_init(&e->d);
    e->fake.l.notify = fake_notify;
    vm_listener_add(&e->d, &e->fake.l);
    *state = e;
    return 0;
}

static int lifecycle_teardown(void **state)
{
    lifecycle_env *e = *state;
    vm_listener_remove(&e->d, &e->fake.l);
    assert_null(e->d.vm_listeners);
    vm_manager_free(&e->d);
    assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    for (size_t i = 0; i < e->fake.n; i++) {
        free(e->fake.errors[i]);
        free(e->fake.names[i]);
    }
    free(e->d.data_dir);
    free(e->d.run_dir);
    *state = e->f;
    free(e);
    return store_fixture_teardown(state);
}

static void create_vm(lifecycle_env *e, const char *name, store_vm *out)
{
    Hypr__V1__VMConfig cfg = HYPR__V1__VMCONFIG__INIT;
    char *cmd[] = {"true"};
    cfg.image = "testimg";
    cfg.name = (char *)name;
    cfg.cmd = cmd;
    cfg.n_cmd = 1;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(vm_create(&e->d, &cfg, out, &err), 0);
}

/* Runs the loop until the listener has seen n notices (the loop stops by itself
 * when nothing is left to do, so this cannot hang). */
static void run_until_seen(lifecycle_env *e, size_t n)
{
    while (e->fake.n < n && uv_run(&e->loop, UV_RUN_ONCE) != 0)
        ;
    assert_int_equal(e->fake.n, n);
}

static void assert_seen(const fake_listener *f, size_t i, vm_notice_kind kind, vm_phase phase,
                        const char *id)
{
    assert_int_equal(f->kinds[i], kind);
    if (kind == VM_NOTICE_PHASE || kind == VM_NOTICE_EXIT)
        assert_int_equal(f->phases[i], phase);
    assert_string_equal(f->ids[i], id);
}

static void test_listener_sees_create_start_failed_exit_and_delete(void **state)
{
    lifecycle_env *e = *state;
    _cleanup_store_vm_ store_vm vm = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    create_vm(e, "web", &vm);
    assert_int_equal(e->fake.n, 1);
    assert_seen(&e->fake, 0, VM_NOTICE_PHASE, VM_PHASE_CREATED, vm.id);
    assert_string_equal(e->fake.names[0], "web");

    assert_int_equal(vm_start(&e->d, "web", false, &err), 0);
    /* BOOTING before vm_start returns: a RunVM call hears it at once */
    assert_int_equal(e->fake.n, 2);
    assert_seen(&e->fake, 1, VM_NOTICE_PHASE, VM_PHASE_BOOTING, vm.id);
    assert_string_equal(vm_running_status(&e->d, vm.id), "booting");
    /* a second start while it boots is refused */
    assert_int_equal(vm_start(&e->d, vm.id, false, &err), -EBUSY);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_int_equal(e->fake.n, 2);

    run_until_seen(e, 3);
    assert_seen(&e->fake, 2, VM_NOTICE_EXIT, VM_PHASE_FAILED, vm.id);
    assert_non_null(e->fake.errors[2]);
    assert_non_null(strstr(e->fake.errors[2], "/nonexistent/hypr-test/vmlinux"));
    assert_null(vm_running_status(&e->d, vm.id));

    /* the final state and its reason are stored */
    _cleanup_store_vm_ store_vm rec = {0};
    assert_int_equal(store_vm_find(e->d.db, vm.id, &rec, &err), 0);
    assert_string_equal(rec.status, "failed");
    assert_non_null(rec.error);
    assert_string_equal(rec.error, e->fake.errors[2]);

    /* a stop of a VM that is not running has nothing to wait for */
    assert_int_equal(vm_stop(&e->d, vm.id, -1, 0, &err), 0);
    assert_int_equal(e->fake.n, 3);

    assert_int_equal(vm_delete(&e->d, "web", false, false, &err), 0);
    assert_int_equal(e->fake.n, 4);
    assert_seen(&e->fake, 3, VM_NOTICE_REMOVED, 0, vm.id);
    assert_null(e->fake.errors[3]);
    store_vm_clear(&rec);
    assert_int_equal(store_vm_find(e->d.db, vm.id, &rec, &err), -ENOENT);
}

static void test_forced_delete_of_booting_vm_reports_exit_then_removal(void **state)
{
    lifecycle_env *e = *state;
    _cleanup_store_vm_ store_vm vm = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    create_vm(e, "db", &vm);
    assert_int_equal(vm_start(&e->d, vm.id, false, &err), 0);
    assert_int_equal(e->fake.n, 2);

    /* without force a booting VM stays */
    assert_int_equal(vm_delete(&e->d, vm.id, false, false, &err), -EBUSY);
    assert_non_null(strstr(err.message, "is booting"));
    /* with force it goes once its run has ended: 1 = the removal comes later */
    assert_int_equal(vm_delete(&e->d, vm.id, true, false, &err), 1);
    run_until_seen(e, 4);
    assert_seen(&e->fake, 2, VM_NOTICE_EXIT, VM_PHASE_FAILED, vm.id);
    assert_seen(&e->fake, 3, VM_NOTICE_REMOVED, 0, vm.id);
    _cleanup_store_vm_ store_vm rec = {0};
    assert_int_equal(store_vm_find(e->d.db, vm.id, &rec, &err), -ENOENT);
}

static void test_rename_is_reported_and_taken_names_refused(void **state)
{
    lifecycle_env *e = *state;
    _cleanup_store_vm_ store_vm a = {0}, b = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    create_vm(e, "alpha", &a);
    create_vm(e, "beta", &b);
    _cleanup_store_vm_ store_vm out = {0};
    assert_int_equal(vm_rename(&e->d, "alpha", "beta", &out, &err), -EEXIST);
    assert_int_equal(err.status, HYPR_ALREADY_EXISTS);
    store_vm_clear(&out);
    assert_int_equal(vm_rename(&e->d, "alpha", "bad name", &out, &err), -EINVAL);
    store_vm_clear(&out);
    assert_int_equal(e->fake.n, 2);
    assert_int_equal(vm_rename(&e->d, "alpha", "gamma", &out, &err), 0);
    assert_int_equal(e->fake.n, 3);
    assert_seen(&e->fake, 2, VM_NOTICE_RENAMED, 0, a.id);
    assert_string_equal(e->fake.names[2], "gamma");
    /* the stored config carries the new name too */
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    assert_int_equal(vm_config_decode(&out, &cfg, &err), 0);
    assert_string_equal(cfg->name, "gamma");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_policy_decisions),
        cmocka_unit_test(test_restart_backoff_doubles_up_to_30s),
        cmocka_unit_test(test_settings_validation_names_setting_and_rule),
        cmocka_unit_test_setup_teardown(test_settings_update_is_all_or_nothing, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test(test_event_filters_are_type_prefixes),
        cmocka_unit_test_setup_teardown(test_listener_sees_create_start_failed_exit_and_delete,
                                        lifecycle_setup, lifecycle_teardown),
        cmocka_unit_test_setup_teardown(test_forced_delete_of_booting_vm_reports_exit_then_removal,
                                        lifecycle_setup, lifecycle_teardown),
        cmocka_unit_test_setup_teardown(test_rename_is_reported_and_taken_names_refused,
                                        lifecycle_setup, lifecycle_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
