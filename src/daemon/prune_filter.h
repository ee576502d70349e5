/* The filters of a prune request ("until=24h", "label=k=v", "label!=k"), with
 * Docker's meaning: until keeps what was created at or after the cut-off, every
 * label= must match, no label!= may. Pure (common only), so the parser of these
 * strings from API requests is unit-tested and fuzzed alone. Internal to src/daemon. */
#ifndef HYPR_DAEMON_PRUNE_FILTER_H
#define HYPR_DAEMON_PRUNE_FILTER_H

#include "common/common.h"

typedef struct prune_filters {
    bool has_until;
    int64_t until_ms;  /* unix ms: only objects created before it are pruned */
    char **labels;     /* "k" or "k=v" (label=): each must match */
    char **not_labels; /* "k" or "k=v" (label!=): none may match */
} prune_filters;

/* Parses specs (each "key=value"); now_ms anchors durations. A bad one is
 * INVALID_ARGUMENT naming it: "invalid filter 'until=abc': ...". */
int prune_filters_parse(char *const *specs, size_t n, int64_t now_ms, prune_filters *out,
                        hypr_error *err);
void prune_filters_clear(prune_filters *f);
/* Whether an object created at created_s (unix seconds) with labels (key, value,
 * ..., NULL; may be NULL) is to be pruned as far as the filters go. */
bool prune_filters_match(const prune_filters *f, int64_t created_s, char *const *labels);

/* Whether labels (key, value, ..., NULL; may be NULL) hold want: "k" the key
 * at all, "k=v" with that value. Shared with the list filters (list_filter.h). */
bool filter_labels_have(char *const *labels, const char *want);

#endif
