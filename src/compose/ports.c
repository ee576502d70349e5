/* The list fields with a short syntax of their own: ports ("127.0.0.1:8000-8001:80-81/udp")
 * and volumes ("./data:/data:ro", parsed by the volume module as -v is), and deploy
 * (resources: cpus as a number, memory in bytes). */
#include "compose/compose_internal.h"

#include <string.h>

#include "volume/volume.h"

/* "80" or "8000-8010": *lo..*hi within [min, 65535]. */
static bool port_range(const char *s, size_t n, long min, long *lo, long *hi)
{
    _cleanup_free_ char *t = xstrndup(s, n);
    char *dash = strchr(t, '-');
    if (dash)
        *dash++ = '\0';
    int64_t a, b;
    if (parse_int64(t, min, 65535, &a) < 0)
        return false;
    if (dash && parse_int64(dash, min, 65535, &b) < 0)
        return false;
    *lo = a;
    *hi = dash ? b : a;
    return *lo <= *hi;
}

static json_t *port_entry(const char *ip, long target, const char *published, const char *proto)
{
    json_t *p = json_pack("{s:s, s:I, s:s}", "mode", "ingress", "target", (json_int_t)target,
                          "protocol", proto);
    if (ip && *ip)
        json_object_set_new(p, "host_ip", json_string(ip));
    if (published && *published)
        json_object_set_new(p, "published", json_string(published));
    return p;
}

static int short_port(cz_ctx *c, const json_t *node, const char *spec, const char *path,
                      json_t *out)
{
    _cleanup_free_ char *s = xstrdup(spec);
    const char *proto = "tcp";
    char *slash = strrchr(s, '/');
    if (slash) {
        *slash = '\0';
        proto = slash + 1;
        if (strcmp(proto, "tcp") && strcmp(proto, "udp") && strcmp(proto, "sctp"))
            return cz_errf(c, node, path, "invalid protocol \"%s\" in port \"%s\"", proto, spec);
    }
    char *ip = NULL, *rest = s;
    if (s[0] == '[') {
        char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return cz_errf(c, node, path, "invalid port \"%s\"", spec);
        *close = '\0';
        ip = s + 1;
        rest = close + 2;
    }
    char *parts[3] = {rest, NULL, NULL};
    int n = 1;
    for (char *p = rest; *p; p++)
        if (*p == ':') {
            if (n == 3)
                return cz_errf(c, node, path, "invalid port \"%s\"", spec);
            *p = '\0';
            parts[n++] = p + 1;
        }
    const char *pub = NULL, *tgt = parts[n - 1];
    if (n == 3) {
        if (ip)
            return cz_errf(c, node, path, "invalid port \"%s\"", spec);
        ip = parts[0];
        pub = parts[1];
    } else if (n == 2) {
        if (ip)
            pub = parts[0];
        else
            pub = parts[0];
    }
    long tlo, thi, plo = 0, phi = 0;
    if (!port_range(tgt, strlen(tgt), 1, &tlo, &thi))
        return cz_errf(c, node, path, "invalid port \"%s\"", spec);
    if (pub && *pub && !port_range(pub, strlen(pub), 0, &plo, &phi))
        return cz_errf(c, node, path, "invalid port \"%s\"", spec);
    bool has_pub = pub && *pub;
    if (has_pub && thi != tlo && phi - plo != thi - tlo)
        return cz_errf(c, node, path, "invalid port \"%s\": the ranges differ in length", spec);
    for (long t = tlo; t <= thi; t++) {
        _cleanup_free_ char *ps = NULL;
        if (has_pub && thi != tlo)
            ps = xasprintf("%ld", plo + (t - tlo));
        else if (has_pub)
            ps = xstrdup(pub);
        json_array_append_new(out, port_entry(ip, t, ps, proto));
    }
    return 0;
}

static int long_port(cz_ctx *c, const json_t *e, const char *path, json_t *out)
{
    const json_t *t = json_object_get(e, "target");
    _cleanup_free_ char *ts = cz_scalar_text(t);
    int64_t target;
    if (!ts || json_is_boolean(t) || parse_int64(ts, 1, 65535, &target) < 0)
        return cz_errf(c, e, path, "invalid port target \"%s\"", ts ? ts : "");
    json_t *p = json_pack("{s:s, s:I, s:s}", "mode", "ingress", "target", (json_int_t)target,
                          "protocol", "tcp");
    json_array_append_new(out, p);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)e, k, v)
    {
        if (!strcmp(k, "target") || str_startswith(k, "x-"))
            continue;
        _cleanup_free_ char *s = cz_scalar_text(v);
        if (!s)
            return cz_errf(c, e, path, "%s must be a string", k);
        if (!strcmp(k, "published")) {
            long lo, hi;
            if (*s && !port_range(s, strlen(s), 0, &lo, &hi))
                return cz_errf(c, v, path, "invalid published port \"%s\"", s);
        } else if (!strcmp(k, "protocol")) {
            if (strcmp(s, "tcp") && strcmp(s, "udp") && strcmp(s, "sctp"))
                return cz_errf(c, v, path, "invalid protocol \"%s\"", s);
        } else if (!strcmp(k, "mode")) {
            if (strcmp(s, "ingress") && strcmp(s, "host"))
                return cz_errf(c, v, path, "invalid mode \"%s\": use ingress or host", s);
        } else if (strcmp(k, "host_ip") && strcmp(k, "name") && strcmp(k, "app_protocol")) {
            return cz_errf(c, e, path, "unknown key \"%s\"", k);
        }
        json_object_set_new(p, k, json_string(s));
    }
    return 0;
}

