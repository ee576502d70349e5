/* kestrel: IPv4 configuration from the manifest (lo up, addresses, default
 * route; interfaces found by name or MAC) with plain ioctls: no netlink library
 * in a 100 KB agent. */
#include "kestrel.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <net/if_arp.h>
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

/* One look for the interface with hardware address mac (when set; its name
 * into name), else the one named name. */
static bool link_exists(int s, const uint8_t *mac, char name[IFNAMSIZ])
{
    /* /sys/class/net rather than if_nameindex(): musl's netlink walk costs 1 KB. */
    DIR *d = opendir("/sys/class/net");
    bool found = false;
    struct dirent *de;
    while (d && !found && (de = readdir(d))) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        if (de->d_name[0] == '.' || strlen(de->d_name) >= IFNAMSIZ)
            continue;
        strcpy(ifr.ifr_name, de->d_name);
        if (!mac)
            found = strcmp(ifr.ifr_name, name) == 0;
        else if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0 && ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER &&
                 memcmp(ifr.ifr_hwaddr.sa_data, mac, 6) == 0) {
            memcpy(name, ifr.ifr_name, IFNAMSIZ);
            found = true;
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* Finds the interface with that MAC (when set; its name into name), else the one
 * named ifname, gives it cidr and brings it up. Waits up to ~2 s for it: a NIC
 * may still be probing right after its module loaded (and virtio-mmio probe
 * order need not match the host's, hence the MAC). A failure is added to e. */
static int link_setup(int s, const char *mac, const char *ifname, const char *cidr,
                      char name[IFNAMSIZ], kerr *e)
{
    struct in_addr addr, mask;
    uint8_t hw[6];
    int r = -EINVAL;
    if (parse_cidr(cidr, &addr, &mask) < 0 || (mac && manifest_mac_parse(mac, hw) < 0))
        goto out;
    if (!mac) {
        size_t l = strlen(ifname);
        r = -ENAMETOOLONG;
        if (l >= IFNAMSIZ)
            goto out;
        memcpy(name, ifname, l + 1);
    }
    for (int i = 0; !link_exists(s, mac ? hw : NULL, name); i++) {
        r = -ENODEV;
        if (i == 200)
            goto out;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if ((r = set_addr(s, name, SIOCSIFADDR, addr)) < 0 ||
        (r = set_addr(s, name, SIOCSIFNETMASK, mask)) < 0)
        goto out;
    r = set_up(s, name);
out:
    if (r < 0)
        kerr_add(e, r, "%s %s", mac ? mac : ifname, cidr);
    return r;
}

static int add_default_route(int s, const char *ifname, const char *gateway, kerr *e)
{
    struct in_addr gw;
    if (inet_pton(AF_INET, gateway, &gw) != 1)
        return kerr_add(e, -EINVAL, "bad gateway %s", gateway);
    struct rtentry rt;
    memset(&rt, 0, sizeof(rt));
    struct sockaddr_in any = {.sin_family = AF_INET};
    struct sockaddr_in g = {.sin_family = AF_INET, .sin_addr = gw};
    memcpy(&rt.rt_dst, &any, sizeof(any));
    memcpy(&rt.rt_genmask, &any, sizeof(any));
    memcpy(&rt.rt_gateway, &g, sizeof(g));
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = (char *)ifname;
    if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
        return kerr_add(e, -errno, "default route via %s", gateway);
    return 0;
}

/* The kernel then sends a gratuitous ARP for an interface's address when it comes
 * up. hyprd hands a freed address to the next VM, so other guests on the bridge
 * may still map it to the MAC of the VM that had it: without the announcement
 * they keep sending there (lost) until their ARP entry expires, ~30-45 s. */
static int arp_notify_on(void)
{
    return write_file_str("/proc/sys/net/ipv4/conf/all/arp_notify", "1\n", 0644);
}

/* lo, then the primary interface (ip/gateway; by mac when set, else by name),
 * then every netif. */
int net_setup(const kestrel_manifest *m, kerr *e)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return kerr_add(e, -errno, "socket");
    int r = arp_notify_on(); /* before any interface is up */
    if (r < 0)
        kerr_add(e, r, "arp_notify");
    int first = set_up(s, "lo");
    if (first < 0)
        kerr_add(e, first, "lo");
    char name[IFNAMSIZ];
    if (m->ip) {
        r = link_setup(s, m->mac, m->interface ? m->interface : "eth0", m->ip, name, e);
        if (r == 0 && m->gateway)
            r = add_default_route(s, name, m->gateway, e);
        first = first ? first : r;
    }
    for (size_t i = 0; i < m->n_netifs; i++) {
        r = link_setup(s, m->netifs[i].mac, NULL, m->netifs[i].ip, name, e);
        first = first ? first : r;
    }
    return first;
}
