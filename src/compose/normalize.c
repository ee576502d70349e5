/* The whole model: top-level keys checked, profiles applied, services normalised,
 * networks/volumes/secrets/configs named <project>_<key> (unless name: or external),
 * and the references between them checked (undefined networks, volumes, secrets,
 * configs and services; dependency cycles). */
#include "compose/compose_internal.h"

#include <stdarg.h>
#include <string.h>

/* ---- context and messages ---------------------------------------------------------- */

void cz_ctx_free(cz_ctx *c)
{
    for (size_t i = 0; i < c->nsrcs; i++)
        free(c->srcs[i].raw);
    free(c->srcs);
    strv_free(c->names);
    strv_free(c->profiles);
    json_decref(c->keep);
    json_decref(c->env);
    free(c->workdir);
    free(c->project);
    *c = (cz_ctx){0};
}

static const cz_src *find_src(const cz_ctx *c, const json_t *node)
{
    if (!node)
        return NULL;
    for (size_t i = c->nsrcs; i-- > 0;)
        if (c->srcs[i].node == node)
            return &c->srcs[i];
    return NULL;
}

int cz_line(const cz_ctx *c, const json_t *node)
{
    const cz_src *s = find_src(c, node);
    return s ? s->line : 0;
}

const char *cz_raw(const cz_ctx *c, const json_t *node)
{
    const cz_src *s = find_src(c, node);
    return s ? s->raw : NULL;
}

int cz_errf(cz_ctx *c, const json_t *node, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    const cz_src *s = find_src(c, node);
    const char *file = s ? s->file : (c->names && c->names[0] ? c->names[0] : "compose.yaml");
    if (s && s->line)
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: %s: %s", file, s->line, path,
                        msg);
    return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: %s: %s", file, path, msg);
}

/* ---- value helpers ----------------------------------------------------------------- */

char *cz_scalar_text(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_real(v)) {
        char *s = xasprintf("%.15g", json_real_value(v));
        return s;
    }
    if (json_is_true(v))
        return xstrdup("true");
    if (json_is_false(v))
        return xstrdup("false");
    if (json_is_null(v))
        return xstrdup("");
    return NULL;
}

bool cz_is_true(const json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))) {
        *out = true;
        return true;
    }
    if (s && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))) {
        *out = false;
        return true;
    }
    return false;
}

/* Lexically: "a/./b/../c" -> "a/c"; keeps a leading '/'. */
static char *clean_path(const char *p)
{
    _cleanup_strv_ char **parts = strv_split(p, "/");
    size_t n = strv_length(parts), k = 0;
    const char **keep = xcalloc(n + 1, sizeof(*keep));
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(parts[i], "."))
            continue;
        if (!strcmp(parts[i], "..") && k > 0 && strcmp(keep[k - 1], "..")) {
            k--;
            continue;
        }
        if (!strcmp(parts[i], "..") && p[0] == '/')
            continue;
        keep[k++] = parts[i];
    }
    hypr_buf b = {0};
    buf_puts(&b, p[0] == '/' ? "/" : "");
    for (size_t i = 0; i < k; i++)
        buf_printf(&b, "%s%s", i ? "/" : "", keep[i]);
    free(keep);
    if (!b.len)
        buf_puts(&b, ".");
    return buf_steal(&b);
}

char *cz_abs_path(const cz_ctx *c, const char *p)
{
    if (p[0] == '~' && (p[1] == '/' || !p[1])) {
        const json_t *h = json_object_get(c->env, "HOME");
        const char *home = json_is_string(h) ? json_string_value(h) : getenv("HOME");
        _cleanup_free_ char *j = xasprintf("%s%s", home ? home : "", p + 1);
        return clean_path(j);
    }
    if (p[0] == '/')
        return clean_path(p);
    _cleanup_free_ char *j = xasprintf("%s/%s", c->workdir, p);
    return clean_path(j);
}

