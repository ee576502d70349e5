/* Decodes arbitrary bytes as each request message of HyprService, the way the
 * server does before a handler sees them. The first byte picks the RPC. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "hypr.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCServiceDescriptor *svc = &hypr__v1__hypr_service__descriptor;
    const ProtobufCMethodDescriptor *m = &svc->methods[data[0] % svc->n_methods];
    ProtobufCMessage *msg = protobuf_c_message_unpack(m->input, NULL, size - 1, data + 1);
    if (msg) {
        /* A decoded message must re-encode to a size the decoder accepts again. */
        size_t len = protobuf_c_message_get_packed_size(msg);
        uint8_t *buf = malloc(len ? len : 1);
        protobuf_c_message_pack(msg, buf);
        ProtobufCMessage *again = protobuf_c_message_unpack(m->input, NULL, len, buf);
        if (!again)
            __builtin_trap();
        protobuf_c_message_free_unpacked(again, NULL);
        free(buf);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    return 0;
}
