/* Several -f files and `extends`, merged as Docker Compose does: mappings merge
 * recursively, scalars are replaced, command/entrypoint/healthcheck.test are
 * replaced whole, environment-like fields merge by key, and the list fields Compose
 * appends (ports, volumes, dns, ...) are appended without exact duplicates (entries
 * with the same target are deduplicated when normalised). */
#include "compose/compose_internal.h"

#include <libgen.h>
#include <sys/stat.h>
#include <string.h>

#define EXTENDS_MAX_DEPTH 16

static const char *const map_fields[] = {"environment", "labels",      "annotations", "sysctls",
                                         "storage_opt", "driver_opts", "args"};
static const char *const append_fields[] = {
    "ports",     "expose",       "dns",        "dns_search",   "dns_opt",
    "cap_add",   "cap_drop",     "tmpfs",      "links",        "external_links",
    "volumes",   "secrets",      "configs",    "env_file",     "extra_hosts",
    "devices",   "security_opt", "label_file", "volumes_from", "device_cgroup_rules",
    "group_add", "profiles"};
static const char *const replace_fields[] = {"command", "entrypoint", "test"};

static bool in_list(const char *const *l, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(l[i], k))
            return true;
    return false;
}

json_t *cz_as_map(const json_t *v)
{
    if (json_is_object(v))
        return json_copy((json_t *)v);
    if (!json_is_array(v))
        return NULL;
    json_t *o = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        _cleanup_free_ char *s = cz_scalar_text(e);
        if (!s || !*s) {
            json_decref(o);
            return NULL;
        }
        char *eq = strchr(s, '=');
        /* a key is a YAML key again in config's output: no control characters */
        for (const char *p = s; *p && (!eq || p < eq); p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                json_decref(o);
                return NULL;
            }
        if (eq) {
            *eq = '\0';
            json_object_set_new(o, s, json_string(eq + 1));
        } else {
            json_object_set_new(o, s, json_null());
        }
    }
    return o;
}

static json_t *as_list(const json_t *v)
{
    if (json_is_array(v))
        return json_copy((json_t *)v);
    json_t *a = json_array();
    if (!json_is_null(v))
        json_array_append((json_t *)a, (json_t *)v);
    return a;
}

static json_t *deep_merge(const json_t *base, const json_t *over, const char *key);

static json_t *merge_objects(const json_t *base, const json_t *over)
{
    json_t *out = json_copy((json_t *)base);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)over, k, v)
    {
        json_t *b = json_object_get(out, k);
        json_object_set_new(out, k, b ? deep_merge(b, v, k) : json_incref(v));
    }
    return out;
}

static json_t *append_unique(const json_t *base, const json_t *over)
{
    json_t *out = as_list(base);
    _cleanup_json_ json_t *o = as_list(over);
    size_t i, j;
    json_t *e, *x;
    json_array_foreach(o, i, e)
    {
        bool dup = false;
        json_array_foreach(out, j, x) if (json_equal(x, e)) dup = true;
        if (!dup)
            json_array_append(out, e);
    }
    return out;
}

/* Lists given as one string (dns: 8.8.8.8) are lists too. */
static json_t *deep_merge(const json_t *base, const json_t *over, const char *key)
{
    if (key && in_list(replace_fields, ARRAY_SIZE(replace_fields), key))
        return json_incref((json_t *)over);
    if (key && in_list(map_fields, ARRAY_SIZE(map_fields), key)) {
        _cleanup_json_ json_t *b = cz_as_map(base), *o = cz_as_map(over);
        if (b && o)
            return merge_objects(b, o);
        return json_incref((json_t *)over);
    }
    if (key && in_list(append_fields, ARRAY_SIZE(append_fields), key) &&
        (json_is_array(base) || json_is_array(over)))
        return append_unique(base, over);
    if (json_is_object(base) && json_is_object(over))
        return merge_objects(base, over);
    return json_incref((json_t *)over);
}

