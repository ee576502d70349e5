/* Bridges, TAPs and addresses over rtnetlink (libmnl), plus the TUN ioctls that
 * create persistent TAPs. Every request opens its own socket: links change rarely
 * (VM start/stop, daemon start) and a fresh socket never sees stale replies. */
#define LOG_MODULE "net"
#include "net/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

/* ---- netlink plumbing ---------------------------------------------------- */

/* Requests here carry a name and a few attributes; dumps are read in 32 KiB chunks
 * (what the kernel uses for large dumps). */
#define NL_REQ_SIZE  1024
#define NL_RECV_SIZE 32768

typedef struct nl_conn {
    struct mnl_socket *sock;
    unsigned portid;
    unsigned seq;
} nl_conn;

static void nl_close(nl_conn *c)
{
    if (c->sock)
        mnl_socket_close(c->sock);
    c->sock = NULL;
}

static int nl_open(nl_conn *c)
{
    c->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!c->sock)
        return -errno;
    if (mnl_socket_bind(c->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
        int r = -errno;
        nl_close(c);
        return r;
    }
    c->portid = mnl_socket_get_portid(c->sock);
    c->seq = (unsigned)time(NULL);
    return 0;
}

/* Sends nlh (which must carry NLM_F_ACK or NLM_F_DUMP) and runs cb over the replies
 * until the ack or the end of the dump. Returns 0 or the kernel's negative errno. */
static int nl_talk(nl_conn *c, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    nlh->nlmsg_seq = ++c->seq;
    nlh->nlmsg_pid = 0;
    if (mnl_socket_sendto(c->sock, nlh, nlh->nlmsg_len) < 0)
        return -errno;
    size_t bufsz = NL_RECV_SIZE;
    _cleanup_free_ char *buf = xmalloc(bufsz);
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(c->sock, buf, bufsz);
        if (n < 0)
            return -errno;
        int r = mnl_cb_run(buf, (size_t)n, c->seq, c->portid, cb, data);
        if (r == MNL_CB_STOP)
            return 0;
        if (r < 0)
            return errno > 0 ? -errno : -EIO;
    }
}

/* One request on a fresh socket. */
static int nl_request(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    nl_conn c = {0};
    int r = nl_open(&c);
    if (r < 0)
        return r;
    r = nl_talk(&c, nlh, cb, data);
    nl_close(&c);
    return r;
}

static struct nlmsghdr *nl_put_header(char *buf, uint16_t type, uint16_t flags)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    return nlh;
}

/* ---- names -------------------------------------------------------------- */

/* Interface names hypr creates or touches: 1..15 characters of [A-Za-z0-9_.-],
 * not "." or "..". Stricter than the kernel so names are safe in nft rules too. */
bool net_ifname_is_valid(const char *name)
{
    if (!name || !name[0] || strlen(name) >= IFNAMSIZ)
        return false;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int check_ifname(const char *what, const char *name, hypr_error *err)
{
    if (net_ifname_is_valid(name))
        return 0;
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "%s \"%s\": invalid interface name (1-%d characters of [A-Za-z0-9_.-])", what,
                    name ? name : "", IFNAMSIZ - 1);
}

static int op_err(hypr_error *err, int negerr, const char *op, const char *dev)
{
    return hypr_err(err, hypr_status_from_errno(negerr), -negerr, "%s %s: %s", op, dev,
                    strerror(-negerr));
}

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

