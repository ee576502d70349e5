/* Networks and VM attachments: bridges with their IPAM and firewall rules, a
 * TAP + address + port forwards + DNS name per running VM. */
#define LOG_MODULE "net"
#include "netmgr.h"

#include <string.h>

#define DEFAULT_NETWORK "bridge"
#define DEFAULT_BRIDGE  "vbr0"
#define DEFAULT_SUBNET  "10.88.0.0/16"
#define DEFAULT_GATEWAY "10.88.0.1"

typedef struct network {
    char *name;
    char *bridge;
    char *subnet;
    char *gateway;
    bool internal;
    ipam *pool;
    struct network *next;
} network;

/* One NIC of a VM: its network, TAP and address. net is NULL once the network was
 * force-removed under the running VM. */
typedef struct vm_nic {
    network *net;
    char tap[NET_IFNAME_LEN];
    char mac[NET_MAC_STRLEN];
    uint32_t addr;
} vm_nic;

struct vm_net {
    char vm_id[HYPR_ID_LEN + 1];
    char *name; /* DNS name once running */
    vm_nic nics[NET_MAX_NICS];
    size_t n_nics;
    net_proxy **proxies; /* published ports go to the first NIC's address */
    size_t n_proxies;
    /* port_forward=nftables: DNAT rules for traffic from other hosts (the
     * userspace proxy stays for connections from this host). */
    Hypr__V1__PortMapping **dnat;
    size_t n_dnat;
    struct vm_net *next; /* netmgr.vms */
};

struct netmgr {
    bool enabled;
    network *nets;
    vm_net *vms; /* attached VMs */
    dns_table *dns;
};

static netmgr *mgr(daemon_ctx *d)
{
    return d->net;
}

