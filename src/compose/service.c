/* One service, normalised: short syntaxes become the long ones `docker compose
 * config` prints, relative paths become absolute, env_file and label_file are read
 * into environment and labels, durations are written as Go prints them. */
#include "compose/compose_internal.h"

#include <string.h>

#include "volume/volume.h"

/* Every key the compose-spec defines for a service; others are errors. */
static const char *const service_keys[] = {"annotations",
                                           "attach",
                                           "blkio_config",
                                           "build",
                                           "cap_add",
                                           "cap_drop",
                                           "cgroup",
                                           "cgroup_parent",
                                           "command",
                                           "configs",
                                           "container_name",
                                           "cpu_count",
                                           "cpu_percent",
                                           "cpu_period",
                                           "cpu_quota",
                                           "cpu_rt_period",
                                           "cpu_rt_runtime",
                                           "cpu_shares",
                                           "cpus",
                                           "cpuset",
                                           "credential_spec",
                                           "depends_on",
                                           "deploy",
                                           "develop",
                                           "device_cgroup_rules",
                                           "devices",
                                           "dns",
                                           "dns_opt",
                                           "dns_search",
                                           "domainname",
                                           "entrypoint",
                                           "env_file",
                                           "environment",
                                           "expose",
                                           "extends",
                                           "external_links",
                                           "extra_hosts",
                                           "gpus",
                                           "group_add",
                                           "healthcheck",
                                           "hostname",
                                           "image",
                                           "init",
                                           "ipc",
                                           "isolation",
                                           "label_file",
                                           "labels",
                                           "links",
                                           "logging",
                                           "mac_address",
                                           "mem_limit",
                                           "mem_reservation",
                                           "mem_swappiness",
                                           "memswap_limit",
                                           "models",
                                           "network_mode",
                                           "networks",
                                           "oom_kill_disable",
                                           "oom_score_adj",
                                           "pid",
                                           "pids_limit",
                                           "platform",
                                           "ports",
                                           "post_start",
                                           "pre_stop",
                                           "privileged",
                                           "profiles",
                                           "provider",
                                           "pull_policy",
                                           "read_only",
                                           "restart",
                                           "runtime",
                                           "scale",
                                           "secrets",
                                           "security_opt",
                                           "shm_size",
                                           "stdin_open",
                                           "stop_grace_period",
                                           "stop_signal",
                                           "storage_opt",
                                           "sysctls",
                                           "tmpfs",
                                           "tty",
                                           "ulimits",
                                           "use_api_socket",
                                           "user",
                                           "userns_mode",
                                           "uts",
                                           "volumes",
                                           "volumes_from",
                                           "working_dir"};

typedef struct svc_ctx {
    cz_ctx *c;
    const char *name;
    const json_t *raw; /* the service mapping */
    json_t *out;
} svc_ctx;

typedef int (*field_fn)(svc_ctx *s, const char *key, const json_t *v, const char *path);

/* ---- small helpers ---------------------------------------------------------------- */

static int type_error(svc_ctx *s, const json_t *v, const char *path, const char *what)
{
    return cz_errf(s->c, v ? v : s->raw, path, "must be %s", what);
}

/* A string, or a list of strings/numbers, as a list of strings. */
static int string_list(svc_ctx *s, const json_t *v, const char *path, json_t **out)
{
    json_t *a = json_array();
    if (json_is_string(v)) {
        json_array_append(a, (json_t *)v);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            _cleanup_free_ char *t =
                json_is_object(e) || json_is_array(e) || json_is_null(e) ? NULL : cz_scalar_text(e);
            if (!t) {
                json_decref(a);
                _cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
                return type_error(s, e ? e : v, p, "a string");
            }
            const char *raw = cz_raw(s->c, e);
            json_array_append_new(a, json_string(raw ? raw : t));
        }
    } else {
        json_decref(a);
        return type_error(s, v, path, "a string or a list of strings");
    }
    *out = a;
    return 0;
}

/* A map or a list of K=V as a map of strings (null stays null unless env). */
static int string_map(svc_ctx *s, const json_t *v, const char *path, bool from_env, json_t **out);
static int f_refs(svc_ctx *s, const char *key, const json_t *v, const char *path);