int net_tap_name(const char *vm_id, unsigned index, char out[NET_IFNAME_LEN])
{
    out[0] = '\0';
    if (!vm_id || index >= NET_MAX_NICS)
        return -EINVAL;
    for (int i = 0; i < NET_TAP_ID_CHARS; i++)
        if (!is_hex(vm_id[i]))
            return -EINVAL;
    size_t p = strlen(NET_TAP_PREFIX);
    memcpy(out, NET_TAP_PREFIX, p);
    memcpy(out + p, vm_id, NET_TAP_ID_CHARS);
    /* Further NICs end in a non-hex letter: never another VM's first TAP. */
    if (index > 0)
        out[p + NET_TAP_ID_CHARS - 1] = (char)('g' + index - 1);
    out[p + NET_TAP_ID_CHARS] = '\0';
    return 0;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* first, then the low 40 bits of h. */
static void mac_from_hash(uint8_t first, uint64_t h, uint8_t mac[6])
{
    mac[0] = first;
    for (int i = 1; i < 6; i++)
        mac[i] = (uint8_t)(h >> (8 * (5 - i)));
}

static void mac_format(const uint8_t mac[6], char out[NET_MAC_STRLEN])
{
    snprintf(out, NET_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5]);
}

int net_mac_for_vm(const char *vm_id, unsigned index, char out[NET_MAC_STRLEN])
{
    out[0] = '\0';
    if (str_empty(vm_id) || index >= NET_MAX_NICS)
        return -EINVAL;
    /* FNV-1a over the whole id (and the NIC index after the first): stable across
     * restarts, spread over 40 bits. */
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, vm_id);
    if (index > 0) {
        h ^= index;
        h *= 0x100000001b3ULL;
    }
    uint8_t mac[6];
    mac_from_hash(0x02, h, mac); /* locally administered, unicast */
    mac_format(mac, out);
    return 0;
}

/* 0x06: locally administered, unicast, and never a VM's (0x02). */
static void bridge_mac(const char *bridge, uint8_t mac[6])
{
    mac_from_hash(0x06, fnv1a(0xcbf29ce484222325ULL, bridge), mac);
}

int net_mac_for_bridge(const char *bridge, char out[NET_MAC_STRLEN])
{
    out[0] = '\0';
    if (str_empty(bridge))
        return -EINVAL;
    uint8_t mac[6];
    bridge_mac(bridge, mac);
    mac_format(mac, out);
    return 0;
}

/* ---- reading links ------------------------------------------------------- */

typedef struct link_parse {
    net_link_info *info;
    bool found;
} link_parse;

static int linkinfo_attr_cb(const struct nlattr *attr, void *data)
{
    net_link_info *info = data;
    if (mnl_attr_get_type(attr) == IFLA_INFO_KIND && mnl_attr_validate(attr, MNL_TYPE_STRING) >= 0)
        snprintf(info->kind, sizeof(info->kind), "%s", mnl_attr_get_str(attr));
    return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *attr, void *data)
{
    net_link_info *info = data;
    switch (mnl_attr_get_type(attr)) {
    case IFLA_IFNAME:
        if (mnl_attr_validate(attr, MNL_TYPE_STRING) >= 0)
            snprintf(info->name, sizeof(info->name), "%s", mnl_attr_get_str(attr));
        break;
    case IFLA_MASTER:
        if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
            info->master = (int)mnl_attr_get_u32(attr);
        break;
    case IFLA_LINKINFO:
        if (mnl_attr_validate(attr, MNL_TYPE_NESTED) >= 0)
            mnl_attr_parse_nested(attr, linkinfo_attr_cb, info);
        break;
    default:
        break;
    }
    return MNL_CB_OK;
}

static void link_parse_msg(const struct nlmsghdr *nlh, net_link_info *info)
{
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    memset(info, 0, sizeof(*info));
    info->index = ifm->ifi_index;
    info->flags = ifm->ifi_flags;
    info->up = (ifm->ifi_flags & IFF_UP) != 0;
    mnl_attr_parse(nlh, sizeof(*ifm), link_attr_cb, info);
}

static int link_get_cb(const struct nlmsghdr *nlh, void *data)
{
    link_parse *lp = data;
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    link_parse_msg(nlh, lp->info);
    lp->found = true;
    return MNL_CB_OK;
}

