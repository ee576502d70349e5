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
