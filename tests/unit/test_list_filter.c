/* The filters of ListVms / ListImages: Docker's keys and wording, OR within a
 * key, AND across keys (and across label= filters). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "list_filter.h"

static int parse(list_filter_kind kind, const char *const *specs, size_t n, list_filters *f,
                 hypr_error *err)
{
    return list_filters_parse(kind, (char *const *)specs, n, f, err);
}

/* A VM with the fields the tests vary. */
static list_filter_vm vm(const char *id, const char *name, const char *status, int exit_code)
{
    return (list_filter_vm){.id = id, .name = name, .status = status, .exit_code = exit_code};
}

static void test_bad_filters_use_dockers_words(void **state)
{
    (void)state;
    static const struct {
        list_filter_kind kind;
        const char *spec, *message;
    } bad[] = {
        {LIST_FILTER_VMS, "foo=bar", "invalid filter 'foo'"},
        {LIST_FILTER_VMS, "status", "bad format of filter (expected name=value)"},
        {LIST_FILTER_VMS, "=x", "bad format of filter (expected name=value)"},
        {LIST_FILTER_VMS, "status=foo", "invalid filter 'status=foo'"},
        {LIST_FILTER_VMS, "exited=abc", "invalid filter 'exited=abc'"},
        {LIST_FILTER_VMS, "exited=", "invalid filter 'exited='"},
        {LIST_FILTER_VMS, "publish=80/sctp", "invalid filter 'publish=80/sctp'"},
        {LIST_FILTER_VMS, "publish=90-80", "invalid filter 'publish=90-80'"},
        {LIST_FILTER_VMS, "expose=70000", "invalid filter 'expose=70000'"},
        {LIST_FILTER_VMS, "label==v", "invalid filter 'label==v'"},
        {LIST_FILTER_VMS, "health=healthy",
         "invalid filter 'health=healthy': hypr has no health checks yet"},
        {LIST_FILTER_VMS, "dangling=true", "invalid filter 'dangling'"},
        {LIST_FILTER_IMAGES, "dangling=maybe", "invalid filter 'dangling=maybe'"},
        {LIST_FILTER_IMAGES, "status=running", "invalid filter 'status'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        const char *specs[] = {"label=ok", bad[i].spec};
        list_filters f;
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_int_equal(parse(bad[i].kind, specs, 2, &f, &err), -EINVAL);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        assert_string_equal(err.message, bad[i].message);
        assert_null(f.values[LF_LABEL]); /* nothing half-parsed is left */
    }
}

static void test_same_key_is_or_different_keys_and(void **state)
{
    (void)state;
    const char *specs[] = {"status=running", "status=exited", "name=fox"};
    list_filters f;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(parse(LIST_FILTER_VMS, specs, 3, &f, &err), 0);
    list_filter_vm a = vm("aa", "eager-fox", "running", 0);
    list_filter_vm b = vm("bb", "red-fox", "stopped", 1);
    list_filter_vm c = vm("cc", "eager-fox", "created", 0);
    list_filter_vm d = vm("dd", "calm-owl", "running", 0);
    assert_true(list_filters_match_vm(&f, &a));
    assert_true(list_filters_match_vm(&f, &b)); /* stopped is Docker's exited */
    assert_false(list_filters_match_vm(&f, &c));
    assert_false(list_filters_match_vm(&f, &d));
    assert_true(list_filters_want_stopped(&f));
    list_filters_clear(&f);

    /* No filter matches all, and leaves ps to its running-only default. */
    assert_int_equal(parse(LIST_FILTER_VMS, NULL, 0, &f, &err), 0);
    assert_true(list_filters_match_vm(&f, &d));
    assert_false(list_filters_want_stopped(&f));
}

static void test_statuses_docker_and_hypr(void **state)
{
    (void)state;
    static const struct {
        const char *filter, *status;
        bool match;
    } cases[] = {
        {"running", "booting", true},  {"running", "stopping", true},
        {"running", "stopped", false}, {"booting", "booting", true},
        {"booting", "running", false}, {"exited", "failed", true},
        {"failed", "stopped", false},  {"created", "created", true},
        {"paused", "running", false},  {"restarting", "restarting", true},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *spec = xasprintf("status=%s", cases[i].filter);
        const char *specs[] = {spec};
        _cleanup_list_filters_ list_filters f = {0};
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_int_equal(parse(LIST_FILTER_VMS, specs, 1, &f, &err), 0);
        list_filter_vm v = vm("aa", "n", cases[i].status, 0);
        assert_int_equal(list_filters_match_vm(&f, &v), cases[i].match);
    }
}

static void test_id_name_exited_labels(void **state)
{
    (void)state;
    const char *specs[] = {"id=01ab", "name=ger-f", "exited=3", "label=env", "label=tier=web"};
    _cleanup_list_filters_ list_filters f = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(parse(LIST_FILTER_VMS, specs, 5, &f, &err), 0);
    char *both[] = {"env", "prod", "tier", "web", NULL};
    char *one[] = {"env", "prod", NULL};
    list_filter_vm v = vm("01abcdef", "eager-fox", "stopped", 3);
    v.labels = both;
    assert_true(list_filters_match_vm(&f, &v));
    v.labels = one; /* every label= must match */
    assert_false(list_filters_match_vm(&f, &v));
    v.labels = both;
    v.exit_code = 0;
    assert_false(list_filters_match_vm(&f, &v));
    v.exit_code = 3;
    v.status = "running"; /* exited= wants a stopped VM */
    assert_false(list_filters_match_vm(&f, &v));
    v.status = "failed";
    v.id = "ff01abcd"; /* a prefix, not a substring */
    assert_false(list_filters_match_vm(&f, &v));
}

static void test_ancestor_network_volume_ports(void **state)
{
    (void)state;
    const char *specs[] = {"ancestor=busybox", "network=front",     "network=9f",
                           "volume=/data",     "publish=8000-8090", "expose=53/udp"};
    _cleanup_list_filters_ list_filters f = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(parse(LIST_FILTER_VMS, specs, ARRAY_SIZE(specs), &f, &err), 0);
    f.ancestor_ids = strv_append(NULL, "img1");
    char *nets[] = {"back", NULL};
    char *net_ids[] = {"9f00", NULL};
    char *vols[] = {"data", "/data", NULL};
    const list_filter_port published[] = {{8080, "tcp"}};
    const list_filter_port exposed[] = {{53, "udp"}};
    list_filter_vm v = vm("aa", "n", "running", 0);
    v.image = "other:1";
    v.image_id = "img1";
    v.networks = nets;
    v.network_ids = net_ids; /* network= takes an ID prefix */
    v.volumes = vols;
    v.published = published;
    v.n_published = 1;
    v.exposed = exposed;
    v.n_exposed = 1;
    assert_true(list_filters_match_vm(&f, &v));
    v.image_id = "img2";
    assert_false(list_filters_match_vm(&f, &v));
    v.image = "busybox"; /* the reference as given counts too */
    assert_true(list_filters_match_vm(&f, &v));
    v.n_exposed = 0;
    assert_false(list_filters_match_vm(&f, &v));
    v.n_exposed = 1;
    const list_filter_port udp[] = {{8080, "udp"}};
    v.published = udp; /* publish= is tcp unless it says otherwise */
    assert_false(list_filters_match_vm(&f, &v));
}

static void test_before_and_since(void **state)
{
    (void)state;
    const char *specs[] = {"before=c", "since=a"};
    _cleanup_list_filters_ list_filters f = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(parse(LIST_FILTER_VMS, specs, 2, &f, &err), 0);
    assert_true(list_filters_want_stopped(&f));
    f.before_order = xcalloc(1, sizeof(int64_t));
    f.since_order = xcalloc(1, sizeof(int64_t));
    f.before_order[0] = 3;
    f.since_order[0] = 1;
    for (int64_t order = 0; order < 5; order++) {
        list_filter_vm v = vm("aa", "n", "stopped", 0);
        v.order = order;
        assert_int_equal(list_filters_match_vm(&f, &v), order == 2);
    }
}

static void test_images(void **state)
{
    (void)state;
    char *labels[] = {"org", "hypr", NULL};
    const list_filter_image busybox = {"b1", "docker.io/library/busybox", "latest", labels, 10};
    const list_filter_image local = {"b2", "127.0.0.1:5000/busybox", "1.36", NULL, 20};
    const list_filter_image dangling = {"d1", "docker.io/library/busybox", "", NULL, 30};
    static const struct {
        const char *spec;
        bool busybox, local, dangling;
    } cases[] = {
        {"dangling=true", false, false, true},
        {"dangling=false", true, true, false},
        {"reference=busy*", true, false, false},
        {"reference=*:latest", true, false, false},
        {"reference=busybox:latest", true, false, false},
        {"reference=docker.io/library/busybox", true, false, false},
        {"reference=127.0.0.1:*/busybox:1.*", false, true, false},
        {"reference=*", true, false, false}, /* '*' does not cross '/' */
        {"label=org", true, false, false},
        {"label=org=other", false, false, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const char *specs[] = {cases[i].spec};
        _cleanup_list_filters_ list_filters f = {0};
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_int_equal(parse(LIST_FILTER_IMAGES, specs, 1, &f, &err), 0);
        assert_int_equal(list_filters_match_image(&f, &busybox), cases[i].busybox);
        assert_int_equal(list_filters_match_image(&f, &local), cases[i].local);
        assert_int_equal(list_filters_match_image(&f, &dangling), cases[i].dangling);
    }
    /* OR within reference, AND with dangling; before/since by creation time. */
    const char *specs[] = {"reference=busy*", "reference=127.0.0.1:*/*", "dangling=false",
                           "since=x"};
    _cleanup_list_filters_ list_filters f = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(parse(LIST_FILTER_IMAGES, specs, 4, &f, &err), 0);
    f.since_order = xcalloc(1, sizeof(int64_t));
    f.since_order[0] = 5;
    assert_true(list_filters_match_image(&f, &busybox));
    assert_true(list_filters_match_image(&f, &local));
    assert_false(list_filters_match_image(&f, &dangling));
    f.since_order[0] = 10; /* strictly after */
    assert_false(list_filters_match_image(&f, &busybox));
    assert_true(list_filters_match_image(&f, &local));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_filters_use_dockers_words),
        cmocka_unit_test(test_same_key_is_or_different_keys_and),
        cmocka_unit_test(test_statuses_docker_and_hypr),
        cmocka_unit_test(test_id_name_exited_labels),
        cmocka_unit_test(test_ancestor_network_volume_ports),
        cmocka_unit_test(test_before_and_since),
        cmocka_unit_test(test_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