/* Both shapes of depends_on / networks as a map, so a list merges with a map. */
static json_t *list_to_keys(const json_t *v, bool depends)
{
    if (!json_is_array(v))
        return json_incref((json_t *)v);
    json_t *o = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (json_is_string(e)) json_object_set_new(
        o, json_string_value(e),
        depends ? json_pack("{s:s}", "condition", "service_started") : json_null());
    return o;
}

static json_t *build_as_map(const json_t *v)
{
    if (json_is_string(v))
        return json_pack("{s:O}", "context", v);
    return json_incref((json_t *)v);
}

json_t *cz_merge_service(const json_t *base, const json_t *over)
{
    if (!json_is_object(base) || !json_is_object(over))
        return json_incref((json_t *)over);
    json_t *out = json_copy((json_t *)base);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)over, k, v)
    {
        json_t *b = json_object_get(out, k);
        if (!b) {
            json_object_set(out, k, v);
        } else if (!strcmp(k, "depends_on") || !strcmp(k, "networks")) {
            bool dep = k[0] == 'd';
            _cleanup_json_ json_t *bm = list_to_keys(b, dep), *om = list_to_keys(v, dep);
            json_object_set_new(out, k, deep_merge(bm, om, NULL));
        } else if (!strcmp(k, "build")) {
            _cleanup_json_ json_t *bm = build_as_map(b), *om = build_as_map(v);
            json_object_set_new(out, k, deep_merge(bm, om, NULL));
        } else {
            json_object_set_new(out, k, deep_merge(b, v, k));
        }
    }
    return out;
}

json_t *cz_merge_project(const json_t *base, const json_t *over)
{
    json_t *out = json_copy((json_t *)base);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)over, k, v)
    {
        json_t *b = json_object_get(out, k);
        if (!b || !json_is_object(b) || !json_is_object(v)) {
            json_object_set(out, k, v);
            continue;
        }
        bool services = !strcmp(k, "services");
        json_t *m = json_copy(b);
        const char *name;
        json_t *e;
        json_object_foreach(v, name, e)
        {
            json_t *be = json_object_get(m, name);
            json_t *n = !be                                       ? json_incref(e)
                        : services                                ? cz_merge_service(be, e)
                        : json_is_object(be) && json_is_object(e) ? merge_objects(be, e)
                                                                  : json_incref(e);
            json_object_set_new(m, name, n);
        }
        json_object_set_new(out, k, m);
    }
    return out;
}

/* ---- extends ------------------------------------------------------------------------ */

static int load_other(cz_ctx *c, const char *dir, const char *file, json_t **out)
{
    _cleanup_free_ char *path = file[0] == '/' ? xstrdup(file) : path_join(dir, file);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    /* Only regular files: a FIFO or /dev/stdin named by a file would block the load. */
    struct stat st;
    int r = stat(path, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : 0;
    if (r == 0)
        r = read_file(path, COMPOSE_FILE_MAX, &data, &len);
    if (r < 0)
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, -r, "read %s: %s", path,
                        r == -EINVAL ? "not a regular file" : strerror(-r));
    _cleanup_free_ char *copy = xstrdup(path);
    c->names = strv_append(c->names, basename(copy));
    return cz_yaml_load(c, data, len, c->names[strv_length(c->names) - 1], out);
}

/* A relative host path of another file's service is relative to that file. */
static json_t *rebase_one(const json_t *v, const char *dir)
{
    const char *p = json_string_value(v);
    if (!p || p[0] == '/' || p[0] == '~' || strstr(p, "://") || str_startswith(p, "git@"))
        return json_incref((json_t *)v);
    _cleanup_free_ char *j = path_join(dir, p);
    return json_string(j);
}

