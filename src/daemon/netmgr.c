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

struct vm_net {
    char vm_id[HYPR_ID_LEN + 1];
    char *name; /* DNS name once running */
    network *net;
    char tap[16];
    uint32_t addr;
    net_proxy **proxies;
    size_t n_proxies;
    /* port_forward=nftables: DNAT rules for traffic from other hosts (the
     * userspace proxy stays for connections from this host). */
    Hypr__V1__PortMapping **dnat;
    size_t n_dnat;
};

struct netmgr {
    bool enabled;
    network *nets;
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
    store_network sn = {0};
    if (store_network_find(d->db, DEFAULT_NETWORK, &sn, NULL) == 0) {
        store_network_clear(&sn);
        return 0;
    }
    int r = id_generate(sn.id);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "generate a network ID");
    sn.name = xstrdup(DEFAULT_NETWORK);
    sn.driver = xstrdup("bridge");
    sn.subnet = xstrdup(DEFAULT_SUBNET);
    sn.gateway = xstrdup(DEFAULT_GATEWAY);
    sn.bridge = xstrdup(DEFAULT_BRIDGE);
    sn.created_at = time_now_ms() / 1000;
    r = store_network_insert(d->db, &sn, err);
    store_network_clear(&sn);
    return r;
}

/* TAPs of VMs that are not running (a daemon that died) go away. */
static void remove_stale_taps(void)
{
    char **names = NULL;
    if (net_link_list_prefix(NET_TAP_PREFIX, &names, NULL) < 0)
        return;
    for (char **p = names; p && *p; p++) {
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
    else
        remove_stale_taps();

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
        r = netmgr_dns_start(d, m->dns, gateways, names, n_gw, err);
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

static void dnat_remove_all(vm_net *v)
{
    char ip[NET_IP4_STRLEN];
    net_ip4_format(v->addr, ip);
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

static void vm_net_free(vm_net *v)
{
    dnat_remove_all(v);
    for (size_t i = 0; i < v->n_proxies; i++)
        net_proxy_stop(v->proxies[i]);
    free(v->proxies);
    free(v->name);
    free(v);
}

/* The VM's address in n: the one it already holds (stable across restarts), else a new one. */
static int vm_address(daemon_ctx *d, network *n, const char *vm_id, uint32_t *out, hypr_error *err)
{
    store_ip_allocation *rows = NULL;
    size_t count = 0;
    if (store_ip_list(d->db, n->name, &rows, &count, NULL) == 0) {
        for (size_t i = 0; i < count; i++) {
            if (rows[i].vm_id && strcmp(rows[i].vm_id, vm_id) == 0 &&
                net_ip4_parse(rows[i].address, out) == 0) {
                store_ip_allocations_free(rows, count);
                return 0;
            }
        }
        store_ip_allocations_free(rows, count);
    }
    return ipam_allocate(n->pool, vm_id, NULL, out, err);
}

int netmgr_vm_attach(daemon_ctx *d, const char *vm_id, const Hypr__V1__VMConfig *cfg, vm_net **out,
                     vm_net_boot *boot, hypr_error *err)
{
    netmgr *m = mgr(d);
    memset(boot, 0, sizeof(*boot));
    *out = NULL;
    const char *name = cfg->n_networks > 0 ? cfg->networks[0] : DEFAULT_NETWORK;
    network *n = network_find(m, name);
    if (!n)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                        "network %s not found (create it with 'hypr network create %s')", name,
                        name);
    if (!m->enabled) {
        if (cfg->n_ports > 0)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EPERM,
                            "cannot publish ports: networking is off in this hyprd");
        return 0;
    }
    vm_net *v = xcalloc(1, sizeof(*v));
    memcpy(v->vm_id, vm_id, sizeof(v->vm_id));
    v->net = n;
    int r = vm_address(d, n, vm_id, &v->addr, err);
    if (r >= 0) {
        net_tap_name(vm_id, v->tap);
        net_link_delete(v->tap, NULL); /* a leftover of a crash */
        r = net_tap_create(v->tap, n->bridge, err);
        /* The address may have belonged to another VM (another MAC) moments ago. */
        if (r >= 0)
            net_neigh_forget(n->bridge, v->addr);
    }
    char ip[NET_IP4_STRLEN];
    net_ip4_format(v->addr, ip);
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
        if (v->tap[0])
            net_link_delete(v->tap, NULL);
        vm_net_free(v);
        return r;
    }
    memcpy(boot->tap, v->tap, sizeof(boot->tap));
    net_mac_for_vm(vm_id, boot->mac);
    memcpy(boot->ip, ip, sizeof(boot->ip));
    const char *slash = strchr(n->subnet, '/');
    snprintf(boot->ip_cidr, sizeof(boot->ip_cidr), "%s%s", ip, slash ? slash : "/16");
    snprintf(boot->gateway, sizeof(boot->gateway), "%s", n->gateway);
    *out = v;
    return 0;
}

