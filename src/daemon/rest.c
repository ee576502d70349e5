/* The REST gateway. A request becomes the request message of its route's RPC (JSON
 * body, then query parameters, then path parameters, in the proto3 JSON mapping),
 * runs through the same handler a gRPC call would (rpc_call_external), and its
 * responses go back as JSON: one object for a unary RPC, NDJSON lines
 * {"result": ...} for a server stream, {"code", "message"} with grpc-gateway's HTTP
 * status for an error. */
#define LOG_MODULE "rest"
#include "rest.h"

#include <string.h>

#include "common/json_cleanup.h"

typedef struct rest_gateway {
    http_server *http;
    char *addr; /* what it listens on, "" when off */
} rest_gateway;

/* One request in flight. */
typedef struct rest_call {
    http_exchange *x;
    rpc_call *call;
    bool stream;
    bool finished;
    char *body; /* a unary response's JSON */
} rest_call;

/* ---- routes ------------------------------------------------------------------------ */

int rest_http_status(hypr_status status)
{
    static const int map[] = {
        [HYPR_OK] = 200,
        [HYPR_CANCELLED] = 499,
        [HYPR_UNKNOWN] = 500,
        [HYPR_INVALID_ARGUMENT] = 400,
        [HYPR_DEADLINE_EXCEEDED] = 504,
        [HYPR_NOT_FOUND] = 404,
        [HYPR_ALREADY_EXISTS] = 409,
        [HYPR_PERMISSION_DENIED] = 403,
        [HYPR_RESOURCE_EXHAUSTED] = 429,
        [HYPR_FAILED_PRECONDITION] = 400,
        [HYPR_ABORTED] = 409,
        [HYPR_OUT_OF_RANGE] = 400,
        [HYPR_UNIMPLEMENTED] = 501,
        [HYPR_INTERNAL] = 500,
        [HYPR_UNAVAILABLE] = 503,
        [HYPR_DATA_LOSS] = 500,
        [HYPR_UNAUTHENTICATED] = 401,
    };
    return (unsigned)status < ARRAY_SIZE(map) && map[status] ? map[status] : 500;
}

/* %XX decoding ('+' is a space in a query). NULL for a bad escape or a NUL byte. */
static bool is_param(const char *seg, size_t len, bool *rest)
{
    if (len < 3 || seg[0] != '{' || seg[len - 1] != '}')
        return false;
    *rest = len > 5 && memcmp(seg + len - 4, "=**}", 4) == 0;
    return true;
}

/* Matches path against one route; fills params (name, value pairs) and the number of
 * literal segments (the more, the more specific). */
static bool route_match(const rest_route *r, char **segs, size_t n, char ***params,
                        size_t *literals)
{
    _cleanup_strv_ char **pat = strv_split(r->path + 1, "/");
    size_t np = strv_length(pat);
    _cleanup_strv_ char **out = NULL;
    *literals = 0;
    size_t si = 0;
    for (size_t pi = 0; pi < np; pi++) {
        bool rest = false;
        size_t plen = strlen(pat[pi]);
        if (!is_param(pat[pi], plen, &rest)) {
            if (si >= n || strcmp(pat[pi], segs[si]) != 0)
                return false;
            (*literals)++;
            si++;
            continue;
        }
        _cleanup_free_ char *name = xstrndup(pat[pi] + 1, plen - (rest ? 5 : 2));
        size_t after = np - pi - 1; /* literal segments after a {x=**} */
        size_t take = rest ? (n >= si + after + 1 ? n - si - after : 0) : 1;
        if (take == 0 || si + take > n)
            return false;
        _cleanup_buf_ hypr_buf v = {0};
        for (size_t k = 0; k < take; k++)
            buf_printf(&v, "%s%s", k ? "/" : "", segs[si + k]);
        if (v.len == 0)
            return false;
        out = strv_append(out, name);
        out = strv_append(out, v.data);
        si += take;
    }
    if (si != n)
        return false;
    *params = out ? TAKE_PTR(out) : xcalloc(1, sizeof(char *));
    return true;
}

