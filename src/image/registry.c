/* OCI distribution client (libcurl): the /v2/ ping, bearer-token and basic
 * authentication from the registry's challenge, manifests and small blobs.
 * Large blobs go through blobs.c (curl multi) with the same URLs and headers.
 *
 * Plain HTTP is used only for registries in insecure_registries and for
 * loopback hosts; everything else is HTTPS with the system CAs plus an
 * optional CA file. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <curl/curl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#define MAX_MANIFEST   (4u * 1024 * 1024)
#define MAX_TOKEN_BODY (1u * 1024 * 1024)
#define MAX_ATTEMPTS   5

struct registry_client {
    char *host;       /* endpoint host[:port] */
    char *base;       /* "https://host" */
    char *repository; /* "library/nginx" */
    char *user, *pass;
    char *auth_header; /* "Authorization: ..." or NULL */
    auth_challenge chal;
    char *ca_file;
    char *client_cert, *client_key; /* from certs.d, for registries that ask for them */
    const image_progress *cancel;
    CURL *easy; /* reused for small requests: keeps the connection */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool is_loopback(const char *host)
{
    size_t n = strcspn(host, ":");
    if (host[0] == '[')
        return str_startswith(host, "[::1]");
    return (n == 9 && !strncmp(host, "localhost", 9)) || (n >= 4 && !strncmp(host, "127.", 4));
}

static bool is_insecure(char **list, const char *host)
{
    size_t hn = strcspn(host, ":");
    for (size_t i = 0; list && list[i]; i++) {
        const char *e = list[i];
        if (!strcmp(e, host))
            return true;
        /* an entry without a port covers every port of that host */
        if (!strchr(e, ':') && strlen(e) == hn && !strncmp(e, host, hn))
            return true;
    }
    return false;
}

/* Docker's certs.d layout: <dir>/<host[:port]>/<name>; NULL when absent. */
static char *certs_file(const char *dir, const char *host, const char *name)
{
    if (str_empty(dir) || strchr(host, '/'))
        return NULL;
    char *path = xasprintf("%s/%s/%s", dir, host, name);
    if (access(path, R_OK) == 0)
        return path;
    free(path);
    return NULL;
}

int registry_client_new(const registry_opts *o, registry_client **out, hypr_error *err)
{
    pthread_once(&curl_once, curl_init_once);
    registry_client *c = xcalloc(1, sizeof(*c));
    c->host = xstrdup(image_ref_endpoint_host(o->ref));
    /* A registry with a CA or client certificate in certs.d speaks TLS, even on loopback. */
    char *ca = certs_file(o->certs_dir, c->host, "ca.crt");
    c->client_cert = certs_file(o->certs_dir, c->host, "client.cert");
    c->client_key = certs_file(o->certs_dir, c->host, "client.key");
    bool tls_configured = ca || c->client_cert;
    bool plain = !tls_configured && (is_loopback(c->host) || is_insecure(o->insecure, c->host) ||
                                     is_insecure(o->insecure, o->ref->registry));
    c->base = xasprintf("%s://%s", plain ? "http" : "https", c->host);
    c->repository = xstrdup(o->ref->repository);
    c->ca_file = ca ? ca : o->ca_file ? xstrdup(o->ca_file) : NULL;
    c->cancel = o->cancel;
    if (creds_lookup(o->config_dir, o->ref->registry, &c->user, &c->pass) == 0)
        log_debug("using credentials of %s for %s", c->user, o->ref->registry);
    c->easy = curl_easy_init();
    if (!c->easy) {
        registry_client_free(c);
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "curl_easy_init failed");
    }
    *out = c;
    return 0;
}

void registry_client_free(registry_client *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    free(c->host);
    free(c->base);
    free(c->repository);
    free(c->user);
    if (c->pass)
        memset(c->pass, 0, strlen(c->pass));
    free(c->pass);
    free(c->auth_header);
    auth_challenge_clear(&c->chal);
    free(c->ca_file);
    free(c->client_cert);
    free(c->client_key);
    free(c);
}

const char *registry_host(registry_client *c)
{
    return c->host;
}

/* curl's progress callback: a non-zero return aborts the transfer once the pull is cancelled. */
static int on_xfer(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return img_cancelled(ud) ? 1 : 0;
}

