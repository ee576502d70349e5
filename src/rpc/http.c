/* A small HTTP/1.1 server on the daemon's libuv loop (http-parser): one request at a
 * time per connection (keep-alive and pipelining by pausing the parser), whole or
 * chunked responses, back-pressure, and an on_close that says whether the client
 * went away. Used by the REST gateway. */
#define LOG_MODULE "http"
#include "rpc/rpc.h"

#include <http_parser.h>
#include <string.h>

#define HTTP_MAX_URL     8192
#define HTTP_MAX_HEADERS (64 * 1024)
#define HTTP_MAX_BODY    (16u * 1024 * 1024)
#define HTTP_LOW_WATER   (64 * 1024)
/* Bytes read ahead while a request is being answered (pipelined requests). */
#define HTTP_MAX_AHEAD (1024 * 1024)

typedef struct http_conn http_conn;

struct http_exchange {
    http_conn *conn;
    http_request req;
    bool keep_alive;
    bool chunked;     /* a chunked response is under way */
    bool headers_out; /* status line and headers queued */
    bool done;        /* the response is complete */
    bool closed;      /* on_close ran */
    void (*on_close)(http_exchange *x, bool cancelled, void *data);
    void (*on_drain)(http_exchange *x, void *data);
    void *data;
};

struct http_conn {
    http_server *server;
    http_conn *prev, *next;
    uv_tcp_t tcp;
    bool has_handle;   /* false for the test hook's connections */
    hypr_buf test_out; /* what a test connection was sent */
    http_parser parser;
    bool closing;
    bool feeding; /* inside conn_feed: it goes on with the input itself */
    bool read_stopped;
    size_t write_pending; /* bytes handed to uv_write and not yet written */
    /* The request being parsed. */
    hypr_buf url, field, value, body;
    char *content_type, *host, *origin, *accept;
    char *expect; /* "100-continue": the client waits to send the body */
    bool last_was_value;
    size_t header_bytes;
    int error_status; /* set by a callback that refused the request */
    /* Input after a complete request, parsed once it is answered. */
    hypr_buf ahead;
    http_exchange *x; /* the request being answered */
};

struct http_server {
    uv_loop_t *loop;
    http_handler handler;
    void *userdata;
    uv_tcp_t *listener;
    http_conn *conns;
    bool shutting_down;
    bool retired; /* freed when its last connection closes */
};

static void conn_close(http_conn *c);
static void conn_close_later(http_conn *c);
static void conn_feed(http_conn *c, const char *data, size_t len);
static void conn_resume_read(http_conn *c);

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* ---- writing ------------------------------------------------------------------------ */

typedef struct http_write {
    uv_write_t req;
    http_conn *conn;
    size_t len;
    char data[];
} http_write;

static void exchange_finish(http_exchange *x, bool cancelled);

static void on_written(uv_write_t *req, int status)
{
    http_write *w = (http_write *)req;
    http_conn *c = w->conn;
    size_t before = c->write_pending;
    c->write_pending -= w->len;
    free(w);
    if (status < 0) {
        conn_close(c);
        return;
    }
    http_exchange *x = c->x;
    if (x && !x->done && x->on_drain && before >= HTTP_LOW_WATER &&
        c->write_pending < HTTP_LOW_WATER)
        x->on_drain(x, x->data);
    if (c->x && c->x->done && c->write_pending == 0)
        exchange_finish(c->x, false);
}

static void conn_write(http_conn *c, const void *data, size_t len)
{
    if (c->closing || len == 0)
        return;
    if (!c->has_handle) {
        buf_append(&c->test_out, data, len);
        return;
    }
    http_write *w = xmalloc(sizeof(*w) + len);
    w->conn = c;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    c->write_pending += len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        c->write_pending -= len;
        free(w);
        /* The caller may be inside the exchange: it is finished once the handle is closed. */
        conn_close_later(c);
    }
}

static void put_headers(http_exchange *x, int status, const char *content_type, bool chunked,
                        size_t len)
{
    http_conn *c = x->conn;
    bool http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
    if (chunked && http10)
        x->keep_alive = false; /* no chunked encoding: the end is the connection's close */
    _cleanup_buf_ hypr_buf h = {0};
    buf_printf(&h, "HTTP/1.1 %d %s\r\nServer: hyprd/%s\r\n", status, reason(status), HYPR_VERSION);
    if (content_type)
        buf_printf(&h, "Content-Type: %s\r\n", content_type);
    if (chunked && !http10)
        buf_puts(&h, "Transfer-Encoding: chunked\r\n");
    else if (!chunked)
        buf_printf(&h, "Content-Length: %zu\r\n", len);
    if (!x->keep_alive)
        buf_puts(&h, "Connection: close\r\n");
    buf_puts(&h, "\r\n");
    x->chunked = chunked && !http10;
    x->headers_out = true;
    conn_write(c, h.data, h.len);
}

