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
        /* Handlers re-encode parts of requests (a VM's config is stored packed):
         * that must not overrun. protobuf-c keeps unknown fields verbatim, even
         * ones it would refuse on a second decode, so no round-trip is asserted. */
        size_t len = protobuf_c_message_get_packed_size(msg);
        uint8_t *buf = malloc(len ? len : 1);
        if (protobuf_c_message_pack(msg, buf) != len)
            __builtin_trap();
        free(buf);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    return 0;
}
