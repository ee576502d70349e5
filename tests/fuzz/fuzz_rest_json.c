/* A REST request body, as the gateway handles it: JSON parsed with jansson, turned
 * into the wire encoding of a request message (rpc_json_to_wire), decoded by
 * protobuf-c, and the message turned back into JSON (rpc_pb_to_json) as a response
 * would be. Without a NUL byte the input is also tried as each top-level field's
 * path/query parameter text. Must never crash or leak, and what the gateway emits
 * it must accept back as the same message. */
#include "rpc/rpc.h"
#include "hypr.pb-c.h"

#include <string.h>

#include "common/json_cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const ProtobufCMessageDescriptor *const requests[] = {
    &hypr__v1__create_vmrequest__descriptor,
    &hypr__v1__update_settings_request__descriptor,
    &hypr__v1__pull_image_request__descriptor,
    &hypr__v1__exec_request__descriptor,
    /* Not requests, but they hold the types the requests lack (int64, enum, double). */
    &hypr__v1__vm__descriptor,
    &hypr__v1__vmmetrics__descriptor,
    &hypr__v1__stream_logs_request__descriptor,
};

static uint8_t *packed(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = xmalloc(*len + 1);
    if (protobuf_c_message_pack(m, b) != *len)
        __builtin_trap();
    return b;
}

/* A message from wire bytes our encoder wrote: protobuf-c must take them. */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, const hypr_buf *wire)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, wire->len, (uint8_t *)wire->data);
    if (!m)
        __builtin_trap();
    return m;
}

static void refused_properly(int r, const hypr_error *err)
{
    if (r != -EINVAL || err->status != HYPR_INVALID_ARGUMENT || !err->message)
        __builtin_trap();
}

static void json_body(const ProtobufCMessageDescriptor *d, json_t *body)
{
    _cleanup_buf_ hypr_buf wire = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = rpc_json_to_wire(d, body, &wire, &err);
    if (r < 0) {
        refused_properly(r, &err);
        return;
    }
    _cleanup_pb_ ProtobufCMessage *m = unpack(d, &wire);
    _cleanup_json_ json_t *out = rpc_pb_to_json(m);
    _cleanup_free_ char *text = json_dumps(out, JSON_COMPACT);
    if (!text)
        __builtin_trap();

    /* The response's JSON, sent back, is the same message. */
    _cleanup_json_ json_t *again = json_loads(text, 0, NULL);
    _cleanup_buf_ hypr_buf wire2 = {0};
    if (!again || rpc_json_to_wire(d, again, &wire2, &err) < 0)
        __builtin_trap();
    _cleanup_pb_ ProtobufCMessage *m2 = unpack(d, &wire2);
    size_t n1, n2;
    _cleanup_free_ uint8_t *p1 = packed(m, &n1);
    _cleanup_free_ uint8_t *p2 = packed(m2, &n2);
    if (n1 != n2 || memcmp(p1, p2, n1) != 0)
        __builtin_trap();
}

static void text_params(const ProtobufCMessageDescriptor *d, const char *text)
{
    _cleanup_buf_ hypr_buf wire = {0};
    for (unsigned i = 0; i < d->n_fields; i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        int r = rpc_text_to_wire(d, d->fields[i].name, text, &wire, &err);
        if (r < 0)
            refused_properly(r, &err);
    }
    _cleanup_pb_ ProtobufCMessage *m = unpack(d, &wire);
    _cleanup_json_ json_t *out = rpc_pb_to_json(m);
    _cleanup_free_ char *dump = json_dumps(out, JSON_COMPACT);
    if (!dump)
        __builtin_trap();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hypr_log_init("error");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The gateway's own flags (rest.c build_request). */
    _cleanup_json_ json_t *body =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(requests); i++) {
        if (body)
            json_body(requests[i], body);
    }
    if (size < 4096 && !memchr(data, '\0', size)) {
        _cleanup_free_ char *text = xstrndup((const char *)data, size);
        for (size_t i = 0; i < ARRAY_SIZE(requests); i++)
            text_params(requests[i], text);
    }
    return 0;
}