/* Go's time.Duration.String(). */
static char *go_duration(int64_t ns)
{
    if (ns == 0)
        return xstrdup("0s");
    hypr_buf b = {0};
    uint64_t u = ns < 0 ? (uint64_t)(-(ns + 1)) + 1 : (uint64_t)ns;
    buf_puts(&b, ns < 0 ? "-" : "");
    if (u < 1000000000ull) {
        const char *unit = u < 1000 ? "ns" : u < 1000000 ? "µs" : "ms";
        uint64_t div = u < 1000 ? 1 : u < 1000000 ? 1000 : 1000000;
        buf_printf(&b, "%" PRIu64, u / div);
        uint64_t frac = u % div;
        if (frac) {
            char f[16];
            int w = div == 1000 ? 3 : 6;
            snprintf(f, sizeof(f), "%0*" PRIu64, w, frac);
            for (int i = w - 1; i > 0 && f[i] == '0'; i--)
                f[i] = '\0';
            buf_printf(&b, ".%s", f);
        }
        buf_puts(&b, unit);
        return buf_steal(&b);
    }
    uint64_t h = u / 3600000000000ull, m = u / 60000000000ull % 60, s = u / 1000000000ull % 60,
             frac = u % 1000000000ull;
    if (h)
        buf_printf(&b, "%" PRIu64 "h", h);
    if (h || m)
        buf_printf(&b, "%" PRIu64 "m", m);
    buf_printf(&b, "%" PRIu64, s);
    if (frac) {
        char f[16];
        snprintf(f, sizeof(f), "%09" PRIu64, frac);
        for (int i = 8; i > 0 && f[i] == '0'; i--)
            f[i] = '\0';
        buf_printf(&b, ".%s", f);
    }
    buf_puts(&b, "s");
    return buf_steal(&b);
}

int cz_duration(cz_ctx *c, const json_t *v, const char *path, json_t **out)
{
    _cleanup_free_ char *t = json_is_string(v) || json_is_integer(v) ? cz_scalar_text(v) : NULL;
    int64_t ns;
    if (!t || parse_duration_ns(t, &ns) < 0)
        return cz_errf(c, v, path, "invalid duration \"%s\" (use e.g. 30s, 1m30s)", t ? t : "");
    _cleanup_free_ char *d = go_duration(ns);
    *out = json_string(d);
    return 0;
}

/* ---- top level --------------------------------------------------------------------- */

static const char *const top_keys[] = {"version", "name",    "services", "networks",
                                       "volumes", "secrets", "configs"};

static bool active(const cz_ctx *c, const json_t *svc)
{
    const json_t *p = json_object_get(svc, "profiles");
    if (!json_is_array(p) || !json_array_size(p))
        return true;
    if (strv_contains(c->profiles, "*"))
        return true;
    size_t i;
    json_t *e;
    json_array_foreach(p, i, e) if (json_is_string(e) &&
                                    strv_contains(c->profiles, json_string_value(e))) return true;
    return false;
}