int cz_service_ports(cz_ctx *c, const json_t *v, const char *path, json_t **out);
int cz_service_ports(cz_ctx *c, const json_t *v, const char *path, json_t **out)
{
    *out = NULL;
    if (!json_is_array(v))
        return cz_errf(c, v, path, "must be a list");
    _cleanup_json_ json_t *a = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        _cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
        int r;
        if (json_is_object(e)) {
            r = long_port(c, e, p, a);
        } else {
            _cleanup_free_ char *s = json_is_array(e) ? NULL : cz_scalar_text(e);
            if (!s || json_is_boolean(e) || json_is_null(e) || json_is_real(e))
                return cz_errf(c, e ? e : v, p, "invalid port");
            const char *raw = cz_raw(c, e);
            r = short_port(c, e ? e : v, raw ? raw : s, p, a);
        }
        if (r < 0)
            return r;
    }
    /* An override file repeating a port adds nothing. */
    _cleanup_json_ json_t *dedup = json_array();
    json_array_foreach(a, i, e)
    {
        bool dup = false;
        size_t j;
        json_t *x;
        json_array_foreach(dedup, j, x) if (json_equal(x, e)) dup = true;
        if (!dup)
            json_array_append(dedup, e);
    }
    *out = TAKE_PTR(dedup);
    return 0;
}

/* ---- volumes ---------------------------------------------------------------------- */

static json_t *mount_json(const volume_mount_spec *m, bool short_syntax)
{
    static const char *const types[] = {"volume", "bind", "tmpfs"};
    json_t *o = json_pack("{s:s, s:s}", "type", types[m->type], "target", m->target);
    if (m->source)
        json_object_set_new(o, "source", json_string(m->source));
    if (m->read_only)
        json_object_set_new(o, "read_only", json_true());
    if (m->type == VOLUME_MOUNT_BIND && (short_syntax || m->create_host_path))
        json_object_set_new(o, "bind", json_pack("{s:b}", "create_host_path", m->create_host_path));
    if (m->type == VOLUME_MOUNT_VOLUME)
        json_object_set_new(o, "volume",
                            m->nocopy ? json_pack("{s:b}", "nocopy", 1) : json_object());
    return o;
}

static bool is_path(const char *s)
{
    return s[0] == '.' || s[0] == '/' || s[0] == '~';
}

static int short_volume(cz_ctx *c, const json_t *node, const char *spec, const char *path,
                        json_t **out)
{
    _cleanup_free_ char *resolved = NULL;
    const char *colon = strchr(spec, ':');
    if (colon && is_path(spec)) {
        _cleanup_free_ char *src = xstrndup(spec, (size_t)(colon - spec));
        _cleanup_free_ char *abs = cz_abs_path(c, src);
        resolved = xasprintf("%s%s", abs, colon);
        spec = resolved;
    }
    /* A named volume's key may be one character: Docker's two-character rule applies
     * to the real name, <project>_<key>. */
    _cleanup_free_ char *key = NULL;
    if (colon && !is_path(spec) && colon - spec == 1) {
        key = xstrndup(spec, 1);
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", key[0]))
            return cz_errf(c, node, path, "invalid volume name \"%s\"", key);
        resolved = xasprintf("%s%s%s", key, key, colon);
        spec = resolved;
    }
    _cleanup_mount_spec_ volume_mount_spec m = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (volume_parse_volume_flag(spec, &m, &err) < 0)
        return cz_errf(c, node, path, "%s", err.message);
    if (key) {
        free(m.source);
        m.source = TAKE_PTR(key);
    }
    *out = mount_json(&m, true);
    return 0;
}

