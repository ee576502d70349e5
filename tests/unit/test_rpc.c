#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "rpc/rpc.h"
#include "hypr.pb-c.h"

/* ---- framing --------------------------------------------------------------- */

static void test_frame_roundtrip(void **state)
{
    (void)state;
    _cleanup_buf_ hypr_buf out = {0};
    rpc_frame_encode(&out, (const uint8_t *)"hello", 5);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.data, "\0\0\0\0\5hello", 10);
    rpc_frame_encode(&out, NULL, 0);
    rpc_frame_encode(&out, (const uint8_t *)"xy", 2);

    /* Byte by byte. */
    rpc_framer f = {0};
    uint8_t *msg;
    size_t len;
    const char *want[] = {"hello", "", "xy"};
    size_t got = 0;
    for (size_t i = 0; i < out.len; i++) {
        rpc_framer_feed(&f, (const uint8_t *)out.data + i, 1);
        int r;
        while ((r = rpc_framer_next(&f, &msg, &len)) == 1) {
            assert_true(got < 3);
            assert_int_equal(len, strlen(want[got]));
            assert_memory_equal(msg, want[got], len);
            free(msg);
            got++;
        }
        assert_int_equal(r, 0);
    }
    assert_int_equal(got, 3);
    assert_int_equal(f.in.len, 0);

    /* All at once: several messages in one feed. */
    rpc_framer_feed(&f, (const uint8_t *)out.data, out.len);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(rpc_framer_next(&f, &msg, &len), 1);
        assert_int_equal(len, strlen(want[i]));
        free(msg);
    }
    assert_int_equal(rpc_framer_next(&f, &msg, &len), 0);
    rpc_framer_free(&f);
}

static void test_frame_big_and_bad(void **state)
{
    (void)state;
    /* A big message that fills the buffer exactly (the no-copy path). */
    size_t n = 100000;
    uint8_t *big = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7);
    _cleanup_buf_ hypr_buf out = {0};
    rpc_frame_encode(&out, big, n);
    rpc_framer f = {0};
    rpc_framer_feed(&f, (const uint8_t *)out.data, 3);
    uint8_t *msg;
    size_t len;
    assert_int_equal(rpc_framer_next(&f, &msg, &len), 0);
    rpc_framer_feed(&f, (const uint8_t *)out.data + 3, out.len - 3);
    assert_int_equal(rpc_framer_next(&f, &msg, &len), 1);
    assert_int_equal(len, n);
    assert_memory_equal(msg, big, n);
    free(msg);
    free(big);

    /* Oversized: refused from the prefix alone. */
    f.max_message = 1000;
    rpc_framer_feed(&f, (const uint8_t *)"\0\0\0\x03\xe9", 5);
    assert_int_equal(rpc_framer_next(&f, &msg, &len), -EMSGSIZE);
    rpc_framer_free(&f);
    rpc_framer g = {0};
    rpc_framer_feed(&g, (const uint8_t *)"\xff\xff\xff\xff\xff", 5);
    assert_int_equal(rpc_framer_next(&g, &msg, &len), -EPROTO);
    rpc_framer_free(&g);
    rpc_framer h = {0};
    rpc_framer_feed(&h, (const uint8_t *)"\1\0\0\0\1x", 6);
    assert_int_equal(rpc_framer_next(&h, &msg, &len), -EPROTO);
    rpc_framer_free(&h);
    rpc_framer d = {0};
    rpc_framer_feed(&d, (const uint8_t *)"\0\x01\0\0\x01", 5);
    assert_int_equal(rpc_framer_next(&d, &msg, &len), -EMSGSIZE); /* 16 MiB + 1 */
    rpc_framer_free(&d);
}

