/* Drives the HTTP/1.1 server's connection (no socket) with arbitrary client bytes,
 * fed in up to three pieces: parsing, limits, keep-alive, pipelining, refusals.
 * The handler answers at once, in chunks for a path under /c, and holds a /hold
 * request until the piece that carried it has been fed (the read-ahead path).
 * Must never crash or leak. The first two bytes say where the input is cut. */
#include "rpc/rpc.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static uv_loop_t loop;
static http_server *server;
static http_exchange *held;

static void on_close(http_exchange *x, bool cancelled, void *data)
{
    (void)cancelled;
    (void)data;
    if (x == held)
        held = NULL;
}

static void handler(http_exchange *x, const http_request *req, void *userdata)
{
    (void)userdata;
    if (!req->method || !req->path || !req->query || !req->body || req->body[req->body_len])
        __builtin_trap();
    http_exchange_set_callbacks(x, on_close, NULL, NULL);
    if (strcmp(req->path, "/hold") == 0 && !held) {
        held = x;
        return;
    }
    if (str_startswith(req->path, "/c")) {
        http_begin_chunked(x, 200, "application/x-ndjson");
        http_send_chunk(x, req->body, req->body_len);
        http_send_chunk(x, "{}\n", 3);
        http_end_chunked(x);
        return;
    }
    http_respond(x, 200, "application/json", req->body, req->body_len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hypr_log_init("error");
    uv_loop_init(&loop);
    if (http_server_new(&loop, handler, NULL, &server) < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t rest = size - 2;
    size_t cut1 = rest * data[0] / 255, cut2 = cut1 + (rest - cut1) * data[1] / 255;
    const uint8_t *in = data + 2;
    size_t bounds[] = {0, cut1, cut2, rest};
    http_conn *c = http_server_test_conn(server);
    int r = 0;
    for (size_t i = 0; i < 3 && r == 0; i++) {
        size_t n = bounds[i + 1] - bounds[i];
        if (n)
            r = http_test_conn_feed(c, in + bounds[i], n);
        if (held) /* answered later, as a handler on the loop would */
            http_respond(held, 202, "text/plain", "later", 5);
    }
    free(http_test_conn_output(c));
    http_test_conn_close(c);
    if (held)
        __builtin_trap(); /* the close must have cancelled it */
    return 0;
}
