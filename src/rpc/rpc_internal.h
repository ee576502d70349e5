/* rpc module internals shared by its source files (server and client) and the
 * fuzz/unit test hooks. Not part of the module's public interface. */
#ifndef HYPR_RPC_INTERNAL_H
#define HYPR_RPC_INTERNAL_H

#include "rpc/rpc.h"

#include <nghttp2/nghttp2.h>

/* Per-stream initial window and connection window we advertise: big enough
 * that an 8 MiB message is not throttled by window updates on a local socket. */
#define RPC_STREAM_WINDOW     (4 * 1024 * 1024)
#define RPC_CONNECTION_WINDOW (16 * 1024 * 1024)
#define RPC_MAX_STREAMS       1000
/* Request header bytes (names + values + 32 per field, as HTTP/2 counts them). */
#define RPC_MAX_HEADER_LIST (64 * 1024)
/* rpc_call_on_drain fires when a call's queue falls below this. */
#define RPC_DRAIN_LOW_WATER (64 * 1024)
/* Messages from this size on make a call trim the heap when it ends. */
#define RPC_BIG_MESSAGE (1024 * 1024)

typedef struct rpc_conn rpc_conn;

struct rpc_server {
    uv_loop_t *loop;
    rpc_method *methods;
    size_t n_methods;
    size_t max_message;
    void *userdata;
    void (*observe)(void *userdata, const char *path, bool done, hypr_status status,
                    double seconds);
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *option;

    uv_pipe_t *unix_listener;
    char *unix_path;
    uv_tcp_t *tcp_listener;
    /* One zero-delay timer flushes every connection that queued output from
     * outside the read path, so handler code never runs nghttp2's send loop
     * (and on_close) underneath its own call. */
    uv_timer_t *flush_timer;
    size_t n_handles; /* listeners and flush timer not yet closed */

    rpc_conn *conns;
    size_t n_conns;
    size_t n_calls;
    char *read_buf; /* shared: every read is consumed before the next one */

    bool trim_wanted; /* a big message ended: trim the heap once writes drain */
    bool shutting_down;
    bool done_called;
    bool free_when_done;
    void (*done)(rpc_server *s);
};

struct rpc_conn {
    rpc_server *server;
    rpc_conn *prev, *next;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tcp_t tcp;
    } h;
    bool has_handle; /* false for test connections fed from a buffer */
    nghttp2_session *session;
    rpc_call *calls;
    unsigned refs;
    unsigned busy;        /* inside nghttp2_session_mem_recv/mem_send */
    size_t write_pending; /* bytes handed to uv_write and not yet written */
    bool want_flush;
    bool write_blocked;
    bool read_stopped;
    bool closing;
    bool close_deferred;
};

struct rpc_call {
    rpc_server *server;
    rpc_conn *conn;          /* NULL for an external call */
    const rpc_transport *tx; /* an external call's transport, or NULL */
    void *tx_data;
    rpc_call *prev, *next;
    int32_t stream_id;
    unsigned refs;
    const rpc_method *method;
    char *path;

    /* request headers */
    size_t header_bytes;
    bool is_post;
    bool content_type_ok;
    bool timeout_bad;
    int64_t timeout_ms; /* -1 = none */

    rpc_framer framer;
    uint8_t *unary_msg;
    size_t unary_len;
    bool have_unary;

    hypr_buf out; /* framed response messages */
    size_t out_off;
    void *data;
    void (*on_drain)(rpc_call *call);
    uv_timer_t *timer;
    int64_t deadline;

    hypr_status status;
    char *message;

    bool attached;      /* the HTTP/2 stream still exists */
    bool rejected;      /* answered by the rpc layer before a handler saw it */
    bool started;       /* a handler callback ran: on_close is owed */
    int64_t started_ms; /* CLOCK_MONOTONIC when it started, for the observer */
    bool closed;        /* on_close ran (or is not owed any more) */
    bool finished;      /* final status decided */
    bool headers_sent;  /* response headers (or trailers-only) submitted */
    bool trailers_sent; /* END_STREAM went out on our side */
    bool aborted;       /* ended by the rpc layer, not by the handler */
    bool drain_pending;
    bool big_buffers; /* held megabytes: give them back to the OS when done */
};

/* framing.c: the data source read callback's part both sides share. Copies up
 * to len bytes queued in out, from *off on, into dst and returns how many. A
 * drained queue is emptied (and freed once it grew beyond keep bytes); once
 * keep bytes or more were read and they are at least half of it, the unread
 * rest moves to the front. */
size_t rpc_out_read(hypr_buf *out, size_t *off, uint8_t *dst, size_t len, size_t keep);

/* server.c */
void rpc_conn_ref(rpc_conn *c);
void rpc_conn_unref(rpc_conn *c);
void rpc_conn_schedule_flush(rpc_conn *c);
/* Closes a connection: cancels its calls, drops the session, closes the socket.
 * Deferred while nghttp2 is running on the connection. */
void rpc_conn_close(rpc_conn *c);

/* server_call.c */
int rpc_server_make_callbacks(nghttp2_session_callbacks **out);
/* The connection is gone: on_close(cancelled) for every open call. */
void rpc_conn_cancel_calls(rpc_conn *c);
/* Runs on_drain for calls whose queue went below the low-water mark. */
void rpc_conn_run_drain(rpc_conn *c);

/* Test hooks: a connection without a socket, driven from a buffer (fuzzing).
 * Output is discarded. feed returns <0 once the connection is closed. */
rpc_conn *rpc_server_test_conn(rpc_server *s);
int rpc_test_conn_feed(rpc_conn *c, const uint8_t *data, size_t len);
void rpc_test_conn_close(rpc_conn *c);

#endif