/* ---- exchanges ------------------------------------------------------------------------ */

static void request_free(http_request *r)
{
    free((char *)r->method);
    free((char *)r->path);
    free((char *)r->query);
    free((char *)r->content_type);
    free((char *)r->host);
    free((char *)r->origin);
    free((char *)r->accept);
    free((char *)r->body);
}

/* The response is complete and written (or the connection is gone). */
static void exchange_finish(http_exchange *x, bool cancelled)
{
    http_conn *c = x->conn;
    if (!x->closed) {
        x->closed = true;
        if (x->on_close)
            x->on_close(x, cancelled, x->data);
    }
    bool keep = !cancelled && x->keep_alive && !c->server->shutting_down;
    c->x = NULL;
    request_free(&x->req);
    free(x);
    if (c->closing)
        return;
    if (!keep) {
        conn_close(c);
        return;
    }
    /* Next request: what was read ahead first. */
    http_parser_pause(&c->parser, 0);
    if (c->read_stopped && c->has_handle) {
        c->read_stopped = false;
        conn_resume_read(c);
    }
    if (c->ahead.len && !c->feeding) {
        _cleanup_buf_ hypr_buf ahead = c->ahead;
        c->ahead = (hypr_buf){0};
        conn_feed(c, ahead.data, ahead.len);
    }
}

static void exchange_done(http_exchange *x)
{
    x->done = true;
    if (x->conn->write_pending == 0)
        exchange_finish(x, false);
}

void http_respond(http_exchange *x, int status, const char *content_type, const void *body,
                  size_t len)
{
    if (x->done || x->headers_out)
        return;
    put_headers(x, status, content_type, false, len);
    conn_write(x->conn, body, len);
    exchange_done(x);
}

void http_begin_chunked(http_exchange *x, int status, const char *content_type)
{
    if (x->done || x->headers_out)
        return;
    put_headers(x, status, content_type, true, 0);
}

void http_send_chunk(http_exchange *x, const void *data, size_t len)
{
    if (x->done || !x->headers_out || len == 0)
        return;
    if (!x->chunked) {
        conn_write(x->conn, data, len);
        return;
    }
    char head[24];
    int n = snprintf(head, sizeof(head), "%zx\r\n", len);
    _cleanup_buf_ hypr_buf b = {0};
    buf_append(&b, head, (size_t)n);
    buf_append(&b, data, len);
    buf_puts(&b, "\r\n");
    conn_write(x->conn, b.data, b.len);
}

void http_end_chunked(http_exchange *x)
{
    if (x->done || !x->headers_out)
        return;
    if (x->chunked)
        conn_write(x->conn, "0\r\n\r\n", 5);
    exchange_done(x);
}

bool http_exchange_started(const http_exchange *x)
{
    return x->headers_out;
}

size_t http_exchange_pending(const http_exchange *x)
{
    return x->conn->write_pending;
}

void http_exchange_set_callbacks(http_exchange *x,
                                 void (*on_close)(http_exchange *x, bool cancelled, void *data),
                                 void (*on_drain)(http_exchange *x, void *data), void *data)
{
    x->on_close = on_close;
    x->on_drain = on_drain;
    x->data = data;
}

/* ---- parsing ---------------------------------------------------------------------------- */

static http_conn *parser_conn(http_parser *p)
{
    return p->data;
}

static int refuse(http_conn *c, int status)
{
    c->error_status = status;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = parser_conn(p);
    hypr_buf *bufs[] = {&c->url, &c->field, &c->value, &c->body};
    for (size_t i = 0; i < ARRAY_SIZE(bufs); i++)
        if (bufs[i]->data)
            bufs[i]->data[bufs[i]->len = 0] = '\0';
    free(c->content_type);
    free(c->host);
    free(c->origin);
    free(c->accept);
    free(c->expect);
    c->content_type = c->host = c->origin = c->accept = c->expect = NULL;
    c->last_was_value = false;
    c->header_bytes = 0;
    return 0;
}

/* Appends a piece of the request to b, refused with status beyond max bytes. */
static int append_within(http_conn *c, hypr_buf *b, const char *at, size_t len, size_t max,
                         int status)
{
    if (b->len + len > max)
        return refuse(c, status);
    buf_append(b, at, len);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn *c = parser_conn(p);
    return append_within(c, &c->url, at, len, HTTP_MAX_URL, 414);
}