void netmgr_vm_running(daemon_ctx *d, vm_net *v, const char *name)
{
    if (!v)
        return;
    free(v->name);
    v->name = xstrdup(name);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (dns_table_add(mgr(d)->dns, v->net->name, name, v->addr, &err) < 0)
        log_warn("DNS name %s: %s", name, err.message);
}

void netmgr_vm_detach(daemon_ctx *d, vm_net *v)
{
    if (!v)
        return;
    if (v->name)
        dns_table_remove(mgr(d)->dns, v->net->name, v->name);
    if (v->tap[0])
        net_link_delete(v->tap, NULL);
    vm_net_free(v);
}

void netmgr_vm_deleted(daemon_ctx *d, const char *vm_id)
{
    netmgr *m = mgr(d);
    if (!m)
        return;
    for (network *n = m->nets; n; n = n->next)
        ipam_release_vm(n->pool, vm_id, NULL);
}

/* ---- CreateNetwork / DeleteNetwork ------------------------------------------- */

/* vbrN with the lowest N not used by another network. */
static char *next_bridge_name(netmgr *m)
{
    for (int i = 1;; i++) {
        char *name = xasprintf("vbr%d", i);
        bool used = false;
        for (network *n = m->nets; n; n = n->next)
            used = used || strcmp(n->bridge, name) == 0;
        if (!used)
            return name;
        free(name);
    }
}

static int check_subnet(netmgr *m, Hypr__V1__CreateNetworkRequest *req, net_subnet *sn,
                        hypr_error *err)
{
    size_t count = 0;
    for (network *n = m->nets; n; n = n->next)
        count++;
    net_subnet *existing = xcalloc(count + 1, sizeof(*existing));
    size_t i = 0;
    for (network *n = m->nets; n; n = n->next)
        existing[i++] = *ipam_subnet(n->pool);
    int r;
    if (str_empty(req->subnet)) {
        r = ipam_pick_subnet(existing, count, sn, err);
    } else {
        r = net_subnet_parse(req->subnet, sn, err);
        for (network *n = m->nets; r >= 0 && n; n = n->next)
            if (ipam_subnets_overlap(sn, ipam_subnet(n->pool)))
                r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                             "subnet %s overlaps network %s (%s)", req->subnet, n->name, n->subnet);
    }
    free(existing);
    return r;
}

void api_create_network(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__CreateNetworkRequest *req = (Hypr__V1__CreateNetworkRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    netmgr *m = mgr(d);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_network sn = {0};
    net_subnet subnet;
    int r = 0;
    if (!name_is_valid(req->name))
        r = hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL,
                     "invalid network name \"%s\": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*",
                     req->name);
    else if (!str_empty(req->driver) && strcmp(req->driver, "bridge") != 0)
        r = hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL,
                     "network driver \"%s\" is not supported: use bridge", req->driver);
    else if (network_find(m, req->name))
        r = hypr_err(&err, HYPR_ALREADY_EXISTS, EEXIST, "network %s already exists", req->name);
    if (r >= 0)
        r = check_subnet(m, req, &subnet, &err);
    if (r >= 0) {
        char cidr[NET_CIDR_STRLEN], gw[NET_IP4_STRLEN];
        net_subnet_format(&subnet, cidr);
        uint32_t gw_addr = net_subnet_first_host(&subnet);
        if (!str_empty(req->gateway) &&
            (net_ip4_parse(req->gateway, &gw_addr) < 0 || !net_subnet_contains(&subnet, gw_addr)))
            r = hypr_err(&err, HYPR_INVALID_ARGUMENT, EINVAL,
                         "invalid gateway \"%s\": must be an address inside %s", req->gateway,
                         cidr);
        net_ip4_format(gw_addr, gw);
        if (r >= 0)
            r = id_generate(sn.id);
        sn.name = xstrdup(req->name);
        sn.driver = xstrdup("bridge");
        sn.subnet = xstrdup(cidr);
        sn.gateway = xstrdup(gw);
        sn.bridge = next_bridge_name(m);
        sn.internal = req->internal;
        sn.created_at = time_now_ms() / 1000;
    }
    if (r >= 0)
        r = network_up(d, &sn, &err);
    if (r >= 0) {
        r = store_network_insert(d->db, &sn, &err);
        if (r < 0) {
            network *n = m->nets;
            m->nets = n->next;
            net_fw_network_remove(n->bridge, NULL);
            net_link_delete(n->bridge, NULL);
            network_free(n);
        }
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r < 0) {
        store_network_clear(&sn);
        api_fail(call, &err);
        return;
    }
    if (m->enabled) {
        _cleanup_error_ hypr_error lerr = HYPR_ERROR_INIT;
        if (netmgr_dns_listen(sn.gateway, 53, sn.name, &lerr) < 0)
            log_warn("%s", lerr.message);
    }
    char *attrs[] = {"name", sn.name, "subnet", sn.subnet, NULL};
    event_publish(d->events, "network.created", sn.id, NULL, attrs);
    Hypr__V1__Network net = HYPR__V1__NETWORK__INIT;
    net.id = sn.id;
    net.name = sn.name;
    net.driver = sn.driver;
    net.subnet = sn.subnet;
    net.gateway = sn.gateway;
    net.bridge = sn.bridge;
    net.internal = sn.internal;
    net.created_at = sn.created_at;
    Hypr__V1__CreateNetworkResponse resp = HYPR__V1__CREATE_NETWORK_RESPONSE__INIT;
    resp.network = &net;
    rpc_call_reply(call, &resp.base);
    store_network_clear(&sn);
}

