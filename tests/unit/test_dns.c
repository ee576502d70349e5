#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "common/common.h"
#include "net/net.h"

/* ---- building test packets --------------------------------------------------- */

static void p16(hypr_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, x, 2);
}

static void p32(hypr_buf *b, uint32_t v)
{
    p16(b, (uint16_t)(v >> 16));
    p16(b, (uint16_t)v);
}

static void pname(hypr_buf *b, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t n = dot ? (size_t)(dot - name) : strlen(name);
        uint8_t n8 = (uint8_t)n;
        buf_append(b, &n8, 1);
        buf_append(b, name, n);
        name += n + (dot ? 1 : 0);
    }
    uint8_t z = 0;
    buf_append(b, &z, 1);
}

static void header(hypr_buf *b, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
                   uint16_t ar)
{
    p16(b, id);
    p16(b, flags);
    p16(b, qd);
    p16(b, an);
    p16(b, ns);
    p16(b, ar);
}

static void opt(hypr_buf *b, uint16_t size, uint8_t version, bool do_bit)
{
    uint8_t z = 0;
    buf_append(b, &z, 1);
    p16(b, DNS_TYPE_OPT);
    p16(b, size);
    p32(b, (uint32_t)version << 16 | (do_bit ? 0x8000 : 0));
    p16(b, 0);
}

/* A query like dig sends: RD set, one question, an OPT record when edns_size > 0. */
static void query(hypr_buf *b, uint16_t id, const char *name, uint16_t qtype, uint16_t edns_size)
{
    b->len = 0;
    header(b, id, 0x0100, 1, 0, 0, edns_size ? 1 : 0);
    pname(b, name);
    p16(b, qtype);
    p16(b, DNS_CLASS_IN);
    if (edns_size)
        opt(b, edns_size, 0, false);
}

static const uint8_t *u8(const hypr_buf *b)
{
    return (const uint8_t *)b->data;
}

/* ---- decoding responses (an independent reader for the checks) ---------------- */

typedef struct resp {
    uint16_t id, flags, qd, an, ns, ar;
    int rcode; /* with the extended bits of an OPT */
    bool has_opt;
    uint16_t opt_size;
    uint32_t opt_ttl;
    size_t n;
    uint16_t type[128];
    uint32_t ttl[128];
    uint32_t a[128];
    char ptr[128][256];
} resp;

static uint16_t g16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t g32(const uint8_t *p)
{
    return (uint32_t)g16(p) << 16 | g16(p + 2);
}

/* Reads a name with no compression (what hypr writes into rdata). */
static size_t rname(const uint8_t *p, size_t len, size_t off, char *out)
{
    size_t o = 0;
    out[0] = '\0';
    while (off < len && p[off]) {
        size_t n = p[off];
        assert_true(n <= 63 && off + 1 + n <= len);
        if (o)
            out[o++] = '.';
        memcpy(out + o, p + off + 1, n);
        o += n;
        out[o] = '\0';
        off += 1 + n;
    }
    assert_true(off < len);
    return off + 1;
}

static void decode(const hypr_buf *b, resp *r)
{
    const uint8_t *p = u8(b);
    size_t len = b->len;
    memset(r, 0, sizeof(*r));
    assert_true(len >= 12);
    r->id = g16(p);
    r->flags = g16(p + 2);
    r->qd = g16(p + 4);
    r->an = g16(p + 6);
    r->ns = g16(p + 8);
    r->ar = g16(p + 10);
    r->rcode = r->flags & 0xf;
    size_t off = 12;
    char name[256];
    for (int i = 0; i < r->qd; i++) {
        off = rname(p, len, off, name);
        off += 4;
    }
    assert_true(r->an <= 128);
    for (int i = 0; i < r->an; i++) {
        assert_true(off + 12 <= len);
        assert_int_equal(g16(p + off), 0xc00c); /* the question's name */
        off += 2;
        r->type[i] = g16(p + off);
        assert_int_equal(g16(p + off + 2), DNS_CLASS_IN);
        r->ttl[i] = g32(p + off + 4);
        uint16_t rdlen = g16(p + off + 8);
        off += 10;
        assert_true(off + rdlen <= len);
        if (r->type[i] == DNS_TYPE_A) {
            assert_int_equal(rdlen, 4);
            r->a[i] = g32(p + off);
        } else if (r->type[i] == DNS_TYPE_PTR) {
            assert_int_equal(rname(p, off + rdlen, off, r->ptr[i]), off + rdlen);
        }
        off += rdlen;
        r->n++;
    }
    for (int i = 0; i < r->ar; i++) {
        assert_true(off + 11 <= len);
        assert_int_equal(p[off], 0);
        assert_int_equal(g16(p + off + 1), DNS_TYPE_OPT);
        r->has_opt = true;
        r->opt_size = g16(p + off + 3);
        r->opt_ttl = g32(p + off + 5);
        r->rcode |= (int)(r->opt_ttl >> 24) << 4;
        off += 11 + g16(p + off + 9);
    }
    assert_int_equal(off, len);
}

