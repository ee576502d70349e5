/* hypr net module: IPv4 address management (IPAM) and the `.hypr` DNS codec and name
 * table. Bridges, TAPs, nftables and the DNS/proxy servers build on these.
 * Functions return 0 or a negative errno and fill err where given. Nothing here is
 * thread-safe: the daemon's loop owns each object. */
#ifndef HYPR_NET_H
#define HYPR_NET_H

#include "common/common.h"
#include "state/state.h"

/* ---- IPv4 addresses and subnets (addresses in host byte order) ---------- */

#define NET_IP4_STRLEN  16 /* "255.255.255.255" + NUL */
#define NET_CIDR_STRLEN 19 /* "255.255.255.255/32" + NUL */

/* Strict dotted quad: four decimal octets 0..255, no leading zeros, nothing else. */
int net_ip4_parse(const char *s, uint32_t *out);
void net_ip4_format(uint32_t addr, char out[NET_IP4_STRLEN]);

typedef struct net_subnet {
    uint32_t network; /* host bits zero */
    int prefix;       /* NET_PREFIX_MIN..NET_PREFIX_MAX */
} net_subnet;

#define NET_PREFIX_MIN 8
#define NET_PREFIX_MAX 30

/* "10.88.0.0/16". INVALID_ARGUMENT with "invalid subnet \"...\": <reason>" for a bad
 * address, a prefix outside 8..30 or host bits set. */
int net_subnet_parse(const char *cidr, net_subnet *out, hypr_error *err);
void net_subnet_format(const net_subnet *sn, char out[NET_CIDR_STRLEN]);
uint32_t net_subnet_mask(const net_subnet *sn);
uint32_t net_subnet_broadcast(const net_subnet *sn);
/* The default gateway: the first host address. */
uint32_t net_subnet_first_host(const net_subnet *sn);
bool net_subnet_contains(const net_subnet *sn, uint32_t addr);
/* Whether the two address ranges share any address. */
bool ipam_subnets_overlap(const net_subnet *a, const net_subnet *b);
/* Picks the lowest /16 from 10.89.0.0/16 up to 10.255.0.0/16 that overlaps none of
 * existing[0..n); RESOURCE_EXHAUSTED when all are taken. */
int ipam_pick_subnet(const net_subnet *existing, size_t n, net_subnet *out, hypr_error *err);

/* ---- IPAM: one per network ----------------------------------------------- */

/* A bitmap over the subnet plus a summary bitmap of full 64-address words and a
 * hint: allocation of the lowest free address reads one summary word per 4,096
 * addresses skipped (16 for a whole /16), release and lookups are O(1). The
 * network, gateway and broadcast addresses are never handed out. With a store,
 * the network's rows in ip_allocations are loaded at creation and every change is
 * written through (store first, then the bitmap). */
typedef struct ipam ipam;

/* network: the key of the network's rows in the store (its name). gateway: NULL for
 * the subnet's first host address, else an address inside the subnet that is
 * neither the network nor the broadcast address. st may be NULL (in memory only). */
int ipam_new(const char *network, const char *subnet, const char *gateway, store *st, ipam **out,
             hypr_error *err);
void ipam_free(ipam *ip);
DEFINE_CLEANUP_FUNC(ipam, ipam_free)

/* requested NULL/"": the lowest free address; else that address: INVALID_ARGUMENT
 * when outside the subnet or reserved, ALREADY_EXISTS when taken. Exhausted:
 * RESOURCE_EXHAUSTED "no free address in 10.88.0.0/16". vm_id may be NULL (a
 * reservation that belongs to no VM). */
int ipam_allocate(ipam *ip, const char *vm_id, const char *requested, uint32_t *out,
                  hypr_error *err);
