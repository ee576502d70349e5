/* Manifests (OCI image manifest and index, Docker schema 2 manifest and list),
 * platform selection, image configs, and the image store's manifest.json.
 * All of it is untrusted registry data: every field is type-checked and a
 * missing or malformed one is reported by name. */
#define LOG_MODULE "image"
#include "common/json_cleanup.h"
#include "image/image.h"

#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#define MAX_ENTRIES 100000

/* ---- platforms ----------------------------------------------------------------- */

void image_platform_clear(image_platform *p)
{
    if (!p)
        return;
    free(p->os);
    free(p->arch);
    free(p->variant);
    memset(p, 0, sizeof(*p));
}

static bool platform_word(const char *s)
{
    if (str_empty(s) || strlen(s) > 32)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

int image_platform_parse(const char *s, image_platform *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (str_empty(s))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "empty platform");
    _cleanup_free_ char *w = xstrdup(s);
    char *parts[4] = {0};
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(w, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (n == 3)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid platform \"%s\": expected os/arch[/variant]", s);
        parts[n++] = tok;
    }
    for (size_t i = 0; i < n; i++)
        if (!platform_word(parts[i]))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid platform \"%s\": expected os/arch[/variant] in lowercase", s);
    if (n == 1) {
        out->os = xstrdup("linux");
        out->arch = xstrdup(parts[0]);
    } else if (n >= 2) {
        out->os = xstrdup(parts[0]);
        out->arch = xstrdup(parts[1]);
        if (n == 3)
            out->variant = xstrdup(parts[2]);
    } else {
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid platform \"%s\"", s);
    }
    if (!strcmp(out->arch, "x86_64")) {
        free(out->arch);
        out->arch = xstrdup("amd64");
    } else if (!strcmp(out->arch, "aarch64")) {
        free(out->arch);
        out->arch = xstrdup("arm64");
    }
    return 0;
}

void image_platform_host(image_platform *out)
{
    memset(out, 0, sizeof(*out));
    struct utsname u;
    const char *m = uname(&u) == 0 ? u.machine : "x86_64";
    static const struct {
        const char *machine, *arch, *variant;
    } map[] = {
        {"x86_64", "amd64", NULL},    {"aarch64", "arm64", NULL}, {"armv7l", "arm", "v7"},
        {"armv6l", "arm", "v6"},      {"i686", "386", NULL},      {"i386", "386", NULL},
        {"ppc64le", "ppc64le", NULL}, {"s390x", "s390x", NULL},   {"riscv64", "riscv64", NULL},
    };
    out->os = xstrdup("linux");
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        if (!strcmp(m, map[i].machine)) {
            out->arch = xstrdup(map[i].arch);
            out->variant = map[i].variant ? xstrdup(map[i].variant) : NULL;
            return;
        }
    }
    out->arch = xstrdup(m);
}

char *image_platform_string(const image_platform *p)
{
    return xasprintf("%s/%s%s%s", p->os ? p->os : "?", p->arch ? p->arch : "?",
                     p->variant ? "/" : "", p->variant ? p->variant : "");
}

/* arm64 images usually carry variant v8 or none: both mean the same. */
static bool variant_matches(const char *arch, const char *want, const char *have)
{
    if (str_empty(want))
        return true;
    if (!str_empty(have) && !strcmp(want, have))
        return true;
    return str_empty(have) && !strcmp(arch, "arm64") && !strcmp(want, "v8");
}

/* ---- json helpers ---------------------------------------------------------------- */

static char *opt_string(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* A JSON array of strings -> NULL-terminated vector (NULL when absent/null). */
static int string_array(json_t *v, const char *what, char ***out, hypr_error *err)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: not an array of strings", what);
    if (json_array_size(v) > MAX_ENTRIES)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, E2BIG, "%s: too many entries", what);
    char **vec = xcalloc(json_array_size(v) + 1, sizeof(char *));
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e)) {
            strv_free(vec);
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s[%zu]: not a string", what, i);
        }
        vec[i] = xstrdup(json_string_value(e));
    }
    *out = vec;
    return 0;
}

/* Keys of a JSON object ({"80/tcp": {}}) -> vector. */
static int object_keys(json_t *v, const char *what, char ***out, hypr_error *err)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: not an object", what);
    const char *k;
    json_t *e;
    char **vec = NULL;
    json_object_foreach(v, k, e)
    {
        (void)e;
        vec = strv_append(vec, k);
    }
    *out = vec;
    return 0;
}