/* 0, -ENOENT when there is no such link, or another negative errno. */
static int link_get(const char *name, net_link_info *info)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = nl_put_header(buf, RTM_GETLINK, NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    /* Ask for IFLA_LINKINFO details; without the ext mask some kinds omit it. */
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    link_parse lp = {.info = info};
    int r = nl_request(nlh, link_get_cb, &lp);
    if (r == -ENODEV)
        return -ENOENT;
    if (r < 0)
        return r;
    return lp.found ? 0 : -ENOENT;
}

int net_link_get(const char *name, net_link_info *out, hypr_error *err)
{
    int r = check_ifname("link", name, err);
    if (r < 0)
        return r;
    r = link_get(name, out);
    if (r == -ENOENT)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "link %s not found", name);
    if (r < 0)
        return op_err(err, r, "get link", name);
    return 0;
}

bool net_link_exists(const char *name)
{
    net_link_info info;
    return net_ifname_is_valid(name) && link_get(name, &info) == 0;
}

typedef struct list_ctx {
    const char *prefix;
    char **names;
} list_ctx;

static int link_list_cb(const struct nlmsghdr *nlh, void *data)
{
    list_ctx *lc = data;
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    net_link_info info;
    link_parse_msg(nlh, &info);
    if (info.name[0] && str_startswith(info.name, lc->prefix))
        lc->names = strv_append(lc->names, info.name);
    return MNL_CB_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int net_link_list_prefix(const char *prefix, char ***names, hypr_error *err)
{
    *names = NULL;
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = nl_put_header(buf, RTM_GETLINK, NLM_F_DUMP);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    list_ctx lc = {.prefix = prefix ? prefix : "", .names = NULL};
    int r = nl_request(nlh, link_list_cb, &lc);
    if (r < 0) {
        strv_free(lc.names);
        return op_err(err, r, "list links", prefix && prefix[0] ? prefix : "*");
    }
    if (!lc.names)
        lc.names = xcalloc(1, sizeof(char *));
    qsort(lc.names, strv_length(lc.names), sizeof(char *), cmp_str);
    *names = lc.names;
    return 0;
}

/* ---- addresses ---------------------------------------------------------- */

typedef struct addr_ctx {
    int index;
    char **cidrs;
} addr_ctx;

static int addr_attr_cb(const struct nlattr *attr, void *data)
{
    const struct nlattr **tb = data;
    int type = mnl_attr_get_type(attr);
    if (type == IFA_LOCAL || type == IFA_ADDRESS) {
        if (mnl_attr_validate2(attr, MNL_TYPE_BINARY, 4) >= 0)
            tb[type] = attr;
    }
    return MNL_CB_OK;
}

static int addr_list_cb(const struct nlmsghdr *nlh, void *data)
{
    addr_ctx *ac = data;
    if (nlh->nlmsg_type != RTM_NEWADDR)
        return MNL_CB_OK;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != ac->index)
        return MNL_CB_OK;
    const struct nlattr *tb[IFA_MAX + 1] = {0};
    mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb);
    const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (!a)
        return MNL_CB_OK;
    char ip[INET_ADDRSTRLEN];
    if (!inet_ntop(AF_INET, mnl_attr_get_payload(a), ip, sizeof(ip)))
        return MNL_CB_OK;
    _cleanup_free_ char *cidr = xasprintf("%s/%u", ip, (unsigned)ifa->ifa_prefixlen);
    ac->cidrs = strv_append(ac->cidrs, cidr);
    return MNL_CB_OK;
}

int net_addr_list(const char *name, char ***cidrs, hypr_error *err)
{
    *cidrs = NULL;
    net_link_info info;
    int r = net_link_get(name, &info, err);
    if (r < 0)
        return r;
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = nl_put_header(buf, RTM_GETADDR, NLM_F_DUMP);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    addr_ctx ac = {.index = info.index, .cidrs = NULL};
    r = nl_request(nlh, addr_list_cb, &ac);
    if (r < 0) {
        strv_free(ac.cidrs);
        return op_err(err, r, "list addresses of", name);
    }
    *cidrs = ac.cidrs ? ac.cidrs : xcalloc(1, sizeof(char *));
    return 0;
}