/* NOT_FOUND when the address is not allocated. */
int ipam_release(ipam *ip, uint32_t addr, hypr_error *err);
/* Releases every address of vm_id in this network (none is not an error). */
int ipam_release_vm(ipam *ip, const char *vm_id, hypr_error *err);
bool ipam_is_allocated(const ipam *ip, uint32_t addr);
const net_subnet *ipam_subnet(const ipam *ip);
uint32_t ipam_gateway(const ipam *ip);
const char *ipam_network(const ipam *ip);
/* Addresses handed out / that can be handed out in total (excluding reserved). */
size_t ipam_used(const ipam *ip);
size_t ipam_capacity(const ipam *ip);

/* ---- DNS wire format ----------------------------------------------------- */

#define DNS_HEADER_LEN    12
#define DNS_MAX_NAME_WIRE 255 /* octets, including length bytes and the root */
#define DNS_MAX_LABEL     63
#define DNS_MIN_UDP_SIZE  512
/* The payload size hypr advertises in its OPT record (DNS flag day 2020). */
#define DNS_SERVER_UDP_SIZE 1232
#define DNS_TCP_MAX_SIZE    65535

enum {
    DNS_TYPE_A = 1,
    DNS_TYPE_NS = 2,
    DNS_TYPE_CNAME = 5,
    DNS_TYPE_SOA = 6,
    DNS_TYPE_PTR = 12,
    DNS_TYPE_AAAA = 28,
    DNS_TYPE_OPT = 41,
    DNS_TYPE_ANY = 255,
    DNS_CLASS_IN = 1,
};

enum {
    DNS_OPCODE_QUERY = 0,
};

enum {
    DNS_RCODE_NOERROR = 0,
    DNS_RCODE_FORMERR = 1,
    DNS_RCODE_SERVFAIL = 2,
    DNS_RCODE_NXDOMAIN = 3,
    DNS_RCODE_NOTIMP = 4,
    DNS_RCODE_REFUSED = 5,
    DNS_RCODE_BADVERS = 16, /* extended: needs an OPT record */
};

typedef struct dns_query {
    /* Set once the 12-byte header was read and QR is 0: enough to send an error
     * response (FORMERR, NOTIMP) even when the rest failed to parse. */
    bool have_header;
    uint16_t id;
    uint8_t opcode;
    bool rd; /* recursion desired, echoed */
    bool cd; /* checking disabled, echoed */
    /* Question (when opcode is QUERY and parsing succeeded). */
    char *qname;         /* presentation form, no trailing dot ("" = root); bytes
                          * outside [!-~] and '.' '\\' inside labels as \DDD */
    uint8_t *qname_wire; /* uncompressed, case as received (echoed in responses) */
    size_t qname_wire_len;
    uint16_t qtype, qclass;
    /* EDNS0 */
    bool edns;
    uint8_t edns_version;
    bool edns_do;
    uint16_t udp_size; /* the client's limit: 512 without EDNS0, at least 512 with */
} dns_query;

void dns_query_clear(dns_query *q);

/* Parses a query. -EINVAL with err set for anything malformed (short header, QR set,
 * QDCOUNT != 1, bad or looping compression pointers, labels > 63, names > 255,
 * truncated records, several OPT records, trailing bytes); q->have_header tells
 * whether a FORMERR response can be sent. A query whose opcode is not QUERY parses
 * (header only) so that it can be answered NOTIMP. */
int dns_query_parse(const uint8_t *pkt, size_t len, dns_query *q, hypr_error *err);

/* The largest response the client accepts over UDP, capped at what hypr advertises. */
size_t dns_query_max_udp(const dns_query *q);

typedef struct dns_rr {
    uint16_t type; /* DNS_TYPE_A or DNS_TYPE_PTR */
    uint32_t ttl;
    uint32_t a;      /* DNS_TYPE_A: the address */
    const char *ptr; /* DNS_TYPE_PTR: the target name in presentation form */
} dns_rr;

/* Builds a response to q into out (replacing its contents): the header (id, opcode,
 * RD, CD echoed; QR, AA and RA set), the question echoed, answers owned by the
 * question name, and an OPT record when the query had one. When it would exceed
 * max_size the answers are left out and TC is set. rcode may be extended
 * (BADVERS). -EINVAL for an rr that cannot be encoded. */
