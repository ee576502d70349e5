/* Feeds arbitrary bytes into the gRPC message framer in random-sized pieces and
 * drains the messages; also runs the grpc-timeout and grpc-message decoders. */
#include "rpc/rpc.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* First byte: split pattern seed; second: size limit, to reach -EMSGSIZE. */
    uint32_t seed = data[0] | 1u;
    size_t max = data[1] & 1 ? (size_t)data[1] * 64 : 0;
    data += 2;
    size -= 2;

    rpc_framer f = {.max_message = max};
    size_t off = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 64;
        if (chunk > size - off)
            chunk = size - off;
        rpc_framer_feed(&f, data + off, chunk);
        off += chunk;
        for (;;) {
            uint8_t *msg;
            size_t len;
            int r = rpc_framer_next(&f, &msg, &len);
            if (r == 0)
                break;
            if (r < 0) {
                /* A real peer's stream ends here; start over with a fresh framer. */
                if (r != -EMSGSIZE && r != -EPROTO)
                    __builtin_trap();
                rpc_framer_free(&f);
                f = (rpc_framer){.max_message = max};
                break;
            }
            free(msg);
        }
    }
    rpc_framer_free(&f);

    char *s = xstrndup((const char *)data, size);
    int64_t ms;
    (void)rpc_parse_timeout(s, &ms);
    char *dec = rpc_percent_decode(s);
    char *enc = rpc_percent_encode(dec);
    char *back = rpc_percent_decode(enc);
    /* Encoding then decoding must give back what was encoded. */
    if (strcmp(back, dec) != 0)
        __builtin_trap();
    free(back);
    free(enc);
    free(dec);
    free(s);
    return 0;
}