static network *network_find(netmgr *m, const char *name)
{
    for (network *n = m->nets; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static void network_free(network *n)
{
    ipam_free(n->pool);
    free(n->name);
    free(n->bridge);
    free(n->subnet);
    free(n->gateway);
    free(n);
}

/* Brings one stored network up: its bridge with the gateway address, its
 * firewall rules and its address pool. */
static int network_up(daemon_ctx *d, const store_network *sn, hypr_error *err)
{
    netmgr *m = mgr(d);
    network *n = xcalloc(1, sizeof(*n));
    n->name = xstrdup(sn->name);
    n->bridge = xstrdup(sn->bridge);
    n->subnet = xstrdup(sn->subnet);
    n->gateway = xstrdup(sn->gateway);
    n->internal = sn->internal;
    int r = ipam_new(n->name, n->subnet, n->gateway, d->db, &n->pool, err);
    if (r >= 0 && m->enabled) {
        const char *slash = strchr(n->subnet, '/');
        _cleanup_free_ char *gw_cidr = xasprintf("%s%s", n->gateway, slash ? slash : "/16");
        r = net_bridge_ensure(n->bridge, gw_cidr, err);
        if (r >= 0)
            r = net_fw_network_add(n->bridge, n->subnet, n->internal, err);
    }
    if (r < 0) {
        network_free(n);
        return hypr_err_prefix(err, "network %s", sn->name);
    }
    n->next = m->nets;
    m->nets = n;
    return 0;
}

static int ensure_default(daemon_ctx *d, hypr_error *err)
{
    _cleanup_store_network_ store_network sn = {0};
    int r = store_network_find(d->db, DEFAULT_NETWORK, &sn, err);
    if (r != -ENOENT)
        return r;
    hypr_error_clear(err);
    r = id_generate(sn.id);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "generate a network ID");
    sn.name = xstrdup(DEFAULT_NETWORK);
    sn.driver = xstrdup("bridge");
    sn.subnet = xstrdup(DEFAULT_SUBNET);
    sn.gateway = xstrdup(DEFAULT_GATEWAY);
    sn.bridge = xstrdup(DEFAULT_BRIDGE);
    sn.created_at = time_now_ms() / 1000;
    return store_network_insert(d->db, &sn, err);
}

static bool tap_in_use(netmgr *m, const char *tap)
{
    for (vm_net *v = m->vms; v; v = v->next)
        for (size_t i = 0; i < v->n_nics; i++)
            if (strcmp(v->nics[i].tap, tap) == 0)
                return true;
    return false;
}

void netmgr_remove_stale_taps(daemon_ctx *d)
{
    netmgr *m = mgr(d);
    char **names = NULL;
    if (!m || !m->enabled || net_link_list_prefix(NET_TAP_PREFIX, &names, NULL) < 0)
        return;
    for (char **p = names; p && *p; p++) {
        if (tap_in_use(m, *p))
            continue;
        log_info("removing stale TAP %s", *p);
        net_link_delete(*p, NULL);
    }
    strv_free(names);
}

int netmgr_init(daemon_ctx *d, hypr_error *err)
{
    netmgr *m = xcalloc(1, sizeof(*m));
    d->net = m;
    m->dns = dns_table_new();
    int r = ensure_default(d, err);
    if (r < 0)
        return r;

    _cleanup_error_ hypr_error lerr = HYPR_ERROR_INIT;
    m->enabled = net_ip_forward_enable(&lerr) >= 0 && net_fw_init(&lerr) >= 0;
    if (!m->enabled)
        log_warn("networking is off, VMs get no network interface: %s", lerr.message);

    store_network *nets = NULL;
    size_t n = 0;
    r = store_network_list(d->db, &nets, &n, err);
    if (r < 0)
        return r;
    const char **gateways = xcalloc(n + 1, sizeof(char *));
    const char **names = xcalloc(n + 1, sizeof(char *));
    size_t n_gw = 0;
    for (size_t i = 0; i < n && r >= 0; i++) {
        r = network_up(d, &nets[i], err);
        if (r >= 0 && m->enabled) {
            /* network_up put it first in the list. */
            gateways[n_gw] = m->nets->gateway;
            names[n_gw++] = m->nets->name;
        }
    }
    if (r >= 0)
        netmgr_dns_start(d, m->dns, gateways, names, n_gw);
    free(gateways);
    free(names);
    store_networks_free(nets, n);
    return r;
}

void netmgr_free(daemon_ctx *d)
{
    netmgr *m = mgr(d);
    if (!m)
        return;
    while (m->nets) {
        network *n = m->nets;
        m->nets = n->next;
        network_free(n);
    }
    dns_table_free(m->dns);
    free(m);
    d->net = NULL;
}

/* ---- VM attachments ------------------------------------------------------------ */

static uint32_t vm_primary_addr(const vm_net *v)
{
    return v->n_nics ? v->nics[0].addr : 0;
}

static void dnat_remove_all(vm_net *v)
{
    char ip[NET_IP4_STRLEN];
    net_ip4_format(vm_primary_addr(v), ip);
    for (size_t i = 0; i < v->n_dnat; i++) {
        Hypr__V1__PortMapping *p = v->dnat[i];
        net_fw_dnat_remove(p->protocol, p->host_ip, (uint16_t)p->host_port, ip,
                           (uint16_t)p->guest_port, NULL);
        hypr__v1__port_mapping__free_unpacked(p, NULL);
    }
    free(v->dnat);
    v->dnat = NULL;
    v->n_dnat = 0;
}

/* Copies of the published ports that got a DNAT rule, for their removal. */
static int dnat_add_all(daemon_ctx *d, vm_net *v, const Hypr__V1__VMConfig *cfg, const char *ip,
                        hypr_error *err)
{
    _cleanup_free_ char *mode = settings_get(d, "port_forward");
    if (strcmp(mode, "nftables") != 0)
        return 0;
    v->dnat = xcalloc(cfg->n_ports, sizeof(*v->dnat));
    for (size_t i = 0; i < cfg->n_ports; i++) {
        const Hypr__V1__PortMapping *p = cfg->ports[i];
        int r = net_fw_dnat_add(p->protocol, p->host_ip, (uint16_t)p->host_port, ip,
                                (uint16_t)p->guest_port, err);
        if (r < 0)
            return r;
        size_t len = hypr__v1__port_mapping__get_packed_size(p);
        _cleanup_free_ uint8_t *buf = xmalloc(len);
        hypr__v1__port_mapping__pack(p, buf);
        v->dnat[v->n_dnat++] = hypr__v1__port_mapping__unpack(NULL, len, buf);
    }
    return 0;
}

/* The VM's names leave the networks it is on (before a rename or a stop). */
static void dns_names_remove(netmgr *m, vm_net *v)
{
    for (size_t i = 0; v->name && i < v->n_nics; i++)
        if (v->nics[i].net)
            dns_table_remove(m->dns, v->nics[i].net->name, v->name);
}

static void dns_names_add(netmgr *m, vm_net *v)
{
    for (size_t i = 0; v->name && i < v->n_nics; i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (v->nics[i].net &&
            dns_table_add(m->dns, v->nics[i].net->name, v->name, v->nics[i].addr, &err) < 0)
            log_warn("DNS name %s: %s", v->name, err.message);
    }
}

/* Forwards and rules closed, TAPs removed (unless kept for a hypervisor that
 * runs on), unlinked from the manager; frees v. */
static void vm_net_free(netmgr *m, vm_net *v, bool keep_taps)
{
    dns_names_remove(m, v);
    dnat_remove_all(v);
    for (size_t i = 0; i < v->n_proxies; i++)
        net_proxy_stop(v->proxies[i]);
    for (size_t i = 0; i < v->n_nics && !keep_taps; i++)
        if (v->nics[i].net)
            net_link_delete(v->nics[i].tap, NULL);
    for (vm_net **p = &m->vms; *p; p = &(*p)->next)
        if (*p == v) {
            *p = v->next;
            break;
        }
    free(v->proxies);
    free(v->name);
    free(v);
}

/* The VM's address in n: the one it already holds (stable across restarts), else a new one. */
static int vm_address(daemon_ctx *d, network *n, const char *vm_id, uint32_t *out, hypr_error *err)
{
    store_ip_allocation *rows = NULL;
    size_t count = 0;
    int r = store_ip_list(d->db, n->name, &rows, &count, err);
    if (r < 0)
        return hypr_err_prefix(err, "addresses of network %s", n->name);
    bool held = false;
    for (size_t i = 0; !held && i < count; i++)
        held = rows[i].vm_id && strcmp(rows[i].vm_id, vm_id) == 0 &&
               net_ip4_parse(rows[i].address, out) == 0;
    store_ip_allocations_free(rows, count);
    return held ? 0 : ipam_allocate(n->pool, vm_id, NULL, out, err);
}

/* The networks a config names, in order (none given = the default one; "none" alone =
 * no NIC at all, as docker run --network none): each must exist, once, and at most
 * NET_MAX_NICS of them. */
static int config_networks(netmgr *m, const Hypr__V1__VMConfig *cfg, network **out, size_t *n,
                           hypr_error *err)
{
    static const char *const dflt[] = {DEFAULT_NETWORK};
    const char *const *names = cfg->n_networks ? (const char *const *)cfg->networks : dflt;
    size_t count = cfg->n_networks ? cfg->n_networks : 1;
    for (size_t i = 0; i < cfg->n_networks; i++) {
        if (strcmp(cfg->networks[i], "none") != 0)
            continue;
        if (cfg->n_networks > 1)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "network none cannot be combined with other networks");
        if (cfg->n_ports > 0)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "cannot publish ports of a VM without a network (--network none)");
        *n = 0;
        return 0;
    }
    if (count > NET_MAX_NICS)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, E2BIG,
                        "a VM joins at most %d networks (%zu given)", NET_MAX_NICS, count);
    for (size_t i = 0; i < count; i++) {
        out[i] = network_find(m, names[i]);
        if (!out[i])
            return hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                            "network %s not found (create it with 'hypr network create %s')",
                            names[i], names[i]);
        for (size_t j = 0; j < i; j++)
            if (out[j] == out[i])
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "network %s is given more than once", names[i]);
    }
    *n = count;
    return 0;
}