/* A map or a list of K=V as a map of strings: null stays null (environment, args:
 * taken from the environment when it has the name), or is "" (labels). */
static int string_map(svc_ctx *s, const json_t *v, const char *path, bool from_env, json_t **out)
{
    _cleanup_json_ json_t *m = cz_as_map(v);
    if (!m)
        return type_error(s, v, path, "a mapping or a list of KEY=VALUE strings");
    json_t *o = json_object();
    const char *k;
    json_t *e;
    json_object_foreach(m, k, e)
    {
        if (json_is_object(e) || json_is_array(e)) {
            json_decref(o);
            _cleanup_free_ char *p = xasprintf("%s.%s", path, k);
            return type_error(s, e, p, "a string, a number or null");
        }
        if (json_is_null(e)) {
            const json_t *ev = from_env ? json_object_get(s->c->env, k) : NULL;
            json_object_set_new(o, k,
                                ev         ? json_incref((json_t *)ev)
                                : from_env ? json_null()
                                           : json_string(""));
            continue;
        }
        const char *raw = cz_raw(s->c, e);
        _cleanup_free_ char *t = cz_scalar_text(e);
        json_object_set_new(o, k, json_string(raw ? raw : t));
    }
    *out = o;
    return 0;
}

static bool is_remote(const char *p)
{
    return strstr(p, "://") || str_startswith(p, "git@") || str_startswith(p, "github.com/");
}

/* Go's shellwords as Compose splits a string command. */
static int shell_split(svc_ctx *s, const char *str, const json_t *v, const char *path, json_t **out)
{
    json_t *a = json_array();
    _cleanup_buf_ hypr_buf w = {0};
    bool inword = false;
    char q = 0;
    for (const char *p = str; *p; p++) {
        if (q) {
            if (*p == q)
                q = 0;
            else if (q == '"' && *p == '\\' && p[1] && strchr("\"\\$`", p[1]))
                buf_append(&w, ++p, 1);
            else
                buf_append(&w, p, 1);
            continue;
        }
        if (*p == ' ' || *p == '\t' || *p == '\n') {
            if (inword)
                json_array_append_new(a, json_stringn(w.data ? w.data : "", w.len));
            w.len = 0;
            inword = false;
            continue;
        }
        inword = true;
        if (*p == '\'' || *p == '"')
            q = *p;
        else if (*p == '\\' && p[1])
            buf_append(&w, ++p, 1);
        else
            buf_append(&w, p, 1);
    }
    if (q) {
        json_decref(a);
        return cz_errf(s->c, v, path, "unterminated quote in \"%s\"", str);
    }
    if (inword)
        json_array_append_new(a, json_stringn(w.data ? w.data : "", w.len));
    *out = a;
    return 0;
}

/* ---- fields ----------------------------------------------------------------------- */

static int f_copy(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_object_set_new(s->out, key, json_deep_copy(v));
    return 0;
}

static int f_drop(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    return 0;
}

static int f_string(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    if (json_is_null(v))
        return 0;
    _cleanup_free_ char *t = json_is_object(v) || json_is_array(v) ? NULL : cz_scalar_text(v);
    if (!t)
        return type_error(s, v, path, "a string");
    json_object_set_new(s->out, key, json_string(t));
    return 0;
}

static int f_bool(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    bool b;
    if (!cz_is_true(v, &b))
        return type_error(s, v, path, "a boolean");
    json_object_set_new(s->out, key, json_boolean(b));
    return 0;
}

static int f_int(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    int64_t n;
    _cleanup_free_ char *t = cz_scalar_text(v);
    if (!t || json_is_boolean(v) || parse_int64(t, INT64_MIN, INT64_MAX, &n) < 0)
        return type_error(s, v, path, "an integer");
    json_object_set_new(s->out, key, json_integer(n));
    return 0;
}

static int f_list(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_t *a;
    if (string_list(s, v, path, &a) < 0)
        return -EINVAL;
    json_object_set_new(s->out, key, a);
    return 0;
}

static int f_map(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_t *m;
    if (string_map(s, v, path, false, &m) < 0)
        return -EINVAL;
    json_object_set_new(s->out, key, m);
    return 0;
}

static int f_duration(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_t *d;
    if (cz_duration(s->c, v, path, &d) < 0)
        return -EINVAL;
    json_object_set_new(s->out, key, d);
    return 0;
}

