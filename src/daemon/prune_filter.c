/* Prune filters: see prune_filter.h. */
#define LOG_MODULE "api"
#include "prune_filter.h"

#include <string.h>

void prune_filters_clear(prune_filters *f)
{
    strv_free(f->labels);
    strv_free(f->not_labels);
    *f = (prune_filters){0};
}

static int bad(hypr_error *err, const char *spec, const char *why)
{
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid filter '%s': %s", spec, why);
}

int prune_filters_parse(char *const *specs, size_t n, int64_t now_ms, prune_filters *out,
                        hypr_error *err)
{
    *out = (prune_filters){0};
    for (size_t i = 0; i < n; i++) {
        const char *spec = specs[i] ? specs[i] : "";
        const char *eq = strchr(spec, '=');
        int r = 0;
        if (!eq || eq == spec) {
            r = bad(err, spec, "expected key=value (until=24h, label=k=v, label!=k)");
        } else if (eq - spec == 5 && !strncmp(spec, "until", 5)) {
            int64_t t = 0;
            int pr = parse_time_reference(eq + 1, now_ms, &t);
            if (out->has_until)
                r = bad(err, spec, "more than one until filter");
            else if (pr == -ERANGE)
                r = bad(err, spec, "time out of range");
            else if (pr < 0)
                r = bad(err, spec,
                        "not a duration (24h, 90m), an RFC 3339 time (2024-01-02T15:04:05Z) "
                        "or a unix timestamp");
            out->has_until = true;
            out->until_ms = t;
        } else if ((eq - spec == 5 && !strncmp(spec, "label", 5)) ||
                   (eq - spec == 6 && !strncmp(spec, "label!", 6))) {
            if (!eq[1] || eq[1] == '=')
                r = bad(err, spec, "a label filter needs a key (label=k or label=k=v)");
            else if (spec[5] == '!')
                out->not_labels = strv_append(out->not_labels, eq + 1);
            else
                out->labels = strv_append(out->labels, eq + 1);
        } else {
            _cleanup_free_ char *key = xstrndup(spec, (size_t)(eq - spec));
            _cleanup_free_ char *why =
                xasprintf("unknown filter '%s' (prune takes until, label and label!)", key);
            r = bad(err, spec, why);
        }
        if (r < 0) {
            prune_filters_clear(out);
            return r;
        }
    }
    return 0;
}

bool filter_labels_have(char *const *labels, const char *want)
{
    const char *eq = strchr(want, '=');
    size_t klen = eq ? (size_t)(eq - want) : strlen(want);
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2)
        if (strlen(labels[i]) == klen && !strncmp(labels[i], want, klen) &&
            (!eq || !strcmp(labels[i + 1], eq + 1)))
            return true;
    return false;
}

bool prune_filters_match(const prune_filters *f, int64_t created_s, char *const *labels)
{
    if (f->has_until && created_s * 1000 >= f->until_ms)
        return false;
    for (char **l = f->labels; l && *l; l++)
        if (!filter_labels_have(labels, *l))
            return false;
    for (char **l = f->not_labels; l && *l; l++)
        if (filter_labels_have(labels, *l))
            return false;
    return true;
}