int netmgr_check_networks(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    network *nets[NET_MAX_NICS];
    size_t n = 0;
    return mgr(d) ? config_networks(mgr(d), cfg, nets, &n, err) : 0;
}

/* One NIC: an address in net and a TAP on its bridge (adopt: the TAP a running
 * hypervisor holds stays as it is). */
static int nic_attach(daemon_ctx *d, vm_net *v, network *net, bool adopt, hypr_error *err)
{
    vm_nic *nic = &v->nics[v->n_nics];
    unsigned index = (unsigned)v->n_nics;
    int r = vm_address(d, net, v->vm_id, &nic->addr, err);
    if (r < 0)
        return r;
    net_tap_name(v->vm_id, index, nic->tap);
    net_mac_for_vm(v->vm_id, index, nic->mac);
    if (!adopt || !net_link_exists(nic->tap)) {
        net_link_delete(nic->tap, NULL); /* a leftover of a crash */
        r = net_tap_create(nic->tap, net->bridge, err);
        if (r < 0)
            return r;
    }
    nic->net = net;
    v->n_nics++;
    /* The address may have belonged to another VM (another MAC) moments ago. */
    net_neigh_forget(net->bridge, nic->addr);
    return 0;
}

static void nic_boot(const vm_nic *nic, vm_nic_boot *b)
{
    net_ip4_format(nic->addr, b->ip);
    memcpy(b->tap, nic->tap, sizeof(b->tap));
    memcpy(b->mac, nic->mac, sizeof(b->mac));
    const char *slash = strchr(nic->net->subnet, '/');
    snprintf(b->ip_cidr, sizeof(b->ip_cidr), "%s%s", b->ip, slash ? slash : "/16");
    snprintf(b->gateway, sizeof(b->gateway), "%s", nic->net->gateway);
}