static int f_command(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_t *a;
    if (json_is_null(v)) {
        json_object_set_new(s->out, key, json_null());
        return 0;
    }
    if (json_is_string(v)) {
        if (shell_split(s, json_string_value(v), v, path, &a) < 0)
            return -EINVAL;
    } else if (string_list(s, v, path, &a) < 0) {
        return -EINVAL;
    }
    json_object_set_new(s->out, key, a);
    return 0;
}

static int f_build(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    _cleanup_json_ json_t *b = NULL;
    if (json_is_string(v))
        b = json_pack("{s:O}", "context", v);
    else if (json_is_object(v))
        b = json_deep_copy(v);
    else
        return type_error(s, v, path, "a context path or a mapping");
    const json_t *ctx = json_object_get(b, "context");
    if (ctx && !json_is_string(ctx))
        return type_error(s, ctx, path, "a string (build.context)");
    const char *cs = ctx ? json_string_value(ctx) : ".";
    _cleanup_free_ char *context = is_remote(cs) ? xstrdup(cs) : cz_abs_path(s->c, cs);
    json_object_set_new(b, "context", json_string(context));
    if (!json_object_get(b, "dockerfile") && !json_object_get(b, "dockerfile_inline"))
        json_object_set_new(b, "dockerfile", json_string("Dockerfile"));
    _cleanup_free_ char *ap = xasprintf("%s.args", path), *lp = xasprintf("%s.labels", path);
    const json_t *args = json_object_get(b, "args"), *labels = json_object_get(b, "labels");
    json_t *m;
    if (args) {
        if (string_map(s, args, ap, true, &m) < 0)
            return -EINVAL;
        json_object_set_new(b, "args", m);
    }
    if (labels) {
        if (string_map(s, labels, lp, false, &m) < 0)
            return -EINVAL;
        json_object_set_new(b, "labels", m);
    }
    const json_t *secrets = json_object_get(v, "secrets");
    if (json_is_object(v) && secrets) {
        _cleanup_free_ char *sp = xasprintf("%s.secrets", path);
        svc_ctx sub = {s->c, s->name, v, json_object()};
        int r = f_refs(&sub, "secrets", secrets, sp);
        json_object_set(b, "secrets", json_object_get(sub.out, "secrets"));
        json_decref(sub.out);
        if (r < 0)
            return r;
    }
    json_t *add = json_object_get(b, "additional_contexts");
    if (json_is_object(add)) {
        const char *k;
        json_t *e;
        json_object_foreach(add, k, e) if (json_is_string(e) && !strchr(json_string_value(e), ':'))
        {
            char *abs = cz_abs_path(s->c, json_string_value(e));
            json_object_set_new(add, k, json_string(abs));
            free(abs);
        }
    }
    json_object_set_new(s->out, key, TAKE_PTR(b));
    return 0;
}

static int read_env_files(svc_ctx *s, const json_t *v, const char *path, const char *field,
                          json_t *into, json_t **list)
{
    json_t *out = json_array();
    *list = out;
    _cleanup_json_ json_t *items =
        json_is_array(v) ? json_incref((json_t *)v) : json_pack("[O]", v);
    size_t i;
    json_t *e;
    json_array_foreach(items, i, e)
    {
        _cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
        const json_t *pv = json_is_object(e) ? json_object_get(e, "path") : e;
        bool required = true;
        if (json_is_object(e) && json_object_get(e, "required") &&
            !cz_is_true(json_object_get(e, "required"), &required))
            return type_error(s, e, p, "a mapping with a boolean \"required\"");
        if (!json_is_string(pv))
            return type_error(s, e, p, "a path or a mapping with a path");
        _cleanup_free_ char *abs = cz_abs_path(s->c, json_string_value(pv));
        if (!strcmp(field, "label_file"))
            json_array_append_new(out, json_string(abs));
        else if (required)
            json_array_append_new(out, json_pack("{s:s}", "path", abs));
        else
            json_array_append_new(out, json_pack("{s:s, s:b}", "path", abs, "required", 0));
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_json_ json_t *vals = json_object();
        int r = cz_dotenv_load(abs, s->c->env, vals, &err);
        if (r == -ENOENT) {
            if (required && s->c->check_files)
                return cz_errf(s->c, e, p, "%s %s not found", field, abs);
            continue;
        }
        if (r < 0)
            return cz_errf(s->c, e, p, "%s", err.message);
        json_object_update(into, vals);
    }
    return 0;
}

