/* libFuzzer target: the filters of ListVms / ListImages (src/daemon/list_filter.c).
 * The input's first byte picks the kind (VMs or images), the rest is the filter
 * list, one per line. A parse either fails with one of Docker's messages or
 * gives filters that match VMs and images without crashing. */
#include "daemon/list_filter.h"

#include <stdint.h>
#include <string.h>

static void match_samples(const list_filters *f)
{
    char *labels[] = {"env", "prod", "tier", "", NULL};
    char *nets[] = {"bridge", "front", NULL};
    char *net_ids[] = {"0123abcd", "fedc9876", NULL};
    char *vols[] = {"data", "/srv/data", NULL};
    const list_filter_port ports[] = {{80, "tcp"}, {53, "udp"}, {65535, NULL}};
    static const char *const statuses[] = {"created", "booting", "running",    "stopping",
                                           "stopped", "failed",  "restarting", NULL};
    for (size_t i = 0; i < 8; i++) {
        const list_filter_vm vm = {
            .id = "0123456789abcdef",
            .name = i % 2 ? "eager-fox" : NULL,
            .status = statuses[i],
            .exit_code = (int)i - 1,
            .labels = i % 3 ? labels : NULL,
            .image = "busybox:latest",
            .image_id = i % 2 ? "aaaa" : NULL,
            .networks = nets,
            .network_ids = net_ids,
            .volumes = vols,
            .published = ports,
            .n_published = i % 4,
            .exposed = ports,
            .n_exposed = 3 - i % 4,
            .order = (int64_t)i - 2,
        };
        (void)list_filters_match_vm(f, &vm);
        const list_filter_image img = {"aaaa", i % 2 ? "docker.io/library/busybox" : NULL,
                                       i % 3 ? "latest" : "", i % 2 ? labels : NULL,
                                       (int64_t)i * 1000};
        (void)list_filters_match_image(f, &img);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    list_filter_kind kind = data[0] & 1 ? LIST_FILTER_IMAGES : LIST_FILTER_VMS;
    char *text = xstrndup((const char *)data + 1, size - 1);
    char **specs = NULL;
    size_t n = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        specs = xrealloc(specs, (n + 1) * sizeof(*specs));
        specs[n++] = line;
    }
    hypr_error err = HYPR_ERROR_INIT;
    list_filters f;
    if (list_filters_parse(kind, specs, n, &f, &err) == 0) {
        /* What the daemon resolves from the store, one order per value. */
        size_t nb = strv_length(f.values[LF_BEFORE]), ns = strv_length(f.values[LF_SINCE]);
        f.before_order = xcalloc(nb ? nb : 1, sizeof(*f.before_order));
        f.since_order = xcalloc(ns ? ns : 1, sizeof(*f.since_order));
        for (size_t i = 0; i < nb; i++)
            f.before_order[i] = (int64_t)i;
        f.ancestor_ids = strv_append(NULL, "aaaa");
        match_samples(&f);
        list_filters_clear(&f);
    } else if (!err.message ||
               (!str_startswith(err.message, "invalid filter '") &&
                strcmp(err.message, "bad format of filter (expected name=value)"))) {
        __builtin_trap();
    }
    hypr_error_clear(&err);
    free(specs);
    free(text);
    return 0;
}
