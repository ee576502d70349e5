/* hyprd's metrics: the families of docs/metrics.md, the hooks that count into them and
 * the /metrics endpoint on the metrics_addr setting (127.0.0.1:41002). */
#ifndef HYPR_DAEMON_METRICS_H
#define HYPR_DAEMON_METRICS_H

#include "daemon.h"
#include "metrics.h"

/* Registers the families and listens on metrics_addr (nothing when empty). */
void metrics_start(daemon_ctx *d);
void metrics_stop(daemon_ctx *d);
/* metrics_addr changed: listen there now. */
void metrics_reconfigure(daemon_ctx *d);
/* The text a scrape gets (also for tests and the benchmark). */
void metrics_scrape(daemon_ctx *d, metrics_format fmt, hypr_buf *out);

/* Hooks; each is a no-op before metrics_start. */
void metrics_rpc_observe(void *d, const char *path, bool done, hypr_status status, double seconds);
/* A VM's workload started seconds after its start; h: kestrel's phases (guest uptime). */
struct ctl_hello;
void metrics_vm_booted(double seconds, const struct ctl_hello *h);
void metrics_image_pulled(bool ok, uint64_t bytes);
/* result: "answered", "forwarded" or "dropped". */
void metrics_dns_query(const char *result);

#endif