/* environment + env_file, labels + label_file: the file's values under the map's. */
static int f_keyed_with_file(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    bool env = !strcmp(key, "environment") || !strcmp(key, "env_file");
    const char *mkey = env ? "environment" : "labels", *fkey = env ? "env_file" : "label_file";
    if (json_object_get(s->out, mkey))
        return 0; /* done with the other key */
    _cleanup_json_ json_t *merged = json_object();
    const json_t *fv = json_object_get(s->raw, fkey), *mv = json_object_get(s->raw, mkey);
    _cleanup_free_ char *fpath = xasprintf("services.%s.%s", s->name, fkey);
    _cleanup_free_ char *mpath = xasprintf("services.%s.%s", s->name, mkey);
    if (fv && !json_is_null(fv)) {
        json_t *list;
        if (read_env_files(s, fv, fpath, fkey, merged, &list) < 0) {
            json_decref(list);
            return -EINVAL;
        }
        json_object_set_new(s->out, fkey, list);
    }
    if (mv && !json_is_null(mv)) {
        json_t *m;
        if (string_map(s, mv, mpath, env, &m) < 0)
            return -EINVAL;
        json_object_update(merged, m);
        json_decref(m);
    }
    json_object_set(s->out, mkey, merged);
    return 0;
}

static int f_expose(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    _cleanup_json_ json_t *l = json_is_array(v) ? json_incref((json_t *)v) : json_pack("[O]", v);
    return f_list(s, key, l, path);
}

static int f_extra_hosts(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_t *a = json_array();
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            _cleanup_free_ char *t = cz_scalar_text(e);
            json_array_append_new(a, json_sprintf("%s=%s", k, t ? t : ""));
        }
    } else {
        json_t *l;
        if (string_list(s, v, path, &l) < 0) {
            json_decref(a);
            return -EINVAL;
        }
        size_t i;
        json_t *e;
        json_array_foreach(l, i, e)
        {
            _cleanup_free_ char *t = xstrdup(json_string_value(e));
            char *sep = strchr(t, '=') ? NULL : strchr(t, ':');
            if (sep)
                *sep = '=';
            json_array_append_new(a, json_string(t));
        }
        json_decref(l);
    }
    json_object_set_new(s->out, key, a);
    return 0;
}

static int f_depends_on(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_t *o = json_object();
    json_object_set_new(s->out, key, o);
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                _cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
                return type_error(s, e, p, "a service name");
            }
            json_object_set_new(
                o, json_string_value(e),
                json_pack("{s:s, s:b}", "condition", "service_started", "required", 1));
        }
        return 0;
    }
    if (!json_is_object(v))
        return type_error(s, v, path, "a list or a mapping of services");
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)v, k, e)
    {
        _cleanup_free_ char *p = xasprintf("%s.%s", path, k);
        if (!json_is_object(e) && !json_is_null(e))
            return type_error(s, e, p, "a mapping");
        const json_t *cond = json_object_get(e, "condition");
        const char *cs = cond ? json_string_value(cond) : "service_started";
        if (!cs || (strcmp(cs, "service_started") && strcmp(cs, "service_healthy") &&
                    strcmp(cs, "service_completed_successfully")))
            return cz_errf(s->c, cond, p,
                           "invalid condition \"%s\": use service_started, service_healthy or "
                           "service_completed_successfully",
                           cs ? cs : "?");
        bool req = true, restart = false;
        const json_t *rv = json_object_get(e, "required"), *sv = json_object_get(e, "restart");
        if ((rv && !cz_is_true(rv, &req)) || (sv && !cz_is_true(sv, &restart)))
            return type_error(s, e, p, "a mapping with boolean required/restart");
        const char *ek;
        json_t *ev;
        json_object_foreach(e, ek,
                            ev) if (strcmp(ek, "condition") && strcmp(ek, "required") &&
                                    strcmp(ek, "restart")) return cz_errf(s->c, e, p,
                                                                          "unknown key \"%s\"", ek);
        json_t *d = json_pack("{s:s, s:b}", "condition", cs, "required", req);
        if (restart)
            json_object_set_new(d, "restart", json_true());
        json_object_set_new(o, k, d);
    }
    return 0;
}