void registry_easy_setup(registry_client *c, void *easy, const char *url,
                         struct curl_slist *headers)
{
    CURL *e = easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)c->cancel);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
    /* Below 1 byte/s for a minute: a slow registry is not a dead one. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hypr/" HYPR_VERSION);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (c->ca_file) {
        /* Both the extra bundle and the system's hashed CA directory. */
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
    }
    if (c->client_cert && c->client_key) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, c->client_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, c->client_key);
    }
}

struct curl_slist *registry_auth_headers(registry_client *c)
{
    struct curl_slist *h = NULL;
    if (c->auth_header)
        h = curl_slist_append(h, c->auth_header);
    return h;
}

char *registry_blob_url(registry_client *c, const char *digest)
{
    return xasprintf("%s/v2/%s/blobs/%s", c->base, c->repository, digest);
}

/* ---- one GET into memory, with retries ---------------------------------------------- */

typedef struct http_resp {
    long status;
    hypr_buf body;
    size_t max;
    bool too_big;
    char *content_type;
    char *www_authenticate;
    char *docker_digest;
    long retry_after;
} http_resp;

static void resp_clear(http_resp *r)
{
    buf_free(&r->body);
    free(r->content_type);
    free(r->www_authenticate);
    free(r->docker_digest);
    size_t max = r->max;
    memset(r, 0, sizeof(*r));
    r->max = max;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    http_resp *r = ud;
    size_t n = size * nmemb;
    if (r->body.len + n > r->max) {
        r->too_big = true;
        return 0;
    }
    buf_append(&r->body, data, n);
    return n;
}

static char *header_value(const char *line, size_t n, const char *name)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return xstrndup(v, (size_t)(end - v));
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud)
{
    http_resp *r = ud;
    size_t n = size * nmemb;
    char *v;
    if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
        /* a new response (redirect or 100-continue): forget the previous headers */
        free(r->content_type);
        free(r->www_authenticate);
        free(r->docker_digest);
        r->content_type = r->www_authenticate = r->docker_digest = NULL;
        r->retry_after = 0;
    } else if ((v = header_value(line, n, "Content-Type"))) {
        free(r->content_type);
        r->content_type = v;
    } else if ((v = header_value(line, n, "WWW-Authenticate"))) {
        free(r->www_authenticate);
        r->www_authenticate = v;
    } else if ((v = header_value(line, n, "Docker-Content-Digest"))) {
        free(r->docker_digest);
        r->docker_digest = v;
    } else if ((v = header_value(line, n, "Retry-After"))) {
        r->retry_after = strtol(v, NULL, 10);
        free(v);
    }
    return n;
}

static bool retryable_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Sleeps ms in small steps; false when cancelled meanwhile. */
bool img_backoff_sleep(const image_progress *cancel, long ms);
bool img_backoff_sleep(const image_progress *cancel, long ms)
{
    while (ms > 0) {
        if (img_cancelled(cancel))
            return false;
        long step = ms > 50 ? 50 : ms;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !img_cancelled(cancel);
}

/* GET url (with the auth header unless use_auth is an explicit header).
 * Retries dropped connections, 5xx and 429. Returns 0 with resp filled
 * (any HTTP status), or <0 on transport failure / cancel. */
static int http_get(registry_client *c, const char *url, const char *accept, const char *auth,
                    http_resp *resp, hypr_error *err)
{
    CURLcode cc = CURLE_OK;
    for (int attempt = 1;; attempt++) {
        resp_clear(resp);
        CURL *e = c->easy;
        curl_easy_reset(e);
        struct curl_slist *h = NULL;
        if (auth)
            h = curl_slist_append(h, auth);
        if (accept)
            h = curl_slist_append(h, accept);
        registry_easy_setup(c, e, url, h);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, resp);
        cc = curl_easy_perform(e);
        curl_slist_free_all(h);
        if (img_cancelled(c->cancel))
            return hypr_err(err, HYPR_CANCELLED, ECANCELED, "cancelled");
        if (cc == CURLE_WRITE_ERROR && resp->too_big)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EFBIG,
                            "GET %s: response larger than %zu bytes", url, resp->max);
        long delay_ms = 250L << (attempt - 1);
        if (cc == CURLE_OK) {
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
            bool again = resp->status >= 500 || resp->status == 429;
            if (!again)
                return 0;
            if (resp->retry_after > 0)
                delay_ms = (resp->retry_after > 30 ? 30 : resp->retry_after) * 1000;
            if (attempt >= MAX_ATTEMPTS)
                return 0;
            log_debug("GET %s: HTTP %ld, retrying in %ld ms", url, resp->status, delay_ms);
        } else {
            if (!retryable_curl(cc) || attempt >= MAX_ATTEMPTS)
                break;
            log_debug("GET %s: %s, retrying in %ld ms", url, curl_easy_strerror(cc), delay_ms);
        }
        if (!img_backoff_sleep(c->cancel, delay_ms))
            return hypr_err(err, HYPR_CANCELLED, ECANCELED, "cancelled");
    }
    return hypr_err(err, HYPR_UNAVAILABLE, EIO, "registry %s unreachable: %s", c->host,
                    curl_easy_strerror(cc));
}

