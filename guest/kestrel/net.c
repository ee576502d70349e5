/* kestrel: IPv4 configuration from the manifest (lo up, address, default
 * route) with plain ioctls: no netlink library in a 100 KB agent. */
#include "kestrel.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

static int set_up(int s, const char *ifname)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (strlen(ifname) >= IFNAMSIZ)
        return -ENAMETOOLONG;
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return -errno;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        return -errno;
    return 0;
}

static int set_addr(int s, const char *ifname, unsigned long req, struct in_addr a)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = a};
    memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
    return ioctl(s, req, &ifr) < 0 ? -errno : 0;
}

/* "10.88.0.5/16" -> address + netmask. */
static int parse_cidr(const char *cidr, struct in_addr *addr, struct in_addr *mask)
{
    char buf[INET_ADDRSTRLEN];
    size_t l = strcspn(cidr, "/");
    if (l >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, cidr, l);
    buf[l] = 0;
    if (inet_pton(AF_INET, buf, addr) != 1)
        return -EINVAL;
    unsigned prefix = 32;
    if (cidr[l] == '/') {
        const char *p = cidr + l + 1;
        if (!*p || strlen(p) > 2)
            return -EINVAL;
        prefix = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            prefix = prefix * 10 + (unsigned)(*p - '0');
        }
        if (prefix > 32)
            return -EINVAL;
    }
    mask->s_addr = prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
    return 0;
}

int net_setup(const kestrel_manifest *m)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int r = set_up(s, "lo");
    if (r < 0)
        klog("lo: %s", strerror(-r));
    if (!m->ip)
        return 0;

    const char *ifname = m->interface ? m->interface : "eth0";
    if (strlen(ifname) >= IFNAMSIZ)
        return -ENAMETOOLONG;
    struct in_addr addr, mask, gw;
    if (parse_cidr(m->ip, &addr, &mask) < 0) {
        klog("bad ip %s", m->ip);
        return -EINVAL;
    }
    /* The NIC may still be probing right after its module loaded. */
    for (int i = 0; i < 200 && if_nametoindex(ifname) == 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if ((r = set_addr(s, ifname, SIOCSIFADDR, addr)) < 0 ||
        (r = set_addr(s, ifname, SIOCSIFNETMASK, mask)) < 0 || (r = set_up(s, ifname)) < 0) {
        klog("%s: %s", ifname, strerror(-r));
        return r;
    }
    if (m->gateway) {
        if (inet_pton(AF_INET, m->gateway, &gw) != 1) {
            klog("bad gateway %s", m->gateway);
            return -EINVAL;
        }
        struct rtentry rt;
        memset(&rt, 0, sizeof(rt));
        struct sockaddr_in any = {.sin_family = AF_INET};
        struct sockaddr_in g = {.sin_family = AF_INET, .sin_addr = gw};
        memcpy(&rt.rt_dst, &any, sizeof(any));
        memcpy(&rt.rt_genmask, &any, sizeof(any));
        memcpy(&rt.rt_gateway, &g, sizeof(g));
        rt.rt_flags = RTF_UP | RTF_GATEWAY;
        rt.rt_dev = (char *)ifname;
        if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST) {
            r = -errno;
            klog("default route via %s: %s", m->gateway, strerror(-r));
            return r;
        }
    }
    return 0;
}