int dns_build_response(const dns_query *q, int rcode, const dns_rr *answers, size_t n,
                       size_t max_size, hypr_buf *out, hypr_error *err);
/* An error response (FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED) without answers. */
int dns_build_error(const dns_query *q, int rcode, size_t max_size, hypr_buf *out);

/* Parses "4.3.2.1.in-addr.arpa" (case-insensitive) into 1.2.3.4; -EINVAL otherwise. */
int dns_ptr_name_parse(const char *name, uint32_t *out);
/* "4.3.2.1.in-addr.arpa" for 1.2.3.4; caller frees. */
char *dns_ptr_name(uint32_t addr);

/* ---- the name table ------------------------------------------------------ */

#define DNS_DOMAIN "hypr"

/* (network, name) -> IPv4: answers `<name>.hypr` and plain `<name>`, and reverse
 * lookups. Names are case-insensitive; network keys are exact. */
typedef struct dns_table dns_table;

dns_table *dns_table_new(void);
void dns_table_free(dns_table *t);
DEFINE_CLEANUP_FUNC(dns_table, dns_table_free)
/* Adds or replaces the address of name in network. INVALID_ARGUMENT for an invalid
 * name (see name_is_valid) or empty network. */
int dns_table_add(dns_table *t, const char *network, const char *name, uint32_t addr,
                  hypr_error *err);
/* -ENOENT when absent. */
int dns_table_remove(dns_table *t, const char *network, const char *name);
/* qname: "web", "web.hypr", "WEB.Hypr." in network (NULL = any network; the first
 * added wins). -ENOENT when absent. */
int dns_table_lookup(const dns_table *t, const char *network, const char *qname, uint32_t *out);
/* The name (as added) owning addr in network (NULL = any); -ENOENT when none. */
int dns_table_reverse(const dns_table *t, const char *network, uint32_t addr, const char **name);
/* The networks whose names a client at address `client` on `network` sees: network
 * itself first, then the other networks of the VM that owns that address there (a VM
 * on several networks resolves the names of each). Fills up to max entries of out
 * and returns how many; {NULL} (any network) when network is NULL. */
#define DNS_SCOPE_MAX 9
size_t dns_table_scope(const dns_table *t, const char *network, uint32_t client, const char **out,
                       size_t max);
size_t dns_table_count(const dns_table *t);

/* What dns_answer did. */
typedef enum dns_disposition {
    DNS_ANSWERED, /* out holds a response to send */
    DNS_FORWARD,  /* not a hypr name: forward to the host's resolvers */
    DNS_DROP,     /* nothing can be sent (no readable header) */
} dns_disposition;

/* Answers one packet from the table for a client (IPv4 address, 0 = unknown) on
 * network (NULL = any network), in the client's scope (dns_table_scope):
 * A for known names (plain or .hypr), NODATA for other types of known names, PTR
 * for known addresses, NXDOMAIN for unknown .hypr names, FORMERR for malformed
 * queries with a header, NOTIMP for other opcodes, REFUSED for non-IN classes,
 * BADVERS for EDNS versions above 0. Names outside .hypr and unknown in-addr.arpa
 * names are DNS_FORWARD. tcp: the response may use up to 65535 bytes. */
dns_disposition dns_answer(const dns_table *t, const char *network, uint32_t client,
                           const uint8_t *pkt, size_t len, bool tcp, uint32_t ttl, hypr_buf *out);

/* ---- port-forward proxy (proxy.c) ---- */

#include <uv.h>

/* One published port: host_ip:host_port/protocol -> target_ip:target_port. The
 * strings are copied by net_proxy_start. */
typedef struct net_forward {
    const char *protocol;  /* "tcp" or "udp" */
    const char *host_ip;   /* "127.0.0.1", "0.0.0.0", "::1", ... */
    uint16_t host_port;    /* 0 = an ephemeral port (see net_proxy_port) */
    const char *target_ip; /* the guest's address */
    uint16_t target_port;
} net_forward;