/* ---- parsing -------------------------------------------------------------------- */

static void test_parse_header_question_and_escaped_names(void **state)
{
    _cleanup_buf_ hypr_buf b = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    query(&b, 0xbeef, "Web.HYPR", DNS_TYPE_A, 0);
    dns_query q;
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, &err), 0);
    assert_true(q.have_header);
    assert_int_equal(q.id, 0xbeef);
    assert_true(q.rd);
    assert_int_equal(q.opcode, 0);
    assert_string_equal(q.qname, "Web.HYPR");
    assert_int_equal(q.qtype, DNS_TYPE_A);
    assert_int_equal(q.qclass, DNS_CLASS_IN);
    assert_false(q.edns);
    assert_int_equal(q.udp_size, 512);
    assert_int_equal(dns_query_max_udp(&q), 512);
    assert_int_equal(q.qname_wire_len, 10);
    assert_memory_equal(q.qname_wire, "\3Web\4HYPR\0", 10);
    dns_query_clear(&q);

    /* The root name, and a label with bytes that need escapes. */
    b.len = 0;
    header(&b, 1, 0, 1, 0, 0, 0);
    pname(&b, "");
    p16(&b, DNS_TYPE_NS);
    p16(&b, DNS_CLASS_IN);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, &err), 0);
    assert_string_equal(q.qname, "");
    dns_query_clear(&q);
    b.len = 0;
    header(&b, 1, 0, 1, 0, 0, 0);
    buf_append(&b, "\4a.\\\x01\0", 6);
    p16(&b, DNS_TYPE_A);
    p16(&b, DNS_CLASS_IN);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, &err), 0);
    assert_string_equal(q.qname, "a\\.\\\\\\001");
    dns_query_clear(&q);
}

static void test_parse_edns(void **state)
{
    _cleanup_buf_ hypr_buf b = {0};
    dns_query q;
    query(&b, 7, "x.hypr", DNS_TYPE_A, 4096);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    assert_true(q.edns);
    assert_int_equal(q.udp_size, 4096);
    assert_int_equal(dns_query_max_udp(&q), DNS_SERVER_UDP_SIZE);
    assert_int_equal(q.edns_version, 0);
    assert_false(q.edns_do);
    dns_query_clear(&q);

    query(&b, 7, "x.hypr", DNS_TYPE_A, 100); /* below 512 counts as 512 */
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    assert_int_equal(q.udp_size, 512);
    dns_query_clear(&q);

    query(&b, 7, "x.hypr", DNS_TYPE_A, 0);
    header(&b, 0, 0, 0, 0, 0, 0);
    b.data[11] = 1; /* ARCOUNT in the real header */
    b.len -= 12;
    opt(&b, 900, 1, true);
    /* An option inside the OPT rdata: code 10 (cookie), 8 bytes. */
    b.data[b.len - 1] = 12;
    p16(&b, 10);
    p16(&b, 8);
    buf_append(&b, "cookie!!", 8);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    assert_int_equal(q.udp_size, 900);
    assert_int_equal(q.edns_version, 1);
    assert_true(q.edns_do);
    assert_int_equal(dns_query_max_udp(&q), 900);
    dns_query_clear(&q);
}

/* A record in the answer section of a query, named by a pointer to the question,
 * and an additional record named "x" + pointer: both followed. */
