/* The metrics registry's text exposition: escaping, histograms, both formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "metrics.h"

static char *render(const metrics_registry *r, metrics_format fmt)
{
    hypr_buf b = {0};
    metrics_render(r, fmt, &b);
    return b.data ? buf_steal(&b) : xstrdup("");
}

static void test_label_values_and_help_are_escaped(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    static const char *const labels[] = {"vm", NULL};
    metric_family *f = metrics_add_family(r, "hypr_vm_memory_bytes", "a \\ help\nline",
                                          METRIC_GAUGE, labels, NULL, 0);
    metric_set(f, (const char *[]){"a\"b\\c\nd"}, 42);
    char *text = render(r, METRICS_PROMETHEUS);
    assert_string_equal(text, "# HELP hypr_vm_memory_bytes a \\\\ help\\nline\n"
                              "# TYPE hypr_vm_memory_bytes gauge\n"
                              "hypr_vm_memory_bytes{vm=\"a\\\"b\\\\c\\nd\"} 42\n");
    free(text);
    metrics_registry_free(r);
}

static void test_histogram_has_cumulative_buckets_sum_and_count(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    static const double buckets[] = {0.005, 1};
    metrics_add_family(r, "x_seconds", "h", METRIC_HISTOGRAM, NULL, buckets, 2);
    metric_family *f = metrics_add_family(r, "y_seconds", "h", METRIC_HISTOGRAM, NULL, buckets, 2);
    metric_observe(f, NULL, 0.001);
    metric_observe(f, NULL, 0.5);
    metric_observe(f, NULL, 3);
    char *text = render(r, METRICS_PROMETHEUS);
    /* A family without labels is there before any observation. */
    assert_non_null(strstr(text, "x_seconds_bucket{le=\"+Inf\"} 0\nx_seconds_sum 0\n"
                                 "x_seconds_count 0\n"));
    assert_non_null(strstr(text, "y_seconds_bucket{le=\"0.005\"} 1\n"
                                 "y_seconds_bucket{le=\"1\"} 2\n"
                                 "y_seconds_bucket{le=\"+Inf\"} 3\n"
                                 "y_seconds_sum 3.501\n"
                                 "y_seconds_count 3\n"));
    free(text);
    metrics_registry_free(r);
}

static void test_openmetrics_names_counter_families_and_ends_with_eof(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    static const char *const labels[] = {"result", NULL};
    metric_family *f =
        metrics_add_family(r, "hypr_image_pulls_total", "pulls", METRIC_COUNTER, labels, NULL, 0);
    metric_inc(f, (const char *[]){"success"}, 1);
    metric_inc(f, (const char *[]){"success"}, 2);
    char *prom = render(r, METRICS_PROMETHEUS);
    assert_string_equal(prom, "# HELP hypr_image_pulls_total pulls\n"
                              "# TYPE hypr_image_pulls_total counter\n"
                              "hypr_image_pulls_total{result=\"success\"} 3\n");
    char *om = render(r, METRICS_OPENMETRICS);
    assert_string_equal(om, "# HELP hypr_image_pulls pulls\n"
                            "# TYPE hypr_image_pulls counter\n"
                            "hypr_image_pulls_total{result=\"success\"} 3\n"
                            "# EOF\n");
    free(prom);
    free(om);
    metrics_registry_free(r);
}

static void test_accept_negotiation(void **state)
{
    (void)state;
    assert_int_equal(metrics_negotiate(NULL), METRICS_PROMETHEUS);
    assert_int_equal(metrics_negotiate("text/plain;version=0.0.4"), METRICS_PROMETHEUS);
    assert_int_equal(
        metrics_negotiate("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        METRICS_OPENMETRICS);
    assert_non_null(strstr(metrics_content_type(METRICS_PROMETHEUS), "version=0.0.4"));
    assert_non_null(strstr(metrics_content_type(METRICS_OPENMETRICS), "openmetrics-text"));
}

static void test_clear_drops_samples_but_keeps_the_family(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    static const char *const labels[] = {"status", NULL};
    metric_family *f = metrics_add_family(r, "hypr_vms", "vms", METRIC_GAUGE, labels, NULL, 0);
    metric_inc(f, (const char *[]){"running"}, 1);
    metric_clear(f);
    char *text = render(r, METRICS_PROMETHEUS);
    assert_string_equal(text, "# HELP hypr_vms vms\n# TYPE hypr_vms gauge\n");
    free(text);
    metrics_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_values_and_help_are_escaped),
        cmocka_unit_test(test_histogram_has_cumulative_buckets_sum_and_count),
        cmocka_unit_test(test_openmetrics_names_counter_families_and_ends_with_eof),
        cmocka_unit_test(test_accept_negotiation),
        cmocka_unit_test(test_clear_drops_samples_but_keeps_the_family),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