/* A userspace forwarder on the daemon's loop. TCP: each accepted connection gets
 * its own connection to the target, relayed both ways with backpressure and
 * half-close. UDP: one host socket; per client address a flow with its own socket
 * connected to the target, expiring when idle. Loop thread only. */
typedef struct net_proxy net_proxy;

#define NET_PROXY_HIGH_WATER    (256 * 1024) /* stop reading a side above this */
#define NET_PROXY_LOW_WATER     (64 * 1024)  /* resume below this */
#define NET_PROXY_UDP_MAX_FLOWS 4096
#define NET_PROXY_UDP_IDLE_MS   60000
#define NET_PROXY_MAX_TCP_CONNS 16384

/* Binds the host side now, so a taken port is reported before a VM boots:
 * FAILED_PRECONDITION "host port 127.0.0.1:8080/tcp is already in use";
 * INVALID_ARGUMENT for a bad protocol or address; PERMISSION_DENIED for a
 * privileged port without the right. */
int net_proxy_start(uv_loop_t *loop, const net_forward *fwd, net_proxy **out, hypr_error *err);
/* Closes the listener and every connection or flow; the proxy frees itself once
 * all its handles are closed (the loop must keep running). NULL is a no-op. */
void net_proxy_stop(net_proxy *p);
/* Open TCP connections plus live UDP flows. */
size_t net_proxy_connections(const net_proxy *p);
/* The bound host port (useful when host_port was 0). */
uint16_t net_proxy_port(const net_proxy *p);
/* Idle timeout of UDP flows (default NET_PROXY_UDP_IDLE_MS); for tests. */
void net_proxy_set_udp_idle(net_proxy *p, uint64_t ms);

/* Debug counters: bytes accepted for writing but not yet written, now and at peak
 * (over all connections), and bytes relayed in total. */
typedef struct net_proxy_stats {
    size_t queued;
    size_t queued_peak;
    uint64_t bytes_relayed;
    uint64_t udp_dropped;
} net_proxy_stats;
void net_proxy_get_stats(const net_proxy *p, net_proxy_stats *out);

/* ---- end port-forward proxy ---- */

/* ---- links (link.c) ---- */

/* Bridges, persistent TAPs and addresses over rtnetlink, in the caller's network
 * namespace. Errors name the operation and the device ("create bridge vbr0:
 * Operation not permitted"); invalid names are INVALID_ARGUMENT. */

#define NET_IFNAME_LEN    16 /* IFNAMSIZ, NUL included */
#define NET_MAC_STRLEN    18 /* "02:xx:xx:xx:xx:xx" + NUL */
#define NET_TAP_PREFIX    "htap"
#define NET_TAP_ID_CHARS  11
#define NET_MAX_NICS      8 /* network interfaces per VM */
#define NET_BRIDGE_PREFIX "vbr"

typedef struct net_link_info {
    char name[NET_IFNAME_LEN];
    int index;
    int master;     /* ifindex of the master (bridge), 0 when none */
    unsigned flags; /* IFF_* */
    bool up;
    char kind[16]; /* "bridge", "tun", "veth", ... ("" when the kernel reports none) */
} net_link_info;

/* 1..15 characters of [A-Za-z0-9_.-] (stricter than the kernel: also safe in nft). */
bool net_ifname_is_valid(const char *name);
/* Creates the bridge when missing, adds gateway_cidr ("10.88.0.1/16"; NULL = none;
 * an existing identical address is fine), gives it the MAC net_mac_for_bridge (so it
 * does not follow its ports' MACs as TAPs come and go) and brings it up.
 * FAILED_PRECONDITION when name exists but is not a bridge. */
int net_bridge_ensure(const char *name, const char *gateway_cidr, hypr_error *err);
/* Creates a persistent TAP (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) when missing, attaches it
 * to bridge and brings it up; qemu opens it with -netdev tap,ifname=NAME,script=no,
 * downscript=no. NOT_FOUND when the bridge is missing; a TAP created here is removed
 * again when attaching fails. */
