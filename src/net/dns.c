/* DNS wire format: parsing queries (untrusted, from any guest or local process) and
 * building responses. RFC 1035 sections 4.1 (messages) and 4.1.4 (compression),
 * RFC 6891 (EDNS0). */
#define LOG_MODULE "net"

#include <string.h>

#include "net/net.h"

#define FLAG_QR 0x8000
#define FLAG_AA 0x0400
#define FLAG_TC 0x0200
#define FLAG_RD 0x0100
#define FLAG_RA 0x0080
#define FLAG_CD 0x0010
#define EDNS_DO 0x8000

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(hypr_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, x, sizeof(x));
}

static void put32(hypr_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, x, sizeof(x));
}

static void set16(hypr_buf *b, size_t off, uint16_t v)
{
    b->data[off] = (char)(v >> 8);
    b->data[off + 1] = (char)v;
}

void dns_query_clear(dns_query *q)
{
    if (!q)
        return;
    free(q->qname);
    free(q->qname_wire);
    memset(q, 0, sizeof(*q));
}

/* ---- names ----------------------------------------------------------------- */

static void text_label(hypr_buf *text, const uint8_t *label, size_t n)
{
    if (text->len)
        buf_puts(text, ".");
    for (size_t i = 0; i < n; i++) {
        uint8_t c = label[i];
        if (c == '.' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buf_append(text, esc, 2);
        } else if (c > 0x20 && c < 0x7f) {
            buf_append(text, &c, 1);
        } else {
            buf_printf(text, "\\%03u", c);
        }
    }
}

/* Reads the name at *off, following compression pointers. Each pointer must point
 * below the start of the stretch of labels it ends (so jumps strictly decrease and
 * cannot loop) and past the header. *off moves past the name as it appears in
 * place. wire and text may be NULL. */
static int read_name(const uint8_t *pkt, size_t len, size_t *off, hypr_buf *wire, hypr_buf *text,
                     hypr_error *err)
{
    size_t pos = *off, segment = *off, wire_len = 0;
    bool jumped = false;
    for (;;) {
        if (pos >= len)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "name at %zu runs past the end",
                            *off);
        uint8_t c = pkt[pos];
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len)
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "compression pointer at %zu runs past the end", pos);
            size_t target = (size_t)(c & 0x3f) << 8 | pkt[pos + 1];
            if (target >= segment)
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "compression pointer at %zu does not point backwards", pos);
            if (target < DNS_HEADER_LEN)
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "compression pointer at %zu points into the header", pos);
            if (!jumped)
                *off = pos + 2;
            jumped = true;
            pos = segment = target;
            continue;
        }
        if (c & 0xc0)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "unsupported label type 0x%02x at %zu", c & 0xc0, pos);
        if (c == 0) {
            if (wire) {
                buf_append(wire, &c, 1);
            }
            if (!jumped)
                *off = pos + 1;
            return 0;
        }
        /* c <= 63 here: the two top bits are clear. */
        if (pos + 1 + c > len)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "label at %zu runs past the end",
                            pos);
        wire_len += 1 + (size_t)c;
        if (wire_len + 1 > DNS_MAX_NAME_WIRE)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "name at %zu is longer than %d bytes", *off, DNS_MAX_NAME_WIRE);
        if (wire)
            buf_append(wire, pkt + pos, 1 + (size_t)c);
        if (text)
            text_label(text, pkt + pos + 1, c);
        pos += 1 + (size_t)c;
    }
}

/* Skips one resource record; for OPT fills the EDNS fields of q. */
static int read_rr(const uint8_t *pkt, size_t len, size_t *off, bool additional, dns_query *q,
                   hypr_error *err)
{
    _cleanup_buf_ hypr_buf name = {0};
    int r = read_name(pkt, len, off, &name, NULL, err);
    if (r < 0)
        return r;
    if (len - *off < 10)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "record at %zu is truncated", *off);
    const uint8_t *p = pkt + *off;
    uint16_t type = get16(p), class = get16(p + 2), rdlen = get16(p + 8);
    uint32_t ttl = get32(p + 4);
    *off += 10;
    if (len - *off < rdlen)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "record data at %zu is truncated",
                        *off);
    size_t rdata = *off;
    *off += rdlen;
    if (type != DNS_TYPE_OPT)
        return 0;
    if (!additional)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "OPT record outside the additional section");
    if (q->edns)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "more than one OPT record");
    if (name.len != 1)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "OPT record with a non-root name");
    /* Options are code, length, data; only their framing is checked. */
    for (size_t o = rdata; o < rdata + rdlen;) {
        if (rdata + rdlen - o < 4 || rdata + rdlen - o - 4 < get16(pkt + o + 2))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "EDNS option at %zu is truncated",
                            o);
        o += 4 + (size_t)get16(pkt + o + 2);
    }
    q->edns = true;
    q->udp_size = class < DNS_MIN_UDP_SIZE ? DNS_MIN_UDP_SIZE : class;
    q->edns_version = (uint8_t)(ttl >> 16);
    q->edns_do = (ttl & EDNS_DO) != 0;
    return 0;
}

