/* libFuzzer target: the filters of a PruneSystem request (src/daemon/prune_filter.c)
 * and the time references of until= (src/common/timeparse.c). The input is the
 * filter list, one per line. A parse either fails with a message naming the
 * filter or gives filters that match objects without crashing. */
#include "daemon/prune_filter.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = xstrndup((const char *)data, size);
    char **specs = NULL;
    size_t n = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        specs = xrealloc(specs, (n + 1) * sizeof(*specs));
        specs[n++] = line;
    }
    int64_t t;
    for (size_t i = 0; i < n; i++) {
        int64_t ns;
        (void)parse_duration_ns(specs[i], &ns);
        (void)parse_time_reference(specs[i], 1700000000000LL, &t);
    }
    hypr_error err = HYPR_ERROR_INIT;
    prune_filters f;
    if (prune_filters_parse(specs, n, 1700000000000LL, &f, &err) == 0) {
        char *labels[] = {"env", "prod", "tier", "", NULL};
        (void)prune_filters_match(&f, 0, labels);
        (void)prune_filters_match(&f, 1700000000, NULL);
        prune_filters_clear(&f);
    } else if (!err.message || !str_startswith(err.message, "invalid filter '")) {
        __builtin_trap();
    }
    hypr_error_clear(&err);
    free(specs);
    free(text);
    return 0;
}