int net_tap_create(const char *name, const char *bridge, hypr_error *err);
/* Removes a link; an absent link is not an error. */
int net_link_delete(const char *name, hypr_error *err);
/* Drops dev's neighbour (ARP) entry for addr (host order): an address handed to a
 * new VM must not keep reaching the MAC of the VM that had it before. */
int net_neigh_forget(const char *dev, uint32_t addr);
bool net_link_exists(const char *name);
/* NOT_FOUND when absent. */
int net_link_get(const char *name, net_link_info *out, hypr_error *err);
/* Sorted NULL-terminated vector (never NULL on success) of link names starting with
 * prefix ("htap", "vbr"); free with strv_free. */
int net_link_list_prefix(const char *prefix, char ***names, hypr_error *err);
/* The IPv4 addresses of a link as "10.88.0.1/16" (NULL-terminated; strv_free). */
int net_addr_list(const char *name, char ***cidrs, hypr_error *err);
/* The TAP of a VM's NIC: "htap" + the first 11 characters of the id for NIC 0; NIC
 * 1.. ends in 'g', 'h', ... instead of the 11th. -EINVAL unless those characters are
 * lowercase hex, or for index >= NET_MAX_NICS. */
int net_tap_name(const char *vm_id, unsigned index, char out[NET_IFNAME_LEN]);
/* A stable locally administered unicast MAC "02:xx:xx:xx:xx:xx" hashed from the id
 * and the NIC index; -EINVAL for an empty id or index >= NET_MAX_NICS. */
int net_mac_for_vm(const char *vm_id, unsigned index, char out[NET_MAC_STRLEN]);
/* A bridge's (the gateway's) MAC "06:xx:xx:xx:xx:xx" hashed from its name: stable
 * across restarts, never a VM's; -EINVAL for an empty name. */
int net_mac_for_bridge(const char *bridge, char out[NET_MAC_STRLEN]);
/* Writes 1 to /proc/sys/net/ipv4/ip_forward (of the caller's network namespace). */
int net_ip_forward_enable(hypr_error *err);

/* ---- firewall (firewall.c) ---- */

/* nftables rules in hypr's own table `inet hypr` (no other table is touched):
 * base chains forward (filter, accept), prerouting and postrouting (nat). Each rule
 * carries a comment naming what it belongs to ("hypr-net vbr0", "hypr-dnat ..."),
 * which is how removal finds exactly its rules. */

#define NET_FW_TABLE "hypr"

/* (Re)creates the table with empty base chains, dropping every earlier rule: call at
 * daemon start, then add the networks and forwards back. */
int net_fw_init(hypr_error *err);
/* Rules for one network (replacing earlier ones for the bridge): isolation (traffic
 * from bridge to another vbr* bridge is dropped), masquerade for traffic from subnet
 * leaving through another interface unless internal; internal networks drop all
 * forwarding into and out of the bridge. */
int net_fw_network_add(const char *bridge, const char *subnet, bool internal, hypr_error *err);
/* Removes the network's rules; none is not an error. */
int net_fw_network_remove(const char *bridge, hypr_error *err);
/* Prerouting DNAT of proto ("tcp"/"udp") host_ip:host_port to guest_ip:guest_port for
 * traffic from other hosts (host_ip "0.0.0.0" = any local address). Idempotent. */
int net_fw_dnat_add(const char *proto, const char *host_ip, uint16_t host_port,
                    const char *guest_ip, uint16_t guest_port, hypr_error *err);
/* Removes that DNAT; none is not an error. */
int net_fw_dnat_remove(const char *proto, const char *host_ip, uint16_t host_port,
                       const char *guest_ip, uint16_t guest_port, hypr_error *err);
/* The table as `nft list table inet hypr` prints it (caller frees); NOT_FOUND when
 * the table does not exist. */
int net_fw_dump(char **text, hypr_error *err);

#endif