static int vm_attach(daemon_ctx *d, const char *vm_id, const Hypr__V1__VMConfig *cfg, bool adopt,
                     vm_net **out, vm_net_boot *boot, hypr_error *err)
{
    netmgr *m = mgr(d);
    memset(boot, 0, sizeof(*boot));
    *out = NULL;
    if (!m) /* no network manager (unit tests): VMs boot without a NIC */
        return cfg->n_ports ? hypr_err(err, HYPR_FAILED_PRECONDITION, EPERM,
                                       "cannot publish ports: networking is off in this hyprd")
                            : 0;
    network *nets[NET_MAX_NICS];
    size_t n_nets = 0;
    int r = config_networks(m, cfg, nets, &n_nets, err);
    if (r < 0 || n_nets == 0) /* --network none: loopback only */
        return r;
    if (!m->enabled) {
        if (cfg->n_ports > 0)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EPERM,
                            "cannot publish ports: networking is off in this hyprd");
        return 0;
    }
    vm_net *v = xcalloc(1, sizeof(*v));
    memcpy(v->vm_id, vm_id, sizeof(v->vm_id));
    v->next = m->vms;
    m->vms = v;
    for (size_t i = 0; r >= 0 && i < n_nets; i++)
        r = nic_attach(d, v, nets[i], adopt, err);
    char ip[NET_IP4_STRLEN];
    net_ip4_format(vm_primary_addr(v), ip);
    v->proxies = xcalloc(cfg->n_ports, sizeof(net_proxy *));
    for (size_t i = 0; r >= 0 && i < cfg->n_ports; i++) {
        const Hypr__V1__PortMapping *p = cfg->ports[i];
        net_forward fwd = {
            .protocol = p->protocol,
            .host_ip = p->host_ip,
            .host_port = (uint16_t)p->host_port,
            .target_ip = ip,
            .target_port = (uint16_t)p->guest_port,
        };
        r = net_proxy_start(d->loop, &fwd, &v->proxies[v->n_proxies], err);
        if (r >= 0)
            v->n_proxies++;
    }
    if (r >= 0)
        r = dnat_add_all(d, v, cfg, ip, err);
    if (r < 0) {
        vm_net_free(m, v, false);
        return r;
    }
    for (size_t i = 0; i < v->n_nics; i++)
        nic_boot(&v->nics[i], &boot->nics[i]);
    boot->n_nics = v->n_nics;
    *out = v;
    return 0;
}

int netmgr_vm_attach(daemon_ctx *d, const char *vm_id, const Hypr__V1__VMConfig *cfg, vm_net **out,
                     vm_net_boot *boot, hypr_error *err)
{
    return vm_attach(d, vm_id, cfg, false, out, boot, err);
}

int netmgr_vm_adopt(daemon_ctx *d, const char *vm_id, const Hypr__V1__VMConfig *cfg, vm_net **out,
                    vm_net_boot *boot, hypr_error *err)
{
    return vm_attach(d, vm_id, cfg, true, out, boot, err);
}

void netmgr_vm_release(daemon_ctx *d, vm_net *v)
{
    if (!v)
        return;
    /* The TAPs stay for the hypervisor that holds them; nothing else outlives hyprd. */
    vm_net_free(mgr(d), v, true);
}