static int long_volume(cz_ctx *c, const json_t *e, const char *path, json_t **out)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *src = json_string_value(json_object_get(e, "source"));
    const char *tgt = json_string_value(json_object_get(e, "target"));
    if (!tgt)
        return cz_errf(c, e, path, "a volume needs a target");
    if (!type)
        return cz_errf(c, e, path, "a volume needs a type (volume, bind or tmpfs)");
    _cleanup_free_ char *target = NULL, *source = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (volume_target_normalize(tgt, &target, &err) < 0)
        return cz_errf(c, e, path, "%s", err.message);
    json_t *o = json_pack("{s:s, s:s}", "type", type, "target", target);
    *out = o;
    if (!strcmp(type, "bind")) {
        if (!src)
            return cz_errf(c, e, path, "a bind mount needs a source");
        _cleanup_free_ char *abs = cz_abs_path(c, src);
        if (volume_source_normalize(abs, &source, &err) < 0)
            return cz_errf(c, e, path, "%s", err.message);
    } else if (!strcmp(type, "volume")) {
        if (src && src[1] && volume_name_check(src, &err) < 0)
            return cz_errf(c, e, path, "%s", err.message);
        source = src ? xstrdup(src) : NULL;
    } else if (!strcmp(type, "tmpfs")) {
        if (src)
            return cz_errf(c, e, path, "a tmpfs mount takes no source");
    } else {
        return cz_errf(c, e, path, "unsupported volume type \"%s\": use volume, bind or tmpfs",
                       type);
    }
    if (source)
        json_object_set_new(o, "source", json_string(source));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)e, k, v)
    {
        if (!strcmp(k, "type") || !strcmp(k, "source") || !strcmp(k, "target") ||
            str_startswith(k, "x-"))
            continue;
        _cleanup_free_ char *p = xasprintf("%s.%s", path, k);
        bool b;
        if (!strcmp(k, "read_only")) {
            if (!cz_is_true(v, &b))
                return cz_errf(c, e, p, "must be a boolean");
            if (b)
                json_object_set_new(o, k, json_true());
        } else if (!strcmp(k, "consistency")) {
            json_object_set_new(o, k, json_deep_copy(v));
        } else if (!strcmp(k, type) && json_is_object(v)) {
            json_t *sub = json_object();
            json_object_set_new(o, k, sub);
            const char *sk;
            json_t *sv;
            json_object_foreach(v, sk, sv)
            {
                _cleanup_free_ char *sp = xasprintf("%s.%s", p, sk);
                if ((!strcmp(sk, "create_host_path") && !strcmp(type, "bind")) ||
                    (!strcmp(sk, "nocopy") && !strcmp(type, "volume"))) {
                    if (!cz_is_true(sv, &b))
                        return cz_errf(c, v, sp, "must be a boolean");
                    json_object_set_new(sub, sk, json_boolean(b));
                } else if (!strcmp(sk, "size") && !strcmp(type, "tmpfs")) {
                    _cleanup_free_ char *t = cz_scalar_text(sv);
                    uint64_t bytes;
                    if (!t || volume_parse_size(t, &bytes, &err) < 0)
                        return cz_errf(c, v, sp, "invalid size \"%s\"", t ? t : "");
                    json_object_set_new(sub, sk, json_sprintf("%" PRIu64, bytes));
                } else if (!strcmp(sk, "mode") && !strcmp(type, "tmpfs")) {
                    const char *raw = cz_raw(c, sv);
                    _cleanup_free_ char *t = cz_scalar_text(sv);
                    json_object_set_new(sub, sk, json_string(raw ? raw : t ? t : ""));
                } else if (!str_startswith(sk, "x-") && strcmp(sk, "propagation") &&
                           strcmp(sk, "selinux") && strcmp(sk, "subpath")) {
                    return cz_errf(c, v, p, "unknown key \"%s\"", sk);
                } else {
                    json_object_set_new(sub, sk, json_deep_copy(sv));
                }
            }
        } else {
            return cz_errf(c, e, path, "unknown key \"%s\" for a %s mount", k, type);
        }
    }
    /* up: a long-syntax bind is not created unless bind.create_host_path says so */
    if (c->check_files && source && !strcmp(type, "bind") &&
        !json_is_true(json_object_get(json_object_get(o, "bind"), "create_host_path")) &&
        access(source, F_OK) < 0)
        return cz_errf(c, e, path, "bind source path %s does not exist", source);
    return 0;
}

