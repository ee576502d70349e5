/* libFuzzer target: the control-protocol stream decoder fed in random splits,
 * then every payload parser (host side and kestrel side share them) on every
 * frame, with re-encode round trips for the structured types. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kestrel/ctl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_all(const ctl_frame *f)
{
    const uint8_t *p = f->payload;
    size_t n = f->len;
    ctl_hello h;
    ctl_exec_start e;
    uint16_t rows, cols;
    uint32_t u;
    int32_t code;
    uint8_t stream;
    const uint8_t *d;
    size_t dl;
    uint64_t m[CTL_M_COUNT];
    bool again;
    char *msg;

    if (ctl_parse_hello(p, n, &h) == 0 && h.n > CTL_PHASE_MAX)
        abort();
    if (ctl_parse_exec_start(p, n, &e) == 0) {
        if (!e.argv || e.argc == 0 || e.argv[e.argc] || (e.env && e.env[e.envc]))
            abort();
        /* re-encoding what was parsed gives back the same payload (unknown
         * flag bits are ignored by the parser, so they are not compared) */
        ctl_buf b = {0};
        if (ctl_encode_exec_start(&b, f->session, &e) == 0) {
            const uint8_t *q = b.data + CTL_HEADER_SIZE;
            if (b.len != CTL_HEADER_SIZE + n || memcmp(q + 4, p + 4, n - 4) != 0 ||
                (q[0] & CTL_EXEC_TTY) != (p[0] & CTL_EXEC_TTY))
                abort();
        }
        ctl_buf_free(&b);
        ctl_exec_start_free(&e);
    }
    ctl_parse_resize(p, n, &rows, &cols);
    ctl_parse_signal(p, n, &u);
    ctl_parse_exit(p, n, &code);
    if (ctl_parse_log(p, n, &stream, &d, &dl) == 0 && (d + dl != p + n))
        abort();
    ctl_parse_metrics(p, n, m);
    ctl_parse_workload_exit(p, n, &code, &again, &u);
    if (ctl_parse_error(p, n, &u, &msg) == 0) {
        if (strlen(msg) != n - 4)
            abort();
        free(msg);
    }
    ctl_parse_empty(p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* first byte: split pattern seed */
    uint32_t seed = data[0] * 2654435761u + 1;
    data++;
    size--;
    ctl_decoder dec;
    ctl_decoder_init(&dec);
    size_t off = 0, frames = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 64;
        if (chunk > size - off)
            chunk = size - off;
        int r = ctl_decoder_feed(&dec, data + off, chunk);
        off += chunk;
        ctl_frame f;
        while (r == 0 && (r = ctl_decoder_next(&dec, &f)) == 1) {
            if (f.len > CTL_MAX_PAYLOAD || f.type == 0 || f.type > CTL_TYPE_MAX)
                abort();
            parse_all(&f);
            frames++;
            r = 0;
        }
        if (r < 0) {
            /* a stream error is sticky */
            if (ctl_decoder_next(&dec, &f) != r)
                abort();
            break;
        }
    }
    ctl_decoder_free(&dec);
    (void)frames;
    return 0;
}