static void test_parse_compression(void **state)
{
    _cleanup_buf_ hypr_buf b = {0};
    dns_query q;
    header(&b, 9, 0, 1, 1, 0, 2);
    pname(&b, "web.hypr");
    p16(&b, DNS_TYPE_A);
    p16(&b, DNS_CLASS_IN);
    p16(&b, 0xc00c);
    p16(&b, DNS_TYPE_A);
    p16(&b, DNS_CLASS_IN);
    p32(&b, 60);
    p16(&b, 4);
    p32(&b, 0x0a580002);
    /* "x" then a pointer to "hypr" inside the question (offset 16). */
    buf_append(&b, "\1x", 2);
    p16(&b, 0xc010);
    p16(&b, DNS_TYPE_A);
    p16(&b, DNS_CLASS_IN);
    p32(&b, 0);
    p16(&b, 0);
    opt(&b, 1400, 0, false);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    assert_string_equal(q.qname, "web.hypr");
    assert_int_equal(q.udp_size, 1400);
    dns_query_clear(&q);
}

static void expect_bad(const hypr_buf *b, bool have_header, const char *msg)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    dns_query q;
    assert_int_equal(dns_query_parse(u8(b), b->len, &q, &err), -EINVAL);
    assert_int_equal(q.have_header, have_header);
    assert_null(q.qname);
    assert_null(q.qname_wire);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    if (!strstr(err.message, msg))
        fail_msg("error \"%s\" does not contain \"%s\"", err.message, msg);
    dns_query_clear(&q);
}

static void question_with(hypr_buf *b, const void *name, size_t n)
{
    b->len = 0;
    header(b, 5, 0x0100, 1, 0, 0, 0);
    buf_append(b, name, n);
    p16(b, DNS_TYPE_A);
    p16(b, DNS_CLASS_IN);
}

static void test_parse_malformed(void **state)
{
    _cleanup_buf_ hypr_buf b = {0};
    buf_append(&b, "\1\2\3", 3);
    expect_bad(&b, false, "shorter than a header");
    query(&b, 1, "a.hypr", DNS_TYPE_A, 0);
    b.data[2] |= (char)0x80;
    expect_bad(&b, false, "is a response");

    b.len = 0;
    header(&b, 1, 0, 0, 0, 0, 0);
    expect_bad(&b, true, "0 questions");
    b.len = 0;
    header(&b, 1, 0, 2, 0, 0, 0);
    pname(&b, "a");
    p32(&b, 0x00010001);
    pname(&b, "b");
    p32(&b, 0x00010001);
    expect_bad(&b, true, "2 questions");

    /* Pointers: to itself (loop), forward, into the header, truncated. */
    question_with(&b, "\1a\xc0\x0c", 4);
    expect_bad(&b, true, "does not point backwards");
    question_with(&b, "\xc0\x0c", 2);
    expect_bad(&b, true, "does not point backwards");
    question_with(&b, "\xc0\x20", 2);
    expect_bad(&b, true, "does not point backwards");
    b.len = 0;
    header(&b, 1, 0, 1, 0, 0, 0);
    buf_append(&b, "\xc0", 1);
    expect_bad(&b, true, "runs past the end");
    /* A two-pointer loop in the additional section: 0x1a -> 0x1c -> 0x1a. */
    query(&b, 1, "a", DNS_TYPE_A, 0);
    b.data[11] = 1;
    assert_int_equal(b.len, 0x13);
    buf_append(&b, "\1x\xc0\x1c\xc0\x13", 6);
    expect_bad(&b, true, "does not point backwards");
    query(&b, 1, "a", DNS_TYPE_A, 0);
    b.data[11] = 1;
    buf_append(&b, "\xc0\x05", 2);
    expect_bad(&b, true, "points into the header");

    /* Labels over 63 bytes use the reserved 0x40 / 0x80 label types. */
    char big[80];
    memset(big, 'a', sizeof(big));
    big[0] = 64;
    big[65] = 0;
    question_with(&b, big, 66);
    expect_bad(&b, true, "unsupported label type 0x40");
    big[0] = (char)0x80;
    question_with(&b, big, 66);
    expect_bad(&b, true, "unsupported label type 0x80");

    /* Names: 255 bytes on the wire are fine, 256 are not. */
    char name[300];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        name[n++] = 63;
        memset(name + n, 'a' + i, 63);
        n += 63;
    }
    name[n++] = 61;
    memset(name + n, 'z', 61);
    n += 61;
    name[n++] = 0;
    assert_int_equal(n, 255);
    question_with(&b, name, n);
    dns_query q;
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    assert_int_equal(q.qname_wire_len, 255);
    assert_int_equal(strlen(q.qname), 253);
    dns_query_clear(&q);
    name[192] = 62;
    name[n - 1] = 'z';
    name[n++] = 0;
    question_with(&b, name, n);
    expect_bad(&b, true, "longer than 255 bytes");

    /* Truncations anywhere. */
    query(&b, 1, "web.hypr", DNS_TYPE_A, 1232);
    for (size_t cut = 12; cut < b.len; cut++) {
        hypr_buf part = {b.data, cut, cut};
        expect_bad(&part, true, cut < 22 ? "past the end" : cut < 26 ? "truncated" : "");
    }
    question_with(&b, "\3web\0", 5);
    buf_append(&b, "x", 1);
    expect_bad(&b, true, "1 trailing bytes");
    /* Two OPT records; an OPT with a name; an OPT among the answers; bad option. */
    query(&b, 1, "a", DNS_TYPE_A, 1232);
    b.data[11] = 2;
    opt(&b, 1232, 0, false);
    expect_bad(&b, true, "more than one OPT");
    query(&b, 1, "a", DNS_TYPE_A, 0);
    b.data[11] = 1;
    buf_append(&b, "\xc0\x0c", 2);
    p16(&b, DNS_TYPE_OPT);
    p16(&b, 1232);
    p32(&b, 0);
    p16(&b, 0);
    expect_bad(&b, true, "non-root name");
    query(&b, 1, "a", DNS_TYPE_A, 0);
    b.data[7] = 1;
    opt(&b, 1232, 0, false);
    expect_bad(&b, true, "outside the additional section");
    query(&b, 1, "a", DNS_TYPE_A, 1232);
    b.data[b.len - 1] = 4;
    p16(&b, 10);
    p16(&b, 1);
    expect_bad(&b, true, "EDNS option at");
    query(&b, 1, "a", DNS_TYPE_A, 1232);
    b.data[b.len - 1] = 8;
    expect_bad(&b, true, "record data at");
}