static json_t *rebase_paths(const json_t *svc, const char *dir)
{
    json_t *out = json_copy((json_t *)svc);
    if (!json_is_object(out))
        return out;
    const json_t *b = json_object_get(svc, "build");
    if (json_is_string(b)) {
        json_object_set_new(out, "build", rebase_one(b, dir));
    } else if (json_is_object(b)) {
        json_t *nb = json_copy((json_t *)b);
        const json_t *ctx = json_object_get(b, "context");
        json_object_set_new(nb, "context", ctx ? rebase_one(ctx, dir) : json_string(dir));
        json_object_set_new(out, "build", nb);
    }
    const json_t *ef = json_object_get(svc, "env_file");
    if (json_is_string(ef)) {
        json_object_set_new(out, "env_file", rebase_one(ef, dir));
    } else if (json_is_array(ef)) {
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(ef, i, e)
        {
            if (json_is_object(e)) {
                json_t *ne = json_copy(e);
                json_object_set_new(ne, "path", rebase_one(json_object_get(e, "path"), dir));
                json_array_append_new(a, ne);
            } else {
                json_array_append_new(a, rebase_one(e, dir));
            }
        }
        json_object_set_new(out, "env_file", a);
    }
    const json_t *vols = json_object_get(svc, "volumes");
    if (json_is_array(vols)) {
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(vols, i, e)
        {
            const char *s = json_string_value(e);
            if (s && s[0] == '.' && strchr(s, ':')) {
                _cleanup_free_ char *abs = path_join(dir, s);
                json_array_append_new(a, json_string(abs));
            } else if (json_is_object(e) &&
                       !strcmp(json_string_value(json_object_get(e, "type")) ?: "", "bind") &&
                       json_is_string(json_object_get(e, "source"))) {
                json_t *ne = json_copy(e);
                json_object_set_new(ne, "source", rebase_one(json_object_get(e, "source"), dir));
                json_array_append_new(a, ne);
            } else {
                json_array_append(a, e);
            }
        }
        json_object_set_new(out, "volumes", a);
    }
    return out;
}

static int resolve_one(cz_ctx *c, const json_t *services, const char *name, const char *dir,
                       int depth, json_t **out)
{
    const json_t *svc = json_object_get(services, name);
    _cleanup_free_ char *path = xasprintf("services.%s", name);
    if (!svc)
        return cz_errf(c, services, "services", "extends: service \"%s\" not found", name);
    if (!json_is_object(svc)) {
        *out = json_incref((json_t *)svc);
        return 0;
    }
    const json_t *ext = json_object_get(svc, "extends");
    if (!ext) {
        *out = json_incref((json_t *)svc);
        return 0;
    }
    _cleanup_free_ char *epath = xasprintf("%s.extends", path);
    if (depth > EXTENDS_MAX_DEPTH)
        return cz_errf(c, ext, epath, "extends: too deep or a cycle (service \"%s\")", name);
    const char *base_name = NULL, *file = NULL;
    if (json_is_string(ext)) {
        base_name = json_string_value(ext);
    } else if (json_is_object(ext)) {
        const json_t *s = json_object_get(ext, "service"), *f = json_object_get(ext, "file");
        if (!json_is_string(s) || (f && !json_is_string(f)))
            return cz_errf(c, ext, epath, "extends needs a service name (and an optional file)");
        base_name = json_string_value(s);
        file = f ? json_string_value(f) : NULL;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)ext, k,
                            v) if (strcmp(k, "service") &&
                                   strcmp(k, "file")) return cz_errf(c, ext, epath,
                                                                     "extends: unknown key \"%s\"",
                                                                     k);
    } else {
        return cz_errf(c, ext, epath, "extends must be a service name or a mapping");
    }
    _cleanup_json_ json_t *base = NULL;
    if (file) {
        json_t *other;
        if (load_other(c, dir, file, &other) < 0)
            return -EINVAL;
        const json_t *osvcs = json_object_get(other, "services");
        if (!json_is_object(osvcs) || !json_object_get(osvcs, base_name))
            return cz_errf(c, ext, epath, "extends: service \"%s\" not found in %s", base_name,
                           file);
        _cleanup_free_ char *copy = file[0] == '/' ? xstrdup(file) : path_join(dir, file);
        const char *odir = dirname(copy);
        if (resolve_one(c, osvcs, base_name, odir, depth + 1, &base) < 0)
            return -EINVAL;
        json_t *rebased = rebase_paths(base, odir);
        json_decref(base);
        base = rebased;
    } else {
        if (!strcmp(base_name, name))
            return cz_errf(c, ext, epath, "service \"%s\" extends itself", name);
        if (resolve_one(c, services, base_name, dir, depth + 1, &base) < 0)
            return -EINVAL;
    }
    _cleanup_json_ json_t *own = json_copy((json_t *)svc);
    json_object_del(own, "extends");
    if (json_is_object(base))
        json_object_del(base, "extends");
    *out = cz_merge_service(base, own);
    return 0;
}