/* networks / volumes / secrets / configs entries. */
static int resource(cz_ctx *c, const char *kind, const char *key, const json_t *v, json_t **out)
{
    _cleanup_free_ char *path = xasprintf("%s.%s", kind, key);
    *out = NULL;
    if (!json_is_null(v) && !json_is_object(v))
        return cz_errf(c, v, path, "must be a mapping or null");
    json_t *o = json_object();
    *out = o;
    bool files = !strcmp(kind, "secrets") || !strcmp(kind, "configs");
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)v, k, e)
    {
        if (str_startswith(k, "x-"))
            continue;
        _cleanup_free_ char *p = xasprintf("%s.%s", path, k);
        if (!strcmp(k, "external")) {
            bool b = false;
            if (json_is_object(e)) {
                const json_t *n = json_object_get(e, "name");
                if (n && !json_is_string(n))
                    return cz_errf(c, e, p, "name must be a string");
                if (n)
                    json_object_set(o, "name", (json_t *)n);
                b = true;
            } else if (!cz_is_true(e, &b)) {
                return cz_errf(c, v, p, "must be a boolean");
            }
            if (b)
                json_object_set_new(o, "external", json_true());
        } else if (!strcmp(k, "labels") || !strcmp(k, "driver_opts")) {
            _cleanup_json_ json_t *m = cz_as_map(e);
            if (!m)
                return cz_errf(c, e, p, "must be a mapping");
            json_t *sm = json_object();
            const char *mk;
            json_t *mv;
            json_object_foreach(m, mk, mv)
            {
                _cleanup_free_ char *t = cz_scalar_text(mv);
                const char *raw = cz_raw(c, mv);
                json_object_set_new(sm, mk, json_string(raw ? raw : t ? t : ""));
            }
            json_object_set_new(o, k, sm);
        } else if (files && !strcmp(k, "file")) {
            if (!json_is_string(e))
                return cz_errf(c, v, p, "must be a path");
            _cleanup_free_ char *abs = cz_abs_path(c, json_string_value(e));
            if (c->check_files && access(abs, R_OK) < 0)
                return cz_errf(c, e, p, "%s %s: %s", kind, abs, strerror(errno));
            json_object_set_new(o, k, json_string(abs));
        } else if (!strcmp(k, "name")) {
            if (!json_is_string(e))
                return cz_errf(c, v, p, "must be a string");
            json_object_set(o, k, e);
        } else if (!strcmp(k, "driver") || !strcmp(k, "ipam") || !strcmp(k, "internal") ||
                   !strcmp(k, "attachable") || !strcmp(k, "enable_ipv6") ||
                   !strcmp(k, "enable_ipv4") ||
                   (files && (!strcmp(k, "environment") || !strcmp(k, "content") ||
                              !strcmp(k, "template_driver")))) {
            json_object_set_new(o, k, json_deep_copy(e));
        } else {
            return cz_errf(c, v, path, "unknown key \"%s\"", k);
        }
    }
    if (!json_object_get(o, "name") && !json_object_get(o, "external"))
        json_object_set_new(o, "name", json_sprintf("%s_%s", c->project, key));
    if (!strcmp(kind, "networks") && !json_object_get(o, "ipam"))
        json_object_set_new(o, "ipam", json_object());
    if (files && !json_object_get(o, "external") && !json_object_get(o, "file") &&
        !json_object_get(o, "environment") && !json_object_get(o, "content"))
        return cz_errf(c, v, path, "needs a file, environment, content or external");
    return 0;
}

static int check_refs(cz_ctx *c, const char *svc, const json_t *s, const json_t *model)
{
    const json_t *nets = json_object_get(model, "networks");
    const char *k;
    json_t *v;
    json_object_foreach(
        json_object_get(s, "networks"), k,
        v) if (!json_object_get(nets,
                                k)) return cz_errf(c, NULL, svc,
                                                   "service \"%s\" refers to undefined network %s",
                                                   svc, k);
    size_t i;
    json_array_foreach(json_object_get(s, "volumes"), i, v)
    {
        const char *src = json_string_value(json_object_get(v, "source"));
        if (src && !strcmp(json_string_value(json_object_get(v, "type")), "volume") &&
            !json_object_get(json_object_get(model, "volumes"), src))
            return cz_errf(c, NULL, svc, "service \"%s\" refers to undefined volume %s", svc, src);
    }
    static const char *const kinds[] = {"secrets", "configs"};
    for (size_t n = 0; n < ARRAY_SIZE(kinds); n++)
        json_array_foreach(json_object_get(s, kinds[n]), i, v)
        {
            const char *src = json_string_value(json_object_get(v, "source"));
            if (!json_object_get(json_object_get(model, kinds[n]), src))
                return cz_errf(c, NULL, svc, "service \"%s\" refers to undefined %.6s %s", svc,
                               kinds[n], src);
        }
    return 0;
}

/* Depth-first walk; state 1 = on the path, 2 = done. */
static int visit(cz_ctx *c, const json_t *services, const char *name, json_t *state, json_t *stack)
{
    json_int_t st = json_integer_value(json_object_get(state, name));
    if (st == 2)
        return 0;
    if (st == 1) {
        hypr_buf b = {0};
        size_t i;
        json_t *e;
        bool on = false;
        json_array_foreach(stack, i, e)
        {
            on = on || !strcmp(json_string_value(e), name);
            if (on)
                buf_printf(&b, "%s -> ", json_string_value(e));
        }
        buf_puts(&b, name);
        int r = cz_errf(c, NULL, "services", "dependency cycle detected: %s", b.data);
        buf_free(&b);
        return r;
    }
    json_object_set_new(state, name, json_integer(1));
    json_array_append_new(stack, json_string(name));
    const char *dep;
    json_t *v;
    json_object_foreach(json_object_get(json_object_get(services, name), "depends_on"), dep, v)
    {
        if (json_object_get(services, dep) && visit(c, services, dep, state, stack) < 0)
            return -EINVAL;
    }
    json_array_remove(stack, json_array_size(stack) - 1);
    json_object_set_new(state, name, json_integer(2));
    return 0;
}