/* ---- authentication ------------------------------------------------------------------- */

static int fetch_token(registry_client *c, hypr_error *err)
{
    if (str_empty(c->chal.realm) ||
        !(str_startswith(c->chal.realm, "https://") || str_startswith(c->chal.realm, "http://")))
        return hypr_err(err, HYPR_UNAVAILABLE, EPROTO,
                        "registry %s: bearer challenge without a usable realm", c->host);
    hypr_buf url = {0};
    buf_puts(&url, c->chal.realm);
    char sep = strchr(c->chal.realm, '?') ? '&' : '?';
    _cleanup_free_ char *scope =
        c->chal.scope ? xstrdup(c->chal.scope) : xasprintf("repository:%s:pull", c->repository);
    if (c->chal.service) {
        char *s = curl_easy_escape(c->easy, c->chal.service, 0);
        buf_printf(&url, "%cservice=%s", sep, s);
        curl_free(s);
        sep = '&';
    }
    /* A login asks for a token without a scope, like docker login. */
    if (!str_empty(c->repository) || c->chal.scope) {
        char *sc = curl_easy_escape(c->easy, scope, 0);
        buf_printf(&url, "%cscope=%s", sep, sc);
        curl_free(sc);
    }
    _cleanup_free_ char *basic = c->user ? auth_basic_header(c->user, c->pass) : NULL;
    _cleanup_(resp_clear) http_resp resp = {.max = MAX_TOKEN_BODY};
    int r = http_get(c, url.data, NULL, basic, &resp, err);
    buf_free(&url);
    if (r < 0) {
        return hypr_err_prefix(err, "token from %s", c->chal.realm);
    }
    if (resp.status == 401 || resp.status == 403) {
        return hypr_err(
            err, HYPR_UNAUTHENTICATED, EACCES, "registry %s: authentication failed (%s): %s",
            c->host, c->user ? "bad credentials?" : "no credentials",
            c->user ? "check the credentials in the docker config" : "log in with hypr login");
    }
    if (resp.status != 200) {
        long st = resp.status;
        return hypr_err(err, HYPR_UNAVAILABLE, EIO, "registry %s: token endpoint answered HTTP %ld",
                        c->host, st);
    }
    json_error_t je;
    json_t *o = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, &je);
    const char *tok = json_string_value(json_object_get(o, "token"));
    if (str_empty(tok))
        tok = json_string_value(json_object_get(o, "access_token"));
    if (str_empty(tok) || strlen(tok) > 64 * 1024 || strpbrk(tok, "\r\n")) {
        json_decref(o);
        return hypr_err(err, HYPR_UNAVAILABLE, EPROTO,
                        "registry %s: token response without a token", c->host);
    }
    free(c->auth_header);
    c->auth_header = xasprintf("Authorization: Bearer %s", tok);
    json_decref(o);
    return 0;
}