/* "10.88.0.1/16" -> address (network byte order) and prefix length 1..32. */
static int parse_ip_cidr(const char *cidr, struct in_addr *addr, unsigned *prefix)
{
    if (!cidr)
        return -EINVAL;
    const char *slash = strchr(cidr, '/');
    if (!slash || slash == cidr || slash - cidr >= INET_ADDRSTRLEN)
        return -EINVAL;
    char ip[INET_ADDRSTRLEN];
    memcpy(ip, cidr, (size_t)(slash - cidr));
    ip[slash - cidr] = '\0';
    if (inet_pton(AF_INET, ip, addr) != 1)
        return -EINVAL;
    int64_t p;
    if (parse_int64(slash + 1, 1, 32, &p) < 0)
        return -EINVAL;
    *prefix = (unsigned)p;
    return 0;
}

static int addr_add(int index, struct in_addr addr, unsigned prefix)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh =
        nl_put_header(buf, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (unsigned)index;
    mnl_attr_put(nlh, IFA_LOCAL, sizeof(addr), &addr);
    mnl_attr_put(nlh, IFA_ADDRESS, sizeof(addr), &addr);
    if (prefix < 31) {
        uint32_t mask = htonl(~(uint32_t)0 << (32 - prefix));
        struct in_addr bcast = {.s_addr = addr.s_addr | ~mask};
        mnl_attr_put(nlh, IFA_BROADCAST, sizeof(bcast), &bcast);
    }
    int r = nl_request(nlh, NULL, NULL);
    return r == -EEXIST ? 0 : r;
}

/* ---- changing links ------------------------------------------------------ */

/* Sets IFF_UP and, when master > 0, the master device; when mac is set, the
 * hardware address. */
static int link_set(int index, int master, const uint8_t *mac)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = nl_put_header(buf, RTM_NEWLINK, NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = index;
    ifm->ifi_change = IFF_UP;
    ifm->ifi_flags = IFF_UP;
    if (master > 0)
        mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
    if (mac)
        mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
    return nl_request(nlh, NULL, NULL);
}

static int bridge_create(const char *name)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = nl_put_header(buf, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    struct nlattr *linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(nlh, linkinfo);
    return nl_request(nlh, NULL, NULL);
}

static int link_delete_index(int index)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = nl_put_header(buf, RTM_DELLINK, NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = index;
    return nl_request(nlh, NULL, NULL);
}

int net_bridge_ensure(const char *name, const char *gateway_cidr, hypr_error *err)
{
    int r = check_ifname("bridge", name, err);
    if (r < 0)
        return r;
    struct in_addr gw;
    unsigned prefix = 0;
    if (gateway_cidr && parse_ip_cidr(gateway_cidr, &gw, &prefix) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "bridge %s: invalid gateway address \"%s\" (want ADDRESS/PREFIX)", name,
                        gateway_cidr);

    net_link_info info;
    r = link_get(name, &info);
    if (r == -ENOENT) {
        r = bridge_create(name);
        if (r < 0 && r != -EEXIST) /* EEXIST: created concurrently; checked below */
            return op_err(err, r, "create bridge", name);
        r = link_get(name, &info);
    }
    if (r < 0)
        return op_err(err, r, "get bridge", name);
    if (strcmp(info.kind, "bridge") != 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EEXIST,
                        "create bridge %s: a %s device with that name already exists", name,
                        info.kind[0] ? info.kind : "non-bridge");
    if (gateway_cidr) {
        r = addr_add(info.index, gw, prefix);
        if (r < 0)
            return hypr_err(err, hypr_status_from_errno(r), -r, "add address %s to %s: %s",
                            gateway_cidr, name, strerror(-r));
    }
    /* Left to the kernel, a bridge's MAC is the lowest of its ports' MACs: it changes
     * when a TAP with a lower MAC joins or the TAP whose MAC it had leaves, and guests
     * that cached the gateway's old MAC send to it (dropped) until their ARP entry
     * expires, up to ~50 s without DNS or a route out. A MAC set explicitly stays. */
    uint8_t mac[6];
    bridge_mac(name, mac);
    r = link_set(info.index, 0, mac);
    if (r < 0)
        return op_err(err, r, "bring up bridge", name);
    log_debug("bridge %s ready (%s)", name, gateway_cidr ? gateway_cidr : "no address");
    return 0;
}

