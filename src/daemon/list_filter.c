/* List filters: see list_filter.h. */
#define LOG_MODULE "api"
#include "list_filter.h"
#include "prune_filter.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define FOR_VMS    (1u << LIST_FILTER_VMS)
#define FOR_IMAGES (1u << LIST_FILTER_IMAGES)

/* Docker's states, and hypr's own (which say more: booting, stopping, failed). */
static const char *const docker_states[] = {"created", "restarting", "running", "removing",
                                            "paused",  "exited",     "dead"};
static const char *const hypr_states[] = {"booting", "stopping", "stopped", "failed"};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

static bool valid_status(const char *v)
{
    return in_list(v, docker_states, ARRAY_SIZE(docker_states)) ||
           in_list(v, hypr_states, ARRAY_SIZE(hypr_states));
}

static bool parse_int(const char *v, int *out)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < INT_MIN || n > INT_MAX)
        return false;
    *out = (int)n;
    return true;
}

static bool valid_exited(const char *v)
{
    int code;
    return parse_int(v, &code);
}

static bool parse_port_number(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 5)
        return false;
    uint32_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        n = n * 10 + (uint32_t)(s[i] - '0');
    }
    if (n > 65535)
        return false;
    *out = n;
    return true;
}

/* "80", "80/udp", "8000-8080/tcp": a port range and a protocol (tcp by default). */
static bool parse_port_range(const char *v, uint32_t *lo, uint32_t *hi, const char **proto)
{
    const char *slash = strchr(v, '/');
    size_t len = slash ? (size_t)(slash - v) : strlen(v);
    *proto = "tcp";
    if (slash) {
        if (!strcmp(slash + 1, "tcp") || !strcmp(slash + 1, "udp"))
            *proto = slash + 1;
        else
            return false;
    }
    const char *dash = memchr(v, '-', len);
    if (!dash)
        return parse_port_number(v, len, lo) && (*hi = *lo, true);
    return parse_port_number(v, (size_t)(dash - v), lo) &&
           parse_port_number(dash + 1, len - (size_t)(dash - v) - 1, hi) && *lo <= *hi;
}

static bool valid_ports(const char *v)
{
    uint32_t lo, hi;
    const char *proto;
    return parse_port_range(v, &lo, &hi, &proto);
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1"))
        return *out = true, true;
    if (!strcmp(v, "false") || !strcmp(v, "0"))
        return *out = false, true;
    return false;
}

static bool valid_bool(const char *v)
{
    bool b;
    return parse_bool(v, &b);
}

static bool valid_label(const char *v)
{
    return *v && *v != '=';
}

static const struct {
    const char *name;
    list_filter_key key;
    unsigned kinds;
    bool (*valid)(const char *value); /* NULL = any value */
} keys[] = {
    {"id", LF_ID, FOR_VMS, NULL},
    {"name", LF_NAME, FOR_VMS, NULL},
    {"label", LF_LABEL, FOR_VMS | FOR_IMAGES, valid_label},
    {"status", LF_STATUS, FOR_VMS, valid_status},
    {"exited", LF_EXITED, FOR_VMS, valid_exited},
    {"ancestor", LF_ANCESTOR, FOR_VMS, NULL},
    {"network", LF_NETWORK, FOR_VMS, NULL},
    {"volume", LF_VOLUME, FOR_VMS, NULL},
    {"publish", LF_PUBLISH, FOR_VMS, valid_ports},
    {"expose", LF_EXPOSE, FOR_VMS, valid_ports},
    {"before", LF_BEFORE, FOR_VMS | FOR_IMAGES, NULL},
    {"since", LF_SINCE, FOR_VMS | FOR_IMAGES, NULL},
    {"dangling", LF_DANGLING, FOR_IMAGES, valid_bool},
    {"reference", LF_REFERENCE, FOR_IMAGES, NULL},
};

void list_filters_clear(list_filters *f)
{
    for (size_t i = 0; i < LF_N_KEYS; i++)
        strv_free(f->values[i]);
    strv_free(f->ancestor_ids);
    free(f->before_order);
    free(f->since_order);
    *f = (list_filters){0};
}

static int parse_one(list_filter_kind kind, const char *spec, list_filters *out, hypr_error *err)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "bad format of filter (expected name=value)");
    size_t klen = (size_t)(eq - spec);
    const char *value = eq + 1;
    if (kind == LIST_FILTER_VMS && klen == 6 && !strncmp(spec, "health", 6))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid filter '%s': hypr has no health checks yet", spec);
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (strlen(keys[i].name) != klen || strncmp(keys[i].name, spec, klen) ||
            !(keys[i].kinds & (1u << kind)))
            continue;
        if (keys[i].valid && !keys[i].valid(value))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid filter '%s'", spec);
        out->values[keys[i].key] = strv_append(out->values[keys[i].key], value);
        return 0;
    }
    _cleanup_free_ char *key = xstrndup(spec, klen);
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid filter '%s'", key);
}

int list_filters_parse(list_filter_kind kind, char *const *specs, size_t n, list_filters *out,
                       hypr_error *err)
{
    *out = (list_filters){0};
    for (size_t i = 0; i < n; i++) {
        int r = parse_one(kind, specs[i] ? specs[i] : "", out, err);
        if (r < 0) {
            list_filters_clear(out);
            return r;
        }
    }
    return 0;
}

bool list_filters_want_stopped(const list_filters *f)
{
    return f->values[LF_STATUS] || f->values[LF_EXITED] || f->values[LF_BEFORE] ||
           f->values[LF_SINCE];
}

/* ---- matching --------------------------------------------------------------------------- */