const rest_route *rest_match(const char *verb, const char *path, char ***params, bool *path_known)
{
    *params = NULL;
    *path_known = false;
    if (!path || path[0] != '/')
        return NULL;
    /* Segments are decoded one by one: %2F inside one stays inside it. */
    _cleanup_strv_ char **raw = strv_split(path + 1, "/");
    _cleanup_strv_ char **segs = NULL;
    size_t n = 0;
    for (char **s = raw; s && *s; s++, n++) {
        char *d = percent_decode(*s, strlen(*s), PERCENT_STRICT);
        if (!d)
            return NULL;
        segs = strv_append(segs, d);
        free(d);
    }
    const rest_route *best = NULL;
    size_t best_literals = 0;
    for (size_t i = 0; i < rest_n_routes; i++) {
        char **p = NULL;
        size_t literals;
        if (!segs || !route_match(&rest_routes[i], segs, n, &p, &literals))
            continue;
        if (strcmp(rest_routes[i].verb, verb) != 0) {
            *path_known = true;
            strv_free(p);
            continue;
        }
        if (!best || literals > best_literals) {
            best = &rest_routes[i];
            best_literals = literals;
            strv_free(*params);
            *params = p;
        } else {
            strv_free(p);
        }
    }
    return best;
}

/* ---- responses ----------------------------------------------------------------------- */

/* {"code","message","details"}. The message may quote the client's bytes (a query
 * key, a path): written so that it stays JSON even when they are not UTF-8. */
static char *status_json(hypr_status status, const char *message)
{
    const char *m = message ? message : hypr_status_name(status);
    _cleanup_buf_ hypr_buf b = {0};
    buf_printf(&b, "{\"code\":%d,\"message\":", (int)status);
    rpc_json_put_string(&b, m, strlen(m));
    buf_puts(&b, ",\"details\":[]}");
    return buf_steal(&b);
}

static void respond_json(http_exchange *x, int http_status, char *json)
{
    _cleanup_free_ char *body = json;
    size_t n = strlen(body);
    _cleanup_buf_ hypr_buf line = {0};
    buf_reserve(&line, n + 1);
    buf_append(&line, body, n);
    buf_puts(&line, "\n");
    http_respond(x, http_status, "application/json", line.data, line.len);
}

static void respond_error(http_exchange *x, hypr_status status, const char *message)
{
    respond_json(x, rest_http_status(status), status_json(status, message));
}

/* ---- the transport of an external call -------------------------------------------------- */

static int tx_send(void *tx, const ProtobufCMessage *msg)
{
    rest_call *rc = tx;
    if (!rc->x)
        return -ECANCELED;
    _cleanup_buf_ hypr_buf text = {0};
    if (!rc->stream) {
        rpc_pb_to_json_text(msg, &text);
        free(rc->body);
        rc->body = buf_steal(&text);
        return 0;
    }
    if (!http_exchange_started(rc->x))
        http_begin_chunked(rc->x, 200, "application/x-ndjson");
    buf_puts(&text, "{\"result\":");
    rpc_pb_to_json_text(msg, &text);
    buf_puts(&text, "}\n");
    http_send_chunk(rc->x, text.data, text.len);
    return 0;
}

static void tx_finish(void *tx, hypr_status status, const char *message)
{
    rest_call *rc = tx;
    rc->finished = true;
    if (!rc->x)
        return;
    if (rc->stream && http_exchange_started(rc->x)) {
        if (status != HYPR_OK) {
            _cleanup_free_ char *err = status_json(status, message);
            _cleanup_free_ char *line = xasprintf("{\"error\":%s}\n", err);
            http_send_chunk(rc->x, line, strlen(line));
        }
        http_end_chunked(rc->x);
    } else if (status != HYPR_OK) {
        respond_error(rc->x, status, message);
    } else if (rc->stream) {
        http_begin_chunked(rc->x, 200, "application/x-ndjson");
        http_end_chunked(rc->x);
    } else {
        respond_json(rc->x, 200, rc->body ? TAKE_PTR(rc->body) : xstrdup("{}"));
    }
}

static size_t tx_pending(void *tx)
{
    rest_call *rc = tx;
    return rc->x ? http_exchange_pending(rc->x) : 0;
}

