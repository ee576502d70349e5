/* Unit tests of the REST gateway's HTTP/1.1 server (src/rpc/http.c), driven through
 * its socketless test hook: what a client gets back, pipelining, chunking, Expect,
 * the size limits and a client that goes away. */
#include "rpc/rpc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "json_asserts.h"

/* ---- the HTTP/1.1 server ------------------------------------------------------------------- */

typedef struct seen {
    char *method, *path, *query, *content_type, *body;
    size_t body_len;
} seen;

typedef struct recorder {
    uv_loop_t loop;
    http_server *server;
    http_conn *conn;
    seen req[8];
    size_t n;
    http_exchange *held; /* a /hold request, answered by the test */
    int closed, cancelled;
} recorder;

static void on_close(http_exchange *x, bool cancelled, void *data)
{
    (void)x;
    recorder *r = data;
    r->closed++;
    r->cancelled += cancelled;
    if (r->held == x)
        r->held = NULL;
}

/* Records the request; answers "<method> <path>" at once, in chunks for /chunked,
 * or not yet for /hold. */
static void handler(http_exchange *x, const http_request *req, void *userdata)
{
    recorder *r = userdata;
    assert_true(r->n < ARRAY_SIZE(r->req));
    seen *s = &r->req[r->n++];
    s->method = xstrdup(req->method);
    s->path = xstrdup(req->path);
    s->query = xstrdup(req->query);
    s->content_type = req->content_type ? xstrdup(req->content_type) : NULL;
    s->body = xstrndup(req->body, req->body_len);
    s->body_len = req->body_len;
    http_exchange_set_callbacks(x, on_close, NULL, r);
    if (strcmp(req->path, "/hold") == 0) {
        r->held = x;
        return;
    }
    if (strcmp(req->path, "/chunked") == 0) {
        http_begin_chunked(x, 200, "application/x-ndjson");
        http_send_chunk(x, "hello", 5);
        http_send_chunk(x, " world", 6);
        http_end_chunked(x);
        return;
    }
    _cleanup_free_ char *body = xasprintf("%s %s", req->method, req->path);
    http_respond(x, 200, "text/plain", body, strlen(body));
}

static int http_setup(void **state)
{
    recorder *r = xcalloc(1, sizeof(*r));
    uv_loop_init(&r->loop);
    assert_int_equal(http_server_new(&r->loop, handler, r, &r->server), 0);
    r->conn = http_server_test_conn(r->server);
    *state = r;
    return 0;
}

static void forget_requests(recorder *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->req[i].method);
        free(r->req[i].path);
        free(r->req[i].query);
        free(r->req[i].content_type);
        free(r->req[i].body);
    }
    r->n = 0;
}

static int http_teardown(void **state)
{
    recorder *r = *state;
    if (r->conn)
        http_test_conn_close(r->conn);
    http_server_free(r->server);
    uv_loop_close(&r->loop);
    forget_requests(r);
    free(r);
    return 0;
}

static int feed(recorder *r, const char *text)
{
    return http_test_conn_feed(r->conn, (const uint8_t *)text, strlen(text));
}

