/* Loading a project: the files (-f or discovered), the project directory and name,
 * the environment (.env / --env-file under the OS environment), then parse,
 * interpolate, merge, extends and normalise; and the printers of `compose config`. */
#include "compose/compose_internal.h"

#include <ctype.h>
#include <libgen.h>
#include <string.h>

extern char **environ;

static const char *const default_files[] = {
    "hypr-compose.yml", "hypr-compose.yaml",   "Hyprfile",
    "Hyprfile.yml",     "Hyprfile.yaml",       "compose.yaml",
    "compose.yml",      "docker-compose.yaml", "docker-compose.yml"};

void compose_project_free(compose_project *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->workdir);
    strv_free(p->files);
    json_decref(p->model);
    free(p);
}

int compose_find_file(const char *dir, char **out, hypr_error *err)
{
    _cleanup_free_ char *d = realpath(dir, NULL);
    if (!d)
        d = xstrdup(dir);
    for (;;) {
        for (size_t i = 0; i < ARRAY_SIZE(default_files); i++) {
            _cleanup_free_ char *p = path_join(d, default_files[i]);
            if (access(p, R_OK) == 0) {
                *out = TAKE_PTR(p);
                return 0;
            }
        }
        char *slash = strrchr(d, '/');
        if (!slash || slash == d)
            break;
        *slash = '\0';
    }
    return hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                    "no configuration file provided: not found (looked for hypr-compose.yml, "
                    "hypr-compose.yaml, Hyprfile, Hyprfile.yml, Hyprfile.yaml, compose.yaml, "
                    "compose.yml, docker-compose.yaml, docker-compose.yml in %s and its parents)",
                    dir);
}

char *compose_normalize_project_name(const char *name)
{
    hypr_buf b = {0};
    buf_puts(&b, "");
    for (const char *p = name; *p; p++) {
        char ch = (char)tolower((unsigned char)*p);
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok || (!b.len && (ch == '_' || ch == '-')))
            continue;
        buf_append(&b, &ch, 1);
    }
    return buf_steal(&b);
}

static bool valid_project_name(const char *s)
{
    if (!*s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

static char *absolute(const char *cwd, const char *p)
{
    return p[0] == '/' ? xstrdup(p) : path_join(cwd, p);
}

typedef struct {
    char **paths; /* absolute */
    char **datas;
    size_t *lens;
    size_t n;
} sources;

static void sources_free(sources *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->datas[i]);
    free(s->datas);
    free(s->lens);
    strv_free(s->paths);
}

static int load_env(cz_ctx *c, const compose_options *o, const char *cwd)
{
    _cleanup_json_ json_t *os = cz_env_from_strv(o->environ ? o->environ : environ);
    _cleanup_json_ json_t *dot = json_object();
    if (o->env_files) {
        for (char **f = o->env_files; *f; f++) {
            _cleanup_free_ char *p = absolute(cwd, *f);
            int r = cz_dotenv_load(p, os, dot, c->err);
            if (r == -ENOENT)
                return hypr_err(c->err, HYPR_INVALID_ARGUMENT, ENOENT, "env file %s not found", p);
            if (r < 0)
                return r;
        }
    } else {
        _cleanup_free_ char *p = path_join(c->workdir, ".env");
        int r = cz_dotenv_load(p, os, dot, c->err);
        if (r < 0 && r != -ENOENT)
            return r;
    }
    json_object_update(dot, os); /* the OS environment wins over .env */
    c->env = TAKE_PTR(dot);
    return 0;
}

static int load_sources(const compose_options *o, sources *src, hypr_error *err)
{
    for (size_t i = 0; i < src->n; i++) {
        int r = read_file(src->paths[i], COMPOSE_FILE_MAX, &src->datas[i], &src->lens[i]);
        if (r < 0)
            return hypr_err(err, r == -ENOENT ? HYPR_NOT_FOUND : HYPR_INVALID_ARGUMENT, -r,
                            "open %s: %s", src->paths[i], strerror(-r));
    }
    return 0;
}

static int load(const compose_options *o, sources *src, compose_project **out, hypr_error *err)
{
    _cleanup_(cz_ctx_free) cz_ctx c = {.err = err, .keep = json_array()};
    c.check_files = o->check_files;
    _cleanup_free_ char *cwd = o->cwd ? xstrdup(o->cwd) : getcwd(NULL, 0);
    if (!cwd)
        return hypr_err(err, HYPR_INTERNAL, errno, "getcwd: %s", strerror(errno));
    for (size_t i = 0; i < src->n; i++) {
        _cleanup_free_ char *copy = xstrdup(src->paths[i]);
        c.names = strv_append(c.names, basename(copy));
    }
    if (o->project_dir) {
        c.workdir = absolute(cwd, o->project_dir);
    } else {
        _cleanup_free_ char *copy = xstrdup(src->paths[0]);
        c.workdir = xstrdup(dirname(copy));
    }
    int r = load_env(&c, o, cwd);
    if (r < 0)
        return r;
    /* The project name: -p, COMPOSE_PROJECT_NAME, the last name:, the directory. */
    _cleanup_free_ char *name = NULL;
    const char *envname = json_string_value(json_object_get(c.env, "COMPOSE_PROJECT_NAME"));
    if (!str_empty(o->project_name)) {
        if (!valid_project_name(o->project_name))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid project name \"%s\": must contain only lowercase letters, "
                            "digits, dashes and underscores, and start with a letter or digit",
                            o->project_name);
        name = xstrdup(o->project_name);
    } else if (!str_empty(envname)) {
        name = compose_normalize_project_name(envname);
    } else {
        for (size_t i = 0; i < src->n; i++) {
            char *n = cz_yaml_peek_name(&c, src->datas[i], src->lens[i]);
            if (n) {
                free(name);
                name = n;
            }
        }
        if (name) {
            char *norm = compose_normalize_project_name(name);
            free(name);
            name = norm;
        } else {
            _cleanup_free_ char *copy = xstrdup(c.workdir);
            name = compose_normalize_project_name(basename(copy));
        }
    }
    if (!valid_project_name(name))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "project name \"%s\" is empty once normalised: use -p", name);
    c.project = xstrdup(name);
    if (str_empty(envname))
        json_object_set_new(c.env, "COMPOSE_PROJECT_NAME", json_string(name));
    const char *profiles = json_string_value(json_object_get(c.env, "COMPOSE_PROFILES"));
    c.profiles = o->profiles ? strv_copy(o->profiles) : strv_split(profiles, ",");

    _cleanup_json_ json_t *merged = NULL;
    for (size_t i = 0; i < src->n; i++) {
        json_t *parsed;
        if (cz_yaml_load(&c, src->datas[i], src->lens[i], c.names[i], &parsed) < 0)
            return -EINVAL;
        _cleanup_free_ char *dcopy = xstrdup(src->paths[i]);
        _cleanup_json_ json_t *doc = NULL;
        if (cz_resolve_includes(&c, parsed, dirname(dcopy), 0, &doc) < 0)
            return -EINVAL;
        json_t *m = merged ? cz_merge_project(merged, doc) : json_copy(doc);
        json_decref(merged);
        merged = m;
    }
    _cleanup_free_ char *firstdir = xstrdup(src->paths[0]);
    if (cz_resolve_extends(&c, merged, dirname(firstdir)) < 0)
        return -EINVAL;
    json_t *model;
    if (cz_normalize(&c, merged, &model) < 0)
        return -EINVAL;
    compose_project *p = xcalloc(1, sizeof(*p));
    p->name = xstrdup(name);
    p->workdir = xstrdup(c.workdir);
    p->files = strv_copy(src->paths);
    p->model = model;
    *out = p;
    return 0;
}