/* ---- building -------------------------------------------------------------------- */

static void test_build_a_bytes(void **state)
{
    _cleanup_buf_ hypr_buf b = {0}, out = {0};
    query(&b, 0x1234, "web.hypr", DNS_TYPE_A, 0);
    dns_query q;
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    dns_rr rr = {.type = DNS_TYPE_A, .ttl = 30, .a = 0x0a580005};
    assert_int_equal(dns_build_response(&q, DNS_RCODE_NOERROR, &rr, 1, 512, &out, NULL), 0);
    static const uint8_t want[] = {
        0x12, 0x34, 0x85, 0x80, 0, 1,   0,   1,   0,   0,  0, 0,               /* QR AA RD RA */
        3,    'w',  'e',  'b',  4, 'h', 'y', 'p', 'r', 0,  0, 1, 0,  1,        /* question */
        0xc0, 0x0c, 0,    1,    0, 1,   0,   0,   0,   30, 0, 4, 10, 88, 0, 5, /* answer */
    };
    assert_int_equal(out.len, sizeof(want));
    assert_memory_equal(out.data, want, sizeof(want));
    dns_query_clear(&q);
}

static void test_truncation(void **state)
{
    _cleanup_buf_ hypr_buf b = {0}, out = {0};
    dns_rr rr[100];
    for (int i = 0; i < 100; i++)
        rr[i] = (dns_rr){.type = DNS_TYPE_A, .ttl = 5, .a = 0x0a580000 + (uint32_t)i};
    resp r;
    dns_query q;
    /* No EDNS0: 512 bytes hold 12 + 14 (question) + 30 records of 16 bytes. */
    query(&b, 1, "web.hypr", DNS_TYPE_A, 0);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    size_t max = dns_query_max_udp(&q);
    assert_int_equal(dns_build_response(&q, 0, rr, 30, max, &out, NULL), 0);
    decode(&out, &r);
    assert_false(r.flags & 0x0200);
    assert_int_equal(r.n, 30);
    assert_true(out.len <= 512);
    assert_int_equal(dns_build_response(&q, 0, rr, 31, max, &out, NULL), 0);
    decode(&out, &r);
    assert_true(r.flags & 0x0200);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.qd, 1);
    /* Over TCP everything fits. */
    assert_int_equal(dns_build_response(&q, 0, rr, 100, DNS_TCP_MAX_SIZE, &out, NULL), 0);
    decode(&out, &r);
    assert_false(r.flags & 0x0200);
    assert_int_equal(r.n, 100);
    assert_int_equal(r.an, 100);
    dns_query_clear(&q);

    /* EDNS0 4096: capped at hypr's 1232: 12 + 14 + 11 (OPT) + 74 * 16 = 1221 fits, 75
     * records do not; the OPT is echoed either way. */
    query(&b, 1, "web.hypr", DNS_TYPE_A, 4096);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    max = dns_query_max_udp(&q);
    assert_int_equal(dns_build_response(&q, 0, rr, 74, max, &out, NULL), 0);
    decode(&out, &r);
    assert_false(r.flags & 0x0200);
    assert_int_equal(r.an, 74);
    assert_true(r.has_opt);
    assert_int_equal(r.opt_size, DNS_SERVER_UDP_SIZE);
    assert_int_equal(out.len, 1221);
    assert_int_equal(dns_build_response(&q, 0, rr, 75, max, &out, NULL), 0);
    decode(&out, &r);
    assert_true(r.flags & 0x0200);
    assert_int_equal(r.an, 0);
    assert_true(r.has_opt);
    dns_query_clear(&q);

    /* EDNS0 600: 35 records fit (12 + 14 + 11 + 35 * 16 = 597). */
    query(&b, 1, "web.hypr", DNS_TYPE_A, 600);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    assert_int_equal(dns_build_response(&q, 0, rr, 35, dns_query_max_udp(&q), &out, NULL), 0);
    decode(&out, &r);
    assert_int_equal(r.an, 35);
    assert_int_equal(dns_build_response(&q, 0, rr, 36, dns_query_max_udp(&q), &out, NULL), 0);
    decode(&out, &r);
    assert_int_equal(r.an, 0);
    assert_true(r.flags & 0x0200);
    dns_query_clear(&q);
}