int net_link_delete(const char *name, hypr_error *err)
{
    int r = check_ifname("link", name, err);
    if (r < 0)
        return r;
    net_link_info info;
    r = link_get(name, &info);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return op_err(err, r, "delete link", name);
    r = link_delete_index(info.index);
    if (r == -ENODEV)
        return 0;
    if (r < 0)
        return op_err(err, r, "delete link", name);
    log_debug("link %s deleted", name);
    return 0;
}

int net_neigh_forget(const char *dev, uint32_t addr)
{
    net_link_info info;
    int r = link_get(dev, &info);
    if (r < 0)
        return r == -ENOENT ? 0 : r;
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = nl_put_header(buf, RTM_DELNEIGH, NLM_F_ACK);
    struct ndmsg *nd = mnl_nlmsg_put_extra_header(nlh, sizeof(*nd));
    nd->ndm_family = AF_INET;
    nd->ndm_ifindex = info.index;
    uint32_t be = htonl(addr);
    mnl_attr_put(nlh, NDA_DST, sizeof(be), &be);
    r = nl_request(nlh, NULL, NULL);
    return r == -ENOENT || r == -ESRCH ? 0 : r;
}

/* Creates a persistent TAP through the TUN driver (netlink cannot set the persist flag). */
static int tap_create_persistent(const char *name)
{
    _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, name, strlen(name) + 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        return -errno;
    if (ioctl(fd, TUNSETPERSIST, 1) < 0)
        return -errno;
    return 0;
}

int net_tap_create(const char *name, const char *bridge, hypr_error *err)
{
    int r = check_ifname("tap", name, err);
    if (r < 0)
        return r;
    r = check_ifname("bridge", bridge, err);
    if (r < 0)
        return r;

    net_link_info br;
    r = link_get(bridge, &br);
    if (r == -ENOENT)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "create tap %s: bridge %s not found", name,
                        bridge);
    if (r < 0)
        return op_err(err, r, "create tap", name);
    if (strcmp(br.kind, "bridge") != 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EINVAL, "create tap %s: %s is not a bridge",
                        name, bridge);

    net_link_info info;
    bool created = false;
    r = link_get(name, &info);
    if (r == -ENOENT) {
        r = tap_create_persistent(name);
        if (r < 0)
            return op_err(err, r, "create tap", name);
        created = true;
        r = link_get(name, &info);
    }
    if (r < 0) {
        op_err(err, r, "create tap", name);
        goto fail;
    }
    if (strcmp(info.kind, "tun") != 0) {
        /* Only reached for a pre-existing link: never delete what hypr did not make. */
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EEXIST,
                        "create tap %s: a %s device with that name already exists", name,
                        info.kind[0] ? info.kind : "non-tap");
    }
    r = link_set(info.index, br.index, NULL);
    if (r < 0) {
        hypr_err(err, hypr_status_from_errno(r), -r, "attach tap %s to %s: %s", name, bridge,
                 strerror(-r));
        goto fail;
    }
    log_debug("tap %s on %s", name, bridge);
    return 0;

fail:
    if (created && link_get(name, &info) == 0)
        (void)link_delete_index(info.index);
    return r;
}

int net_ip_forward_enable(hypr_error *err)
{
    static const char path[] = "/proc/sys/net/ipv4/ip_forward";
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return op_err(err, -errno, "enable ip forwarding: open", path);
    if (write(fd, "1\n", 2) != 2)
        return op_err(err, errno ? -errno : -EIO, "enable ip forwarding: write", path);
    return 0;
}