static size_t count(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_http_get_with_query(void **state)
{
    recorder *r = *state;
    assert_int_equal(feed(r, "GET /v1/vms?all=true&label=a%3Db HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->req[0].method, "GET");
    assert_string_equal(r->req[0].path, "/v1/vms");
    assert_string_equal(r->req[0].query, "all=true&label=a%3Db");
    assert_null(r->req[0].content_type);
    assert_int_equal(r->req[0].body_len, 0);
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    assert_true(str_startswith(out, "HTTP/1.1 200 OK\r\n"));
    assert_contains(out, "Content-Type: text/plain\r\n");
    assert_contains(out, "Content-Length: 11\r\n");
    assert_true(str_endswith(out, "\r\n\r\nGET /v1/vms"));
    assert_null(strstr(out, "Connection: close"));
    assert_int_equal(r->closed, 1);
    assert_int_equal(r->cancelled, 0);

    /* keep-alive: the next request on the same connection, without a query */
    assert_int_equal(feed(r, "GET /v1/health HTTP/1.1\r\n\r\n"), 0);
    assert_int_equal(r->n, 2);
    assert_string_equal(r->req[1].query, "");
}

static void test_http_post_body(void **state)
{
    recorder *r = *state;
    const char *req = "POST /v1/vms HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                      "Content-Length: 18\r\n\r\n{\"config\": {}}\r\n\r\n";
    /* byte by byte: nothing is lost between reads */
    for (const char *p = req; *p; p++)
        assert_int_equal(http_test_conn_feed(r->conn, (const uint8_t *)p, 1), 0);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->req[0].method, "POST");
    assert_string_equal(r->req[0].content_type, "application/json");
    assert_int_equal(r->req[0].body_len, 18);
    assert_string_equal(r->req[0].body, "{\"config\": {}}\r\n\r\n");
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    assert_true(str_startswith(out, "HTTP/1.1 200 OK\r\n"));
    assert_true(str_endswith(out, "POST /v1/vms"));
}

static void test_http_pipelined_requests(void **state)
{
    recorder *r = *state;
    assert_int_equal(feed(r, "GET /first HTTP/1.1\r\n\r\n"
                             "POST /second HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                             "DELETE /third HTTP/1.1\r\n\r\n"),
                     0);
    assert_int_equal(r->n, 3);
    assert_string_equal(r->req[0].path, "/first");
    assert_string_equal(r->req[1].path, "/second");
    assert_string_equal(r->req[1].body, "hi");
    assert_string_equal(r->req[2].method, "DELETE");
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    assert_int_equal(count(out, "HTTP/1.1 200 OK"), 3);
    const char *a = strstr(out, "GET /first"), *b = strstr(out, "POST /second"),
               *c = strstr(out, "DELETE /third");
    assert_true(a && b && c && a < b && b < c);
}

static void test_http_pipelined_waits_for_the_answer(void **state)
{
    recorder *r = *state;
    assert_int_equal(feed(r, "GET /hold HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n"), 0);
    /* one request at a time: /next waits for /hold's answer */
    assert_int_equal(r->n, 1);
    assert_non_null(r->held);
    _cleanup_free_ char *none = http_test_conn_output(r->conn);
    assert_string_equal(none, "");
    assert_int_equal(feed(r, "GET /last HTTP/1.1\r\n\r\n"), 0);
    assert_int_equal(r->n, 1);

    http_respond(r->held, 404, "application/json", "{}", 2);
    assert_null(r->held);
    assert_int_equal(r->n, 3);
    assert_string_equal(r->req[1].path, "/next");
    assert_string_equal(r->req[2].path, "/last");
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    assert_true(str_startswith(out, "HTTP/1.1 404 Not Found\r\n"));
    const char *a = strstr(out, "GET /next"), *b = strstr(out, "GET /last");
    assert_true(a && b && a < b);
}

static void test_http_chunked_request_and_response(void **state)
{
    recorder *r = *state;
    assert_int_equal(feed(r, "POST /v1/vms HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"),
                     0);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->req[0].body_len, 11);
    assert_string_equal(r->req[0].body, "hello world");
    _cleanup_free_ char *first = http_test_conn_output(r->conn);

    assert_int_equal(feed(r, "GET /chunked HTTP/1.1\r\n\r\n"), 0);
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    assert_true(str_startswith(out, "HTTP/1.1 200 OK\r\n"));
    assert_contains(out, "Transfer-Encoding: chunked\r\n");
    assert_null(strstr(out, "Content-Length"));
    assert_true(str_endswith(out, "\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));

    /* HTTP/1.0 has no chunks: the body runs to the connection's close */
    assert_int_equal(feed(r, "GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), -EPIPE);
    _cleanup_free_ char *old = http_test_conn_output(r->conn);
    assert_null(strstr(old, "Transfer-Encoding"));
    assert_contains(old, "Connection: close\r\n");
    assert_true(str_endswith(old, "\r\n\r\nhello world"));
}

/* The connection's answer to a request it refused: status line, and the JSON body. */
static void assert_refusal(recorder *r, const char *status_line, int code)
{
    assert_int_equal(r->n, 0);
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    if (!str_startswith(out, status_line))
        fail_msg("got \"%s\", want \"%s\"", out, status_line);
    assert_contains(out, "Connection: close\r\n");
    const char *body = strstr(out, "\r\n\r\n");
    assert_non_null(body);
    _cleanup_json_ json_t *j = parse(body + 4);
    assert_int_equal(num(j, "code"), code);
    assert_true(strlen(str(j, "message")) > 0);
    /* closed: nothing more is read */
    assert_int_equal(feed(r, "GET / HTTP/1.1\r\n\r\n"), -EPIPE);
    assert_int_equal(r->n, 0);
}

static void test_http_body_too_large(void **state)
{
    recorder *r = *state;
    /* exactly the limit is fine (the body is still to come) */
    assert_int_equal(feed(r, "POST /v1/vms HTTP/1.1\r\nContent-Length: 16777216\r\n\r\nab"), 0);
    assert_int_equal(r->n, 0);
    http_test_conn_close(r->conn);
    r->conn = http_server_test_conn(r->server);
    assert_true(feed(r, "POST /v1/vms HTTP/1.1\r\nContent-Length: 16777217\r\n\r\n") < 0);
    assert_refusal(r, "HTTP/1.1 413 ", 8);
}

static void test_http_expect_continue(void **state)
{
    recorder *r = *state;
    /* curl waits a second for "100 Continue" before a large body: it gets it at once */
    assert_int_equal(feed(r, "POST /v1/vms HTTP/1.1\r\nExpect: 100-Continue\r\n"
                             "Content-Length: 2\r\n\r\n"),
                     0);
    _cleanup_free_ char *cont = http_test_conn_output(r->conn);
    assert_string_equal(cont, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(r->n, 0);
    assert_int_equal(feed(r, "{}"), 0);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->req[0].body, "{}");
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    assert_true(str_startswith(out, "HTTP/1.1 200 OK\r\n"));

    /* nothing to wait for without a body; a refused body gets its refusal instead */
    assert_int_equal(feed(r, "GET /v1/vms HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"), 0);
    _cleanup_free_ char *get = http_test_conn_output(r->conn);
    assert_true(str_startswith(get, "HTTP/1.1 200 OK\r\n"));
    forget_requests(r);
    assert_true(feed(r, "POST /v1/vms HTTP/1.1\r\nExpect: 100-continue\r\n"
                        "Content-Length: 99999999\r\n\r\n") < 0);
    assert_refusal(r, "HTTP/1.1 413 ", 8);
}

static void test_http_garbage(void **state)
{
    recorder *r = *state;
    assert_true(feed(r, "\x01\x02 what is this\r\n\r\n") < 0);
    assert_refusal(r, "HTTP/1.1 400 Bad Request\r\n", 3);
}

static void test_http_garbage_after_a_good_request(void **state)
{
    recorder *r = *state;
    assert_true(feed(r, "GET /ok HTTP/1.1\r\n\r\nGET / HTTP/9\r\n\r\n") < 0);
    assert_int_equal(r->n, 1);
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    assert_true(str_startswith(out, "HTTP/1.1 200 OK\r\n"));
    assert_contains(out, "HTTP/1.1 400 Bad Request\r\n");
}

static void test_http_url_and_headers_too_large(void **state)
{
    recorder *r = *state;
    _cleanup_buf_ hypr_buf url = {0};
    buf_puts(&url, "GET /");
    for (int i = 0; i < 8192; i++)
        buf_puts(&url, "a");
    buf_puts(&url, " HTTP/1.1\r\n\r\n");
    assert_true(feed(r, url.data) < 0);
    assert_refusal(r, "HTTP/1.1 414 ", 3);

    http_test_conn_close(r->conn);
    r->conn = http_server_test_conn(r->server);
    _cleanup_buf_ hypr_buf h = {0};
    buf_puts(&h, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 70; i++) {
        buf_printf(&h, "X-Filler-%d: ", i);
        for (int k = 0; k < 1000; k++)
            buf_puts(&h, "b");
        buf_puts(&h, "\r\n");
    }
    buf_puts(&h, "\r\n");
    assert_true(feed(r, h.data) < 0);
    assert_refusal(r, "HTTP/1.1 431 ", 3);
}

static void test_http_connection_close(void **state)
{
    recorder *r = *state;
    assert_int_equal(feed(r, "GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
                     -EPIPE);
    assert_int_equal(r->n, 1);
    _cleanup_free_ char *out = http_test_conn_output(r->conn);
    assert_contains(out, "Connection: close\r\n");
    assert_int_equal(count(out, "HTTP/1.1 "), 1);
}

static void test_http_client_gone_cancels(void **state)
{
    recorder *r = *state;
    assert_int_equal(feed(r, "GET /hold HTTP/1.1\r\n\r\n"), 0);
    assert_non_null(r->held);
    http_test_conn_close(r->conn);
    r->conn = NULL;
    assert_int_equal(r->closed, 1);
    assert_int_equal(r->cancelled, 1);
    assert_null(r->held);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_get_with_query, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_http_post_body, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_http_expect_continue, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_http_pipelined_requests, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_http_pipelined_waits_for_the_answer, http_setup,
                                        http_teardown),
        cmocka_unit_test_setup_teardown(test_http_chunked_request_and_response, http_setup,
                                        http_teardown),
        cmocka_unit_test_setup_teardown(test_http_body_too_large, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_http_garbage, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_http_garbage_after_a_good_request, http_setup,
                                        http_teardown),
        cmocka_unit_test_setup_teardown(test_http_url_and_headers_too_large, http_setup,
                                        http_teardown),
        cmocka_unit_test_setup_teardown(test_http_connection_close, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_http_client_gone_cancels, http_setup, http_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