size_t netmgr_vm_tap(const vm_net *n, size_t i, const char **tap)
{
    if (!n)
        return 0;
    if (tap && i < n->n_nics)
        *tap = n->nics[i].tap;
    return n->n_nics;
}

void netmgr_vm_running(daemon_ctx *d, vm_net *v, const char *name)
{
    if (!v)
        return;
    netmgr *m = mgr(d);
    dns_names_remove(m, v);
    free(v->name);
    v->name = xstrdup(name);
    dns_names_add(m, v);
}

void netmgr_vm_renamed(daemon_ctx *d, const char *vm_id, const char *name)
{
    netmgr *m = mgr(d);
    for (vm_net *v = m ? m->vms : NULL; v; v = v->next)
        if (v->name && strcmp(v->vm_id, vm_id) == 0)
            netmgr_vm_running(d, v, name);
}

void netmgr_vm_detach(daemon_ctx *d, vm_net *v)
{
    if (v)
        vm_net_free(mgr(d), v, false);
}

void netmgr_vm_deleted(daemon_ctx *d, const char *vm_id)
{
    netmgr *m = mgr(d);
    if (!m)
        return;
    for (network *n = m->nets; n; n = n->next) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        /* The record is gone already: nobody to answer but the log. */
        if (ipam_release_vm(n->pool, vm_id, &err) < 0)
            log_warn("network %s: cannot release the addresses of VM %.12s: %s", n->name, vm_id,
                     err.message);
    }
}

int netmgr_vm_attachments(const vm_net *v, Hypr__V1__NetworkAttachment ***out)
{
    *out = NULL;
    if (!v || v->n_nics == 0)
        return 0;
    typedef struct {
        Hypr__V1__NetworkAttachment a;
        char ip[NET_IP4_STRLEN], mac[NET_MAC_STRLEN], gateway[NET_IP4_STRLEN];
        char network[];
    } att;
    Hypr__V1__NetworkAttachment **list = xcalloc(v->n_nics, sizeof(*list));
    size_t n = 0;
    for (size_t i = 0; i < v->n_nics; i++) {
        const vm_nic *nic = &v->nics[i];
        if (!nic->net)
            continue;
        att *x = xcalloc(1, sizeof(*x) + strlen(nic->net->name) + 1);
        hypr__v1__network_attachment__init(&x->a);
        strcpy(x->network, nic->net->name);
        net_ip4_format(nic->addr, x->ip);
        memcpy(x->mac, nic->mac, sizeof(x->mac));
        snprintf(x->gateway, sizeof(x->gateway), "%s", nic->net->gateway);
        x->a.network = x->network;
        x->a.ip_address = x->ip;
        x->a.mac_address = x->mac;
        x->a.gateway = x->gateway;
        x->a.prefix_len = ipam_subnet(nic->net->pool)->prefix;
        list[n++] = &x->a;
    }
    *out = list;
    return (int)n;
}

/* A force-removed network leaves the running VMs on it: their NIC on it goes dead. */
static void network_leave_vms(netmgr *m, network *n)
{
    for (vm_net *v = m->vms; v; v = v->next)
        for (size_t i = 0; i < v->n_nics; i++)
            if (v->nics[i].net == n) {
                if (v->name)
                    dns_table_remove(m->dns, n->name, v->name);
                net_link_delete(v->nics[i].tap, NULL);
                v->nics[i].net = NULL;
            }
}

/* ---- CreateNetwork / DeleteNetwork ------------------------------------------- */

/* vbrN with the lowest N not used by another network. */
/* The first vbrN neither one of our networks nor a link of this namespace has (a
 * bridge another hyprd, or an earlier one, left): a new network never takes one over. */
static char *next_bridge_name(netmgr *m)
{
    for (int i = 1;; i++) {
        char *name = xasprintf("vbr%d", i);
        bool used = false;
        for (network *n = m->nets; n; n = n->next)
            used = used || strcmp(n->bridge, name) == 0;
        if (!used && m->enabled && net_link_exists(name))
            used = true;
        if (!used)
            return name;
        free(name);
    }
}