static int string_map(json_t *v, const char *what, char ***out, hypr_error *err)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: not an object", what);
    const char *k;
    json_t *e;
    char **vec = NULL;
    json_object_foreach(v, k, e)
    {
        if (!json_is_string(e)) {
            strv_free(vec);
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s.%s: not a string", what, k);
        }
        vec = strv_append(vec, k);
        vec = strv_append(vec, json_string_value(e));
    }
    *out = vec;
    return 0;
}

static json_t *strv_json(char **v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static int load(const char *body, size_t len, const char *what, json_t **out, hypr_error *err)
{
    json_error_t je;
    *out = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!*out)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: invalid JSON at line %d: %s", what,
                        je.line, je.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: not a JSON object", what);
    }
    return 0;
}

/* RFC 3339 ("2024-01-02T03:04:05.123Z", "+01:00" offsets) -> unix seconds; 0 if bad. */
static int64_t parse_time(const char *s)
{
    if (!s)
        return 0;
    struct tm tm = {0};
    int consumed = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t t = (int64_t)timegm(&tm);
    const char *p = s + consumed;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    int oh, om;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
        t += (*p == '+' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
    return t < 0 ? 0 : t;
}

/* ---- manifests --------------------------------------------------------------------- */

static void descriptor_clear(image_descriptor *d)
{
    free(d->media_type);
    free(d->digest);
    image_platform_clear(&d->platform);
    memset(d, 0, sizeof(*d));
}

void image_manifest_clear(image_manifest *m)
{
    if (!m)
        return;
    descriptor_clear(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        descriptor_clear(&m->layers[i]);
    free(m->layers);
    for (size_t i = 0; i < m->n_manifests; i++)
        descriptor_clear(&m->manifests[i]);
    free(m->manifests);
    memset(m, 0, sizeof(*m));
}

static int parse_descriptor(json_t *o, const char *what, bool with_platform, image_descriptor *d,
                            hypr_error *err)
{
    if (!json_is_object(o))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: not an object", what);
    json_t *digest = json_object_get(o, "digest");
    if (!json_is_string(digest) || !image_digest_valid(json_string_value(digest)))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "%s: missing or unsupported digest (sha256 required)", what);
    json_t *size = json_object_get(o, "size");
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: missing or negative size", what);
    d->digest = xstrdup(json_string_value(digest));
    d->size = json_integer_value(size);
    d->media_type = opt_string(o, "mediaType");
    if (with_platform) {
        json_t *p = json_object_get(o, "platform");
        if (json_is_object(p)) {
            d->platform.os = opt_string(p, "os");
            d->platform.arch = opt_string(p, "architecture");
            d->platform.variant = opt_string(p, "variant");
        }
    }
    return 0;
}

static image_media_kind kind_from_type(const char *t)
{
    if (!t)
        return IMAGE_MEDIA_UNKNOWN;
    size_t n = strcspn(t, "; ");
    static const struct {
        const char *type;
        image_media_kind kind;
    } map[] = {
        {IMAGE_MT_OCI_MANIFEST, IMAGE_MEDIA_OCI_MANIFEST},
        {IMAGE_MT_OCI_INDEX, IMAGE_MEDIA_OCI_INDEX},
        {IMAGE_MT_DOCKER_MANIFEST, IMAGE_MEDIA_DOCKER_MANIFEST},
        {IMAGE_MT_DOCKER_LIST, IMAGE_MEDIA_DOCKER_LIST},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (strlen(map[i].type) == n && !strncmp(t, map[i].type, n))
            return map[i].kind;
    return IMAGE_MEDIA_UNKNOWN;
}

int image_manifest_parse(const char *content_type, const char *body, size_t len,
                         image_manifest *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_json_ json_t *root = NULL;
    int r = load(body, len, "manifest", &root, err);
    if (r < 0)
        return r;
    json_t *sv = json_object_get(root, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, ENOTSUP,
                        "manifest: unsupported schemaVersion (only schema 2 / OCI manifests "
                        "are supported)");
    json_t *mt = json_object_get(root, "mediaType");
    image_media_kind kind = kind_from_type(json_is_string(mt) ? json_string_value(mt) : NULL);
    if (kind == IMAGE_MEDIA_UNKNOWN)
        kind = kind_from_type(content_type);
    json_t *manifests = json_object_get(root, "manifests");
    json_t *layers = json_object_get(root, "layers");
    if (kind == IMAGE_MEDIA_UNKNOWN) {
        /* OCI allows mediaType to be absent: the shape decides. */
        if (json_is_array(manifests))
            kind = IMAGE_MEDIA_OCI_INDEX;
        else if (json_is_array(layers))
            kind = IMAGE_MEDIA_OCI_MANIFEST;
        else
            return hypr_err(err, HYPR_INVALID_ARGUMENT, ENOTSUP,
                            "manifest: unsupported media type %s",
                            json_is_string(mt) ? json_string_value(mt)
                                               : (content_type ? content_type : "(none)"));
    }
    out->kind = kind;
    if (kind == IMAGE_MEDIA_OCI_INDEX || kind == IMAGE_MEDIA_DOCKER_LIST) {
        if (!json_is_array(manifests))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "index: missing manifests array");
        size_t n = json_array_size(manifests);
        if (n > MAX_ENTRIES)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, E2BIG, "index: too many manifests");
        out->manifests = xcalloc(n ? n : 1, sizeof(*out->manifests));
        for (size_t i = 0; i < n; i++) {
            _cleanup_free_ char *what = xasprintf("index: manifests[%zu]", i);
            r = parse_descriptor(json_array_get(manifests, i), what, true, &out->manifests[i], err);
            out->n_manifests = i + 1;
            if (r < 0) {
                image_manifest_clear(out);
                return r;
            }
        }
        return 0;
    }
    r = parse_descriptor(json_object_get(root, "config"), "manifest: config", false, &out->config,
                         err);
    if (r < 0) {
        image_manifest_clear(out);
        return r;
    }
    if (!json_is_array(layers)) {
        image_manifest_clear(out);
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "manifest: missing layers array");
    }
    size_t n = json_array_size(layers);
    if (n > 10000) {
        image_manifest_clear(out);
        return hypr_err(err, HYPR_INVALID_ARGUMENT, E2BIG, "manifest: too many layers (%zu)", n);
    }
    out->layers = xcalloc(n ? n : 1, sizeof(*out->layers));
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *what = xasprintf("manifest: layers[%zu]", i);
        r = parse_descriptor(json_array_get(layers, i), what, false, &out->layers[i], err);
        out->n_layers = i + 1;
        if (r < 0) {
            image_manifest_clear(out);
            return r;
        }
    }
    return 0;
}