static int f_networks(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_t *o = json_object();
    json_object_set_new(s->out, key, o);
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                _cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
                return type_error(s, e, p, "a network name");
            }
            json_object_set_new(o, json_string_value(e), json_null());
        }
        return 0;
    }
    if (!json_is_object(v))
        return type_error(s, v, path, "a list or a mapping of networks");
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)v, k, e)
    {
        _cleanup_free_ char *p = xasprintf("%s.%s", path, k);
        if (!json_is_object(e) && !json_is_null(e))
            return type_error(s, e, p, "a mapping or null");
        json_t *n = json_deep_copy(e);
        json_t *al = json_object_get(e, "aliases");
        if (al) {
            json_t *l;
            _cleanup_free_ char *ap = xasprintf("%s.aliases", p);
            if (string_list(s, al, ap, &l) < 0) {
                json_decref(n);
                return -EINVAL;
            }
            json_object_set_new(n, "aliases", l);
        }
        json_object_set_new(o, k, n);
    }
    return 0;
}

static int f_healthcheck(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    if (!json_is_object(v))
        return type_error(s, v, path, "a mapping");
    json_t *h = json_object();
    json_object_set_new(s->out, key, h);
    const char *k;
    json_t *e;
    json_object_foreach((json_t *)v, k, e)
    {
        _cleanup_free_ char *p = xasprintf("%s.%s", path, k);
        json_t *x = NULL;
        if (!strcmp(k, "test")) {
            if (json_is_string(e)) {
                x = json_pack("[s, O]", "CMD-SHELL", e);
            } else if (string_list(s, e, p, &x) < 0) {
                return -EINVAL;
            } else if (json_array_size(x)) {
                const char *first = json_string_value(json_array_get(x, 0));
                if (strcmp(first, "CMD") && strcmp(first, "CMD-SHELL") && strcmp(first, "NONE")) {
                    json_decref(x);
                    return cz_errf(s->c, e, p, "must start with CMD, CMD-SHELL or NONE");
                }
            }
        } else if (!strcmp(k, "interval") || !strcmp(k, "timeout") || !strcmp(k, "start_period") ||
                   !strcmp(k, "start_interval")) {
            if (cz_duration(s->c, e, p, &x) < 0)
                return -EINVAL;
        } else if (!strcmp(k, "retries")) {
            int64_t n;
            _cleanup_free_ char *t = cz_scalar_text(e);
            if (!t || parse_int64(t, 0, INT32_MAX, &n) < 0)
                return type_error(s, e, p, "a non-negative integer");
            x = json_integer(n);
        } else if (!strcmp(k, "disable")) {
            bool b;
            if (!cz_is_true(e, &b))
                return type_error(s, e, p, "a boolean");
            x = json_boolean(b);
        } else if (str_startswith(k, "x-")) {
            continue;
        } else {
            return cz_errf(s->c, v, path, "unknown key \"%s\"", k);
        }
        json_object_set_new(h, k, x);
    }
    return 0;
}

/* secrets: / configs: entries: "name" or {source, target, uid, gid, mode}. */
static int f_refs(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    if (!json_is_array(v))
        return type_error(s, v, path, "a list");
    json_t *a = json_array();
    json_object_set_new(s->out, key, a);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        _cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
        if (json_is_string(e)) {
            json_array_append_new(a, json_pack("{s:O}", "source", e));
            continue;
        }
        if (!json_is_object(e) || !json_is_string(json_object_get(e, "source")))
            return type_error(s, e, p, "a name or a mapping with a source");
        json_t *r = json_object();
        const char *k;
        json_t *x;
        json_object_foreach(e, k, x)
        {
            if (str_startswith(k, "x-"))
                continue;
            if (strcmp(k, "source") && strcmp(k, "target") && strcmp(k, "uid") &&
                strcmp(k, "gid") && strcmp(k, "mode")) {
                json_decref(r);
                return cz_errf(s->c, e, p, "unknown key \"%s\"", k);
            }
            const char *raw = cz_raw(s->c, x);
            _cleanup_free_ char *t = cz_scalar_text(x);
            if (!t) {
                json_decref(r);
                return type_error(s, x, p, "a mapping of strings");
            }
            json_object_set_new(r, k, json_string(raw ? raw : t));
        }
        json_array_append_new(a, r);
    }
    return 0;
}

