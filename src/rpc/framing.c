/* gRPC length-prefixed message framing, grpc-timeout and grpc-message encoding. */
#define LOG_MODULE "rpc"
#include "rpc/rpc_internal.h"

#include <string.h>

#define FRAME_PREFIX 5

static size_t framer_max(const rpc_framer *f)
{
    return f->max_message ? f->max_message : RPC_DEFAULT_MAX_MESSAGE;
}

void rpc_framer_feed(rpc_framer *f, const uint8_t *data, size_t len)
{
    if (len > 0)
        buf_append(&f->in, data, len);
}

int rpc_framer_next(rpc_framer *f, uint8_t **msg, size_t *len)
{
    *msg = NULL;
    *len = 0;
    if (f->in.len < FRAME_PREFIX)
        return 0;
    const uint8_t *p = (const uint8_t *)f->in.data;
    /* 1 = compressed, which we never negotiate; anything else is garbage. */
    if (p[0] != 0)
        return -EPROTO;
    uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    /* Checked as soon as the prefix is here, so an announced size never makes
     * us buffer (or allocate) more than the limit. */
    if (n > framer_max(f))
        return -EMSGSIZE;
    if (f->in.len - FRAME_PREFIX < n)
        return 0;
    if (f->in.len == FRAME_PREFIX + (size_t)n && n >= 4096) {
        /* The usual case for big messages: hand over the buffer itself
         * instead of copying megabytes. */
        memmove(f->in.data, f->in.data + FRAME_PREFIX, n);
        f->in.len = n;
        *msg = (uint8_t *)buf_steal(&f->in);
        *len = n;
        return 1;
    }
    uint8_t *m = xmalloc(n ? n : 1);
    if (n)
        memcpy(m, p + FRAME_PREFIX, n);
    buf_consume(&f->in, FRAME_PREFIX + (size_t)n);
    *msg = m;
    *len = n;
    return 1;
}

void rpc_framer_free(rpc_framer *f)
{
    buf_free(&f->in);
}

void rpc_frame_encode(hypr_buf *out, const uint8_t *msg, size_t len)
{
    uint8_t prefix[FRAME_PREFIX];
    uint32_t n = (uint32_t)len;
    prefix[0] = 0;
    prefix[1] = (uint8_t)(n >> 24);
    prefix[2] = (uint8_t)(n >> 16);
    prefix[3] = (uint8_t)(n >> 8);
    prefix[4] = (uint8_t)n;
    buf_reserve(out, FRAME_PREFIX + len);
    buf_append(out, prefix, sizeof(prefix));
    if (len)
        buf_append(out, msg, len);
}

size_t rpc_out_read(hypr_buf *out, size_t *off, uint8_t *dst, size_t len, size_t keep)
{
    size_t avail = out->len - *off;
    size_t n = avail < len ? avail : len;
    if (n == 0)
        return 0;
    memcpy(dst, out->data + *off, n);
    *off += n;
    if (*off == out->len) {
        /* Give big buffers back: an idle stream should cost nothing. */
        if (out->cap > keep)
            buf_free(out);
        out->len = *off = 0;
    } else if (*off >= keep && *off * 2 >= out->len) {
        buf_consume(out, *off);
        *off = 0;
    }
    return n;
}

int rpc_parse_timeout(const char *value, int64_t *out_ms)
{
    if (!value)
        return -EINVAL;
    size_t n = strlen(value);
    /* The spec allows at most 8 digits, which also keeps every unit in range. */
    if (n < 2 || n > 9)
        return -EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (value[i] < '0' || value[i] > '9')
            return -EINVAL;
        v = v * 10 + (value[i] - '0');
    }
    int64_t ms;
    switch (value[n - 1]) {
    case 'H':
        ms = v * 3600 * 1000;
        break;
    case 'M':
        ms = v * 60 * 1000;
        break;
    case 'S':
        ms = v * 1000;
        break;
    case 'm':
        ms = v;
        break;
    case 'u':
        /* Rounded up: a short but non-zero timeout must not become "none". */
        ms = (v + 999) / 1000;
        break;
    case 'n':
        ms = (v + 999999) / 1000000;
        break;
    default:
        return -EINVAL;
    }
    *out_ms = ms;
    return 0;
}

static bool percent_unreserved(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e && c != '%';
}

char *rpc_percent_encode(const char *msg)
{
    static const char hex[] = "0123456789ABCDEF";
    hypr_buf b = {0};
    if (!msg)
        msg = "";
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (percent_unreserved(*p)) {
            buf_append(&b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 0xf]};
            buf_append(&b, e, sizeof(e));
        }
    }
    return buf_steal(&b);
}

char *rpc_percent_decode(const char *msg)
{
    /* A malformed escape is kept literally, as the spec asks. */
    return msg ? percent_decode(msg, strlen(msg), 0) : xstrdup("");
}
