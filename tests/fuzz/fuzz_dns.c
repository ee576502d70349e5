/* libFuzzer target: DNS query parsing (packets from any guest or local process) and
 * answering from a small name table, over UDP and TCP sizes. */
#include <string.h>

#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static dns_table *table(void)
{
    static dns_table *t;
    if (!t) {
        t = dns_table_new();
        dns_table_add(t, "bridge", "web", 0x0a580002, NULL);
        dns_table_add(t, "bridge", "db", 0x0a580003, NULL);
        dns_table_add(t, "other", "web", 0x0a590002, NULL);
        /* A VM on both networks: the client of the scoped answers below. */
        dns_table_add(t, "bridge", "both", 0x0a580009, NULL);
        dns_table_add(t, "other", "both", 0x0a590009, NULL);
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    uint8_t *pkt = xmalloc(size ? size : 1);
    memcpy(pkt, data, size);
    hypr_error err = HYPR_ERROR_INIT;
    dns_query q;
    int r = dns_query_parse(pkt, size, &q, &err);
    hypr_buf out = {0};
    if (r == 0) {
        if (q.qname) {
            if (strlen(q.qname) > 4 * DNS_MAX_NAME_WIRE || q.qname_wire_len > DNS_MAX_NAME_WIRE)
                __builtin_trap();
        }
        dns_rr rr[2] = {{.type = DNS_TYPE_A, .ttl = 1, .a = 0x0a580002},
                        {.type = DNS_TYPE_PTR, .ttl = 1, .ptr = "web.hypr"}};
        size_t max = dns_query_max_udp(&q);
        if (max < DNS_MIN_UDP_SIZE || max > DNS_SERVER_UDP_SIZE)
            __builtin_trap();
        if (dns_build_response(&q, DNS_RCODE_NOERROR, rr, q.qname ? 2 : 0, max, &out, NULL) == 0) {
            if (out.len > max)
                __builtin_trap();
            /* hypr's own response is well-formed: as a query (QR cleared) it parses. */
            out.data[2] &= 0x7f;
            dns_query again;
            if (q.qname && dns_query_parse((uint8_t *)out.data, out.len, &again, NULL) == 0) {
                if (strcmp(again.qname, q.qname) != 0)
                    __builtin_trap();
                dns_query_clear(&again);
            }
        }
        dns_query_clear(&q);
    } else if (q.have_header) {
        if (dns_build_error(&q, DNS_RCODE_FORMERR, DNS_MIN_UDP_SIZE, &out) != 0 || out.len > 512)
            __builtin_trap();
    }
    hypr_error_clear(&err);
    dns_answer(table(), "bridge", 0x0a580009, pkt, size, false, 5, &out);
    if (out.len > DNS_SERVER_UDP_SIZE)
        __builtin_trap();
    dns_answer(table(), NULL, 0, pkt, size, true, 5, &out);
    buf_free(&out);
    free(pkt);
    return 0;
}