static void test_build_errors(void **state)
{
    _cleanup_buf_ hypr_buf b = {0}, out = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    dns_query q;
    query(&b, 77, "web.hypr", DNS_TYPE_A, 0);
    assert_int_equal(dns_query_parse(u8(&b), b.len, &q, NULL), 0);
    resp r;
    int codes[] = {DNS_RCODE_NXDOMAIN, DNS_RCODE_SERVFAIL, DNS_RCODE_REFUSED, DNS_RCODE_NOTIMP,
                   DNS_RCODE_FORMERR};
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++) {
        assert_int_equal(dns_build_error(&q, codes[i], 512, &out), 0);
        decode(&out, &r);
        assert_int_equal(r.id, 77);
        assert_int_equal(r.rcode, codes[i]);
        assert_int_equal(r.qd, 1);
        assert_int_equal(r.an, 0);
        assert_int_equal(!!(r.flags & 0x0400), codes[i] == DNS_RCODE_NXDOMAIN);
    }
    /* BADVERS needs an OPT. */
    assert_int_equal(dns_build_error(&q, DNS_RCODE_BADVERS, 512, &out), -EINVAL);
    dns_rr bad = {.type = DNS_TYPE_AAAA};
    assert_int_equal(dns_build_response(&q, 0, &bad, 1, 512, &out, &err), -EINVAL);
    hypr_error_clear(&err);
    dns_rr ptr = {.type = DNS_TYPE_PTR, .ptr = "a..hypr"};
    assert_int_equal(dns_build_response(&q, 0, &ptr, 1, 512, &out, &err), -EINVAL);
    hypr_error_clear(&err);
    dns_query_clear(&q);
}

/* ---- ptr names and the table ------------------------------------------------------ */