int registry_reauth(registry_client *c, const char *www_authenticate, hypr_error *err)
{
    auth_challenge ch;
    if (auth_parse_challenge(www_authenticate, &ch) < 0)
        return hypr_err(err, HYPR_UNAUTHENTICATED, EACCES,
                        "registry %s: authentication required (no usable challenge)", c->host);
    auth_challenge_clear(&c->chal);
    c->chal = ch;
    if (!strcmp(ch.scheme, "basic")) {
        if (!c->user)
            return hypr_err(err, HYPR_UNAUTHENTICATED, EACCES,
                            "registry %s requires credentials: run hypr login %s", c->host,
                            c->host);
        free(c->auth_header);
        c->auth_header = auth_basic_header(c->user, c->pass);
        return 0;
    }
    if (!strcmp(ch.scheme, "bearer"))
        return fetch_token(c, err);
    return hypr_err(err, HYPR_UNAUTHENTICATED, EACCES,
                    "registry %s: unsupported authentication scheme %s", c->host, ch.scheme);
}

int registry_ping(registry_client *c, hypr_error *err)
{
    _cleanup_free_ char *url = xasprintf("%s/v2/", c->base);
    _cleanup_(resp_clear) http_resp resp = {.max = 64 * 1024};
    int r = http_get(c, url, NULL, NULL, &resp, err);
    if (r < 0) {
        return r;
    }
    if (resp.status == 200) {
        return 0;
    }
    if (resp.status == 401) {
        _cleanup_free_ char *chal = resp.www_authenticate ? xstrdup(resp.www_authenticate) : NULL;
        if (!chal)
            return hypr_err(err, HYPR_UNAUTHENTICATED, EACCES,
                            "registry %s: 401 without WWW-Authenticate", c->host);
        return registry_reauth(c, chal, err);
    }
    long st = resp.status;
    /* 400 to plain HTTP is what a TLS server answers it. */
    bool tls_hint = st == 400 && str_startswith(c->base, "http:");
    return hypr_err(err, HYPR_UNAVAILABLE, EPROTO,
                    "%s does not look like a registry (GET /v2/ answered HTTP %ld)%s", c->host, st,
                    tls_hint
                        ? "; if it serves HTTPS, put its CA certificate in "
                          "<registry_certs_dir>/<host:port>/ca.crt (setting registry_certs_dir)"
                        : "");
}

/* GET with one re-authentication on 401 (a token scoped for another repo). */
static int authed_get(registry_client *c, const char *url, const char *accept, http_resp *resp,
                      hypr_error *err)
{
    int r = http_get(c, url, accept, c->auth_header, resp, err);
    if (r < 0 || resp->status != 401)
        return r;
    _cleanup_free_ char *chal = resp->www_authenticate ? xstrdup(resp->www_authenticate) : NULL;
    if (!chal)
        return 0;
    r = registry_reauth(c, chal, err);
    if (r < 0)
        return r;
    return http_get(c, url, accept, c->auth_header, resp, err);
}

int registry_get_manifest(registry_client *c, const char *reference, char **body, size_t *len,
                          char **content_type, char **digest, hypr_error *err)
{
    *body = *content_type = *digest = NULL;
    _cleanup_free_ char *url =
        xasprintf("%s/v2/%s/manifests/%s", c->base, c->repository, reference);
    _cleanup_(resp_clear) http_resp resp = {.max = MAX_MANIFEST};
    int r = authed_get(c, url,
                       "Accept: " IMAGE_MT_OCI_INDEX ", " IMAGE_MT_OCI_MANIFEST
                       ", " IMAGE_MT_DOCKER_LIST ", " IMAGE_MT_DOCKER_MANIFEST,
                       &resp, err);
    if (r < 0) {
        return r;
    }
    long st = resp.status;
    if (st != 200) {
        if (st == 404)
            return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "manifest %s not found in %s/%s",
                            reference, c->host, c->repository);
        if (st == 401 || st == 403)
            return hypr_err(err, HYPR_UNAUTHENTICATED, EACCES,
                            "access to %s/%s denied (HTTP %ld): check the credentials", c->host,
                            c->repository, st);
        return hypr_err(err, HYPR_UNAVAILABLE, EIO, "manifest %s: registry %s answered HTTP %ld",
                        reference, c->host, st);
    }
    *digest = img_sha256_digest(resp.body.data ? resp.body.data : "", resp.body.len);
    if (image_digest_valid(reference) && strcmp(reference, *digest)) {
        free(*digest);
        *digest = NULL;
        return hypr_err(err, HYPR_DATA_LOSS, EBADMSG,
                        "manifest %s: content does not match its digest", reference);
    }
    *content_type = resp.content_type ? xstrdup(resp.content_type) : NULL;
    *len = resp.body.len;
    *body = resp.body.data ? buf_steal(&resp.body) : xstrdup("");
    return 0;
}

