/* A small metrics registry (counters, gauges, histograms with labels) and its rendering
 * as the Prometheus text exposition format 0.0.4 or OpenMetrics 1.0.0. Loop thread only. */
#ifndef HYPR_METRICS_H
#define HYPR_METRICS_H

#include "common/common.h"

typedef enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;
typedef enum metrics_format { METRICS_PROMETHEUS, METRICS_OPENMETRICS } metrics_format;

typedef struct metrics_registry metrics_registry;
typedef struct metric_family metric_family;

metrics_registry *metrics_registry_new(void);
void metrics_registry_free(metrics_registry *r);

/* A family, rendered in the order added. name is the sample name (a counter's ends in
 * _total); labels is NULL-terminated (NULL = none); buckets (histograms only) are the
 * ascending upper bounds without +Inf. A family without labels has its one sample from
 * the start (0), so it is rendered even before anything is counted. */
metric_family *metrics_add_family(metrics_registry *r, const char *name, const char *help,
                                  metric_type type, const char *const *labels,
                                  const double *buckets, size_t n_buckets);

/* values: one per label name, in order (NULL when the family has none). */
void metric_inc(metric_family *f, const char *const *values, double by);
void metric_set(metric_family *f, const char *const *values, double v);
void metric_observe(metric_family *f, const char *const *values, double v);
/* Drops every sample (a gauge recomputed at each scrape). */
void metric_clear(metric_family *f);

void metrics_render(const metrics_registry *r, metrics_format fmt, hypr_buf *out);
/* The format an Accept header asks for (NULL = Prometheus). */
metrics_format metrics_negotiate(const char *accept);
const char *metrics_content_type(metrics_format fmt);

/* Default buckets of durations in seconds (5 ms .. 60 s). */
extern const double metrics_duration_buckets[];
extern const size_t metrics_n_duration_buckets;

#endif
