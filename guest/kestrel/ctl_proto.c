/* hypr control protocol: framing, encoders and payload parsers (see kestrel/ctl_proto.h). */
#include "kestrel/ctl_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- little-endian helpers ---- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

/* ---- decoder ---- */

void ctl_decoder_init(ctl_decoder *d)
{
    memset(d, 0, sizeof(*d));
}

void ctl_decoder_free(ctl_decoder *d)
{
    free(d->buf);
    memset(d, 0, sizeof(*d));
}

void ctl_decoder_reset(ctl_decoder *d)
{
    d->len = 0;
    d->off = 0;
    d->err = 0;
}

int ctl_header_check(const uint8_t *hdr, uint32_t *payload_len)
{
    if (hdr[0] != CTL_MAGIC)
        return -EPROTO;
    if (hdr[1] != CTL_PROTO_VERSION)
        return -EPROTONOSUPPORT;
    if (hdr[2] == 0 || hdr[2] > CTL_TYPE_MAX)
        return -EBADMSG;
    uint32_t len = get_u32(hdr + 8);
    if (len > CTL_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (payload_len)
        *payload_len = len;
    return 0;
}

int ctl_decoder_feed(ctl_decoder *d, const void *data, size_t len)
{
    if (d->err)
        return d->err;
    if (len == 0)
        return 0;
    /* Compact: frames already handed out are no longer referenced. */
    if (d->off > 0) {
        memmove(d->buf, d->buf + d->off, d->len - d->off);
        d->len -= d->off;
        d->off = 0;
    }
    if (len > SIZE_MAX - d->len)
        return -ENOMEM;
    size_t need = d->len + len;
    if (need > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *nb = realloc(d->buf, cap);
        if (!nb)
            return -ENOMEM;
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;
    return 0;
}

int ctl_decoder_next(ctl_decoder *d, ctl_frame *out)
{
    if (d->err)
        return d->err;
    size_t avail = d->len - d->off;
    if (avail < CTL_HEADER_SIZE)
        return 0;
    const uint8_t *h = d->buf + d->off;
    uint32_t plen;
    int r = ctl_header_check(h, &plen);
    if (r < 0) {
        d->err = r;
        return r;
    }
    if (avail - CTL_HEADER_SIZE < plen)
        return 0;
    out->type = h[2];
    out->flags = h[3];
    out->session = get_u32(h + 4);
    out->len = plen;
    out->payload = h + CTL_HEADER_SIZE;
    d->off += CTL_HEADER_SIZE + (size_t)plen;
    if (d->off == d->len)
        d->off = d->len = 0; /* payload stays readable: nothing overwrites it before feed */
    return 1;
}

const char *ctl_type_name(unsigned type)
{
    static const char *const names[] = {
        [CTL_HELLO] = "HELLO",       [CTL_EXEC_START] = "EXEC_START",
        [CTL_STDIN] = "STDIN",       [CTL_STDIN_EOF] = "STDIN_EOF",
        [CTL_STDOUT] = "STDOUT",     [CTL_STDERR] = "STDERR",
        [CTL_RESIZE] = "RESIZE",     [CTL_SIGNAL] = "SIGNAL",
        [CTL_EXIT] = "EXIT",         [CTL_LOG] = "LOG",
        [CTL_METRICS] = "METRICS",   [CTL_WORKLOAD_EXIT] = "WORKLOAD_EXIT",
        [CTL_SHUTDOWN] = "SHUTDOWN", [CTL_ERROR] = "ERROR",
    };
    if (type == 0 || type > CTL_TYPE_MAX)
        return "UNKNOWN";
    return names[type];
}

/* ---- output buffer ---- */

void ctl_buf_free(ctl_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void ctl_buf_consume(ctl_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static int buf_reserve(ctl_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *nd = realloc(b->data, cap);
    if (!nd)
        return -ENOMEM;
    b->data = nd;
    b->cap = cap;
    return 0;
}

/* Starts a frame; returns the offset of its header so the length can be patched. */
static int frame_begin(ctl_buf *b, uint8_t type, uint32_t session, size_t *start)
{
    int r = buf_reserve(b, CTL_HEADER_SIZE);
    if (r < 0)
        return r;
    uint8_t *h = b->data + b->len;
    h[0] = CTL_MAGIC;
    h[1] = CTL_PROTO_VERSION;
    h[2] = type;
    h[3] = 0;
    put_u32(h + 4, session);
    put_u32(h + 8, 0);
    *start = b->len;
    b->len += CTL_HEADER_SIZE;
    return 0;
}

static int frame_end(ctl_buf *b, size_t start, int r)
{
    size_t plen = b->len - start - CTL_HEADER_SIZE;
    if (r == 0 && plen > CTL_MAX_PAYLOAD)
        r = -EMSGSIZE;
    if (r < 0) {
        b->len = start; /* never leave half a frame behind */
        return r;
    }
    put_u32(b->data + start + 8, (uint32_t)plen);
    return 0;
}

static int add_bytes(ctl_buf *b, const void *p, size_t n)
{
    if (n > CTL_MAX_PAYLOAD)
        return -EMSGSIZE;
    int r = buf_reserve(b, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int add_u8(ctl_buf *b, uint8_t v)
{
    return add_bytes(b, &v, 1);
}

static int add_u16(ctl_buf *b, uint16_t v)
{
    uint8_t t[2];
    put_u16(t, v);
    return add_bytes(b, t, 2);
}

static int add_u32(ctl_buf *b, uint32_t v)
{
    uint8_t t[4];
    put_u32(t, v);
    return add_bytes(b, t, 4);
}

static int add_u64(ctl_buf *b, uint64_t v)
{
    uint8_t t[8];
    put_u64(t, v);
    return add_bytes(b, t, 8);
}

static int add_str(ctl_buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > CTL_MAX_PAYLOAD)
        return -EMSGSIZE;
    int r = add_u32(b, (uint32_t)n);
    return r < 0 ? r : add_bytes(b, s, n);
}

static int add_strv(ctl_buf *b, char *const *v, size_t n)
{
    if (n > CTL_MAX_PAYLOAD / 4)
        return -EMSGSIZE;
    int r = add_u32(b, (uint32_t)n);
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (!v[i])
            return -EINVAL;
        r = add_str(b, v[i]);
    }
    return r;
}

int ctl_encode_raw(ctl_buf *b, uint8_t type, uint32_t session, const void *payload, size_t len)
{
    if (type == 0 || type > CTL_TYPE_MAX)
        return -EINVAL;
    if (len > CTL_MAX_PAYLOAD)
        return -EMSGSIZE;
    size_t start;
    int r = frame_begin(b, type, session, &start);
    if (r < 0)
        return r;
    return frame_end(b, start, add_bytes(b, payload, len));
}

int ctl_encode_hello(ctl_buf *b, const ctl_phase_ts *ts, size_t n)
{
    size_t start;
    int r = frame_begin(b, CTL_HELLO, 0, &start);
    if (r < 0)
        return r;
    r = add_u32(b, CTL_PROTO_VERSION);
    if (r == 0)
        r = n > CTL_MAX_PAYLOAD / 12 ? -EMSGSIZE : add_u32(b, (uint32_t)n);
    for (size_t i = 0; r == 0 && i < n; i++) {
        r = add_u32(b, ts[i].phase);
        if (r == 0)
            r = add_u64(b, ts[i].ns);
    }
    return frame_end(b, start, r);
}

int ctl_encode_exec_start(ctl_buf *b, uint32_t session, const ctl_exec_start *e)
{
    if (!e->argv || e->argc == 0)
        return -EINVAL;
    size_t start;
    int r = frame_begin(b, CTL_EXEC_START, session, &start);
    if (r < 0)
        return r;
    r = add_u32(b, (e->tty ? CTL_EXEC_TTY : 0) | (e->main ? CTL_EXEC_MAIN : 0));
    if (r == 0)
        r = add_u16(b, e->rows);
    if (r == 0)
        r = add_u16(b, e->cols);
    if (r == 0)
        r = add_str(b, e->workdir);
    if (r == 0)
        r = add_str(b, e->user);
    if (r == 0)
        r = add_strv(b, e->argv, e->argc);
    if (r == 0)
        r = add_strv(b, e->env, e->env ? e->envc : 0);
    return frame_end(b, start, r);
}

int ctl_encode_data(ctl_buf *b, uint8_t type, uint32_t session, const void *data, size_t len)
{
    if (type != CTL_STDIN && type != CTL_STDOUT && type != CTL_STDERR)
        return -EINVAL;
    return ctl_encode_raw(b, type, session, data, len);
}

int ctl_encode_resize(ctl_buf *b, uint32_t session, uint16_t rows, uint16_t cols)
{
    uint8_t p[4];
    put_u16(p, rows);
    put_u16(p + 2, cols);
    return ctl_encode_raw(b, CTL_RESIZE, session, p, sizeof(p));
}

int ctl_encode_signal(ctl_buf *b, uint32_t session, uint32_t signo)
{
    uint8_t p[4];
    put_u32(p, signo);
    return ctl_encode_raw(b, CTL_SIGNAL, session, p, sizeof(p));
}

int ctl_encode_exit(ctl_buf *b, uint32_t session, int32_t code)
{
    uint8_t p[4];
    put_u32(p, (uint32_t)code);
    return ctl_encode_raw(b, CTL_EXIT, session, p, sizeof(p));
}

int ctl_encode_log(ctl_buf *b, uint8_t stream, const void *data, size_t len)
{
    if (len > CTL_MAX_PAYLOAD - 1)
        return -EMSGSIZE;
    size_t start;
    int r = frame_begin(b, CTL_LOG, 0, &start);
    if (r < 0)
        return r;
    r = add_u8(b, stream);
    if (r == 0)
        r = add_bytes(b, data, len);
    return frame_end(b, start, r);
}

int ctl_encode_metrics(ctl_buf *b, const uint64_t *values, size_t n)
{
    if (n > CTL_MAX_PAYLOAD / 8 - 1)
        return -EMSGSIZE;
    size_t start;
    int r = frame_begin(b, CTL_METRICS, 0, &start);
    if (r < 0)
        return r;
    r = add_u32(b, (uint32_t)n);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = add_u64(b, values[i]);
    return frame_end(b, start, r);
}

int ctl_encode_workload_exit(ctl_buf *b, int32_t code, bool will_restart, uint32_t restarts)
{
    uint8_t p[9];
    put_u32(p, (uint32_t)code);
    p[4] = will_restart ? 1 : 0;
    put_u32(p + 5, restarts);
    return ctl_encode_raw(b, CTL_WORKLOAD_EXIT, 0, p, sizeof(p));
}

int ctl_encode_error(ctl_buf *b, uint32_t session, uint32_t errnum, const char *msg)
{
    size_t n = msg ? strlen(msg) : 0;
    if (n > CTL_MAX_PAYLOAD - 4)
        n = CTL_MAX_PAYLOAD - 4; /* an error message may be cut, never refused */
    size_t start;
    int r = frame_begin(b, CTL_ERROR, session, &start);
    if (r < 0)
        return r;
    r = add_u32(b, errnum);
    if (r == 0)
        r = add_bytes(b, msg, n);
    return frame_end(b, start, r);
}

/* ---- parsers ---- */

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static int rd_u16(reader *r, uint16_t *v)
{
    if (r->left < 2)
        return -EBADMSG;
    *v = get_u16(r->p);
    r->p += 2;
    r->left -= 2;
    return 0;
}

static int rd_u32(reader *r, uint32_t *v)
{
    if (r->left < 4)
        return -EBADMSG;
    *v = get_u32(r->p);
    r->p += 4;
    r->left -= 4;
    return 0;
}

static int rd_u64(reader *r, uint64_t *v)
{
    if (r->left < 8)
        return -EBADMSG;
    *v = get_u64(r->p);
    r->p += 8;
    r->left -= 8;
    return 0;
}

/* A string becomes a NUL-terminated copy; an embedded NUL is malformed. */
static int rd_str(reader *r, char **out)
{
    uint32_t n;
    int e = rd_u32(r, &n);
    if (e < 0)
        return e;
    if (n > r->left)
        return -EBADMSG;
    if (n && memchr(r->p, 0, n))
        return -EBADMSG;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return -ENOMEM;
    if (n)
        memcpy(s, r->p, n);
    s[n] = 0;
    r->p += n;
    r->left -= n;
    *out = s;
    return 0;
}

static void strv_free_n(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int rd_strv(reader *r, char ***out, size_t *count)
{
    uint32_t n;
    int e = rd_u32(r, &n);
    if (e < 0)
        return e;
    /* Each string needs at least its 4-byte length: bounds the allocation. */
    if (n > r->left / 4)
        return -EBADMSG;
    char **v = calloc((size_t)n + 1, sizeof(char *));
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        e = rd_str(r, &v[i]);
        if (e < 0) {
            strv_free_n(v, i);
            return e;
        }
    }
    *out = v;
    *count = n;
    return 0;
}

int ctl_parse_hello(const uint8_t *p, size_t len, ctl_hello *out)
{
    reader r = {p, len};
    uint32_t n;
    memset(out, 0, sizeof(*out));
    if (rd_u32(&r, &out->version) < 0 || rd_u32(&r, &n) < 0)
        return -EBADMSG;
    if (n > r.left / 12 || r.left != (size_t)n * 12)
        return -EBADMSG;
    for (uint32_t i = 0; i < n; i++) {
        ctl_phase_ts t = {0, 0};
        rd_u32(&r, &t.phase);
        rd_u64(&r, &t.ns);
        if (out->n < CTL_PHASE_MAX)
            out->ts[out->n++] = t;
    }
    return 0;
}

void ctl_exec_start_free(ctl_exec_start *e)
{
    if (!e)
        return;
    free(e->workdir);
    free(e->user);
    strv_free_n(e->argv, e->argc);
    strv_free_n(e->env, e->envc);
    memset(e, 0, sizeof(*e));
}

int ctl_parse_exec_start(const uint8_t *p, size_t len, ctl_exec_start *out)
{
    reader r = {p, len};
    uint32_t flags;
    int e;
    memset(out, 0, sizeof(*out));
    if ((e = rd_u32(&r, &flags)) < 0 || (e = rd_u16(&r, &out->rows)) < 0 ||
        (e = rd_u16(&r, &out->cols)) < 0)
        return e;
    out->tty = flags & CTL_EXEC_TTY;
    out->main = flags & CTL_EXEC_MAIN;
    if ((e = rd_str(&r, &out->workdir)) < 0 || (e = rd_str(&r, &out->user)) < 0 ||
        (e = rd_strv(&r, &out->argv, &out->argc)) < 0 ||
        (e = rd_strv(&r, &out->env, &out->envc)) < 0)
        goto fail;
    if (r.left != 0 || out->argc == 0 || out->argv[0][0] == 0) {
        e = -EBADMSG;
        goto fail;
    }
    return 0;
fail:
    ctl_exec_start_free(out);
    return e;
}

int ctl_parse_resize(const uint8_t *p, size_t len, uint16_t *rows, uint16_t *cols)
{
    if (len != 4)
        return -EBADMSG;
    *rows = get_u16(p);
    *cols = get_u16(p + 2);
    return 0;
}

int ctl_parse_signal(const uint8_t *p, size_t len, uint32_t *signo)
{
    if (len != 4)
        return -EBADMSG;
    *signo = get_u32(p);
    return 0;
}

int ctl_parse_exit(const uint8_t *p, size_t len, int32_t *code)
{
    if (len != 4)
        return -EBADMSG;
    *code = (int32_t)get_u32(p);
    return 0;
}

int ctl_parse_log(const uint8_t *p, size_t len, uint8_t *stream, const uint8_t **data, size_t *dlen)
{
    if (len < 1 || p[0] > CTL_LOG_STDERR)
        return -EBADMSG;
    *stream = p[0];
    *data = p + 1;
    *dlen = len - 1;
    return 0;
}

int ctl_parse_metrics(const uint8_t *p, size_t len, uint64_t values[CTL_M_COUNT])
{
    reader r = {p, len};
    uint32_t n;
    memset(values, 0, sizeof(uint64_t) * CTL_M_COUNT);
    if (rd_u32(&r, &n) < 0 || n > r.left / 8 || r.left != (size_t)n * 8)
        return -EBADMSG;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v = 0;
        rd_u64(&r, &v);
        if (i < CTL_M_COUNT)
            values[i] = v;
    }
    return 0;
}

int ctl_parse_workload_exit(const uint8_t *p, size_t len, int32_t *code, bool *will_restart,
                            uint32_t *restarts)
{
    if (len != 9 || p[4] > 1)
        return -EBADMSG;
    *code = (int32_t)get_u32(p);
    *will_restart = p[4] == 1;
    *restarts = get_u32(p + 5);
    return 0;
}

int ctl_parse_error(const uint8_t *p, size_t len, uint32_t *errnum, char **msg)
{
    if (len < 4)
        return -EBADMSG;
    size_t n = len - 4;
    if (n && memchr(p + 4, 0, n))
        return -EBADMSG;
    char *s = malloc(n + 1);
    if (!s)
        return -ENOMEM;
    if (n)
        memcpy(s, p + 4, n);
    s[n] = 0;
    *errnum = get_u32(p);
    *msg = s;
    return 0;
}

int ctl_parse_empty(const uint8_t *p, size_t len)
{
    (void)p;
    return len == 0 ? 0 : -EBADMSG;
}