static void keep_header(http_conn *c, const char *name, char **slot)
{
    if (c->field.len == strlen(name) && strncasecmp(c->field.data, name, c->field.len) == 0) {
        free(*slot);
        *slot = xstrndup(c->value.data ? c->value.data : "", c->value.len);
    }
}

static void header_done(http_conn *c)
{
    if (c->field.len) {
        keep_header(c, "content-type", &c->content_type);
        keep_header(c, "host", &c->host);
        keep_header(c, "origin", &c->origin);
        keep_header(c, "accept", &c->accept);
        keep_header(c, "expect", &c->expect);
    }
    c->field.len = c->value.len = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *c = parser_conn(p);
    if ((c->header_bytes += len) > HTTP_MAX_HEADERS)
        return refuse(c, 431);
    if (c->last_was_value)
        header_done(c);
    c->last_was_value = false;
    buf_append(&c->field, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *c = parser_conn(p);
    if ((c->header_bytes += len) > HTTP_MAX_HEADERS)
        return refuse(c, 431);
    c->last_was_value = true;
    buf_append(&c->value, at, len);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = parser_conn(p);
    if (c->last_was_value)
        header_done(c);
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > HTTP_MAX_BODY)
        return refuse(c, 413);
    /* curl sends Expect with a body beyond 1 KiB and would wait a second for this. */
    bool body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if (c->expect && strcasecmp(c->expect, "100-continue") == 0 && body && p->http_major == 1 &&
        p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write(c, cont, sizeof(cont) - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn *c = parser_conn(p);
    return append_within(c, &c->body, at, len, HTTP_MAX_BODY, 413);
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = parser_conn(p);
    http_exchange *x = xcalloc(1, sizeof(*x));
    x->conn = c;
    x->keep_alive = http_should_keep_alive(p) && !c->server->shutting_down;
    const char *url = c->url.data ? c->url.data : "/";
    const char *q = strchr(url, '?');
    x->req.method = xstrdup(http_method_str((enum http_method)p->method));
    x->req.path = q ? xstrndup(url, (size_t)(q - url)) : xstrdup(url);
    x->req.query = xstrdup(q ? q + 1 : "");
    x->req.content_type = c->content_type ? xstrdup(c->content_type) : NULL;
    x->req.host = c->host ? xstrdup(c->host) : NULL;
    x->req.origin = c->origin ? xstrdup(c->origin) : NULL;
    x->req.accept = c->accept ? xstrdup(c->accept) : NULL;
    x->req.body_len = c->body.len;
    /* Copied whole: a body may hold NUL bytes, and body_len counts them. */
    char *body = xmalloc(c->body.len + 1);
    if (c->body.len)
        memcpy(body, c->body.data, c->body.len);
    body[c->body.len] = '\0';
    x->req.body = body;
    c->x = x;
    /* One request at a time: the rest of the input waits for this answer. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* A request the parser refused: answered with a JSON error, and the connection closes. */
static void refuse_request(http_conn *c, int status, const char *why)
{
    http_exchange *x = xcalloc(1, sizeof(*x));
    x->conn = c;
    c->x = x;
    _cleanup_free_ char *body =
        xasprintf("{\"code\":%d,\"message\":\"%s\"}\n", status == 413 ? 8 : 3, why);
    http_respond(x, status, "application/json", body, strlen(body));
}

static void conn_feed(http_conn *c, const char *data, size_t len)
{
    bool was_feeding = c->feeding;
    c->feeding = true;
    while (len > 0 && !c->closing) {
        if (c->x) { /* answering: keep the rest for later */
            if (c->ahead.len + len > HTTP_MAX_AHEAD) {
                conn_close(c);
                return;
            }
            buf_append(&c->ahead, data, len);
            break;
        }
        size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e != HPE_OK && e != HPE_PAUSED) {
            int status = c->error_status ? c->error_status : 400;
            _cleanup_free_ char *why =
                status == 413   ? xasprintf("request body larger than %u bytes", HTTP_MAX_BODY)
                : status == 414 ? xasprintf("request URL longer than %d bytes", HTTP_MAX_URL)
                : status == 431
                    ? xasprintf("request headers larger than %d bytes", HTTP_MAX_HEADERS)
                    : xasprintf("bad HTTP request: %s", http_errno_description(e));
            if (!c->x)
                refuse_request(c, status, why);
            break;
        }
        data += n;
        len -= n;
        if (c->x && !c->x->headers_out && !c->x->done) {
            http_exchange *x = c->x;
            c->server->handler(x, &x->req, c->server->userdata);
        }
        if (n == 0 && !c->x)
            break;
    }
    c->feeding = was_feeding;
}

/* ---- connections ------------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *h)
{
    http_conn *c = h->data;
    if (c->x) /* closed by conn_close_later */
        exchange_finish(c->x, true);
    buf_free(&c->url);
    buf_free(&c->field);
    buf_free(&c->value);
    buf_free(&c->body);
    buf_free(&c->ahead);
    buf_free(&c->test_out);
    free(c->content_type);
    free(c->host);
    free(c->origin);
    free(c->accept);
    free(c->expect);
    free(c);
}

/* Closes the connection; its exchange is cancelled now, or when the handle is closed. */
static void conn_shut(http_conn *c, bool finish_now)
{
    if (c->closing)
        return;
    c->closing = true;
    http_server *s = c->server;
    DLIST_REMOVE(s->conns, c);
    if (c->x && (finish_now || !c->has_handle))
        exchange_finish(c->x, true);
    if (c->has_handle)
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
    /* A test connection is freed by http_test_conn_close. */
    if (s->retired && !s->conns)
        free(s);
}

static void conn_close(http_conn *c)
{
    conn_shut(c, true);
}

static void conn_close_later(http_conn *c)
{
    conn_shut(c, false);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = xmalloc(64 * 1024);
    buf->len = 64 * 1024;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    http_conn *c = s->data;
    if (n < 0) {
        free(buf->base);
        conn_close(c);
        return;
    }
    conn_feed(c, buf->base, (size_t)n);
    free(buf->base);
    /* A client that pipelines more than we keep waits for the answers. */
    if (!c->closing && c->ahead.len >= HTTP_MAX_AHEAD / 2 && !c->read_stopped) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->read_stopped = true;
    }
}

