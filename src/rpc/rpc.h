/* hypr rpc module: gRPC over HTTP/2 (nghttp2). A libuv server for hyprd and a
 * blocking client for the CLI, sharing the length-prefixed message framing. */
#ifndef HYPR_RPC_H
#define HYPR_RPC_H

#include "common/common.h"

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

/* Largest gRPC message either side accepts (RESOURCE_EXHAUSTED beyond it). */
#define RPC_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)

/* ---- message framing (5-byte prefix: flag, 32-bit big-endian length) ---- */

typedef struct rpc_framer {
    hypr_buf in;        /* bytes not yet consumed */
    size_t max_message; /* 0 = RPC_DEFAULT_MAX_MESSAGE */
} rpc_framer;

/* Appends bytes received from the peer. */
void rpc_framer_feed(rpc_framer *f, const uint8_t *data, size_t len);
/* Takes the next complete message out of the framer.
 * Returns 1 with *msg (caller frees) / *len set, 0 when more bytes are needed,
 * -EMSGSIZE when the announced length exceeds max_message, -EPROTO for a
 * compressed message (no compression is negotiated) or a bad flag byte. */
int rpc_framer_next(rpc_framer *f, uint8_t **msg, size_t *len);
void rpc_framer_free(rpc_framer *f);
/* Appends the 5-byte prefix and the message to out. */
void rpc_frame_encode(hypr_buf *out, const uint8_t *msg, size_t len);

/* Parses a grpc-timeout header value ("100m", "5S", "1H"...) into milliseconds. */
int rpc_parse_timeout(const char *value, int64_t *out_ms);
/* Percent-encodes a grpc-message per the gRPC spec; caller frees. */
char *rpc_percent_encode(const char *msg);
char *rpc_percent_decode(const char *msg);

/* ---- server (hyprd) ------------------------------------------------------ */

/* Frees an unpacked message when the pointer goes out of scope (NULL is fine). */
static inline void pb_freep(void *p)
{
    ProtobufCMessage **m = p;
    if (*m)
        protobuf_c_message_free_unpacked(*m, NULL);
}
#define _cleanup_pb_ _cleanup_(pb_freep)

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

/* Handlers of one method. All callbacks run on the server's loop thread. */
typedef struct rpc_method {
    const char *path; /* "/hypr.v1.HyprService/Health" */
    /* Descriptor of the request message: the server decodes each request
     * message with it (INVALID_ARGUMENT on a decode failure, and the call ends). */
    const ProtobufCMessageDescriptor *request;
    /* Called for every request message. For unary and server-streaming
     * methods this is called exactly once (after END_STREAM). Ownership of msg
     * passes to the handler (free it with protobuf_c_message_free_unpacked). */
    void (*on_message)(rpc_call *call, ProtobufCMessage *msg);
    /* Client-streaming / bidi only: the client has half-closed. May be NULL. */
    void (*on_half_close)(rpc_call *call);
    /* The call is over: finished by the handler, cancelled by the client
     * (RST_STREAM), deadline exceeded, or connection lost. Free per-call data
     * here. After it returns the call is freed. May be NULL. */
    void (*on_close)(rpc_call *call, bool cancelled);
    /* true for client-streaming and bidi methods: on_message is called for each
     * message as it arrives, instead of once after END_STREAM. */
    bool client_streaming;
} rpc_method;

typedef struct rpc_server_options {
    size_t max_message; /* 0 = RPC_DEFAULT_MAX_MESSAGE */
    void *userdata;     /* returned by rpc_server_userdata() */
    /* Optional: told when a handler starts on a call (done=false) and when the call is
     * over (done=true, with its status and the seconds since the start): metrics. */
    void (*observe)(void *userdata, const char *path, bool done, hypr_status status,
                    double seconds);
} rpc_server_options;

int rpc_server_new(uv_loop_t *loop, const rpc_method *methods, size_t n_methods,
                   const rpc_server_options *opts, rpc_server **out, hypr_error *err);
/* Listens on a unix socket (an existing stale socket file is replaced) with the mode given. */
int rpc_server_listen_unix(rpc_server *s, const char *path, mode_t mode, hypr_error *err);
/* Listens on host:port TCP (e.g. "127.0.0.1", 41000). */
int rpc_server_listen_tcp(rpc_server *s, const char *host, int port, hypr_error *err);
/* Stops accepting, cancels every open call (on_close(cancelled=true)), closes
 * connections. done(s) is called once everything is closed; then free with rpc_server_free. */