static const rpc_transport transport = {tx_send, tx_finish, tx_pending};

static void on_exchange_close(http_exchange *x, bool cancelled, void *data)
{
    (void)x;
    rest_call *rc = data;
    rc->x = NULL;
    if (rc->call)
        rpc_call_external_release(rc->call, cancelled || !rc->finished);
    free(rc->body);
    free(rc);
}

static void on_exchange_drain(http_exchange *x, void *data)
{
    (void)x;
    rest_call *rc = data;
    if (rc->call)
        rpc_call_external_drained(rc->call);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* JSON, or what `curl -d` sends by default (its body is still our JSON). */
static bool json_content_type(const char *ct)
{
    if (!ct)
        return true;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    static const char *const ok[] = {"application/json", "application/x-www-form-urlencoded"};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
        if (n == strlen(ok[i]) && strncasecmp(ct, ok[i], n) == 0)
            return true;
    return false;
}

/* The request message, from the body, the query and the path parameters (in that
 * order: a later field wins for scalars). */
static int build_request(const rpc_method *m, const http_request *req, char **params,
                         ProtobufCMessage **out, hypr_error *err)
{
    _cleanup_buf_ hypr_buf wire = {0};
    if (req->body_len > 0) {
        if (!json_content_type(req->content_type))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "unsupported Content-Type \"%s\": send application/json",
                            req->content_type);
        json_error_t jerr;
        _cleanup_json_ json_t *body =
            json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!body)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid JSON body: %s (line %d, column %d)", jerr.text, jerr.line,
                            jerr.column);
        int r = rpc_json_to_wire(m->request, body, &wire, err);
        if (r < 0)
            return r;
    }
    for (const char *q = req->query; *q;) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        if (klen > 0) {
            _cleanup_free_ char *key = percent_decode(q, klen, PERCENT_STRICT | PERCENT_PLUS);
            _cleanup_free_ char *val =
                eq ? percent_decode(eq + 1, len - klen - 1, PERCENT_STRICT | PERCENT_PLUS)
                   : xstrdup("true"); /* ?all = ?all=true */
            if (!key || !val)
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "bad percent-encoding in the query string");
            int r = rpc_text_to_wire(m->request, key, val, &wire, err);
            if (r < 0)
                return r;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    for (char **p = params; p && p[0] && p[1]; p += 2) {
        int r = rpc_text_to_wire(m->request, p[0], p[1], &wire, err);
        if (r < 0)
            return r;
    }
    *out = protobuf_c_message_unpack(m->request, NULL, wire.len, (uint8_t *)wire.data);
    if (!*out)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "cannot build a %s from the request",
                        m->request->name);
    return 0;
}

/* "localhost", "127.0.0.1:41001", "[::1]:41001"... */
static bool loopback_host(const char *host)
{
    _cleanup_free_ char *h = xstrdup(host);
    char *end = h[0] == '[' ? strchr(h, ']') : strrchr(h, ':');
    if (h[0] == '[' && end)
        end[1] = '\0';
    else if (end)
        *end = '\0';
    return strcasecmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 || strcmp(h, "[::1]") == 0;
}

/* A web page must not drive hyprd: a browser's cross-site form POST needs no CORS
 * preflight, and DNS rebinding makes evil.example resolve to 127.0.0.1. So requests
 * that carry an Origin (browsers do) are refused, and on a loopback address the
 * Host must be a loopback name. */
static const char *refused_by_origin(const rest_gateway *g, const http_request *req)
{
    if (req->origin)
        return "requests from web pages (with an Origin header) are refused";
    if (g->addr && strncmp(g->addr, "127.", 4) == 0 && (!req->host || !loopback_host(req->host)))
        return "the Host header must name the loopback address hyprd listens on";
    return NULL;
}