/* VMs whose config names the network (no network = the default one); by ID or name. */
static char **vms_attached(daemon_ctx *d, const char *net_name, bool names)
{
    store_vm *vms = NULL;
    size_t n = 0;
    char **out = NULL;
    if (store_vm_list(d->db, &vms, &n, NULL) < 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool uses = !vms[i].networks && strcmp(net_name, DEFAULT_NETWORK) == 0;
        for (char **p = vms[i].networks; p && *p; p++)
            uses = uses || strcmp(*p, net_name) == 0;
        if (uses)
            out = strv_append(out, names ? vms[i].name : vms[i].id);
    }
    store_vms_free(vms, n);
    return out;
}

char **netmgr_network_vms(daemon_ctx *d, const char *net_name)
{
    return vms_attached(d, net_name, false);
}

static char *vms_using(daemon_ctx *d, const char *net_name)
{
    _cleanup_strv_ char **names = vms_attached(d, net_name, true);
    _cleanup_buf_ hypr_buf b = {0};
    for (char **p = names; p && *p; p++)
        buf_printf(&b, "%s%s", b.len ? ", " : "", *p);
    return b.len ? buf_steal(&b) : NULL;
}

void api_delete_network(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__DeleteNetworkRequest *req = (Hypr__V1__DeleteNetworkRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    netmgr *m = mgr(d);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_network sn = {0};
    int r = store_network_find(d->db, req->id, &sn, &err);
    _cleanup_free_ char *users = r >= 0 ? vms_using(d, sn.name) : NULL;
    if (r >= 0 && strcmp(sn.name, DEFAULT_NETWORK) == 0)
        r = hypr_err(&err, HYPR_FAILED_PRECONDITION, EPERM,
                     "the default network %s cannot be removed", DEFAULT_NETWORK);
    else if (r >= 0 && users && !req->force)
        r = hypr_err(&err, HYPR_FAILED_PRECONDITION, EBUSY,
                     "network %s is in use by VM(s) %s: remove them first, or use force", sn.name,
                     users);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r >= 0)
        r = store_network_delete(d->db, sn.id, &err);
    if (r < 0) {
        store_network_clear(&sn);
        api_fail(call, &err);
        return;
    }
    for (network **p = &m->nets; *p; p = &(*p)->next) {
        if (strcmp((*p)->name, sn.name) == 0) {
            network *n = *p;
            *p = n->next;
            netmgr_dns_unlisten(n->name);
            if (m->enabled) {
                net_fw_network_remove(n->bridge, NULL);
                net_link_delete(n->bridge, NULL);
            }
            /* Its addresses go with it (a later network of that name starts empty). */
            store_ip_allocation *rows = NULL;
            size_t count = 0;
            if (store_ip_list(d->db, n->name, &rows, &count, NULL) == 0)
                for (size_t i = 0; i < count; i++)
                    store_ip_release(d->db, n->name, rows[i].address, NULL);
            store_ip_allocations_free(rows, count);
            network_free(n);
            break;
        }
    }
    char *attrs[] = {"name", sn.name, NULL};
    event_publish(d->events, "network.deleted", sn.id, NULL, attrs);
    Hypr__V1__DeleteNetworkResponse resp = HYPR__V1__DELETE_NETWORK_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
    store_network_clear(&sn);
}