void rpc_server_shutdown(rpc_server *s, void (*done)(rpc_server *s));
void rpc_server_free(rpc_server *s);
void *rpc_server_userdata(rpc_server *s);
size_t rpc_server_active_calls(rpc_server *s);

/* Per-call handler data. */
void rpc_call_set_data(rpc_call *call, void *data);
void *rpc_call_get_data(rpc_call *call);
rpc_server *rpc_call_server(rpc_call *call);
const char *rpc_call_path(rpc_call *call);
/* Deadline from grpc-timeout as CLOCK_MONOTONIC ms, or 0 when none. */
int64_t rpc_call_deadline(rpc_call *call);

/* Queues one response message. Returns -ECANCELED if the call is already over,
 * -EMSGSIZE beyond the maximum message size. */
int rpc_call_send(rpc_call *call, const ProtobufCMessage *msg);
/* Bytes queued and not yet written to the socket (for back-pressure). */
size_t rpc_call_pending(rpc_call *call);
/* Sets a callback run whenever the queued bytes drain below low water (64 KiB). */
void rpc_call_on_drain(rpc_call *call, void (*on_drain)(rpc_call *call));
/* Ends the call with a status (trailers). Unary: send the response first.
 * After finish, on_close(call, false) follows once the trailers are written
 * (or immediately if the stream is gone). Idempotent. */
void rpc_call_finish(rpc_call *call, hypr_status status, const char *message);
/* Convenience: finish with the error record's status and message. */
void rpc_call_finish_error(rpc_call *call, const hypr_error *err);
/* Convenience for unary handlers: send msg then finish OK. */
void rpc_call_reply(rpc_call *call, const ProtobufCMessage *msg);
bool rpc_call_is_finished(rpc_call *call);

/* ---- calls from another transport (the REST gateway) ---------------------- */

/* Where an external call's responses go. Each callback gets tx. */
typedef struct rpc_transport {
    /* A response message (unary: the one; server streams: each). <0 refuses it. */
    int (*send)(void *tx, const ProtobufCMessage *msg);
    /* The final status. The transport answers its client, then calls
     * rpc_call_external_release. */
    void (*finish)(void *tx, hypr_status status, const char *message);
    /* Bytes queued towards the client and not yet written. */
    size_t (*pending)(void *tx);
} rpc_transport;

/* The method of s serving path ("/hypr.v1.HyprService/GetVM"), or NULL. */
const rpc_method *rpc_server_method(rpc_server *s, const char *path);
/* A call of method m whose responses go to t/tx. Then hand it its request with
 * rpc_call_external_start. Unary and server-streaming methods only. */
rpc_call *rpc_call_external(rpc_server *s, const rpc_method *m, const rpc_transport *t, void *tx);
/* Passes the request (ownership too) to the method's handler, as gRPC would. */
void rpc_call_external_start(rpc_call *call, ProtobufCMessage *request);
/* The transport's queue went below its low-water mark: runs the handler's on_drain. */
void rpc_call_external_drained(rpc_call *call);
/* The transport is done with the call: after finish (cancelled = false) or because
 * its client went away (cancelled = true). Runs on_close once and frees the call. */
void rpc_call_external_release(rpc_call *call, bool cancelled);

/* ---- proto3 JSON mapping (REST) -------------------------------------------- */

/* msg as a JSON object: lowerCamelCase names, enums by name, 64-bit integers as
 * strings, bytes as base64; unpopulated fields too (as grpc-gateway emits them:
 * "", 0, [], {}, null for an absent message), so scripts see every key. */
struct json_t;
struct json_t *rpc_pb_to_json(const ProtobufCMessage *msg);
/* The same, as compact JSON text appended to out (no tree: what responses use). */
void rpc_pb_to_json_text(const ProtobufCMessage *msg, hypr_buf *out);
/* Appends s[0..n) as a JSON string; bytes that are not UTF-8 become U+FFFD. */
void rpc_json_put_string(hypr_buf *out, const char *s, size_t n);
/* Appends the wire encoding of obj, a JSON object of message type desc, to out.
 * Field names may be lowerCamelCase or as in the .proto; null means default.
 * INVALID_ARGUMENT naming the field for an unknown field or a bad value. */
int rpc_json_to_wire(const ProtobufCMessageDescriptor *desc, struct json_t *obj, hypr_buf *out,
                     hypr_error *err);
/* Appends the wire encoding of one top-level scalar field given as text (a path or
 * query parameter). Repeated fields take one value per call. */