static void conn_resume_read(http_conn *c)
{
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static http_conn *conn_new(http_server *s)
{
    http_conn *c = xcalloc(1, sizeof(*c));
    c->server = s;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->tcp.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    return c;
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server *s = listener->data;
    if (status < 0)
        return;
    http_conn *c = conn_new(s);
    c->has_handle = true;
    uv_tcp_init(s->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 || s->shutting_down) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int http_server_new(uv_loop_t *loop, http_handler handler, void *userdata, http_server **out)
{
    http_server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->handler = handler;
    s->userdata = userdata;
    *out = s;
    return 0;
}

int http_server_listen_tcp(http_server *s, const char *host, int port, hypr_error *err)
{
    struct sockaddr_in sa;
    int r = uv_ip4_addr(host, port, &sa);
    if (r < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, -r, "bad address %s:%d", host, port);
    uv_tcp_t *t = xcalloc(1, sizeof(*t));
    uv_tcp_init(s->loop, t);
    t->data = s;
    r = uv_tcp_bind(t, (struct sockaddr *)&sa, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)t, 128, on_connection);
    if (r < 0) {
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
        return hypr_err(err, HYPR_UNAVAILABLE, -r, "listen on %s:%d: %s", host, port,
                        uv_strerror(r));
    }
    s->listener = t;
    return 0;
}

void http_server_free(http_server *s)
{
    if (!s)
        return;
    s->shutting_down = true;
    if (s->listener)
        uv_close((uv_handle_t *)s->listener, (uv_close_cb)free);
    while (s->conns) {
        http_conn *c = s->conns;
        conn_close(c);
        if (!c->has_handle)
            conn_closed((uv_handle_t *)&c->tcp);
    }
    free(s);
}

void http_server_retire(http_server *s)
{
    if (!s)
        return;
    s->shutting_down = true;
    if (s->listener) {
        uv_close((uv_handle_t *)s->listener, (uv_close_cb)free);
        s->listener = NULL;
    }
    /* Idle connections go now; busy ones after their answer. */
    for (http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->x && c->has_handle)
            conn_close(c);
    }
    if (!s->conns)
        free(s);
    else
        s->retired = true;
}

/* ---- test hook ----------------------------------------------------------------------- */

http_conn *http_server_test_conn(http_server *s)
{
    return conn_new(s);
}

int http_test_conn_feed(http_conn *c, const uint8_t *data, size_t len)
{
    if (c->closing)
        return -EPIPE;
    conn_feed(c, (const char *)data, len);
    return c->closing ? -EPIPE : 0;
}

char *http_test_conn_output(http_conn *c)
{
    return buf_steal(&c->test_out);
}

void http_test_conn_close(http_conn *c)
{
    conn_close(c);
    conn_closed((uv_handle_t *)&c->tcp);
}
