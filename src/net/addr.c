/* IPv4 addresses and subnets: parsing, formatting, overlap, auto-picking. */
#define LOG_MODULE "net"

#include <string.h>

#include "net/net.h"

/* ---- addresses and subnets ------------------------------------------------- */

int net_ip4_parse(const char *s, uint32_t *out)
{
    if (!s)
        return -EINVAL;
    uint32_t addr = 0;
    for (int i = 0; i < 4; i++) {
        if (i > 0 && *s++ != '.')
            return -EINVAL;
        if (*s < '0' || *s > '9')
            return -EINVAL;
        unsigned v = 0;
        int digits = 0;
        const char *start = s;
        while (*s >= '0' && *s <= '9') {
            if (++digits > 3)
                return -EINVAL;
            v = v * 10 + (unsigned)(*s++ - '0');
        }
        if (v > 255 || (digits > 1 && *start == '0'))
            return -EINVAL;
        addr = addr << 8 | v;
    }
    if (*s)
        return -EINVAL;
    *out = addr;
    return 0;
}

void net_ip4_format(uint32_t addr, char out[NET_IP4_STRLEN])
{
    snprintf(out, NET_IP4_STRLEN, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff,
             (addr >> 8) & 0xff, addr & 0xff);
}

static uint32_t prefix_mask(int prefix)
{
    return prefix == 0 ? 0 : ~(uint32_t)0 << (32 - prefix);
}

uint32_t net_subnet_mask(const net_subnet *sn)
{
    return prefix_mask(sn->prefix);
}

uint32_t net_subnet_broadcast(const net_subnet *sn)
{
    return sn->network | ~prefix_mask(sn->prefix);
}

uint32_t net_subnet_first_host(const net_subnet *sn)
{
    return sn->network + 1;
}

bool net_subnet_contains(const net_subnet *sn, uint32_t addr)
{
    return (addr & prefix_mask(sn->prefix)) == sn->network;
}

void net_subnet_format(const net_subnet *sn, char out[NET_CIDR_STRLEN])
{
    char ip[NET_IP4_STRLEN];
    net_ip4_format(sn->network, ip);
    snprintf(out, NET_CIDR_STRLEN, "%s/%d", ip, sn->prefix);
}

int net_subnet_parse(const char *cidr, net_subnet *out, hypr_error *err)
{
    if (str_empty(cidr))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid subnet \"\": empty");
    const char *slash = strchr(cidr, '/');
    if (!slash)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid subnet \"%s\": want ADDRESS/PREFIX, like 10.88.0.0/16", cidr);
    _cleanup_free_ char *ip = xstrndup(cidr, (size_t)(slash - cidr));
    uint32_t addr;
    if (net_ip4_parse(ip, &addr) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid subnet \"%s\": \"%s\" is not an IPv4 address", cidr, ip);
    int64_t prefix;
    /* Digits only: parse_int64 alone would take " 16" and "+16". */
    if (slash[1] < '0' || slash[1] > '9' || (slash[1] == '0' && slash[2]) ||
        parse_int64(slash + 1, 0, 32, &prefix) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid subnet \"%s\": prefix must be %d..%d", cidr, NET_PREFIX_MIN,
                        NET_PREFIX_MAX);
    if (prefix < NET_PREFIX_MIN || prefix > NET_PREFIX_MAX)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid subnet \"%s\": prefix must be %d..%d", cidr, NET_PREFIX_MIN,
                        NET_PREFIX_MAX);
    net_subnet sn = {addr & prefix_mask((int)prefix), (int)prefix};
    if (sn.network != addr) {
        char want[NET_CIDR_STRLEN];
        net_subnet_format(&sn, want);
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid subnet \"%s\": host bits set (did you mean %s?)", cidr, want);
    }
    *out = sn;
    return 0;
}

bool ipam_subnets_overlap(const net_subnet *a, const net_subnet *b)
{
    /* Two aligned ranges overlap exactly when the shorter prefix contains the other. */
    uint32_t mask = prefix_mask(a->prefix < b->prefix ? a->prefix : b->prefix);
    return (a->network & mask) == (b->network & mask);
}

int ipam_pick_subnet(const net_subnet *existing, size_t n, net_subnet *out, hypr_error *err)
{
    for (uint32_t second = 89; second <= 255; second++) {
        net_subnet cand = {(uint32_t)10 << 24 | second << 16, 16};
        bool taken = false;
        for (size_t i = 0; i < n && !taken; i++)
            taken = ipam_subnets_overlap(&cand, &existing[i]);
        if (!taken) {
            *out = cand;
            return 0;
        }
    }
    return hypr_err(err, HYPR_RESOURCE_EXHAUSTED, ENOSPC,
                    "no free /16 subnet left between 10.89.0.0/16 and 10.255.0.0/16; "
                    "give one with --subnet");
}