int image_index_select(const image_manifest *index, const image_platform *want,
                       const image_descriptor **out, hypr_error *err)
{
    *out = NULL;
    for (size_t i = 0; i < index->n_manifests; i++) {
        const image_descriptor *d = &index->manifests[i];
        const image_platform *p = &d->platform;
        if (!p->os || !p->arch || strcmp(p->os, want->os) || strcmp(p->arch, want->arch))
            continue;
        if (!variant_matches(want->arch, want->variant, p->variant))
            continue;
        *out = d;
        return 0;
    }
    hypr_buf have = {0};
    for (size_t i = 0; i < index->n_manifests; i++) {
        const image_platform *p = &index->manifests[i].platform;
        if (!p->os || !p->arch || !strcmp(p->os, "unknown"))
            continue; /* attestation manifests */
        _cleanup_free_ char *s = image_platform_string(p);
        buf_printf(&have, "%s%s", have.len ? ", " : "", s);
    }
    _cleanup_free_ char *w = image_platform_string(want);
    int r = hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                     "no manifest for platform %s in the image index (available: %s)", w,
                     have.len ? have.data : "none");
    buf_free(&have);
    return r;
}

/* ---- configs --------------------------------------------------------------------- */

void image_config_clear(image_config *c)
{
    if (!c)
        return;
    strv_free(c->entrypoint);
    strv_free(c->cmd);
    strv_free(c->env);
    free(c->workdir);
    free(c->user);
    free(c->stop_signal);
    strv_free(c->exposed_ports);
    strv_free(c->volumes);
    strv_free(c->labels);
    image_platform_clear(&c->platform);
    for (size_t i = 0; i < c->n_history; i++) {
        free(c->history[i].created_by);
        free(c->history[i].comment);
    }
    free(c->history);
    strv_free(c->diff_ids);
    memset(c, 0, sizeof(*c));
}

