/* Registry credentials in the Docker client's config.json: lookup for pulls,
 * store and erase for hypr login / logout. */
#define LOG_MODULE "creds"
#include "creds/creds.h"

#include <ctype.h>
#include <jansson.h>
#include <pwd.h>
#include <string.h>

/* ---- reading config.json ------------------------------------------------------------------ */

/* "https://index.docker.io/v1/" -> "index.docker.io"; "localhost:5000" stays. */
static char *normalise_host(const char *key)
{
    const char *p = key;
    if (str_startswith(p, "https://"))
        p += strlen("https://");
    else if (str_startswith(p, "http://"))
        p += strlen("http://");
    size_t n = strcspn(p, "/");
    char *h = xstrndup(p, n);
    for (char *c = h; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return h;
}

static bool is_docker_hub(const char *h)
{
    return !strcmp(h, "docker.io") || !strcmp(h, "index.docker.io") ||
           !strcmp(h, "registry-1.docker.io") || !strcmp(h, "registry.hub.docker.com");
}

static char *config_path(const char *config_dir)
{
    if (!str_empty(config_dir))
        return path_join(config_dir, "config.json");
    const char *env = getenv("DOCKER_CONFIG");
    if (!str_empty(env))
        return path_join(env, "config.json");
    const char *home = getenv("HOME");
    if (str_empty(home)) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (str_empty(home))
        return NULL;
    return xasprintf("%s/.docker/config.json", home);
}

int creds_lookup(const char *config_dir, const char *host, char **user, char **pass)
{
    *user = *pass = NULL;
    _cleanup_free_ char *path = config_path(config_dir);
    if (!path)
        return -ENOENT;
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (read_file(path, 1 << 20, &text, &len) < 0)
        return -ENOENT;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) {
        log_warn("%s: invalid JSON (line %d: %s); ignoring registry credentials", path, je.line,
                 je.text);
        return -ENOENT;
    }
    _cleanup_free_ char *want = normalise_host(host);
    json_t *auths = json_object_get(root, "auths");
    const char *key;
    json_t *entry;
    int r = -ENOENT;
    json_object_foreach(auths, key, entry)
    {
        _cleanup_free_ char *h = normalise_host(key);
        if (strcmp(h, want) && !(is_docker_hub(h) && is_docker_hub(want)))
            continue;
        const char *auth = json_string_value(json_object_get(entry, "auth"));
        const char *u = json_string_value(json_object_get(entry, "username"));
        const char *p = json_string_value(json_object_get(entry, "password"));
        if (!str_empty(auth)) {
            size_t dl;
            _cleanup_free_ char *dec = base64_decode(auth, 64 * 1024, &dl);
            char *colon = dec ? memchr(dec, ':', dl) : NULL;
            if (!colon || strlen(dec) != dl) {
                log_warn("%s: auths.%s.auth is not base64 of user:password; ignored", path, key);
                continue;
            }
            *user = xstrndup(dec, (size_t)(colon - dec));
            *pass = xstrdup(colon + 1);
            r = 0;
            break;
        }
        if (!str_empty(u) && p) {
            *user = xstrdup(u);
            *pass = xstrdup(p);
            r = 0;
            break;
        }
    }
    if (r < 0 && (json_object_get(root, "credsStore") || json_object_get(root, "credHelpers")))
        log_debug("%s: credential helpers are not supported; no credentials for %s", path, host);
    json_decref(root);
    return r;
}

/* ---- writing config.json (hypr login / logout) ----------------------------------------- */

char *creds_key(const char *server)
{
    if (str_empty(server))
        return xstrdup(CREDS_DOCKER_HUB_KEY);
    _cleanup_free_ char *h = normalise_host(server);
    if (is_docker_hub(h))
        return xstrdup(CREDS_DOCKER_HUB_KEY);
    return TAKE_PTR(h);
}

/* Reads config.json into an object (an empty one when the file is missing).
 * Refuses a file that is not a JSON object rather than overwrite it. */
static int config_load(const char *path, json_t **out, hypr_error *err)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = read_file(path, 1 << 20, &text, &len);
    if (r == -ENOENT) {
        *out = json_object();
        return 0;
    }
    if (r < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "read %s: %s", path, strerror(-r));
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EINVAL,
                        "%s is not a JSON object (line %d: %s): fix or remove it", path, je.line,
                        root ? "not an object" : je.text);
    }
    *out = root;
    return 0;
}

static int config_save(const char *path, json_t *root, hypr_error *err)
{
    _cleanup_free_ char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int r = mkdir_p(dir, 0700);
        if (r < 0)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "create %s: %s", dir, strerror(-r));
    }
    _cleanup_free_ char *text = json_dumps(root, JSON_INDENT(1));
    if (!text)
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "encode %s", path);
    _cleanup_free_ char *data = xasprintf("%s\n", text);
    int r = write_file_atomic(path, data, strlen(data), 0600);
    if (r < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "write %s: %s", path, strerror(-r));
    return 0;
}

/* Removes every auths entry naming the same registry as key; returns how many. */
static int remove_equivalent(json_t *auths, const char *key)
{
    _cleanup_free_ char *want = normalise_host(key);
    int n = 0;
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(auths, tmp, k, v)
    {
        _cleanup_free_ char *h = normalise_host(k);
        if (!strcmp(h, want) || (is_docker_hub(h) && is_docker_hub(want))) {
            json_object_del(auths, k);
            n++;
        }
    }
    return n;
}

int creds_store(const char *config_dir, const char *key, const char *user, const char *pass,
                char **path_out, hypr_error *err)
{
    _cleanup_free_ char *path = config_path(config_dir);
    if (!path)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOENT,
                        "no docker config directory: set DOCKER_CONFIG or HOME");
    json_t *root = NULL;
    int r = config_load(path, &root, err);
    if (r < 0)
        return r;
    json_t *auths = json_object_get(root, "auths");
    if (!json_is_object(auths)) {
        auths = json_object();
        json_object_set_new(root, "auths", auths);
    }
    remove_equivalent(auths, key);
    _cleanup_free_ char *pair = xasprintf("%s:%s", user, pass);
    _cleanup_free_ char *b64 = base64_encode(pair, strlen(pair));
    memset(pair, 0, strlen(pair));
    json_object_set_new(auths, key, json_pack("{s:s}", "auth", b64));
    r = config_save(path, root, err);
    json_decref(root);
    if (r >= 0 && path_out)
        *path_out = TAKE_PTR(path);
    return r;
}

int creds_erase(const char *config_dir, const char *key, hypr_error *err)
{
    _cleanup_free_ char *path = config_path(config_dir);
    if (!path || access(path, F_OK) < 0)
        return -ENOENT;
    json_t *root = NULL;
    int r = config_load(path, &root, err);
    if (r < 0)
        return r;
    json_t *auths = json_object_get(root, "auths");
    if (!json_is_object(auths) || remove_equivalent(auths, key) == 0) {
        json_decref(root);
        return -ENOENT;
    }
    r = config_save(path, root, err);
    json_decref(root);
    return r;
}