static int parse_body(const uint8_t *pkt, size_t len, dns_query *q, hypr_error *err)
{
    uint16_t qd = get16(pkt + 4), an = get16(pkt + 6), ns = get16(pkt + 8), ar = get16(pkt + 10);
    if (qd != 1)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "query has %u questions, want 1", qd);
    size_t off = DNS_HEADER_LEN;
    _cleanup_buf_ hypr_buf wire = {0}, text = {0};
    int r = read_name(pkt, len, &off, &wire, &text, err);
    if (r < 0)
        return r;
    if (len - off < 4)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "question is truncated");
    q->qtype = get16(pkt + off);
    q->qclass = get16(pkt + off + 2);
    off += 4;
    /* Records are at least 11 bytes, so the packet length bounds these loops. */
    for (uint32_t i = 0; i < (uint32_t)an + ns; i++) {
        r = read_rr(pkt, len, &off, false, q, err);
        if (r < 0)
            return r;
    }
    for (uint32_t i = 0; i < ar; i++) {
        r = read_rr(pkt, len, &off, true, q, err);
        if (r < 0)
            return r;
    }
    if (off != len)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%zu trailing bytes after the query",
                        len - off);
    q->qname_wire_len = wire.len;
    q->qname_wire = (uint8_t *)buf_steal(&wire);
    q->qname = text.data ? buf_steal(&text) : xstrdup("");
    return 0;
}

int dns_query_parse(const uint8_t *pkt, size_t len, dns_query *q, hypr_error *err)
{
    memset(q, 0, sizeof(*q));
    q->udp_size = DNS_MIN_UDP_SIZE;
    if (len < DNS_HEADER_LEN)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "packet of %zu bytes is shorter than a header", len);
    uint16_t flags = get16(pkt + 2);
    if (flags & FLAG_QR)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "packet is a response, not a query");
    q->id = get16(pkt);
    q->opcode = (uint8_t)((flags >> 11) & 0xf);
    q->rd = (flags & FLAG_RD) != 0;
    q->cd = (flags & FLAG_CD) != 0;
    q->have_header = true;
    if (q->opcode != DNS_OPCODE_QUERY)
        return 0;
    int r = parse_body(pkt, len, q, err);
    if (r < 0) {
        /* Keep what a FORMERR needs; the EDNS fields may be half-read. */
        dns_query h = {.have_header = true,
                       .id = q->id,
                       .opcode = q->opcode,
                       .rd = q->rd,
                       .cd = q->cd,
                       .udp_size = DNS_MIN_UDP_SIZE};
        dns_query_clear(q);
        *q = h;
        return r;
    }
    return 0;
}

size_t dns_query_max_udp(const dns_query *q)
{
    size_t n = q->udp_size < DNS_MIN_UDP_SIZE ? DNS_MIN_UDP_SIZE : q->udp_size;
    return n > DNS_SERVER_UDP_SIZE ? DNS_SERVER_UDP_SIZE : n;
}

/* ---- building -------------------------------------------------------------- */

/* Presentation form (no escapes: the names hypr serves are plain) to wire form. */
static int put_name(hypr_buf *b, const char *name, hypr_error *err)
{
    size_t total = 0;
    const char *p = name;
    if (*p == '.' && p[1] == '\0')
        p++;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n > DNS_MAX_LABEL)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "name \"%s\" has an empty label or one longer than %d bytes", name,
                            DNS_MAX_LABEL);
        total += 1 + n;
        if (total + 1 > DNS_MAX_NAME_WIRE)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "name \"%s\" is too long", name);
        uint8_t n8 = (uint8_t)n;
        buf_append(b, &n8, 1);
        buf_append(b, p, n);
        p += n;
        if (*p == '.')
            p++;
    }
    uint8_t root = 0;
    buf_append(b, &root, 1);
    return 0;
}