/* "10.8.0.5/24" (a link's address) as the subnet it routes, 10.8.0.0/24. */
static bool host_subnet(const char *cidr, net_subnet *out)
{
    const char *slash = strchr(cidr, '/');
    _cleanup_free_ char *ip = slash ? xstrndup(cidr, (size_t)(slash - cidr)) : NULL;
    uint32_t addr;
    int64_t prefix;
    if (!ip || net_ip4_parse(ip, &addr) < 0 || parse_int64(slash + 1, 1, 32, &prefix) < 0)
        return false;
    uint32_t mask = prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
    *out = (net_subnet){addr & mask, (int)prefix};
    return true;
}

static int check_subnet(netmgr *m, const char *want, net_subnet *sn, hypr_error *err)
{
    if (!str_empty(want)) {
        int r = net_subnet_parse(want, sn, err);
        for (network *n = m->nets; r >= 0 && n; n = n->next)
            if (ipam_subnets_overlap(sn, ipam_subnet(n->pool)))
                r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                             "subnet %s overlaps network %s (%s)", want, n->name, n->subnet);
        return r;
    }
    /* Besides our networks, the addresses already on this namespace's links (a VPN,
     * another bridge): as Docker does, an automatic pick never overlaps them, since
     * replies to the guests would be routed there. */
    _cleanup_strv_ char **host = NULL;
    _cleanup_strv_ char **links = NULL;
    if (m->enabled && net_link_list_prefix("", &links, NULL) >= 0)
        for (char **l = links; *l; l++) {
            _cleanup_strv_ char **cidrs = NULL;
            if (net_addr_list(*l, &cidrs, NULL) >= 0)
                for (char **c = cidrs; *c; c++)
                    host = strv_append(host, *c);
        }
    size_t count = 0;
    for (network *n = m->nets; n; n = n->next)
        count++;
    _cleanup_free_ net_subnet *existing = xcalloc(count + strv_length(host) + 1, sizeof(*existing));
    size_t i = 0;
    for (network *n = m->nets; n; n = n->next)
        existing[i++] = *ipam_subnet(n->pool);
    for (char **c = host; c && *c; c++)
        if (host_subnet(*c, &existing[i]) && (existing[i].network >> 24) != 127)
            i++; /* loopback is never routed to a bridge */
    return ipam_pick_subnet(existing, i, sn, err);
}

/* The subnet and gateway of a new network: the ones asked for (inside, and not
 * overlapping another network), or the next free /24-style pick. */
static int pick_addresses(netmgr *m, const netmgr_network_spec *spec, char cidr[NET_CIDR_STRLEN],
                          char gw[NET_IP4_STRLEN], hypr_error *err)
{
    net_subnet subnet;
    int r = check_subnet(m, spec->subnet, &subnet, err);
    if (r < 0)
        return r;
    net_subnet_format(&subnet, cidr);
    uint32_t gw_addr = net_subnet_first_host(&subnet);
    if (!str_empty(spec->gateway) &&
        (net_ip4_parse(spec->gateway, &gw_addr) < 0 || !net_subnet_contains(&subnet, gw_addr)))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid gateway \"%s\": must be an address inside %s", spec->gateway,
                        cidr);
    net_ip4_format(gw_addr, gw);
    return 0;
}

/* Takes a network that network_up put first in the list down again. */
static void network_down_first(netmgr *m)
{
    network *n = m->nets;
    m->nets = n->next;
    if (m->enabled) {
        net_fw_network_remove(n->bridge, NULL);
        net_link_delete(n->bridge, NULL);
    }
    network_free(n);
}