static void test_ptr_names(void **state)
{
    uint32_t a;
    assert_int_equal(dns_ptr_name_parse("5.0.88.10.in-addr.arpa", &a), 0);
    assert_int_equal(a, 0x0a580005);
    assert_int_equal(dns_ptr_name_parse("5.0.88.10.IN-ADDR.ARPA.", &a), 0);
    assert_int_equal(a, 0x0a580005);
    const char *bad[] = {"0.88.10.in-addr.arpa",
                         "x.0.88.10.in-addr.arpa",
                         "in-addr.arpa",
                         ".in-addr.arpa",
                         "5.0.88.10.in-addr.arpa.com",
                         "5.0.88.10",
                         "256.0.88.10.in-addr.arpa",
                         "1.5.0.88.10.in-addr.arpa"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(dns_ptr_name_parse(bad[i], &a), -EINVAL);
    _cleanup_free_ char *n = dns_ptr_name(0x0a580005);
    assert_string_equal(n, "5.0.88.10.in-addr.arpa");
}

static void test_table_add_lookup_reverse_replace_remove(void **state)
{
    _cleanup_(dns_table_freep) dns_table *t = dns_table_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(dns_table_add(t, "bridge", "Web", 0x0a580002, &err), 0);
    assert_int_equal(dns_table_add(t, "bridge", "db", 0x0a580003, &err), 0);
    assert_int_equal(dns_table_add(t, "back", "db", 0x0a590002, &err), 0);
    assert_int_equal(dns_table_add(t, "bridge", "bad name", 1, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    hypr_error_clear(&err);
    assert_int_equal(dns_table_add(t, "", "x", 1, &err), -EINVAL);
    hypr_error_clear(&err);
    assert_int_equal(dns_table_count(t), 3);
    uint32_t a;
    const char *forms[] = {"web", "WEB", "web.hypr", "Web.HYPR.", "web."};
    for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
        a = 0;
        assert_int_equal(dns_table_lookup(t, "bridge", forms[i], &a), 0);
        assert_int_equal(a, 0x0a580002);
    }
    assert_int_equal(dns_table_lookup(t, "back", "web", &a), -ENOENT);
    assert_int_equal(dns_table_lookup(t, "bridge", "web.hypr.com", &a), -ENOENT);
    assert_int_equal(dns_table_lookup(t, "bridge", "web.other", &a), -ENOENT);
    assert_int_equal(dns_table_lookup(t, "back", "db.hypr", &a), 0);
    assert_int_equal(a, 0x0a590002);
    assert_int_equal(dns_table_lookup(t, NULL, "db", &a), 0);
    assert_int_equal(a, 0x0a580003); /* first added */
    const char *name;
    assert_int_equal(dns_table_reverse(t, "bridge", 0x0a580002, &name), 0);
    assert_string_equal(name, "Web");
    assert_int_equal(dns_table_reverse(t, "back", 0x0a580002, &name), -ENOENT);
    assert_int_equal(dns_table_reverse(t, NULL, 0x0a590002, &name), 0);
    assert_string_equal(name, "db");
    /* Replace (rename keeps the name, moves the address) and remove. */
    assert_int_equal(dns_table_add(t, "bridge", "WEB", 0x0a580009, &err), 0);
    assert_int_equal(dns_table_count(t), 3);
    assert_int_equal(dns_table_lookup(t, "bridge", "web", &a), 0);
    assert_int_equal(a, 0x0a580009);
    assert_int_equal(dns_table_reverse(t, "bridge", 0x0a580002, &name), -ENOENT);
    assert_int_equal(dns_table_remove(t, "bridge", "Db"), 0);
    assert_int_equal(dns_table_remove(t, "bridge", "db"), -ENOENT);
    assert_int_equal(dns_table_lookup(t, NULL, "db", &a), 0);
    assert_int_equal(a, 0x0a590002);
    /* A VM whose name ends in .hypr. */
    assert_int_equal(dns_table_add(t, "bridge", "x.hypr", 0x0a580010, &err), 0);
    assert_int_equal(dns_table_lookup(t, "bridge", "x.hypr", &a), 0);
    assert_int_equal(a, 0x0a580010);
    assert_int_equal(dns_table_lookup(t, "bridge", "x.hypr.hypr", &a), 0);
    /* Growth past the initial buckets. */
    for (uint32_t i = 0; i < 1000; i++) {
        char n[32];
        snprintf(n, sizeof(n), "vm-%u", i);
        assert_int_equal(dns_table_add(t, i % 2 ? "bridge" : "back", n, 0x0b000000 + i, &err), 0);
    }
    for (uint32_t i = 0; i < 1000; i += 37) {
        char n[32];
        snprintf(n, sizeof(n), "VM-%u.hypr", i);
        assert_int_equal(dns_table_lookup(t, i % 2 ? "bridge" : "back", n, &a), 0);
        assert_int_equal(a, 0x0b000000 + i);
        assert_int_equal(dns_table_reverse(t, NULL, 0x0b000000 + i, &name), 0);
        snprintf(n, sizeof(n), "vm-%u", i);
        assert_string_equal(name, n);
    }
    assert_int_equal(dns_table_count(t), 1003);
    dns_table_free(NULL);
}

/* ---- answering from the table ------------------------------------------------------ */

static dns_table *small_table(void)
{
    dns_table *t = dns_table_new();
    assert_int_equal(dns_table_add(t, "bridge", "web", 0x0a580002, NULL), 0);
    assert_int_equal(dns_table_add(t, "bridge", "db", 0x0a580003, NULL), 0);
    assert_int_equal(dns_table_add(t, "other", "cache", 0x0a590002, NULL), 0);
    return t;
}

static void test_answer(void **state)
{
    _cleanup_(dns_table_freep) dns_table *t = small_table();
    _cleanup_buf_ hypr_buf b = {0}, out = {0};
    resp r;

    query(&b, 42, "WeB.hypr", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.id, 42);
    assert_int_equal(r.rcode, DNS_RCODE_NOERROR);
    assert_int_equal(r.an, 1);
    assert_int_equal(r.type[0], DNS_TYPE_A);
    assert_int_equal(r.a[0], 0x0a580002);
    assert_int_equal(r.ttl[0], 10);
    assert_false(r.has_opt);
    assert_memory_equal(out.data + 12, "\3WeB\4hypr\0", 10); /* case echoed */

    query(&b, 43, "db", DNS_TYPE_A, 1232);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.a[0], 0x0a580003);
    assert_true(r.has_opt);

    /* Another network's name is not visible; from the host (NULL) it is. */
    query(&b, 44, "cache.hypr", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.rcode, DNS_RCODE_NXDOMAIN);
    assert_int_equal(r.an, 0);
    assert_true(r.flags & 0x0400);
    assert_int_equal(dns_answer(t, NULL, 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.a[0], 0x0a590002);

    /* Plain unknown names and other domains go to the host's resolvers. */
    query(&b, 45, "cache", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_FORWARD);
    query(&b, 45, "example.com", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_FORWARD);
    query(&b, 45, "hypr", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.rcode, DNS_RCODE_NXDOMAIN);

    /* AAAA of a known name: NODATA. */
    query(&b, 46, "web.hypr", DNS_TYPE_AAAA, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.rcode, DNS_RCODE_NOERROR);
    assert_int_equal(r.an, 0);

    /* PTR. */
    query(&b, 47, "2.0.88.10.in-addr.arpa", DNS_TYPE_PTR, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.an, 1);
    assert_int_equal(r.type[0], DNS_TYPE_PTR);
    assert_string_equal(r.ptr[0], "web.hypr");
    query(&b, 47, "2.0.88.10.in-addr.arpa", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.an, 0);
    query(&b, 47, "9.0.88.10.in-addr.arpa", DNS_TYPE_PTR, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_FORWARD);

    /* Opcode STATUS: NOTIMP, header only. */
    b.len = 0;
    header(&b, 48, 2 << 11, 0, 0, 0, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.rcode, DNS_RCODE_NOTIMP);
    assert_int_equal((r.flags >> 11) & 0xf, 2);
    assert_int_equal(r.qd, 0);

    /* Class CH: REFUSED. */
    query(&b, 49, "version.bind", 16, 0);
    b.data[b.len - 1] = 3;
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.rcode, DNS_RCODE_REFUSED);

    /* EDNS version 1: BADVERS (extended rcode 16 = 1 in the OPT, 0 in the header). */
    b.len = 0;
    header(&b, 50, 0x0100, 1, 0, 0, 1);
    pname(&b, "web.hypr");
    p32(&b, 0x00010001);
    opt(&b, 1232, 1, true);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.flags & 0xf, 0);
    assert_int_equal(r.rcode, DNS_RCODE_BADVERS);
    assert_true(r.opt_ttl & 0x8000); /* DO echoed */

    /* Malformed with a header: FORMERR without a question; without: dropped. */
    question_with(&b, "\1a\xc0\x0c", 4);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.rcode, DNS_RCODE_FORMERR);
    assert_int_equal(r.id, 5);
    assert_int_equal(r.qd, 0);
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), 11, false, 10, &out), DNS_DROP);
    query(&b, 1, "web.hypr", DNS_TYPE_A, 0);
    b.data[2] |= (char)0x80;
    assert_int_equal(dns_answer(t, "bridge", 0, u8(&b), b.len, false, 10, &out), DNS_DROP);
}