int compose_load(const compose_options *o, compose_project **out, hypr_error *err)
{
    *out = NULL;
    _cleanup_free_ char *cwd = o->cwd ? xstrdup(o->cwd) : getcwd(NULL, 0);
    if (!cwd)
        return hypr_err(err, HYPR_INTERNAL, errno, "getcwd: %s", strerror(errno));
    sources src = {0};
    if (o->files && o->files[0]) {
        for (char **f = o->files; *f; f++) {
            _cleanup_free_ char *abs = absolute(cwd, *f);
            src.paths = strv_append(src.paths, abs);
            src.n++;
        }
    } else {
        char *p;
        int r = compose_find_file(o->project_dir ? o->project_dir : cwd, &p, err);
        if (r < 0)
            return r;
        src.paths = xcalloc(2, sizeof(char *));
        src.paths[0] = p;
        src.n = 1;
    }
    src.datas = xcalloc(src.n, sizeof(char *));
    src.lens = xcalloc(src.n, sizeof(size_t));
    int r = load_sources(o, &src, err);
    if (r == 0)
        r = load(o, &src, out, err);
    sources_free(&src);
    return r;
}

int compose_load_buffer(const char *data, size_t len, const char *filename,
                        const compose_options *o, compose_project **out, hypr_error *err)
{
    *out = NULL;
    _cleanup_free_ char *cwd = o->cwd ? xstrdup(o->cwd) : getcwd(NULL, 0);
    if (!cwd)
        return hypr_err(err, HYPR_INTERNAL, errno, "getcwd: %s", strerror(errno));
    sources src = {0};
    src.paths = xcalloc(2, sizeof(char *));
    src.paths[0] = absolute(cwd, filename);
    src.n = 1;
    src.datas = xcalloc(1, sizeof(char *));
    src.lens = xcalloc(1, sizeof(size_t));
    src.datas[0] = xmalloc(len + 1); /* the input may hold NUL bytes: copy all of it */
    if (len)
        memcpy(src.datas[0], data, len);
    src.datas[0][len] = '\0';
    src.lens[0] = len;
    int r = load(o, &src, out, err);
    sources_free(&src);
    return r;
}

/* ---- output ------------------------------------------------------------------------ */

char *compose_to_json(const compose_project *p)
{
    char *s = json_dumps(p->model, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    char *r = xasprintf("%s\n", s ? s : "{}");
    free(s);
    return r;
}

char *compose_to_yaml(const compose_project *p)
{
    return cz_emit_yaml(p->model);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *lines(char **v)
{
    if (v)
        qsort(v, strv_length(v), sizeof(*v), cmp_str);
    hypr_buf b = {0};
    buf_puts(&b, "");
    for (char **s = v; s && *s; s++)
        buf_printf(&b, "%s\n", *s);
    strv_free(v);
    return buf_steal(&b);
}

char *compose_list_services(const compose_project *p)
{
    char **v = NULL;
    const char *k;
    json_t *x;
    json_object_foreach(json_object_get(p->model, "services"), k, x) v = strv_append(v, k);
    return lines(v);
}

char *compose_list_volumes(const compose_project *p)
{
    char **v = NULL;
    const char *k;
    json_t *x;
    json_object_foreach(json_object_get(p->model, "volumes"), k, x) v = strv_append(v, k);
    return lines(v);
}

char *compose_list_images(const compose_project *p)
{
    char **v = NULL;
    const char *k;
    json_t *x;
    json_object_foreach(json_object_get(p->model, "services"), k, x)
    {
        const char *img = json_string_value(json_object_get(x, "image"));
        _cleanup_free_ char *def = xasprintf("%s-%s", p->name, k);
        v = strv_append(v, img ? img : def);
    }
    return lines(v);
}
