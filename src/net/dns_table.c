/* The `.hypr` name table and the resolver logic that answers queries from it. */
#define LOG_MODULE "net"

#include <string.h>
#include <strings.h>

#include "net/net.h"

typedef struct dns_entry {
    char *network;
    char *name;  /* as added */
    char *lname; /* lowercase: the key */
    uint32_t addr;
    uint64_t seq; /* insertion order: "any network" lookups prefer the oldest */
    struct dns_entry *next_name, *next_addr;
} dns_entry;

/* Two chained hash tables over the same entries: by lowercase name and by address
 * (each across networks; a chain is filtered by network while walked). */
struct dns_table {
    dns_entry **by_name, **by_addr;
    size_t nbuckets; /* power of two */
    size_t count;
    uint64_t seq;
};

static uint64_t hash_name(const char *lname)
{
    uint64_t h = 1469598103934665603ull;
    for (; *lname; lname++)
        h = (h ^ (uint8_t)*lname) * 1099511628211ull;
    return h;
}

static uint64_t hash_addr(uint32_t addr)
{
    return (uint64_t)addr * 0x9e3779b97f4a7c15ull >> 16;
}

dns_table *dns_table_new(void)
{
    dns_table *t = xcalloc(1, sizeof(*t));
    t->nbuckets = 64;
    t->by_name = xcalloc(t->nbuckets, sizeof(*t->by_name));
    t->by_addr = xcalloc(t->nbuckets, sizeof(*t->by_addr));
    return t;
}

static void entry_free(dns_entry *e)
{
    free(e->network);
    free(e->name);
    free(e->lname);
    free(e);
}

void dns_table_free(dns_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        dns_entry *e = t->by_name[i];
        while (e) {
            dns_entry *next = e->next_name;
            entry_free(e);
            e = next;
        }
    }
    free(t->by_name);
    free(t->by_addr);
    free(t);
}

size_t dns_table_count(const dns_table *t)
{
    return t->count;
}

static void link_entry(dns_table *t, dns_entry *e)
{
    size_t n = hash_name(e->lname) & (t->nbuckets - 1);
    size_t a = hash_addr(e->addr) & (t->nbuckets - 1);
    e->next_name = t->by_name[n];
    t->by_name[n] = e;
    e->next_addr = t->by_addr[a];
    t->by_addr[a] = e;
}

static void grow(dns_table *t)
{
    size_t old_n = t->nbuckets;
    dns_entry **old = t->by_name;
    t->nbuckets *= 2;
    t->by_name = xcalloc(t->nbuckets, sizeof(*t->by_name));
    free(t->by_addr);
    t->by_addr = xcalloc(t->nbuckets, sizeof(*t->by_addr));
    for (size_t i = 0; i < old_n; i++) {
        dns_entry *e = old[i];
        while (e) {
            dns_entry *next = e->next_name;
            link_entry(t, e);
            e = next;
        }
    }
    free(old);
}

static char *lowercase(const char *s)
{
    char *l = xstrdup(s);
    for (char *p = l; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return l;
}

static dns_entry **find_name_slot(const dns_table *t, const char *network, const char *lname)
{
    dns_entry **slot = &t->by_name[hash_name(lname) & (t->nbuckets - 1)];
    for (; *slot; slot = &(*slot)->next_name)
        if (strcmp((*slot)->lname, lname) == 0 && strcmp((*slot)->network, network) == 0)
            return slot;
    return NULL;
}

int dns_table_remove(dns_table *t, const char *network, const char *name)
{
    if (!network || !name)
        return -EINVAL;
    _cleanup_free_ char *lname = lowercase(name);
    dns_entry **slot = find_name_slot(t, network, lname);
    if (!slot)
        return -ENOENT;
    dns_entry *e = *slot;
    *slot = e->next_name;
    dns_entry **a = &t->by_addr[hash_addr(e->addr) & (t->nbuckets - 1)];
    while (*a != e)
        a = &(*a)->next_addr;
    *a = e->next_addr;
    entry_free(e);
    t->count--;
    return 0;
}

int dns_table_add(dns_table *t, const char *network, const char *name, uint32_t addr,
                  hypr_error *err)
{
    if (str_empty(network))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no network given for DNS name");
    if (!name_is_valid(name))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid DNS name \"%s\"",
                        name ? name : "");
    dns_table_remove(t, network, name);
    if (t->count + 1 > t->nbuckets)
        grow(t);
    dns_entry *e = xcalloc(1, sizeof(*e));
    e->network = xstrdup(network);
    e->name = xstrdup(name);
    e->lname = lowercase(name);
    e->addr = addr;
    e->seq = t->seq++;
    link_entry(t, e);
    t->count++;
    return 0;
}

static const dns_entry *lookup_lname(const dns_table *t, const char *network, const char *lname)
{
    const dns_entry *best = NULL;
    for (const dns_entry *e = t->by_name[hash_name(lname) & (t->nbuckets - 1)]; e;
         e = e->next_name) {
        if (strcmp(e->lname, lname) != 0)
            continue;
        if (network && strcmp(e->network, network) != 0)
            continue;
        if (!best || e->seq < best->seq)
            best = e;
    }
    return best;
}