int registry_get_blob_mem(registry_client *c, const char *digest, size_t max, char **body,
                          size_t *len, hypr_error *err)
{
    *body = NULL;
    _cleanup_free_ char *url = registry_blob_url(c, digest);
    _cleanup_(resp_clear) http_resp resp = {.max = max};
    int r = authed_get(c, url, NULL, &resp, err);
    if (r < 0) {
        return hypr_err_prefix(err, "blob %.19s", digest);
    }
    if (resp.status != 200) {
        long st = resp.status;
        return hypr_err(err, st == 404 ? HYPR_NOT_FOUND : HYPR_UNAVAILABLE,
                        st == 404 ? ENOENT : EIO, "blob %s: registry %s answered HTTP %ld", digest,
                        c->host, st);
    }
    _cleanup_free_ char *got =
        img_sha256_digest(resp.body.data ? resp.body.data : "", resp.body.len);
    if (strcmp(got, digest)) {
        return hypr_err(err, HYPR_DATA_LOSS, EBADMSG, "blob %s: digest mismatch (got %s)", digest,
                        got);
    }
    *len = resp.body.len;
    *body = resp.body.data ? buf_steal(&resp.body) : xstrdup("");
    return 0;
}

/* ---- login ------------------------------------------------------------------------------ */

static int login_refused(const char *url, long status, hypr_error *err)
{
    return hypr_err(err, HYPR_UNAUTHENTICATED, EACCES,
                    "login attempt to %s failed with status: %ld %s (unauthorized: "
                    "incorrect username or password)",
                    url, status, status == 403 ? "Forbidden" : "Unauthorized");
}

int image_registry_login(const image_login_opts *o, hypr_error *err)
{
    _cleanup_free_ char *key = creds_key(o->server);
    /* The host a pull of an image of that registry would name. */
    _cleanup_free_ char *host =
        strcmp(key, CREDS_DOCKER_HUB_KEY) ? xstrdup(key) : xstrdup("docker.io");
    int r = image_registry_check(host, err);
    if (r < 0)
        return r;
    image_ref ref = {.registry = host, .repository = (char *)""};
    registry_opts ro = {.ref = &ref,
                        .insecure = o->insecure,
                        .ca_file = o->ca_file,
                        .certs_dir = o->certs_dir,
                        .cancel = o->cancel};
    _cleanup_(registry_client_freep) registry_client *c = NULL;
    r = registry_client_new(&ro, &c, err);
    if (r < 0)
        return r;
    free(c->user);
    free(c->pass);
    c->user = xstrdup(o->user);
    c->pass = xstrdup(o->pass);
    _cleanup_free_ char *url = xasprintf("%s/v2/", c->base);
    _cleanup_(resp_clear) http_resp resp = {.max = 64 * 1024};
    r = http_get(c, url, NULL, NULL, &resp, err);
    long st = resp.status;
    _cleanup_free_ char *chal = resp.www_authenticate ? xstrdup(resp.www_authenticate) : NULL;
    resp_clear(&resp);
    if (r < 0)
        return r;
    if (st == 200)
        return 0; /* a registry without authentication takes anyone */
    if (st != 401)
        return hypr_err(err, HYPR_UNAVAILABLE, EPROTO,
                        "login attempt to %s failed: it does not look like a registry (HTTP %ld)",
                        url, st);
    if (!chal)
        return hypr_err(err, HYPR_UNAVAILABLE, EPROTO,
                        "login attempt to %s failed: 401 without WWW-Authenticate", url);
    r = registry_reauth(c, chal, err);
    if (r < 0) {
        if (err && err->status == HYPR_UNAUTHENTICATED && c->chal.scheme &&
            !strcmp(c->chal.scheme, "bearer"))
            return login_refused(c->chal.realm, 401, err);
        return r;
    }
    r = http_get(c, url, NULL, c->auth_header, &resp, err);
    st = resp.status;
    if (r < 0)
        return r;
    if (st == 401 || st == 403)
        return login_refused(url, st, err);
    if (st != 200)
        return hypr_err(err, HYPR_UNAVAILABLE, EIO, "login attempt to %s failed with HTTP %ld", url,
                        st);
    return 0;
}
