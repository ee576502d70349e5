/* The per-network address allocator. */
#define LOG_MODULE "net"

#include <string.h>

#include "net/net.h"

/* ---- the allocator --------------------------------------------------------- */

struct ipam {
    char *network;
    net_subnet subnet;
    char cidr[NET_CIDR_STRLEN];
    uint32_t gateway;
    store *st;
    uint64_t *bits; /* bit i: address subnet.network + i is taken (or reserved) */
    size_t nwords;
    /* bit w: bits[w] is full. Finding a free address reads one summary word and one
     * bitmap word per 4,096 addresses skipped, so even a /16 at 65,000 is a few reads. */
    uint64_t *full;
    size_t nsummary;
    size_t size;     /* addresses in the subnet */
    size_t reserved; /* network, gateway, broadcast */
    size_t used;     /* handed out */
    /* No summary word below hint has a non-full word: allocation scans from here,
     * release moves it back. */
    size_t hint;
};

static size_t addr_index(const ipam *ip, uint32_t addr)
{
    return (size_t)(addr - ip->subnet.network);
}

static bool bit_get(const ipam *ip, size_t i)
{
    return ip->bits[i / 64] >> (i % 64) & 1;
}

static void bit_set(ipam *ip, size_t i)
{
    size_t w = i / 64;
    ip->bits[w] |= (uint64_t)1 << (i % 64);
    if (ip->bits[w] == UINT64_MAX)
        ip->full[w / 64] |= (uint64_t)1 << (w % 64);
}

static void bit_clear(ipam *ip, size_t i)
{
    size_t w = i / 64;
    ip->bits[w] &= ~((uint64_t)1 << (i % 64));
    ip->full[w / 64] &= ~((uint64_t)1 << (w % 64));
    if (w / 64 < ip->hint)
        ip->hint = w / 64;
}

static bool is_reserved(const ipam *ip, uint32_t addr)
{
    return addr == ip->subnet.network || addr == ip->gateway ||
           addr == net_subnet_broadcast(&ip->subnet);
}

bool ipam_is_allocated(const ipam *ip, uint32_t addr)
{
    return net_subnet_contains(&ip->subnet, addr) && !is_reserved(ip, addr) &&
           bit_get(ip, addr_index(ip, addr));
}

const net_subnet *ipam_subnet(const ipam *ip)
{
    return &ip->subnet;
}

uint32_t ipam_gateway(const ipam *ip)
{
    return ip->gateway;
}

const char *ipam_network(const ipam *ip)
{
    return ip->network;
}

size_t ipam_used(const ipam *ip)
{
    return ip->used;
}

size_t ipam_capacity(const ipam *ip)
{
    return ip->size - ip->reserved;
}

void ipam_free(ipam *ip)
{
    if (!ip)
        return;
    free(ip->network);
    free(ip->bits);
    free(ip->full);
    free(ip);
}

static int load_rows(ipam *ip, hypr_error *err)
{
    store_ip_allocation *rows = NULL;
    size_t n = 0;
    int r = store_ip_list(ip->st, ip->network, &rows, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        uint32_t addr;
        if (net_ip4_parse(rows[i].address, &addr) < 0 || !net_subnet_contains(&ip->subnet, addr)) {
            log_warn("network %s: ignoring stored address \"%s\" outside %s", ip->network,
                     rows[i].address, ip->cidr);
            continue;
        }
        if (is_reserved(ip, addr))
            continue; /* a reservation of the gateway: already taken */
        size_t idx = addr_index(ip, addr);
        if (!bit_get(ip, idx)) {
            bit_set(ip, idx);
            ip->used++;
        }
    }
    store_ip_allocations_free(rows, n);
    return 0;
}

int ipam_new(const char *network, const char *subnet, const char *gateway, store *st, ipam **out,
             hypr_error *err)
{
    *out = NULL;
    if (str_empty(network))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no network name given");
    net_subnet sn;
    int r = net_subnet_parse(subnet, &sn, err);
    if (r < 0)
        return r;
    _cleanup_(ipam_freep) ipam *ip = xcalloc(1, sizeof(*ip));
    ip->network = xstrdup(network);
    ip->subnet = sn;
    net_subnet_format(&sn, ip->cidr);
    ip->gateway = net_subnet_first_host(&sn);
    if (!str_empty(gateway)) {
        uint32_t gw;
        if (net_ip4_parse(gateway, &gw) < 0)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid gateway \"%s\": not an IPv4 address", gateway);
        if (!net_subnet_contains(&sn, gw) || gw == sn.network || gw == net_subnet_broadcast(&sn))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid gateway \"%s\": not a host address of %s", gateway, ip->cidr);
        ip->gateway = gw;
    }
    ip->st = st;
    ip->size = (size_t)1 << (32 - sn.prefix);
    ip->nwords = (ip->size + 63) / 64;
    ip->bits = xcalloc(ip->nwords, sizeof(uint64_t));
    ip->nsummary = (ip->nwords + 63) / 64;
    ip->full = xcalloc(ip->nsummary, sizeof(uint64_t));
    /* Summary bits past the last word and bitmap bits past the last address (subnets
     * under 64 addresses) count as full, and reserved addresses are permanently set
     * bits, so the scan never stops on any of them. */
    for (size_t w = ip->nwords; w < ip->nsummary * 64; w++)
        ip->full[w / 64] |= (uint64_t)1 << (w % 64);
    for (size_t i = ip->size; i < ip->nwords * 64; i++)
        bit_set(ip, i);
    bit_set(ip, 0);
    bit_set(ip, addr_index(ip, ip->gateway));
    bit_set(ip, ip->size - 1);
    ip->reserved = 3;
    if (st) {
        r = load_rows(ip, err);
        if (r < 0)
            return hypr_err_prefix(err, "load addresses of network %s", network);
    }
    *out = TAKE_PTR(ip);
    return 0;
}