int dns_table_lookup(const dns_table *t, const char *network, const char *qname, uint32_t *out)
{
    if (!qname)
        return -EINVAL;
    _cleanup_free_ char *l = lowercase(qname);
    size_t len = strlen(l);
    if (len && l[len - 1] == '.')
        l[--len] = '\0';
    const dns_entry *e = NULL;
    if (str_endswith(l, "." DNS_DOMAIN)) {
        l[len - strlen("." DNS_DOMAIN)] = '\0';
        e = lookup_lname(t, network, l);
        if (!e)
            l[len - strlen("." DNS_DOMAIN)] = '.'; /* a VM named "x.hypr" */
    }
    if (!e)
        e = lookup_lname(t, network, l);
    if (!e)
        return -ENOENT;
    *out = e->addr;
    return 0;
}

static const dns_entry *reverse_entry(const dns_table *t, const char *network, uint32_t addr)
{
    const dns_entry *best = NULL;
    for (const dns_entry *e = t->by_addr[hash_addr(addr) & (t->nbuckets - 1)]; e;
         e = e->next_addr) {
        if (e->addr != addr || (network && strcmp(e->network, network) != 0))
            continue;
        if (!best || e->seq < best->seq)
            best = e;
    }
    return best;
}

int dns_table_reverse(const dns_table *t, const char *network, uint32_t addr, const char **name)
{
    const dns_entry *e = reverse_entry(t, network, addr);
    if (!e)
        return -ENOENT;
    *name = e->name;
    return 0;
}

size_t dns_table_scope(const dns_table *t, const char *network, uint32_t client, const char **out,
                       size_t max)
{
    if (max == 0)
        return 0;
    out[0] = network;
    size_t n = 1;
    const dns_entry *self = network && client ? reverse_entry(t, network, client) : NULL;
    if (!self)
        return n;
    for (const dns_entry *e = t->by_name[hash_name(self->lname) & (t->nbuckets - 1)]; e && n < max;
         e = e->next_name)
        if (e != self && strcmp(e->lname, self->lname) == 0 && strcmp(e->network, network) != 0)
            out[n++] = e->network;
    return n;
}

/* ---- answering --------------------------------------------------------------- */

static bool in_hypr_zone(const char *qname)
{
    return strcasecmp(qname, DNS_DOMAIN) == 0 ||
           (strlen(qname) > strlen(DNS_DOMAIN) &&
            strcasecmp(qname + strlen(qname) - strlen("." DNS_DOMAIN), "." DNS_DOMAIN) == 0);
}

static dns_disposition send_rr(const dns_query *q, int rcode, const dns_rr *rr, size_t n,
                               size_t max, hypr_buf *out)
{
    if (dns_build_response(q, rcode, rr, n, max, out, NULL) < 0 &&
        dns_build_error(q, DNS_RCODE_SERVFAIL, max, out) < 0)
        return DNS_DROP;
    return DNS_ANSWERED;
}

dns_disposition dns_answer(const dns_table *t, const char *network, uint32_t client,
                           const uint8_t *pkt, size_t len, bool tcp, uint32_t ttl, hypr_buf *out)
{
    _cleanup_(dns_query_clear) dns_query q;
    int r = dns_query_parse(pkt, len, &q, NULL);
    size_t max = tcp ? DNS_TCP_MAX_SIZE : dns_query_max_udp(&q);
    if (r < 0)
        return q.have_header ? send_rr(&q, DNS_RCODE_FORMERR, NULL, 0, max, out) : DNS_DROP;
    if (q.opcode != DNS_OPCODE_QUERY)
        return send_rr(&q, DNS_RCODE_NOTIMP, NULL, 0, max, out);
    if (q.edns && q.edns_version > 0)
        return send_rr(&q, DNS_RCODE_BADVERS, NULL, 0, max, out);
    if (q.qclass != DNS_CLASS_IN)
        return send_rr(&q, DNS_RCODE_REFUSED, NULL, 0, max, out);

    const char *scope[DNS_SCOPE_MAX];
    size_t n_scope = dns_table_scope(t, network, client, scope, DNS_SCOPE_MAX);
    dns_rr rr = {.ttl = ttl};
    uint32_t addr;
    if (dns_ptr_name_parse(q.qname, &addr) == 0) {
        const char *name = NULL;
        for (size_t i = 0; i < n_scope && !name; i++)
            if (dns_table_reverse(t, scope[i], addr, &name) < 0)
                name = NULL;
        if (!name)
            return DNS_FORWARD;
        if (q.qtype != DNS_TYPE_PTR && q.qtype != DNS_TYPE_ANY)
            return send_rr(&q, DNS_RCODE_NOERROR, NULL, 0, max, out);
        _cleanup_free_ char *target = xasprintf("%s." DNS_DOMAIN, name);
        rr.type = DNS_TYPE_PTR;
        rr.ptr = target;
        return send_rr(&q, DNS_RCODE_NOERROR, &rr, 1, max, out);
    }
    int found = -ENOENT;
    for (size_t i = 0; i < n_scope && found < 0; i++)
        found = dns_table_lookup(t, scope[i], q.qname, &addr);
    if (found == 0) {
        if (q.qtype != DNS_TYPE_A && q.qtype != DNS_TYPE_ANY)
            return send_rr(&q, DNS_RCODE_NOERROR, NULL, 0, max, out); /* NODATA */
        rr.type = DNS_TYPE_A;
        rr.a = addr;
        return send_rr(&q, DNS_RCODE_NOERROR, &rr, 1, max, out);
    }
    if (in_hypr_zone(q.qname))
        return send_rr(&q, DNS_RCODE_NXDOMAIN, NULL, 0, max, out);
    return DNS_FORWARD;
}