/* A VM on two networks resolves the names of both; its neighbours on one do not see
 * the other. */
static void test_answer_multi_network(void **state)
{
    _cleanup_(dns_table_freep) dns_table *t = small_table();
    assert_int_equal(dns_table_add(t, "bridge", "both", 0x0a580009, NULL), 0);
    assert_int_equal(dns_table_add(t, "other", "both", 0x0a590009, NULL), 0);
    _cleanup_buf_ hypr_buf b = {0}, out = {0};
    resp r;

    const char *scope[DNS_SCOPE_MAX];
    assert_int_equal(dns_table_scope(t, "bridge", 0x0a580009, scope, DNS_SCOPE_MAX), 2);
    assert_string_equal(scope[0], "bridge");
    assert_string_equal(scope[1], "other");
    assert_int_equal(dns_table_scope(t, "bridge", 0x0a580002, scope, DNS_SCOPE_MAX), 1);
    assert_int_equal(dns_table_scope(t, "bridge", 0x0a580009, scope, 1), 1);
    assert_int_equal(dns_table_scope(t, NULL, 0x0a580009, scope, DNS_SCOPE_MAX), 1);
    assert_null(scope[0]);

    /* From "both" (asking on bridge): cache on the other network resolves, plain and .hypr. */
    query(&b, 60, "cache", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0x0a580009, u8(&b), b.len, false, 10, &out),
                     DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.an, 1);
    assert_int_equal(r.a[0], 0x0a590002);
    query(&b, 61, "cache.hypr", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0x0a580009, u8(&b), b.len, false, 10, &out),
                     DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.a[0], 0x0a590002);
    /* Its own name answers with its address on the network asked first. */
    query(&b, 62, "both.hypr", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0x0a580009, u8(&b), b.len, false, 10, &out),
                     DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.a[0], 0x0a580009);
    /* PTR of an address on the other network. */
    query(&b, 63, "2.0.89.10.in-addr.arpa", DNS_TYPE_PTR, 0);
    assert_int_equal(dns_answer(t, "bridge", 0x0a580009, u8(&b), b.len, false, 10, &out),
                     DNS_ANSWERED);
    decode(&out, &r);
    assert_string_equal(r.ptr[0], "cache.hypr");

    /* From web (only on bridge): cache stays invisible; both answers with its bridge address. */
    query(&b, 64, "cache.hypr", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0x0a580002, u8(&b), b.len, false, 10, &out),
                     DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.rcode, DNS_RCODE_NXDOMAIN);
    query(&b, 65, "both", DNS_TYPE_A, 0);
    assert_int_equal(dns_answer(t, "bridge", 0x0a580002, u8(&b), b.len, false, 10, &out),
                     DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.a[0], 0x0a580009);
    /* From cache's side, both answers with its address there. */
    assert_int_equal(dns_answer(t, "other", 0x0a590002, u8(&b), b.len, false, 10, &out),
                     DNS_ANSWERED);
    decode(&out, &r);
    assert_int_equal(r.a[0], 0x0a590009);
}

int main(void)
{
    hypr_log_init("error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_header_question_and_escaped_names),
        cmocka_unit_test(test_parse_edns),
        cmocka_unit_test(test_parse_compression),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_build_a_bytes),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_ptr_names),
        cmocka_unit_test(test_table_add_lookup_reverse_replace_remove),
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_answer_multi_network),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