/* ports and volumes live in ports.c; deploy too. */
int cz_service_ports(cz_ctx *c, const json_t *v, const char *path, json_t **out);
int cz_service_volumes(cz_ctx *c, const json_t *v, const char *path, json_t **out);
int cz_service_deploy(cz_ctx *c, const json_t *v, const char *path, json_t **out);

static int f_ports(svc_ctx *s, const char *key, const json_t *v, const char *path)
{
    json_t *o = NULL;
    int r = !strcmp(key, "ports")     ? cz_service_ports(s->c, v, path, &o)
            : !strcmp(key, "volumes") ? cz_service_volumes(s->c, v, path, &o)
                                      : cz_service_deploy(s->c, v, path, &o);
    if (r < 0) {
        json_decref(o);
        return r;
    }
    json_object_set_new(s->out, key, o);
    return 0;
}

static const struct {
    const char *key;
    field_fn fn;
} fields[] = {
    {"annotations", f_map},
    {"build", f_build},
    {"cap_add", f_list},
    {"cap_drop", f_list},
    {"command", f_command},
    {"configs", f_refs},
    {"container_name", f_string},
    {"depends_on", f_depends_on},
    {"deploy", f_ports},
    {"dns", f_list},
    {"dns_opt", f_list},
    {"dns_search", f_list},
    {"domainname", f_string},
    {"entrypoint", f_command},
    {"env_file", f_keyed_with_file},
    {"environment", f_keyed_with_file},
    {"expose", f_expose},
    {"extends", f_drop},
    {"external_links", f_list},
    {"extra_hosts", f_extra_hosts},
    {"healthcheck", f_healthcheck},
    {"hostname", f_string},
    {"image", f_string},
    {"init", f_bool},
    {"label_file", f_keyed_with_file},
    {"labels", f_keyed_with_file},
    {"links", f_list},
    {"networks", f_networks},
    {"ports", f_ports},
    {"privileged", f_bool},
    {"read_only", f_bool},
    {"restart", f_string},
    {"scale", f_int},
    {"secrets", f_refs},
    {"security_opt", f_list},
    {"stdin_open", f_bool},
    {"stop_grace_period", f_duration},
    {"stop_signal", f_string},
    {"storage_opt", f_map},
    {"sysctls", f_map},
    {"tmpfs", f_list},
    {"tty", f_bool},
    {"user", f_string},
    {"volumes", f_ports},
    {"working_dir", f_string},
};

int cz_normalize_service(cz_ctx *c, const char *name, const json_t *svc, json_t **out)
{
    _cleanup_free_ char *path = xasprintf("services.%s", name);
    *out = NULL;
    if (!json_is_object(svc))
        return cz_errf(c, svc, path, "a service must be a mapping");
    svc_ctx s = {c, name, svc, json_object()};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)svc, k, v)
    {
        if (str_startswith(k, "x-"))
            continue;
        bool known = false;
        for (size_t i = 0; i < ARRAY_SIZE(service_keys) && !known; i++)
            known = !strcmp(service_keys[i], k);
        _cleanup_free_ char *fp = xasprintf("%s.%s", path, k);
        if (!known) {
            json_decref(s.out);
            /* the value's line is the key's; null and booleans have no record */
            return cz_errf(c, json_is_null(v) || json_is_boolean(v) ? svc : v, path,
                           "unknown key \"%s\"", k);
        }
        field_fn fn = f_copy;
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
            if (!strcmp(fields[i].key, k))
                fn = fields[i].fn;
        if (fn(&s, k, v, fp) < 0) {
            json_decref(s.out);
            return -EINVAL;
        }
    }
    if (!json_object_get(s.out, "image") && !json_object_get(s.out, "build")) {
        json_decref(s.out);
        return cz_errf(c, svc, path, "has neither an image nor a build context");
    }
    if (!json_object_get(s.out, "networks") && !json_object_get(s.out, "network_mode"))
        json_object_set_new(s.out, "networks", json_pack("{s:n}", "default"));
    *out = s.out;
    return 0;
}