static void on_request(http_exchange *x, const http_request *req, void *userdata)
{
    daemon_ctx *d = userdata;
    const char *why = d->rest ? refused_by_origin(d->rest, req) : NULL;
    if (why) {
        respond_json(x, 403, status_json(HYPR_PERMISSION_DENIED, why));
        return;
    }
    if (strcmp(req->path, "/v1/openapi.json") == 0) {
        if (strcmp(req->method, "GET") != 0) {
            respond_error(x, HYPR_UNIMPLEMENTED, "use GET for /v1/openapi.json");
            return;
        }
        http_respond(x, 200, "application/json", rest_openapi_json, strlen(rest_openapi_json));
        return;
    }
    _cleanup_strv_ char **params = NULL;
    bool known;
    const rest_route *route = rest_match(req->method, req->path, &params, &known);
    if (!route) {
        _cleanup_free_ char *m = known ? xasprintf("%s is not allowed on %s (see /v1/openapi.json)",
                                                   req->method, req->path)
                                       : xasprintf("no REST route for %s %s (see /v1/openapi.json)",
                                                   req->method, req->path);
        if (known)
            respond_json(x, 405, status_json(HYPR_UNIMPLEMENTED, m));
        else
            respond_error(x, HYPR_NOT_FOUND, m);
        return;
    }
    const rpc_method *m = rpc_server_method(d->server, route->rpc);
    if (!m) {
        respond_error(x, HYPR_UNIMPLEMENTED, route->rpc);
        return;
    }
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    ProtobufCMessage *msg = NULL;
    if (build_request(m, req, params, &msg, &err) < 0) {
        respond_error(x, err.status, err.message);
        return;
    }
    log_debug("%s %s -> %s", req->method, req->path, route->rpc);
    rest_call *rc = xcalloc(1, sizeof(*rc));
    rc->x = x;
    rc->stream = route->stream;
    rc->call = rpc_call_external(d->server, m, &transport, rc);
    http_exchange_set_callbacks(x, on_exchange_close, on_exchange_drain, rc);
    rpc_call_external_start(rc->call, msg);
    /* A stream that did not fail at once (a bad ID fails at once, with its HTTP
     * status) answers 200 now: an event stream may be quiet for a long time. */
    if (rc->stream && !rc->finished && rc->x && !http_exchange_started(rc->x))
        http_begin_chunked(rc->x, 200, "application/x-ndjson");
}

/* ---- start / stop ------------------------------------------------------------------------ */

http_server *daemon_http_listen(daemon_ctx *d, const char *addr, http_handler handler,
                                const char *what)
{
    if (str_empty(addr))
        return NULL;
    _cleanup_free_ char *host = xstrdup(addr);
    char *colon = strrchr(host, ':');
    if (!colon)
        return NULL;
    *colon = '\0';
    http_server *http = NULL;
    http_server_new(d->loop, handler, d, &http);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (http_server_listen_tcp(http, host, atoi(colon + 1), &err) < 0) {
        /* Another hyprd in this namespace may hold it: the listener is lost, not the daemon. */
        log_warn("%s: %s", what, err.message);
        http_server_free(http);
        return NULL;
    }
    log_info("%s on http://%s", what, addr);
    return http;
}

static void listen_on(daemon_ctx *d, rest_gateway *g, const char *addr)
{
    free(g->addr);
    g->addr = xstrdup(addr);
    g->http = daemon_http_listen(d, addr, on_request, "REST gateway");
}

void rest_start(daemon_ctx *d)
{
    rest_gateway *g = xcalloc(1, sizeof(*g));
    d->rest = g;
    _cleanup_free_ char *addr = settings_get(d, "rest_addr");
    listen_on(d, g, addr);
}

void rest_stop(daemon_ctx *d)
{
    rest_gateway *g = d->rest;
    if (!g)
        return;
    d->rest = NULL;
    http_server_free(g->http);
    free(g->addr);
    free(g);
}

void rest_reconfigure(daemon_ctx *d)
{
    rest_gateway *g = d->rest;
    if (!g || d->shutting_down)
        return;
    _cleanup_free_ char *addr = settings_get(d, "rest_addr");
    if (g->http && strcmp(addr, g->addr) == 0)
        return;
    /* The request that changed it (maybe over REST) still gets its answer. */
    http_server_retire(g->http);
    g->http = NULL;
    listen_on(d, g, addr);
}