/* The lowest free address index, or SIZE_MAX when the subnet is full. */
static size_t find_free(ipam *ip)
{
    for (size_t s = ip->hint; s < ip->nsummary; s++) {
        if (ip->full[s] == UINT64_MAX)
            continue;
        ip->hint = s;
        size_t w = s * 64 + (size_t)__builtin_ctzll(~ip->full[s]);
        size_t i = w * 64 + (size_t)__builtin_ctzll(~ip->bits[w]);
        return i < ip->size ? i : SIZE_MAX;
    }
    ip->hint = ip->nsummary;
    return SIZE_MAX;
}

static int take(ipam *ip, size_t idx, const char *vm_id, uint32_t *out, hypr_error *err)
{
    uint32_t addr = ip->subnet.network + (uint32_t)idx;
    if (ip->st) {
        char text[NET_IP4_STRLEN];
        net_ip4_format(addr, text);
        int r = store_ip_allocate(ip->st, ip->network, text, vm_id, err);
        if (r < 0)
            return r;
    }
    bit_set(ip, idx);
    ip->used++;
    if (out)
        *out = addr;
    return 0;
}

int ipam_allocate(ipam *ip, const char *vm_id, const char *requested, uint32_t *out,
                  hypr_error *err)
{
    if (str_empty(requested)) {
        if (ip->used == ipam_capacity(ip))
            return hypr_err(err, HYPR_RESOURCE_EXHAUSTED, ENOSPC, "no free address in %s",
                            ip->cidr);
        size_t idx = find_free(ip);
        if (idx == SIZE_MAX) /* used says otherwise: a bug, but not worth a crash */
            return hypr_err(err, HYPR_RESOURCE_EXHAUSTED, ENOSPC, "no free address in %s",
                            ip->cidr);
        return take(ip, idx, vm_id, out, err);
    }
    uint32_t addr;
    if (net_ip4_parse(requested, &addr) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid address \"%s\": not an IPv4 address", requested);
    if (!net_subnet_contains(&ip->subnet, addr))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "address %s is outside network %s (%s)",
                        requested, ip->network, ip->cidr);
    if (is_reserved(ip, addr))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "address %s is the %s address of network %s", requested,
                        addr == ip->gateway          ? "gateway"
                        : addr == ip->subnet.network ? "network"
                                                     : "broadcast",
                        ip->network);
    size_t idx = addr_index(ip, addr);
    if (bit_get(ip, idx))
        return hypr_err(err, HYPR_ALREADY_EXISTS, EEXIST,
                        "address %s is already allocated in network %s", requested, ip->network);
    return take(ip, idx, vm_id, out, err);
}

int ipam_release(ipam *ip, uint32_t addr, hypr_error *err)
{
    char text[NET_IP4_STRLEN];
    net_ip4_format(addr, text);
    if (!ipam_is_allocated(ip, addr))
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "address %s is not allocated in network %s",
                        text, ip->network);
    if (ip->st) {
        int r = store_ip_release(ip->st, ip->network, text, err);
        /* A row already gone still frees the bit: the store is the truth. */
        if (r == -ENOENT)
            hypr_error_clear(err);
        else if (r < 0)
            return r;
    }
    bit_clear(ip, addr_index(ip, addr));
    ip->used--;
    return 0;
}

int ipam_release_vm(ipam *ip, const char *vm_id, hypr_error *err)
{
    if (str_empty(vm_id))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no VM given");
    if (!ip->st)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EINVAL,
                        "network %s keeps no owners without a store", ip->network);
    store_ip_allocation *rows = NULL;
    size_t n = 0;
    int r = store_ip_release_vm(ip->st, ip->network, vm_id, &rows, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        uint32_t addr;
        if (net_ip4_parse(rows[i].address, &addr) == 0 && ipam_is_allocated(ip, addr)) {
            bit_clear(ip, addr_index(ip, addr));
            ip->used--;
        }
    }
    store_ip_allocations_free(rows, n);
    return 0;
}
