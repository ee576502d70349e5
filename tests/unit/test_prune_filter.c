/* The filters of PruneSystem as an API request carries them: Docker's until and
 * label semantics, and a refusal naming the bad filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "prune_filter.h"

#define NOW_MS 1700000000000LL

static int parse(const char *const *specs, size_t n, prune_filters *f, hypr_error *err)
{
    return prune_filters_parse((char *const *)specs, n, NOW_MS, f, err);
}

static void test_until_keeps_what_is_younger(void **state)
{
    (void)state;
    const char *specs[] = {"until=24h"};
    prune_filters f;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(parse(specs, 1, &f, &err), 0);
    assert_true(f.has_until);
    int64_t cut = NOW_MS / 1000 - 86400;
    assert_true(prune_filters_match(&f, cut - 1, NULL));
    assert_false(prune_filters_match(&f, cut, NULL));
    assert_false(prune_filters_match(&f, NOW_MS / 1000, NULL));
    prune_filters_clear(&f);

    /* No filter: everything matches; a timestamp works as a cut-off too. */
    assert_int_equal(parse(NULL, 0, &f, &err), 0);
    assert_true(prune_filters_match(&f, NOW_MS / 1000, NULL));
    const char *ts[] = {"until=2023-11-14T00:00:00Z"};
    assert_int_equal(parse(ts, 1, &f, &err), 0);
    assert_true(prune_filters_match(&f, 1699919999, NULL));
    assert_false(prune_filters_match(&f, 1699920000, NULL));
    prune_filters_clear(&f);
}

static void test_labels_must_all_match_and_excluded_ones_must_not(void **state)
{
    (void)state;
    const char *specs[] = {"label=env", "label=tier=web", "label!=keep"};
    prune_filters f;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(parse(specs, 3, &f, &err), 0);
    char *both[] = {"env", "prod", "tier", "web", NULL};
    char *wrong_tier[] = {"env", "prod", "tier", "db", NULL};
    char *kept[] = {"env", "", "tier", "web", "keep", "1", NULL};
    char *no_env[] = {"tier", "web", NULL};
    assert_true(prune_filters_match(&f, 0, both));
    assert_false(prune_filters_match(&f, 0, wrong_tier));
    assert_false(prune_filters_match(&f, 0, kept));
    assert_false(prune_filters_match(&f, 0, no_env));
    assert_false(prune_filters_match(&f, 0, NULL)); /* no labels: label= never matches */
    prune_filters_clear(&f);

    const char *only_not[] = {"label!=keep=yes"};
    assert_int_equal(parse(only_not, 1, &f, &err), 0);
    char *keep_no[] = {"keep", "no", NULL};
    char *keep_yes[] = {"keep", "yes", NULL};
    assert_true(prune_filters_match(&f, 0, NULL));
    assert_true(prune_filters_match(&f, 0, keep_no));
    assert_false(prune_filters_match(&f, 0, keep_yes));
    prune_filters_clear(&f);
}

static void test_bad_filters_are_refused_by_name(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *why;
    } bad[] = {
        {"until=abc", "not a duration"},
        {"until=", "not a duration"},
        {"until=99999999999999999999", "out of range"},
        {"foo=bar", "unknown filter 'foo'"},
        {"until", "expected key=value"},
        {"=24h", "expected key=value"},
        {"label=", "needs a key"},
        {"label!==v", "needs a key"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        const char *specs[] = {"label=ok", bad[i].spec};
        prune_filters f;
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_int_equal(parse(specs, 2, &f, &err), -EINVAL);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        _cleanup_free_ char *head = xasprintf("invalid filter '%s': ", bad[i].spec);
        assert_true(str_startswith(err.message, head));
        assert_non_null(strstr(err.message, bad[i].why));
        assert_null(f.labels); /* nothing half-parsed is left */
    }
    const char *twice[] = {"until=1h", "until=2h"};
    prune_filters f;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(parse(twice, 2, &f, &err), -EINVAL);
    assert_string_equal(err.message, "invalid filter 'until=2h': more than one until filter");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_until_keeps_what_is_younger),
        cmocka_unit_test(test_labels_must_all_match_and_excluded_ones_must_not),
        cmocka_unit_test(test_bad_filters_are_refused_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