/* Whether some value of key passes test (true when the key is absent: no constraint). */
#define ANY_VALUE(f, key, v, test)                                                                 \
    ({                                                                                             \
        char *const *vals_ = (f)->values[key];                                                     \
        bool ok_ = !vals_;                                                                         \
        for (size_t i_ = 0; vals_ && vals_[i_] && !ok_; i_++) {                                    \
            const char *v = vals_[i_];                                                             \
            ok_ = (test);                                                                          \
        }                                                                                          \
        ok_;                                                                                       \
    })

static const char *docker_state(const char *status)
{
    if (!strcmp(status, "booting") || !strcmp(status, "stopping"))
        return "running";
    if (!strcmp(status, "stopped") || !strcmp(status, "failed"))
        return "exited";
    return status;
}

static bool vm_stopped(const list_filter_vm *vm)
{
    return vm->status && (!strcmp(vm->status, "stopped") || !strcmp(vm->status, "failed"));
}

static bool exited_with(const list_filter_vm *vm, const char *v)
{
    int code;
    return vm_stopped(vm) && parse_int(v, &code) && code == vm->exit_code;
}

static bool has_prefix_in(char *const *ids, const char *prefix)
{
    for (size_t i = 0; ids && ids[i]; i++)
        if (str_startswith(ids[i], prefix))
            return true;
    return false;
}

static bool ports_have(const list_filter_port *ports, size_t n, const char *v)
{
    uint32_t lo, hi;
    const char *proto;
    if (!parse_port_range(v, &lo, &hi, &proto))
        return false;
    for (size_t i = 0; i < n; i++)
        if (ports[i].port >= lo && ports[i].port <= hi &&
            !strcmp(ports[i].proto ? ports[i].proto : "tcp", proto))
            return true;
    return false;
}

/* Whether order passes one before=/since= value (orders[i] is the i-th value's). */
static bool order_ok(const int64_t *orders, char *const *vals, int64_t order, bool before)
{
    if (!vals)
        return true;
    for (size_t i = 0; vals[i]; i++)
        if (orders && (before ? order < orders[i] : order > orders[i]))
            return true;
    return false;
}

static bool labels_all(const list_filters *f, char *const *labels)
{
    for (char *const *l = f->values[LF_LABEL]; l && *l; l++)
        if (!filter_labels_have(labels, *l))
            return false;
    return true;
}

bool list_filters_match_vm(const list_filters *f, const list_filter_vm *vm)
{
    const char *status = vm->status ? vm->status : "";
    const char *name = vm->name ? vm->name : "";
    const char *id = vm->id ? vm->id : "";
    return ANY_VALUE(f, LF_ID, v, str_startswith(id, v)) &&
           ANY_VALUE(f, LF_NAME, v, strstr(name, v) != NULL) && labels_all(f, vm->labels) &&
           ANY_VALUE(f, LF_STATUS, v, !strcmp(v, status) || !strcmp(v, docker_state(status))) &&
           ANY_VALUE(f, LF_EXITED, v, exited_with(vm, v)) &&
           (!f->values[LF_ANCESTOR] ||
            (vm->image_id && strv_contains(f->ancestor_ids, vm->image_id)) ||
            (vm->image && strv_contains(f->values[LF_ANCESTOR], vm->image))) &&
           ANY_VALUE(f, LF_NETWORK, v,
                     strv_contains(vm->networks, v) || (*v && has_prefix_in(vm->network_ids, v))) &&
           ANY_VALUE(f, LF_VOLUME, v, strv_contains(vm->volumes, v)) &&
           ANY_VALUE(f, LF_PUBLISH, v, ports_have(vm->published, vm->n_published, v)) &&
           ANY_VALUE(f, LF_EXPOSE, v,
                     ports_have(vm->published, vm->n_published, v) ||
                         ports_have(vm->exposed, vm->n_exposed, v)) &&
           order_ok(f->before_order, f->values[LF_BEFORE], vm->order, true) &&
           order_ok(f->since_order, f->values[LF_SINCE], vm->order, false);
}

/* Docker's familiar form: "busybox" for docker.io/library/busybox. */
static const char *familiar(const char *name)
{
    if (str_startswith(name, "docker.io/library/"))
        return name + strlen("docker.io/library/");
    if (str_startswith(name, "docker.io/"))
        return name + strlen("docker.io/");
    return name;
}

/* Like Docker's reference.FamiliarMatch: the pattern against name:tag, then the
 * name alone, familiar first, '*' not crossing '/'. A dangling image has no
 * reference (Docker's <none>:<none>), so it matches none. */
static bool reference_matches(const list_filter_image *img, const char *pattern)
{
    if (str_empty(img->name) || str_empty(img->tag))
        return false;
    const char *names[] = {familiar(img->name), img->name};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        _cleanup_free_ char *full = xasprintf("%s:%s", names[i], img->tag);
        if (!fnmatch(pattern, full, FNM_PATHNAME) || !fnmatch(pattern, names[i], FNM_PATHNAME))
            return true;
    }
    return false;
}

static bool dangling_is(const list_filter_image *img, const char *v)
{
    bool want = false;
    return parse_bool(v, &want) && want == str_empty(img->tag);
}

bool list_filters_match_image(const list_filters *f, const list_filter_image *img)
{
    return ANY_VALUE(f, LF_DANGLING, v, dangling_is(img, v)) &&
           ANY_VALUE(f, LF_REFERENCE, v, reference_matches(img, v)) && labels_all(f, img->labels) &&
           order_ok(f->before_order, f->values[LF_BEFORE], img->created_at, true) &&
           order_ok(f->since_order, f->values[LF_SINCE], img->created_at, false);
}