int cz_normalize(cz_ctx *c, const json_t *raw, json_t **out)
{
    *out = NULL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)raw, k, v)
    {
        bool known = str_startswith(k, "x-");
        for (size_t i = 0; i < ARRAY_SIZE(top_keys) && !known; i++)
            known = !strcmp(top_keys[i], k);
        if (!known)
            return cz_errf(c, json_is_null(v) || json_is_boolean(v) ? raw : v, "(root)",
                           "unknown top-level key \"%s\"", k);
    }
    const json_t *services = json_object_get(raw, "services");
    if (services && !json_is_object(services) && !json_is_null(services))
        return cz_errf(c, services, "services", "must be a mapping");
    _cleanup_json_ json_t *model = json_pack("{s:s}", "name", c->project);
    json_t *svcs = json_object();
    json_object_set_new(model, "services", svcs);
    static const char *const kinds[] = {"networks", "volumes", "secrets", "configs"};
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        const json_t *m = json_object_get(raw, kinds[i]);
        if (!m || json_is_null(m))
            continue;
        if (!json_is_object(m))
            return cz_errf(c, m, kinds[i], "must be a mapping");
        json_t *o = json_object();
        json_object_set_new(model, kinds[i], o);
        json_object_foreach((json_t *)m, k, v)
        {
            if (str_startswith(k, "x-"))
                continue;
            json_t *r;
            if (resource(c, kinds[i], k, v, &r) < 0) {
                json_decref(r);
                return -EINVAL;
            }
            json_object_set_new(o, k, r);
        }
    }
    json_object_foreach((json_t *)services, k, v)
    {
        if (json_is_object(v) && !active(c, v))
            continue;
        json_t *s;
        if (cz_normalize_service(c, k, v, &s) < 0)
            return -EINVAL;
        json_object_set_new(svcs, k, s);
    }
    /* The default network exists when a service uses it. */
    json_object_foreach(svcs, k, v)
    {
        if (!json_object_get(json_object_get(v, "networks"), "default"))
            continue;
        json_t *nets = json_object_get(model, "networks");
        if (!nets) {
            nets = json_object();
            json_object_set_new(model, "networks", nets);
        }
        if (!json_object_get(nets, "default"))
            json_object_set_new(nets, "default",
                                json_pack("{s:s+, s:{}}", "name", c->project, "_default", "ipam"));
    }
    json_object_foreach(svcs, k, v)
    {
        if (check_refs(c, k, v, model) < 0)
            return -EINVAL;
        json_t *deps = json_object_get(v, "depends_on");
        const char *dep;
        json_t *d;
        void *tmp;
        json_object_foreach_safe(deps, tmp, dep, d)
        {
            if (json_object_get(svcs, dep))
                continue;
            /* Disabled by a profile, or optional: not an error. */
            if (json_object_get(services, dep) || json_is_false(json_object_get(d, "required"))) {
                json_object_del(deps, dep);
                continue;
            }
            _cleanup_free_ char *p = xasprintf("services.%s.depends_on", k);
            return cz_errf(c, NULL, p, "service \"%s\" depends on undefined service \"%s\"", k,
                           dep);
        }
    }
    json_object_foreach(svcs, k, v) if (json_object_size(json_object_get(v, "depends_on")) == 0)
        json_object_del(v, "depends_on");
    _cleanup_json_ json_t *state = json_object(), *stack = json_array();
    json_object_foreach(svcs, k, v) if (visit(c, svcs, k, state, stack) < 0) return -EINVAL;
    *out = TAKE_PTR(model);
    return 0;
}