static void put_opt(hypr_buf *b, const dns_query *q, int rcode)
{
    uint8_t root = 0;
    buf_append(b, &root, 1);
    put16(b, DNS_TYPE_OPT);
    put16(b, DNS_SERVER_UDP_SIZE);
    put32(b, (uint32_t)(rcode >> 4) << 24 | (q->edns_do ? EDNS_DO : 0));
    put16(b, 0);
}

static void put_header(hypr_buf *b, const dns_query *q, int rcode, bool tc, uint16_t an,
                       uint16_t ar)
{
    bool authoritative = rcode == DNS_RCODE_NOERROR || rcode == DNS_RCODE_NXDOMAIN;
    uint16_t flags = FLAG_QR | (uint16_t)(q->opcode & 0xf) << 11 | FLAG_RA |
                     (authoritative ? FLAG_AA : 0) | (tc ? FLAG_TC : 0) | (q->rd ? FLAG_RD : 0) |
                     (q->cd ? FLAG_CD : 0) | (uint16_t)(rcode & 0xf);
    put16(b, q->id);
    put16(b, flags);
    put16(b, q->qname_wire ? 1 : 0);
    put16(b, an);
    put16(b, 0);
    put16(b, ar);
}

int dns_build_response(const dns_query *q, int rcode, const dns_rr *answers, size_t n,
                       size_t max_size, hypr_buf *out, hypr_error *err)
{
    if (rcode < 0 || rcode > 0xfff || (rcode > 0xf && !q->edns))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "rcode %d cannot be sent without EDNS0",
                        rcode);
    if (n && !q->qname_wire)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "answers without a question");
    if (n > UINT16_MAX)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "too many answers");
    if (max_size < DNS_MIN_UDP_SIZE)
        max_size = DNS_MIN_UDP_SIZE;
    if (max_size > DNS_TCP_MAX_SIZE)
        max_size = DNS_TCP_MAX_SIZE;
    /* Answers first, into their own buffer: their size decides TC. */
    _cleanup_buf_ hypr_buf ans = {0};
    for (size_t i = 0; i < n; i++) {
        put16(&ans, 0xc000 | DNS_HEADER_LEN); /* the question's name */
        put16(&ans, answers[i].type);
        put16(&ans, DNS_CLASS_IN);
        put32(&ans, answers[i].ttl);
        if (answers[i].type == DNS_TYPE_A) {
            put16(&ans, 4);
            put32(&ans, answers[i].a);
        } else if (answers[i].type == DNS_TYPE_PTR && answers[i].ptr) {
            size_t lenpos = ans.len;
            put16(&ans, 0);
            int r = put_name(&ans, answers[i].ptr, err);
            if (r < 0)
                return r;
            set16(&ans, lenpos, (uint16_t)(ans.len - lenpos - 2));
        } else {
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "cannot encode a record of type %u",
                            answers[i].type);
        }
    }
    size_t opt_len = q->edns ? 11 : 0;
    size_t question = q->qname_wire ? q->qname_wire_len + 4 : 0;
    bool tc = DNS_HEADER_LEN + question + ans.len + opt_len > max_size;
    out->len = 0;
    put_header(out, q, rcode, tc, tc ? 0 : (uint16_t)n, q->edns ? 1 : 0);
    if (q->qname_wire) {
        buf_append(out, q->qname_wire, q->qname_wire_len);
        put16(out, q->qtype);
        put16(out, q->qclass);
    }
    if (!tc)
        buf_append(out, ans.data, ans.len);
    if (q->edns)
        put_opt(out, q, rcode);
    return 0;
}

int dns_build_error(const dns_query *q, int rcode, size_t max_size, hypr_buf *out)
{
    return dns_build_response(q, rcode, NULL, 0, max_size, out, NULL);
}

/* ---- reverse names ----------------------------------------------------------- */

#define ARPA_SUFFIX ".in-addr.arpa"

int dns_ptr_name_parse(const char *name, uint32_t *out)
{
    size_t len = strlen(name);
    if (len && name[len - 1] == '.')
        len--;
    size_t slen = strlen(ARPA_SUFFIX);
    if (len <= slen || strncasecmp(name + len - slen, ARPA_SUFFIX, slen) != 0)
        return -EINVAL;
    _cleanup_free_ char *octets = xstrndup(name, len - slen);
    uint32_t reversed;
    if (net_ip4_parse(octets, &reversed) < 0)
        return -EINVAL;
    *out = __builtin_bswap32(reversed);
    return 0;
}

char *dns_ptr_name(uint32_t addr)
{
    return xasprintf("%u.%u.%u.%u" ARPA_SUFFIX, addr & 0xff, (addr >> 8) & 0xff,
                     (addr >> 16) & 0xff, addr >> 24);
}
