/* The metrics registry and the text exposition (Prometheus 0.0.4, OpenMetrics 1.0.0). */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct metric_series {
    char **values; /* one per label */
    double value;  /* counter, gauge */
    uint64_t *bucket_counts, count;
    double sum;
    struct metric_series *next;
} metric_series;

struct metric_family {
    char *name, *help;
    metric_type type;
    char **labels;
    size_t n_labels;
    double *buckets;
    size_t n_buckets;
    metric_series *series, **tail;
    metric_family *next;
};

struct metrics_registry {
    metric_family *families, **tail;
};

const double metrics_duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                           1,     2.5,  5,     10,   30,  60};
const size_t metrics_n_duration_buckets = ARRAY_SIZE(metrics_duration_buckets);

metrics_registry *metrics_registry_new(void)
{
    metrics_registry *r = xcalloc(1, sizeof(*r));
    r->tail = &r->families;
    return r;
}

static void series_free(const metric_family *f, metric_series *s)
{
    for (size_t i = 0; i < f->n_labels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->bucket_counts);
    free(s);
}

void metric_clear(metric_family *f)
{
    while (f->series) {
        metric_series *s = f->series;
        f->series = s->next;
        series_free(f, s);
    }
    f->tail = &f->series;
}

void metrics_registry_free(metrics_registry *r)
{
    if (!r)
        return;
    while (r->families) {
        metric_family *f = r->families;
        r->families = f->next;
        metric_clear(f);
        for (size_t i = 0; i < f->n_labels; i++)
            free(f->labels[i]);
        free(f->labels);
        free(f->buckets);
        free(f->name);
        free(f->help);
        free(f);
    }
    free(r);
}

static metric_series *series_get(metric_family *f, const char *const *values)
{
    for (metric_series *s = f->series; s; s = s->next) {
        size_t i = 0;
        while (i < f->n_labels && strcmp(s->values[i], values[i]) == 0)
            i++;
        if (i == f->n_labels)
            return s;
    }
    metric_series *s = xcalloc(1, sizeof(*s));
    s->values = xcalloc(f->n_labels + 1, sizeof(char *));
    for (size_t i = 0; i < f->n_labels; i++)
        s->values[i] = xstrdup(values[i] ? values[i] : "");
    if (f->type == METRIC_HISTOGRAM)
        s->bucket_counts = xcalloc(f->n_buckets + 1, sizeof(uint64_t));
    *f->tail = s;
    f->tail = &s->next;
    return s;
}

metric_family *metrics_add_family(metrics_registry *r, const char *name, const char *help,
                                  metric_type type, const char *const *labels,
                                  const double *buckets, size_t n_buckets)
{
    metric_family *f = xcalloc(1, sizeof(*f));
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->type = type;
    f->tail = &f->series;
    while (labels && labels[f->n_labels])
        f->n_labels++;
    f->labels = xcalloc(f->n_labels + 1, sizeof(char *));
    for (size_t i = 0; i < f->n_labels; i++)
        f->labels[i] = xstrdup(labels[i]);
    if (type == METRIC_HISTOGRAM && n_buckets) {
        f->buckets = xmalloc(n_buckets * sizeof(double));
        memcpy(f->buckets, buckets, n_buckets * sizeof(double));
        f->n_buckets = n_buckets;
    }
    if (f->n_labels == 0)
        series_get(f, NULL);
    *r->tail = f;
    r->tail = &f->next;
    return f;
}

void metric_inc(metric_family *f, const char *const *values, double by)
{
    series_get(f, values)->value += by;
}

void metric_set(metric_family *f, const char *const *values, double v)
{
    series_get(f, values)->value = v;
}

void metric_observe(metric_family *f, const char *const *values, double v)
{
    metric_series *s = series_get(f, values);
    for (size_t i = 0; i < f->n_buckets; i++)
        if (v <= f->buckets[i])
            s->bucket_counts[i]++;
    s->bucket_counts[f->n_buckets]++; /* +Inf */
    s->count++;
    s->sum += v;
}

/* ---- rendering ------------------------------------------------------------------------ */

static void put_escaped(hypr_buf *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(out, "\\\\");
        else if (*s == '\n')
            buf_puts(out, "\\n");
        else if (*s == '"' && quote)
            buf_puts(out, "\\\"");
        else
            buf_append(out, s, 1);
    }
}

static void put_number(hypr_buf *out, double v)
{
    if (isinf(v))
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        buf_puts(out, "NaN");
    else {
        /* The shortest of %.15g / %.17g that reads back as v (0.005, not 0.0050000000000000001). */
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "%.15g", v);
        if (strtod(tmp, NULL) != v)
            snprintf(tmp, sizeof(tmp), "%.17g", v);
        buf_puts(out, tmp);
    }
}

/* name{labels,extra="value"} value\n */
static void put_sample(hypr_buf *out, const metric_family *f, const metric_series *s,
                       const char *suffix, const char *extra, double bound, double v)
{
    buf_printf(out, "%s%s", f->name, suffix);
    if (f->n_labels || extra) {
        buf_puts(out, "{");
        for (size_t i = 0; i < f->n_labels; i++) {
            buf_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
            put_escaped(out, s->values[i], true);
            buf_puts(out, "\"");
        }
        if (extra) {
            buf_printf(out, "%s%s=\"", f->n_labels ? "," : "", extra);
            put_number(out, bound);
            buf_puts(out, "\"");
        }
        buf_puts(out, "}");
    }
    buf_puts(out, " ");
    put_number(out, v);
    buf_puts(out, "\n");
}

static void render_family(const metric_family *f, metrics_format fmt, hypr_buf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    size_t name_len = strlen(f->name);
    /* OpenMetrics names a counter's family without the _total of its samples. */
    if (fmt == METRICS_OPENMETRICS && f->type == METRIC_COUNTER && name_len > 6 &&
        strcmp(f->name + name_len - 6, "_total") == 0)
        name_len -= 6;
    buf_printf(out, "# HELP %.*s ", (int)name_len, f->name);
    put_escaped(out, f->help, fmt == METRICS_OPENMETRICS);
    buf_printf(out, "\n# TYPE %.*s %s\n", (int)name_len, f->name, types[f->type]);
    for (const metric_series *s = f->series; s; s = s->next) {
        if (f->type != METRIC_HISTOGRAM) {
            put_sample(out, f, s, "", NULL, 0, s->value);
            continue;
        }
        for (size_t i = 0; i <= f->n_buckets; i++)
            put_sample(out, f, s, "_bucket", "le", i < f->n_buckets ? f->buckets[i] : INFINITY,
                       (double)s->bucket_counts[i]);
        put_sample(out, f, s, "_sum", NULL, 0, s->sum);
        put_sample(out, f, s, "_count", NULL, 0, (double)s->count);
    }
}

void metrics_render(const metrics_registry *r, metrics_format fmt, hypr_buf *out)
{
    for (const metric_family *f = r->families; f; f = f->next)
        render_family(f, fmt, out);
    if (fmt == METRICS_OPENMETRICS)
        buf_puts(out, "# EOF\n");
}

metrics_format metrics_negotiate(const char *accept)
{
    /* Prometheus sends OpenMetrics first when it wants it; any mention is taken as a yes. */
    if (accept && strcasestr(accept, "application/openmetrics-text"))
        return METRICS_OPENMETRICS;
    return METRICS_PROMETHEUS;
}

const char *metrics_content_type(metrics_format fmt)
{
    return fmt == METRICS_OPENMETRICS ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                      : "text/plain; version=0.0.4; charset=utf-8";
}