int netmgr_network_create(daemon_ctx *d, const netmgr_network_spec *spec, store_network *out,
                          hypr_error *err)
{
    netmgr *m = mgr(d);
    if (!name_is_valid(spec->name))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid network name \"%s\": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*",
                        spec->name);
    if (!str_empty(spec->driver) && strcmp(spec->driver, "bridge") != 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "network driver \"%s\" is not supported: use bridge", spec->driver);
    if (network_find(m, spec->name))
        return hypr_err(err, HYPR_ALREADY_EXISTS, EEXIST, "network %s already exists", spec->name);
    char cidr[NET_CIDR_STRLEN], gw[NET_IP4_STRLEN];
    int r = pick_addresses(m, spec, cidr, gw, err);
    if (r < 0)
        return r;
    _cleanup_store_network_ store_network sn = {0};
    r = id_generate(sn.id);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "generate a network ID: %s", strerror(-r));
    sn.name = xstrdup(spec->name);
    sn.driver = xstrdup("bridge");
    sn.subnet = xstrdup(cidr);
    sn.gateway = xstrdup(gw);
    sn.bridge = next_bridge_name(m);
    sn.internal = spec->internal;
    sn.labels = spec->labels ? xstrdup(spec->labels) : NULL;
    sn.created_at = time_now_ms() / 1000;
    r = network_up(d, &sn, err);
    if (r < 0)
        return r;
    r = store_network_insert(d->db, &sn, err);
    if (r < 0) {
        network_down_first(m);
        return r;
    }
    if (m->enabled) {
        /* A gateway that cannot take port 53 costs its guests their resolver, not the network. */
        _cleanup_error_ hypr_error lerr = HYPR_ERROR_INIT;
        if (netmgr_dns_listen(d, sn.gateway, 53, sn.name, &lerr) < 0)
            log_warn("%s", lerr.message);
    }
    log_info("created network %s (%s, bridge %s)", sn.name, sn.subnet, sn.bridge);
    char *attrs[] = {"name", sn.name, "subnet", sn.subnet, NULL};
    event_publish(d->events, "network.created", sn.id, NULL, attrs);
    *out = sn;
    sn = (store_network){0};
    return 0;
}

int netmgr_network_vms(daemon_ctx *d, const char *net_name, bool names, char ***out,
                       hypr_error *err)
{
    *out = NULL;
    store_vm *vms = NULL;
    size_t n = 0;
    int r = store_vm_list(d->db, &vms, &n, err);
    if (r < 0)
        return hypr_err_prefix(err, "VMs on network %s", net_name);
    for (size_t i = 0; i < n; i++) {
        /* No network named = the default one. */
        bool uses = !vms[i].networks && strcmp(net_name, DEFAULT_NETWORK) == 0;
        for (char **p = vms[i].networks; p && *p; p++)
            uses = uses || strcmp(*p, net_name) == 0;
        if (uses)
            *out = strv_append(*out, names ? vms[i].name : vms[i].id);
    }
    store_vms_free(vms, n);
    return 0;
}

/* The network goes: its VMs' NICs on it, DNS listeners, bridge, rules, addresses. */
static void network_remove_live(daemon_ctx *d, const char *name)
{
    netmgr *m = mgr(d);
    for (network **p = &m->nets; *p; p = &(*p)->next) {
        network *n = *p;
        if (strcmp(n->name, name) != 0)
            continue;
        *p = n->next;
        network_leave_vms(m, n);
        netmgr_dns_unlisten(d, n->name);
        if (m->enabled) {
            net_fw_network_remove(n->bridge, NULL);
            net_link_delete(n->bridge, NULL);
        }
        /* Its addresses go with it (a later network of that name starts empty). */
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        store_ip_allocation *rows = NULL;
        size_t count = 0;
        int r = store_ip_list(d->db, n->name, &rows, &count, &err);
        for (size_t i = 0; r >= 0 && i < count; i++)
            r = store_ip_release(d->db, n->name, rows[i].address, &err);
        store_ip_allocations_free(rows, count);
        if (r < 0)
            log_warn("network %s: cannot release its addresses: %s", n->name, err.message);
        network_free(n);
        return;
    }
}

int netmgr_network_remove(daemon_ctx *d, const char *ref, bool force, store_network *out,
                          hypr_error *err)
{
    int r = store_network_find(d->db, ref, out, err);
    if (r < 0)
        return r;
    if (strcmp(out->name, DEFAULT_NETWORK) == 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EPERM,
                        "the default network %s cannot be removed", DEFAULT_NETWORK);
    _cleanup_strv_ char **users = NULL;
    r = netmgr_network_vms(d, out->name, true, &users, err);
    if (r < 0)
        return r;
    if (users && !force) {
        _cleanup_buf_ hypr_buf b = {0};
        for (char **p = users; *p; p++)
            buf_printf(&b, "%s%s", b.len ? ", " : "", *p);
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY,
                        "network %s is in use by VM(s) %s: remove them first, or use force",
                        out->name, b.data);
    }
    r = store_network_delete(d->db, out->id, err);
    if (r < 0)
        return r;
    network_remove_live(d, out->name);
    log_info("removed network %s", out->name);
    char *attrs[] = {"name", out->name, NULL};
    event_publish(d->events, "network.deleted", out->id, NULL, attrs);
    return 0;
}