int cz_resolve_extends(cz_ctx *c, json_t *model, const char *file_dir)
{
    json_t *services = json_object_get(model, "services");
    if (!json_is_object(services))
        return 0;
    _cleanup_json_ json_t *resolved = json_object();
    const char *name;
    json_t *svc;
    json_object_foreach(services, name, svc)
    {
        json_t *r;
        if (resolve_one(c, services, name, file_dir, 0, &r) < 0)
            return -EINVAL;
        json_object_set_new(resolved, name, r);
    }
    json_object_set(model, "services", resolved);
    return 0;
}

/* ---- include ------------------------------------------------------------------------ */

static int include_paths(cz_ctx *c, const json_t *e, const char *path, json_t **paths)
{
    *paths = json_array();
    const json_t *p = json_is_object(e) ? json_object_get(e, "path") : e;
    if (json_is_string(p)) {
        json_array_append(*paths, (json_t *)p);
        return 0;
    }
    size_t i;
    json_t *x;
    if (json_is_array(p) && json_array_size(p)) {
        json_array_foreach(p, i, x)
        {
            if (!json_is_string(x))
                return cz_errf(c, e, path, "include paths must be strings");
            json_array_append(*paths, x);
        }
        return 0;
    }
    return cz_errf(c, e, path, "must be a path or a mapping with a path");
}

int cz_resolve_includes(cz_ctx *c, const json_t *doc, const char *dir, int depth, json_t **out)
{
    *out = NULL;
    const json_t *inc = json_object_get(doc, "include");
    if (!inc) {
        *out = json_incref((json_t *)doc);
        return 0;
    }
    if (depth > EXTENDS_MAX_DEPTH)
        return cz_errf(c, inc, "include", "includes nested too deeply (or a cycle)");
    if (!json_is_array(inc))
        return cz_errf(c, inc, "include", "must be a list");
    _cleanup_json_ json_t *acc = json_object();
    size_t i, j;
    json_t *e, *p;
    json_array_foreach(inc, i, e)
    {
        _cleanup_free_ char *ipath = xasprintf("include[%zu]", i);
        _cleanup_json_ json_t *paths = NULL;
        if (include_paths(c, e, ipath, &paths) < 0)
            return -EINVAL;
        json_array_foreach(paths, j, p)
        {
            const char *file = json_string_value(p);
            json_t *other;
            if (load_other(c, dir, file, &other) < 0)
                return -EINVAL;
            _cleanup_free_ char *copy = file[0] == '/' ? xstrdup(file) : path_join(dir, file);
            const char *odir = dirname(copy);
            _cleanup_json_ json_t *resolved = NULL;
            if (cz_resolve_includes(c, other, odir, depth + 1, &resolved) < 0)
                return -EINVAL;
            _cleanup_json_ json_t *model = json_copy(resolved);
            if (cz_resolve_extends(c, model, odir) < 0)
                return -EINVAL;
            /* its services' relative paths are relative to its own directory */
            json_t *svcs = json_object_get(model, "services");
            if (json_is_object(svcs)) {
                json_t *rebased = json_object();
                const char *k;
                json_t *s;
                json_object_foreach(svcs, k, s)
                    json_object_set_new(rebased, k, rebase_paths(s, odir));
                json_object_set_new(model, "services", rebased);
            }
            json_t *m = cz_merge_project(acc, model);
            json_decref(acc);
            acc = m;
        }
    }
    _cleanup_json_ json_t *own = json_copy((json_t *)doc);
    json_object_del(own, "include");
    *out = cz_merge_project(acc, own);
    return 0;
}