static int parse_history(json_t *h, image_config *c, hypr_error *err)
{
    if (!h || json_is_null(h))
        return 0;
    if (!json_is_array(h))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "config: history is not an array");
    size_t n = json_array_size(h);
    if (n > MAX_ENTRIES)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, E2BIG, "config: history too long");
    c->history = xcalloc(n ? n : 1, sizeof(*c->history));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(h, i);
        if (!json_is_object(e))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "config: history[%zu] is not an object", i);
        image_history *hi = &c->history[c->n_history++];
        json_t *created = json_object_get(e, "created");
        hi->created = json_is_integer(created)
                          ? json_integer_value(created)
                          : parse_time(json_is_string(created) ? json_string_value(created) : NULL);
        hi->created_by = opt_string(e, "created_by");
        hi->comment = opt_string(e, "comment");
        hi->empty_layer = json_is_true(json_object_get(e, "empty_layer"));
    }
    return 0;
}

int image_config_parse(const char *body, size_t len, image_config *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_json_ json_t *root = NULL;
    int r = load(body, len, "image config", &root, err);
    if (r < 0)
        return r;
    out->platform.os = opt_string(root, "os");
    out->platform.arch = opt_string(root, "architecture");
    out->platform.variant = opt_string(root, "variant");
    json_t *created = json_object_get(root, "created");
    out->created = parse_time(json_is_string(created) ? json_string_value(created) : NULL);
    json_t *cfg = json_object_get(root, "config");
    if (cfg && !json_is_null(cfg) && !json_is_object(cfg)) {
        image_config_clear(out);
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "image config: config is not an object");
    }
    if (json_is_object(cfg)) {
        if ((r = string_array(json_object_get(cfg, "Entrypoint"), "config.Entrypoint",
                              &out->entrypoint, err)) < 0 ||
            (r = string_array(json_object_get(cfg, "Cmd"), "config.Cmd", &out->cmd, err)) < 0 ||
            (r = string_array(json_object_get(cfg, "Env"), "config.Env", &out->env, err)) < 0 ||
            (r = object_keys(json_object_get(cfg, "ExposedPorts"), "config.ExposedPorts",
                             &out->exposed_ports, err)) < 0 ||
            (r = object_keys(json_object_get(cfg, "Volumes"), "config.Volumes", &out->volumes,
                             err)) < 0 ||
            (r = string_map(json_object_get(cfg, "Labels"), "config.Labels", &out->labels, err)) <
                0) {
            image_config_clear(out);
            return hypr_err_prefix(err, "image config");
        }
        out->workdir = opt_string(cfg, "WorkingDir");
        out->user = opt_string(cfg, "User");
        out->stop_signal = opt_string(cfg, "StopSignal");
    }
    json_t *rootfs = json_object_get(root, "rootfs");
    if (json_is_object(rootfs) && (r = string_array(json_object_get(rootfs, "diff_ids"),
                                                    "rootfs.diff_ids", &out->diff_ids, err)) < 0) {
        image_config_clear(out);
        return hypr_err_prefix(err, "image config");
    }
    if ((r = parse_history(json_object_get(root, "history"), out, err)) < 0) {
        image_config_clear(out);
        return r;
    }
    return 0;
}

/* ---- manifest.json of the image store -------------------------------------------- */

void image_info_clear(image_info *info)
{
    if (!info)
        return;
    free(info->name);
    free(info->tag);
    free(info->digest);
    free(info->config_digest);
    image_config_clear(&info->config);
    strv_free(info->layer_digests);
    memset(info, 0, sizeof(*info));
}

static void set_opt(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, v ? json_string(v) : json_null());
}