int rpc_text_to_wire(const ProtobufCMessageDescriptor *desc, const char *field, const char *text,
                     hypr_buf *out, hypr_error *err);

/* ---- HTTP/1.1 server ------------------------------------------------------- */

typedef struct http_server http_server;
typedef struct http_exchange http_exchange;
typedef struct http_conn http_conn;

typedef struct http_request {
    const char *method;       /* "GET" */
    const char *path;         /* as sent, without the query */
    const char *query;        /* after '?', "" when none */
    const char *content_type; /* NULL when absent */
    const char *host;         /* the Host header, NULL when absent */
    const char *origin;       /* the Origin header (browsers send it), NULL when absent */
    const char *accept;       /* the Accept header, NULL when absent */
    const char *body;         /* NUL-terminated */
    size_t body_len;
} http_request;

/* Called for each request; answer it now or later with http_respond or a chunked
 * response. req lives as long as the exchange. */
typedef void (*http_handler)(http_exchange *x, const http_request *req, void *userdata);

int http_server_new(uv_loop_t *loop, http_handler handler, void *userdata, http_server **out);
int http_server_listen_tcp(http_server *s, const char *host, int port, hypr_error *err);
/* Closes the listener and every connection (open exchanges: on_close cancelled). */
void http_server_free(http_server *s);
/* Stops listening at once; connections finish the request they are answering, then
 * close; the server frees itself after the last one. */
void http_server_retire(http_server *s);

void http_respond(http_exchange *x, int status, const char *content_type, const void *body,
                  size_t len);
void http_begin_chunked(http_exchange *x, int status, const char *content_type);
void http_send_chunk(http_exchange *x, const void *data, size_t len);
void http_end_chunked(http_exchange *x);
/* Whether the status line went out (a chunked response has begun). */
bool http_exchange_started(const http_exchange *x);
size_t http_exchange_pending(const http_exchange *x);
/* on_close: the response was written (cancelled = false) or the client went away
 * (true); on_drain: the queued bytes fell below 64 KiB. */
void http_exchange_set_callbacks(http_exchange *x,
                                 void (*on_close)(http_exchange *x, bool cancelled, void *data),
                                 void (*on_drain)(http_exchange *x, void *data), void *data);

/* Test and fuzzing hook: a connection without a socket, fed from a buffer. Its
 * writes complete at once, so a response is over when http_respond returns. */
http_conn *http_server_test_conn(http_server *s);
/* -EPIPE once the server has closed the connection (it stays valid until closed here). */
int http_test_conn_feed(http_conn *c, const uint8_t *data, size_t len);
/* What the server wrote since the last call, NUL-terminated; caller frees. */
char *http_test_conn_output(http_conn *c);
void http_test_conn_close(http_conn *c);

/* ---- client (CLI, tests) ------------------------------------------------- */

typedef struct rpc_client rpc_client;
typedef struct rpc_stream rpc_stream;

/* target: a unix socket path ("/run/hypr/hypr.sock", "unix:/path") or
 * "tcp://127.0.0.1:41000" / "127.0.0.1:41000". Connects and performs the
 * HTTP/2 preface. On failure err says which socket could not be reached and why
 * (status UNAVAILABLE). */
int rpc_client_connect(const char *target, rpc_client **out, hypr_error *err);
void rpc_client_free(rpc_client *c);
/* Socket fd, for poll() in interactive commands. */
int rpc_client_fd(rpc_client *c);

/* A unary call. timeout_ms 0 = none (sends grpc-timeout otherwise). On a
 * non-OK status returns <0 with err->status/message from the trailers. */
int rpc_client_unary(rpc_client *c, const char *path, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                     int64_t timeout_ms, hypr_error *err);

/* Streaming calls (server, client and bidi). */
int rpc_client_open(rpc_client *c, const char *path, int64_t timeout_ms, rpc_stream **out,
                    hypr_error *err);
int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *msg, hypr_error *err);
/* Half-close (END_STREAM from the client). */
int rpc_stream_close_send(rpc_stream *s, hypr_error *err);
/* Waits for the next message for at most wait_ms (-1 forever).
 * Returns 1 with *msg, 0 at a clean end (status OK), -ETIMEDOUT when wait_ms passed
 * with nothing, <0 otherwise with err filled from the trailers or transport. */
int rpc_stream_recv(rpc_stream *s, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg,
                    int wait_ms, hypr_error *err);
/* Sends RST_STREAM(CANCEL) and frees the stream. Safe on a finished stream. */
void rpc_stream_free(rpc_stream *s);

#endif