int cz_service_volumes(cz_ctx *c, const json_t *v, const char *path, json_t **out);
int cz_service_volumes(cz_ctx *c, const json_t *v, const char *path, json_t **out)
{
    *out = NULL;
    if (!json_is_array(v))
        return cz_errf(c, v, path, "must be a list");
    _cleanup_json_ json_t *a = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        _cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
        json_t *m = NULL;
        int r;
        if (json_is_string(e))
            r = short_volume(c, e, json_string_value(e), p, &m);
        else if (json_is_object(e))
            r = long_volume(c, e, p, &m);
        else
            r = cz_errf(c, e ? e : v, p, "must be a string or a mapping");
        if (r < 0) {
            json_decref(m);
            return r;
        }
        /* A later mount on the same target (an override file) replaces the earlier. */
        const char *t = json_string_value(json_object_get(m, "target"));
        bool replaced = false;
        size_t j;
        json_t *x;
        json_array_foreach(a, j, x) if (!replaced &&
                                        !strcmp(json_string_value(json_object_get(x, "target")), t))
        {
            json_array_set(a, j, m);
            replaced = true;
        }
        if (!replaced)
            json_array_append(a, m);
        json_decref(m);
    }
    *out = TAKE_PTR(a);
    return 0;
}

/* ---- deploy ----------------------------------------------------------------------- */

static int resources(cz_ctx *c, const json_t *v, const char *path, json_t **out)
{
    *out = NULL;
    if (!json_is_object(v))
        return cz_errf(c, v, path, "must be a mapping");
    json_t *o = json_deep_copy(v);
    *out = o;
    const json_t *cpus = json_object_get(v, "cpus"), *mem = json_object_get(v, "memory");
    if (cpus) {
        _cleanup_free_ char *t = cz_scalar_text(cpus);
        char *end = NULL;
        double d = t ? strtod(t, &end) : -1;
        if (!t || json_is_boolean(cpus) || end == t || *end || d < 0)
            return cz_errf(c, v, path, "invalid cpus \"%s\"", t ? t : "");
        json_object_set_new(o, "cpus", json_real(d));
    }
    if (mem) {
        _cleanup_free_ char *t = cz_scalar_text(mem);
        uint64_t bytes;
        if (!t || json_is_boolean(mem) || volume_parse_size(t, &bytes, NULL) < 0)
            return cz_errf(c, v, path, "invalid memory \"%s\"", t ? t : "");
        json_object_set_new(o, "memory", json_sprintf("%" PRIu64, bytes));
    }
    return 0;
}

static int durations(cz_ctx *c, json_t *o, const char *path, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (!v)
            continue;
        json_t *d;
        _cleanup_free_ char *p = xasprintf("%s.%s", path, keys[i]);
        if (cz_duration(c, v, p, &d) < 0)
            return -EINVAL;
        json_object_set_new(o, keys[i], d);
    }
    return 0;
}

int cz_service_deploy(cz_ctx *c, const json_t *v, const char *path, json_t **out);
int cz_service_deploy(cz_ctx *c, const json_t *v, const char *path, json_t **out)
{
    *out = NULL;
    if (!json_is_object(v))
        return cz_errf(c, v, path, "must be a mapping");
    json_t *o = json_deep_copy(v);
    *out = o;
    const json_t *rep = json_object_get(v, "replicas");
    if (rep) {
        _cleanup_free_ char *t = cz_scalar_text(rep);
        int64_t n;
        if (!t || json_is_boolean(rep) || parse_int64(t, 0, INT32_MAX, &n) < 0)
            return cz_errf(c, v, path, "invalid replicas \"%s\"", t ? t : "");
        json_object_set_new(o, "replicas", json_integer(n));
    }
    json_t *res = json_object_get(o, "resources");
    if (res) {
        if (!json_is_object(res))
            return cz_errf(c, v, path, "resources must be a mapping");
        static const char *const kinds[] = {"limits", "reservations"};
        for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
            const json_t *k = json_object_get(res, kinds[i]);
            if (!k)
                continue;
            _cleanup_free_ char *p = xasprintf("%s.resources.%s", path, kinds[i]);
            json_t *r;
            if (resources(c, k, p, &r) < 0) {
                json_decref(r);
                return -EINVAL;
            }
            json_object_set_new(res, kinds[i], r);
        }
    }
    json_t *labels = json_object_get(o, "labels");
    if (labels) {
        json_t *m = cz_as_map(labels);
        if (!m)
            return cz_errf(c, v, path, "labels must be a mapping or a list");
        json_object_set_new(o, "labels", m);
    }
    static const char *const rp[] = {"delay", "window"}, *const uc[] = {"delay", "monitor"};
    static const char *const sub[] = {"update_config", "rollback_config"};
    json_t *x = json_object_get(o, "restart_policy");
    _cleanup_free_ char *rpp = xasprintf("%s.restart_policy", path);
    if (json_is_object(x) && durations(c, x, rpp, rp, ARRAY_SIZE(rp)) < 0)
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
        x = json_object_get(o, sub[i]);
        _cleanup_free_ char *p = xasprintf("%s.%s", path, sub[i]);
        if (json_is_object(x) && durations(c, x, p, uc, ARRAY_SIZE(uc)) < 0)
            return -EINVAL;
    }
    return 0;
}