static void test_timeout_parse(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(rpc_parse_timeout("100m", &ms), 0);
    assert_int_equal(ms, 100);
    assert_int_equal(rpc_parse_timeout("5S", &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(rpc_parse_timeout("2M", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(rpc_parse_timeout("1H", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(rpc_parse_timeout("1500u", &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(rpc_parse_timeout("1n", &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(rpc_parse_timeout("99999999H", &ms), 0);
    assert_int_equal(ms, INT64_C(99999999) * 3600000);
    assert_int_equal(rpc_parse_timeout("0m", &ms), 0);
    assert_int_equal(ms, 0);
    const char *bad[] = {"", "m", "100", "100x", "123456789m", "-1m", "1.5S", " 1S", "1S ", "1s"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(rpc_parse_timeout(bad[i], &ms), -EINVAL);
    assert_int_equal(rpc_parse_timeout(NULL, &ms), -EINVAL);
}

static void test_percent(void **state)
{
    (void)state;
    const char *in = "vm \"web\" not found: 100% sure\n\xc3\xa9t\xc3\xa9";
    _cleanup_free_ char *enc = rpc_percent_encode(in);
    assert_string_equal(enc, "vm \"web\" not found: 100%25 sure%0A%C3%A9t%C3%A9");
    _cleanup_free_ char *dec = rpc_percent_decode(enc);
    assert_string_equal(dec, in);
    _cleanup_free_ char *odd = rpc_percent_decode("50% off %zz %4");
    assert_string_equal(odd, "50% off %zz %4");
    _cleanup_free_ char *lower = rpc_percent_decode("%e2%82%ac");
    assert_string_equal(lower, "\xe2\x82\xac");
    _cleanup_free_ char *empty = rpc_percent_encode("");
    assert_string_equal(empty, "");
}

/* ---- in-process server ----------------------------------------------------- */

#define MAX_MSG (10u * 1024 * 1024)
#define BIG     (8u * 1024 * 1024)

/* cmocka's asserts cannot run on the server thread. */
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int closes, closes_cancelled, hang_closes_cancelled;

static struct {
    uv_loop_t loop;
    uv_async_t stop;
    rpc_server *server;
    pthread_t thread;
    char dir[64];
    char sock[128];
} srv;

static void record_close(rpc_call *call, bool cancelled)
{
    pthread_mutex_lock(&lock);
    closes++;
    if (cancelled)
        closes_cancelled++;
    if (cancelled && strstr(rpc_call_path(call), "Hang"))
        hang_closes_cancelled++;
    pthread_mutex_unlock(&lock);
}

static int read_counter(int *c)
{
    pthread_mutex_lock(&lock);
    int v = *c;
    pthread_mutex_unlock(&lock);
    return v;
}

static bool wait_counter(int *c, int at_least)
{
    for (int i = 0; i < 500; i++) {
        if (read_counter(c) >= at_least)
            return true;
        usleep(10000);
    }
    return false;
}

static void health_msg(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    Hypr__V1__HealthResponse resp = HYPR__V1__HEALTH_RESPONSE__INIT;
    resp.status = "healthy";
    resp.version = HYPR_VERSION;
    resp.active_calls = (uint32_t)rpc_server_active_calls(rpc_call_server(call));
    rpc_call_reply(call, &resp.base);
    /* The call stays valid until on_close even after reply. */
    CHECK(rpc_call_is_finished(call));
    CHECK(rpc_call_send(call, &resp.base) == -ECANCELED);
}

static void fail_handler(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    hypr_error err = HYPR_ERROR_INIT;
    hypr_err(&err, HYPR_NOT_FOUND, ENOENT, "vm \"web\" not found: 100%% sure\nreally");
    rpc_call_finish_error(call, &err);
    hypr_error_clear(&err);
}

static void events_msg(rpc_call *call, ProtobufCMessage *m)
{
    Hypr__V1__SubscribeEventsRequest *req = (Hypr__V1__SubscribeEventsRequest *)m;
    int n = req->n_types ? atoi(req->types[0]) : 0;
    protobuf_c_message_free_unpacked(m, NULL);
    for (int i = 0; i < n; i++) {
        Hypr__V1__Event ev = HYPR__V1__EVENT__INIT;
        ev.type = "vm.started";
        ev.id = "web";
        ev.timestamp_ms = i;
        CHECK(rpc_call_send(call, &ev.base) == 0);
    }
    rpc_call_finish(call, HYPR_OK, NULL);
}

static void echo_msg(rpc_call *call, ProtobufCMessage *m)
{
    Hypr__V1__ExecRequest *req = (Hypr__V1__ExecRequest *)m;
    Hypr__V1__ExecResponse resp = HYPR__V1__EXEC_RESPONSE__INIT;
    resp.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_STDOUT;
    if (req->msg_case == HYPR__V1__EXEC_REQUEST__MSG_STDIN)
        resp.stdout = req->stdin;
    rpc_call_send(call, &resp.base);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void echo_half_close(rpc_call *call)
{
    Hypr__V1__ExecResponse resp = HYPR__V1__EXEC_RESPONSE__INIT;
    resp.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_EXIT_CODE;
    resp.exit_code = 7;
    rpc_call_send(call, &resp.base);
    rpc_call_finish(call, HYPR_OK, NULL);
}

static void big_msg(rpc_call *call, ProtobufCMessage *m)
{
    Hypr__V1__ExecRequest *req = (Hypr__V1__ExecRequest *)m;
    Hypr__V1__ExecResponse resp = HYPR__V1__EXEC_RESPONSE__INIT;
    resp.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_STDOUT;
    resp.stdout = req->stdin;
    /* Reversed, so the client knows it is not looking at its own buffer. */
    for (size_t i = 0; i < resp.stdout.len / 2; i++) {
        uint8_t t = resp.stdout.data[i];
        resp.stdout.data[i] = resp.stdout.data[resp.stdout.len - 1 - i];
        resp.stdout.data[resp.stdout.len - 1 - i] = t;
    }
    rpc_call_reply(call, &resp.base);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void hang_msg(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    if (strstr(rpc_call_path(call), "Stream")) {
        Hypr__V1__Event ev = HYPR__V1__EVENT__INIT;
        ev.type = "first";
        rpc_call_send(call, &ev.base);
    }
}

/* Sends from a timer, outside any rpc callback. */
typedef struct ticks {
    uv_timer_t timer;
    rpc_call *call;
    int sent;
} ticks;

static void ticks_free(uv_handle_t *h)
{
    free(h->data);
}

static void ticks_cb(uv_timer_t *t)
{
    ticks *tk = t->data;
    Hypr__V1__Event ev = HYPR__V1__EVENT__INIT;
    ev.type = "tick";
    ev.timestamp_ms = tk->sent++;
    CHECK(rpc_call_send(tk->call, &ev.base) == 0);
    if (tk->sent == 3) {
        uv_timer_stop(t);
        rpc_call_finish(tk->call, HYPR_OK, NULL);
    }
}

static void ticks_msg(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    ticks *tk = xcalloc(1, sizeof(*tk));
    tk->call = call;
    uv_timer_init(&srv.loop, &tk->timer);
    tk->timer.data = tk;
    uv_timer_start(&tk->timer, ticks_cb, 10, 10);
    rpc_call_set_data(call, tk);
}

static void ticks_close(rpc_call *call, bool cancelled)
{
    ticks *tk = rpc_call_get_data(call);
    record_close(call, cancelled);
    if (tk) {
        uv_timer_stop(&tk->timer);
        uv_close((uv_handle_t *)&tk->timer, ticks_free);
    }
}

/* Streams 16 x 1 MiB, never queueing more than ~2 MiB: paced by on_drain. */
static void flood_fill(rpc_call *call)
{
    int *sent = rpc_call_get_data(call);
    static uint8_t chunk[1024 * 1024];
    while (*sent < 16 && rpc_call_pending(call) < 2 * 1024 * 1024) {
        Hypr__V1__ExecResponse r = HYPR__V1__EXEC_RESPONSE__INIT;
        r.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_STDOUT;
        memset(chunk, *sent, sizeof(chunk));
        r.stdout.data = chunk;
        r.stdout.len = sizeof(chunk);
        CHECK(rpc_call_send(call, &r.base) == 0);
        CHECK(rpc_call_pending(call) < 4 * 1024 * 1024);
        (*sent)++;
    }
    if (*sent == 16)
        rpc_call_finish(call, HYPR_OK, NULL);
}

static void flood_msg(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_call_set_data(call, xcalloc(1, sizeof(int)));
    rpc_call_on_drain(call, flood_fill);
    flood_fill(call);
}

static void flood_close(rpc_call *call, bool cancelled)
{
    record_close(call, cancelled);
    free(rpc_call_get_data(call));
}

static const rpc_method methods[] = {
    {"/hypr.v1.HyprService/Health", &hypr__v1__health_request__descriptor, health_msg, NULL,
     record_close, false},
    {"/test.T/Fail", &hypr__v1__health_request__descriptor, fail_handler, NULL, record_close,
     false},
    {"/test.T/Events", &hypr__v1__subscribe_events_request__descriptor, events_msg, NULL,
     record_close, false},
    {"/test.T/Echo", &hypr__v1__exec_request__descriptor, echo_msg, echo_half_close, record_close,
     true},
    {"/test.T/Big", &hypr__v1__exec_request__descriptor, big_msg, NULL, record_close, false},
    {"/test.T/Hang", &hypr__v1__health_request__descriptor, hang_msg, NULL, record_close, false},
    {"/test.T/HangStream", &hypr__v1__health_request__descriptor, hang_msg, NULL, record_close,
     false},
    {"/test.T/Ticks", &hypr__v1__health_request__descriptor, ticks_msg, NULL, ticks_close, false},
    {"/test.T/Flood", &hypr__v1__health_request__descriptor, flood_msg, NULL, flood_close, false},
};

static void server_done(rpc_server *s)
{
    uv_close((uv_handle_t *)&srv.stop, NULL);
}

static void stop_cb(uv_async_t *a)
{
    rpc_server_shutdown(srv.server, server_done);
}

static void *loop_thread(void *arg)
{
    uv_run(&srv.loop, UV_RUN_DEFAULT);
    return NULL;
}

static int server_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(srv.dir, sizeof(srv.dir), "/tmp/hypr-rpc-test-XXXXXX");
    assert_non_null(mkdtemp(srv.dir));
    snprintf(srv.sock, sizeof(srv.sock), "%s/hypr.sock", srv.dir);
    assert_int_equal(uv_loop_init(&srv.loop), 0);
    uv_async_init(&srv.loop, &srv.stop, stop_cb);
    rpc_server_options opts = {.max_message = MAX_MSG};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(
        rpc_server_new(&srv.loop, methods, ARRAY_SIZE(methods), &opts, &srv.server, &err), 0);

    /* A regular file in the way is never removed... */
    FILE *f = fopen(srv.sock, "w");
    assert_non_null(f);
    fclose(f);
    assert_true(rpc_server_listen_unix(srv.server, srv.sock, 0600, &err) < 0);
    assert_non_null(strstr(err.message, "not a socket"));
    unlink(srv.sock);
    /* ...but a stale socket is. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, srv.sock);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(rpc_server_listen_unix(srv.server, srv.sock, 0600, &err), 0);
    struct stat st;
    assert_int_equal(stat(srv.sock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(pthread_create(&srv.thread, NULL, loop_thread, NULL), 0);
    return 0;
}

static int server_teardown(void **state)
{
    uv_async_send(&srv.stop);
    pthread_join(srv.thread, NULL);
    assert_int_equal(rpc_server_active_calls(srv.server), 0);
    rpc_server_free(srv.server);
    assert_int_equal(uv_loop_close(&srv.loop), 0);
    /* The socket file went away with the server. */
    assert_int_equal(access(srv.sock, F_OK), -1);
    rmdir(srv.dir);
    return 0;
}

static rpc_client *connect_client(void)
{
    rpc_client *c = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = rpc_client_connect(srv.sock, &c, &err);
    if (r < 0)
        fail_msg("%s", err.message);
    return c;
}

static void test_unary_health_over_unix_socket(void **state)
{
    rpc_client *c = connect_client();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    Hypr__V1__HealthRequest req = HYPR__V1__HEALTH_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(rpc_client_unary(c, "/hypr.v1.HyprService/Health", &req.base,
                                          &hypr__v1__health_response__descriptor, &resp, 5000,
                                          &err),
                         0);
        Hypr__V1__HealthResponse *h = (Hypr__V1__HealthResponse *)resp;
        assert_string_equal(h->status, "healthy");
        assert_int_equal(h->active_calls, 1);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    rpc_client_free(c);

    /* "unix:" prefix form */
    _cleanup_free_ char *t = xasprintf("unix:%s", srv.sock);
    assert_int_equal(rpc_client_connect(t, &c, &err), 0);
    assert_int_equal(rpc_client_unary(c, "/hypr.v1.HyprService/Health", &req.base,
                                      &hypr__v1__health_response__descriptor, &resp, 0, &err),
                     0);
    protobuf_c_message_free_unpacked(resp, NULL);
    rpc_client_free(c);
}

static void test_errors_carry_grpc_status_and_message(void **state)
{
    rpc_client *c = connect_client();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    Hypr__V1__HealthRequest req = HYPR__V1__HEALTH_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    assert_true(rpc_client_unary(c, "/x.y/Z", &req.base, &hypr__v1__health_response__descriptor,
                                 &resp, 0, &err) < 0);
    assert_null(resp);
    assert_int_equal(err.status, HYPR_UNIMPLEMENTED);
    assert_string_equal(err.message, "unknown method /x.y/Z");

    assert_true(rpc_client_unary(c, "/test.T/Fail", &req.base,
                                 &hypr__v1__health_response__descriptor, &resp, 0, &err) < 0);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    assert_string_equal(err.message, "vm \"web\" not found: 100% sure\nreally");

    /* A request the method's descriptor cannot decode: field 1 of ExecRequest is
     * a message, and these bytes are not one. */
    Hypr__V1__ExecResponse bad = HYPR__V1__EXEC_RESPONSE__INIT;
    bad.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_STDOUT;
    bad.stdout.data = (uint8_t *)"\xff\xff\xff";
    bad.stdout.len = 3;
    assert_true(rpc_client_unary(c, "/test.T/Big", &bad.base, &hypr__v1__exec_response__descriptor,
                                 &resp, 0, &err) < 0);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    rpc_client_free(c);

    /* Connection errors name the socket. */
    assert_true(rpc_client_connect("/nonexistent/hypr.sock", &c, &err) < 0);
    assert_int_equal(err.status, HYPR_UNAVAILABLE);
    assert_string_equal(err.message,
                        "cannot connect to /nonexistent/hypr.sock: No such file or directory");
    assert_true(rpc_client_connect("tcp://127.0.0.1:1", &c, &err) < 0);
    assert_int_equal(err.status, HYPR_UNAVAILABLE);
}

static void test_server_stream(void **state)
{
    rpc_client *c = connect_client();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    /* Three streams open at once on one connection, read interleaved. */
    rpc_stream *st[3];
    int counts[3] = {1000, 1, 50};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(rpc_client_open(c, "/test.T/Events", 5000, &st[k], &err), 0);
        char n[16];
        snprintf(n, sizeof(n), "%d", counts[k]);
        char *types[] = {n};
        Hypr__V1__SubscribeEventsRequest req = HYPR__V1__SUBSCRIBE_EVENTS_REQUEST__INIT;
        req.n_types = 1;
        req.types = types;
        assert_int_equal(rpc_stream_send(st[k], &req.base, &err), 0);
        assert_int_equal(rpc_stream_close_send(st[k], &err), 0);
    }
    int got[3] = {0};
    bool done[3] = {false};
    while (!done[0] || !done[1] || !done[2]) {
        for (int k = 2; k >= 0; k--) {
            if (done[k])
                continue;
            ProtobufCMessage *m;
            int r = rpc_stream_recv(st[k], &hypr__v1__event__descriptor, &m, 1000, &err);
            if (r == 1) {
                assert_int_equal(((Hypr__V1__Event *)m)->timestamp_ms, got[k]);
                got[k]++;
                protobuf_c_message_free_unpacked(m, NULL);
            } else {
                assert_int_equal(r, 0);
                done[k] = true;
            }
        }
    }
    for (int k = 0; k < 3; k++) {
        assert_int_equal(got[k], counts[k]);
        rpc_stream_free(st[k]);
    }

    /* Messages sent from a timer, outside the server's callbacks. */
    rpc_stream *s;
    assert_int_equal(rpc_client_open(c, "/test.T/Ticks", 0, &s, &err), 0);
    Hypr__V1__HealthRequest hreq = HYPR__V1__HEALTH_REQUEST__INIT;
    assert_int_equal(rpc_stream_send(s, &hreq.base, &err), 0);
    assert_int_equal(rpc_stream_close_send(s, &err), 0);
    ProtobufCMessage *m;
    /* Nothing arrives within 1 ms: the first tick is 10 ms away. */
    assert_int_equal(rpc_stream_recv(s, &hypr__v1__event__descriptor, &m, 1, &err), -ETIMEDOUT);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rpc_stream_recv(s, &hypr__v1__event__descriptor, &m, -1, &err), 1);
        assert_int_equal(((Hypr__V1__Event *)m)->timestamp_ms, i);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_int_equal(rpc_stream_recv(s, &hypr__v1__event__descriptor, &m, -1, &err), 0);
    rpc_stream_free(s);
    rpc_client_free(c);
}

static void test_bidi_echo_then_exit_status(void **state)
{
    rpc_client *c = connect_client();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    rpc_stream *s;
    assert_int_equal(rpc_client_open(c, "/test.T/Echo", 0, &s, &err), 0);
    for (int i = 0; i < 100; i++) {
        char line[32];
        snprintf(line, sizeof(line), "line %d", i);
        Hypr__V1__ExecRequest req = HYPR__V1__EXEC_REQUEST__INIT;
        req.msg_case = HYPR__V1__EXEC_REQUEST__MSG_STDIN;
        req.stdin.data = (uint8_t *)line;
        req.stdin.len = strlen(line);
        assert_int_equal(rpc_stream_send(s, &req.base, &err), 0);
        ProtobufCMessage *m;
        assert_int_equal(rpc_stream_recv(s, &hypr__v1__exec_response__descriptor, &m, 5000, &err),
                         1);
        Hypr__V1__ExecResponse *resp = (Hypr__V1__ExecResponse *)m;
        assert_int_equal(resp->msg_case, HYPR__V1__EXEC_RESPONSE__MSG_STDOUT);
        assert_int_equal(resp->stdout.len, strlen(line));
        assert_memory_equal(resp->stdout.data, line, strlen(line));
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_int_equal(rpc_stream_close_send(s, &err), 0);
    ProtobufCMessage *m;
    assert_int_equal(rpc_stream_recv(s, &hypr__v1__exec_response__descriptor, &m, 5000, &err), 1);
    assert_int_equal(((Hypr__V1__ExecResponse *)m)->exit_code, 7);
    protobuf_c_message_free_unpacked(m, NULL);
    assert_int_equal(rpc_stream_recv(s, &hypr__v1__exec_response__descriptor, &m, 5000, &err), 0);
    rpc_stream_free(s);
    rpc_client_free(c);
}

static void test_big_messages_round_trip_and_oversize_refused(void **state)
{
    rpc_client *c = connect_client();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    uint8_t *data = xmalloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 13));
    Hypr__V1__ExecRequest req = HYPR__V1__EXEC_REQUEST__INIT;
    req.msg_case = HYPR__V1__EXEC_REQUEST__MSG_STDIN;
    req.stdin.data = data;
    req.stdin.len = BIG;
    int64_t t0 = time_monotonic_ms();
    for (int round = 0; round < 2; round++) {
        ProtobufCMessage *m = NULL;
        assert_int_equal(rpc_client_unary(c, "/test.T/Big", &req.base,
                                          &hypr__v1__exec_response__descriptor, &m, 30000, &err),
                         0);
        Hypr__V1__ExecResponse *resp = (Hypr__V1__ExecResponse *)m;
        assert_int_equal(resp->stdout.len, BIG);
        for (size_t i = 0; i < BIG; i += 4093)
            assert_int_equal(resp->stdout.data[i], data[BIG - 1 - i]);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    print_message("2 x 8 MiB round trips: %" PRId64 " ms\n", time_monotonic_ms() - t0);

    /* A paced stream of 16 MiB. */
    rpc_stream *s;
    Hypr__V1__HealthRequest hreq = HYPR__V1__HEALTH_REQUEST__INIT;
    assert_int_equal(rpc_client_open(c, "/test.T/Flood", 30000, &s, &err), 0);
    assert_int_equal(rpc_stream_send(s, &hreq.base, &err), 0);
    assert_int_equal(rpc_stream_close_send(s, &err), 0);
    for (int i = 0; i < 16; i++) {
        ProtobufCMessage *fm;
        assert_int_equal(rpc_stream_recv(s, &hypr__v1__exec_response__descriptor, &fm, -1, &err),
                         1);
        Hypr__V1__ExecResponse *fr = (Hypr__V1__ExecResponse *)fm;
        assert_int_equal(fr->stdout.len, 1024 * 1024);
        assert_int_equal(fr->stdout.data[12345], i);
        protobuf_c_message_free_unpacked(fm, NULL);
    }
    ProtobufCMessage *fm;
    assert_int_equal(rpc_stream_recv(s, &hypr__v1__exec_response__descriptor, &fm, -1, &err), 0);
    rpc_stream_free(s);

    /* Beyond the server's maximum. */
    uint8_t *huge = xcalloc(1, MAX_MSG + 1);
    req.stdin.data = huge;
    req.stdin.len = MAX_MSG + 1;
    ProtobufCMessage *m = NULL;
    assert_true(rpc_client_unary(c, "/test.T/Big", &req.base, &hypr__v1__exec_response__descriptor,
                                 &m, 30000, &err) < 0);
    assert_int_equal(err.status, HYPR_RESOURCE_EXHAUSTED);
    _cleanup_free_ char *want =
        xasprintf("message of %u bytes exceeds the maximum of %u", MAX_MSG + 1 + 1 + 4, MAX_MSG);
    assert_string_equal(err.message, want);
    free(huge);

    /* The connection still works afterwards. */
    req.stdin.data = data;
    req.stdin.len = 10;
    assert_int_equal(rpc_client_unary(c, "/test.T/Big", &req.base,
                                      &hypr__v1__exec_response__descriptor, &m, 30000, &err),
                     0);
    protobuf_c_message_free_unpacked(m, NULL);
    free(data);
    rpc_client_free(c);
}

static void test_deadline_and_cancel(void **state)
{
    rpc_client *c = connect_client();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    Hypr__V1__HealthRequest req = HYPR__V1__HEALTH_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int before = read_counter(&hang_closes_cancelled);
    int64_t t0 = time_monotonic_ms();
    assert_true(rpc_client_unary(c, "/test.T/Hang", &req.base,
                                 &hypr__v1__health_response__descriptor, &resp, 100, &err) < 0);
    int64_t took = time_monotonic_ms() - t0;
    assert_int_equal(err.status, HYPR_DEADLINE_EXCEEDED);
    assert_true(took >= 90 && took < 2000);
    assert_true(wait_counter(&hang_closes_cancelled, before + 1));

    /* Client cancel mid-stream. */
    rpc_stream *s;
    assert_int_equal(rpc_client_open(c, "/test.T/HangStream", 0, &s, &err), 0);
    assert_int_equal(rpc_stream_send(s, &req.base, &err), 0);
    assert_int_equal(rpc_stream_close_send(s, &err), 0);
    ProtobufCMessage *m;
    assert_int_equal(rpc_stream_recv(s, &hypr__v1__event__descriptor, &m, 5000, &err), 1);
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_stream_free(s);
    assert_true(wait_counter(&hang_closes_cancelled, before + 2));

    /* Connection loss cancels open calls too. */
    assert_int_equal(rpc_client_open(c, "/test.T/Hang", 0, &s, &err), 0);
    assert_int_equal(rpc_stream_send(s, &req.base, &err), 0);
    assert_int_equal(rpc_stream_close_send(s, &err), 0);
    assert_int_equal(rpc_stream_recv(s, &hypr__v1__event__descriptor, &m, 50, &err), -ETIMEDOUT);
    rpc_client_free(c);
    assert_true(rpc_stream_recv(s, &hypr__v1__event__descriptor, &m, 50, &err) < 0);
    assert_int_equal(err.status, HYPR_UNAVAILABLE);
    rpc_stream_free(s);
    assert_true(wait_counter(&hang_closes_cancelled, before + 3));
}

static void test_garbage_connection(void **state)
{
    /* A peer speaking nonsense loses its own connection only. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, srv.sock);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    rpc_client *c = connect_client();
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        ;
    assert_int_equal(n, 0); /* closed by the server */
    close(fd);

    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    Hypr__V1__HealthRequest req = HYPR__V1__HEALTH_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    assert_int_equal(rpc_client_unary(c, "/hypr.v1.HyprService/Health", &req.base,
                                      &hypr__v1__health_response__descriptor, &resp, 0, &err),
                     0);
    protobuf_c_message_free_unpacked(resp, NULL);
    rpc_client_free(c);
}

int main(void)
{
    const struct CMUnitTest framing[] = {
        cmocka_unit_test(test_frame_roundtrip),
        cmocka_unit_test(test_frame_big_and_bad),
        cmocka_unit_test(test_timeout_parse),
        cmocka_unit_test(test_percent),
    };
    const struct CMUnitTest server[] = {
        cmocka_unit_test(test_unary_health_over_unix_socket),
        cmocka_unit_test(test_errors_carry_grpc_status_and_message),
        cmocka_unit_test(test_server_stream),
        cmocka_unit_test(test_bidi_echo_then_exit_status),
        cmocka_unit_test(test_big_messages_round_trip_and_oversize_refused),
        cmocka_unit_test(test_deadline_and_cancel),
        cmocka_unit_test(test_garbage_connection),
    };
    int r = cmocka_run_group_tests_name("framing", framing, NULL, NULL);
    r += cmocka_run_group_tests_name("server", server, server_setup, server_teardown);
    return r;
}