char *image_info_to_json(const image_info *info)
{
    const image_config *c = &info->config;
    json_t *o = json_object();
    json_object_set_new(o, "schema", json_integer(1));
    set_opt(o, "name", info->name);
    set_opt(o, "tag", info->tag);
    set_opt(o, "digest", info->digest);
    set_opt(o, "config_digest", info->config_digest);
    json_object_set_new(o, "size", json_integer((json_int_t)info->size));
    json_object_set_new(o, "created", json_integer(c->created));
    json_t *plat = json_object();
    set_opt(plat, "os", c->platform.os);
    set_opt(plat, "architecture", c->platform.arch);
    if (c->platform.variant)
        set_opt(plat, "variant", c->platform.variant);
    json_object_set_new(o, "platform", plat);
    json_object_set_new(o, "entrypoint", c->entrypoint ? strv_json(c->entrypoint) : json_null());
    json_object_set_new(o, "cmd", c->cmd ? strv_json(c->cmd) : json_null());
    json_object_set_new(o, "env", strv_json(c->env));
    json_object_set_new(o, "workdir", json_string(c->workdir ? c->workdir : ""));
    json_object_set_new(o, "user", json_string(c->user ? c->user : ""));
    if (c->stop_signal)
        json_object_set_new(o, "stop_signal", json_string(c->stop_signal));
    json_object_set_new(o, "exposed_ports", strv_json(c->exposed_ports));
    json_object_set_new(o, "volumes", strv_json(c->volumes));
    json_t *labels = json_object();
    for (size_t i = 0; c->labels && c->labels[i] && c->labels[i + 1]; i += 2)
        json_object_set_new(labels, c->labels[i], json_string(c->labels[i + 1]));
    json_object_set_new(o, "labels", labels);
    json_t *hist = json_array();
    for (size_t i = 0; i < c->n_history; i++) {
        const image_history *h = &c->history[i];
        json_t *e = json_object();
        json_object_set_new(e, "created", json_integer(h->created));
        json_object_set_new(e, "created_by", json_string(h->created_by ? h->created_by : ""));
        json_object_set_new(e, "comment", json_string(h->comment ? h->comment : ""));
        json_object_set_new(e, "empty_layer", json_boolean(h->empty_layer));
        json_object_set_new(e, "size", json_integer((json_int_t)h->size));
        json_array_append_new(hist, e);
    }
    json_object_set_new(o, "history", hist);
    json_object_set_new(o, "layers", strv_json(info->layer_digests));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        abort();
    char *copy = xstrdup(s);
    free(s);
    return copy;
}

int image_info_from_json(const char *text, image_info *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (str_empty(text))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "image manifest.json: empty");
    _cleanup_json_ json_t *o = NULL;
    int r = load(text, strlen(text), "image manifest.json", &o, err);
    if (r < 0)
        return r;
    image_config *c = &out->config;
    out->name = opt_string(o, "name");
    out->tag = opt_string(o, "tag");
    out->digest = opt_string(o, "digest");
    out->config_digest = opt_string(o, "config_digest");
    json_t *v = json_object_get(o, "size");
    out->size =
        json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    v = json_object_get(o, "created");
    c->created = json_is_integer(v) ? json_integer_value(v) : 0;
    json_t *plat = json_object_get(o, "platform");
    if (json_is_object(plat)) {
        c->platform.os = opt_string(plat, "os");
        c->platform.arch = opt_string(plat, "architecture");
        c->platform.variant = opt_string(plat, "variant");
    }
    c->workdir = opt_string(o, "workdir");
    c->user = opt_string(o, "user");
    c->stop_signal = opt_string(o, "stop_signal");
    if ((r = string_array(json_object_get(o, "entrypoint"), "entrypoint", &c->entrypoint, err)) <
            0 ||
        (r = string_array(json_object_get(o, "cmd"), "cmd", &c->cmd, err)) < 0 ||
        (r = string_array(json_object_get(o, "env"), "env", &c->env, err)) < 0 ||
        (r = string_array(json_object_get(o, "exposed_ports"), "exposed_ports", &c->exposed_ports,
                          err)) < 0 ||
        (r = string_array(json_object_get(o, "volumes"), "volumes", &c->volumes, err)) < 0 ||
        (r = string_map(json_object_get(o, "labels"), "labels", &c->labels, err)) < 0 ||
        (r = string_array(json_object_get(o, "layers"), "layers", &out->layer_digests, err)) < 0 ||
        (r = parse_history(json_object_get(o, "history"), c, err)) < 0) {
        image_info_clear(out);
        return hypr_err_prefix(err, "image manifest.json");
    }
    json_t *hist = json_object_get(o, "history");
    for (size_t i = 0; i < c->n_history; i++) {
        json_t *sz = json_object_get(json_array_get(hist, i), "size");
        if (json_is_integer(sz) && json_integer_value(sz) > 0)
            c->history[i].size = (uint64_t)json_integer_value(sz);
    }
    return 0;
}
