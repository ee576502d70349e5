/* The daemon's network manager: networks (bridges, IPAM, firewall rules), the
 * per-VM attachments (TAP, address, port forwards, DNS names) and the .hypr DNS
 * server. Internal to src/daemon. */
#ifndef HYPR_DAEMON_NETMGR_H
#define HYPR_DAEMON_NETMGR_H

#include "daemon.h"
#include "net/net.h"

#include "hypr.pb-c.h"

typedef struct netmgr netmgr;
typedef struct vm_net vm_net;

/* Ensures the default network `bridge` (vbr0, 10.88.0.0/16) and the devices and
 * rules of every stored network; starts the DNS server. Without the rights to
 * touch links, networking is off and VMs boot without a NIC (one warning). */
int netmgr_init(daemon_ctx *d, hypr_error *err);
void netmgr_free(daemon_ctx *d);
/* The DNS server (netmgr_dns.c, on d->dns): loopback on dns_port, port 53 on each
 * gateway. A port it cannot take costs name resolution there, not the daemon: it
 * is logged, once, and the server goes on without it. */
void netmgr_dns_start(daemon_ctx *d, dns_table *table, const char *const *gateways,
                      const char *const *networks, size_t n);
/* One more listener (a new network's gateway, port 53); network scopes plain names. */
int netmgr_dns_listen(daemon_ctx *d, const char *ip, int port, const char *network,
                      hypr_error *err);
/* Closes the listeners of a removed network. */
void netmgr_dns_unlisten(daemon_ctx *d, const char *network);
/* Closes the DNS server's sockets (on the loop, at shutdown) and frees it. */
void netmgr_dns_stop(daemon_ctx *d);

/* ---- networks ---------------------------------------------------------------- */

typedef struct netmgr_network_spec {
    const char *name;
    const char *driver;  /* empty or "bridge" */
    const char *subnet;  /* CIDR; empty = the next free one */
    const char *gateway; /* empty = the subnet's first address */
    bool internal;       /* no route out */
    const char *labels;  /* JSON object text, may be NULL */
} netmgr_network_spec;

/* Creates a network: its record, bridge, rules, address pool and DNS listener.
 * out receives the stored record. */
int netmgr_network_create(daemon_ctx *d, const netmgr_network_spec *spec, store_network *out,
                          hypr_error *err);
/* Removes a network (ID, prefix or name); one in use by VMs only with force, when
 * its running VMs lose their NIC on it. out receives the removed record. */
int netmgr_network_remove(daemon_ctx *d, const char *ref, bool force, store_network *out,
                          hypr_error *err);
/* The VMs whose config names the network (none named = the default one), as IDs
 * or names; *out NULL when there are none. */
int netmgr_network_vms(daemon_ctx *d, const char *net_name, bool names, char ***out,
                       hypr_error *err);

/* What one NIC of a VM's attachment gives the boot. */
typedef struct vm_nic_boot {
    char tap[NET_IFNAME_LEN];
    char mac[NET_MAC_STRLEN];
    char ip[NET_IP4_STRLEN];
    char ip_cidr[NET_CIDR_STRLEN + 1]; /* "10.88.0.2/16" */
    char gateway[NET_IP4_STRLEN];
} vm_nic_boot;

/* One NIC per network the VM joins, in the config's order; none when networking is off. */
typedef struct vm_net_boot {
    vm_nic_boot nics[NET_MAX_NICS];
    size_t n_nics;
} vm_net_boot;

/* The networks a VM config names exist, each once, at most NET_MAX_NICS of them
 * (NOT_FOUND / INVALID_ARGUMENT naming the network otherwise). */
int netmgr_check_networks(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, hypr_error *err);
/* Attaches a VM before its hypervisor starts: on each of its networks (the default
 * one when it names none) an address (kept across restarts until the VM is deleted)
 * and a TAP on the bridge; its published ports are bound to the first network's
 * address (a taken host port fails here, before the boot). */
int netmgr_vm_attach(daemon_ctx *d, const char *vm_id, const Hypr__V1__VMConfig *cfg, vm_net **out,
                     vm_net_boot *boot, hypr_error *err);
/* The same for a re-adopted VM, whose hypervisor already holds its TAPs: they are
 * kept (created only when gone); addresses, forwards and rules are taken again. */
int netmgr_vm_adopt(daemon_ctx *d, const char *vm_id, const Hypr__V1__VMConfig *cfg, vm_net **out,
                    vm_net_boot *boot, hypr_error *err);
/* hyprd shuts down and the VM runs on: forwards close, TAPs stay. Frees n. */
void netmgr_vm_release(daemon_ctx *d, vm_net *n);
/* TAPs of no attached VM go (those of VMs that died with an earlier hyprd). Run
 * after the VMs that outlived it were re-adopted. */
void netmgr_remove_stale_taps(daemon_ctx *d);
/* The VM is up: its name resolves on each of its networks. */
void netmgr_vm_running(daemon_ctx *d, vm_net *n, const char *name);
/* The TAP of the VM's NIC i (i < the count returned when tap is NULL), for metrics. */
size_t netmgr_vm_tap(const vm_net *n, size_t i, const char **tap);
/* A running VM was renamed: the old name stops resolving, the new one starts. */
void netmgr_vm_renamed(daemon_ctx *d, const char *vm_id, const char *name);
/* The VM stopped: forwards closed, TAPs removed, names gone. Frees n. */
void netmgr_vm_detach(daemon_ctx *d, vm_net *n);
/* The running VM's NICs for the API (network, address, MAC, gateway): a malloc'd
 * array of n (the return value) elements, each one malloc'd block; NULL/0 without. */
int netmgr_vm_attachments(const vm_net *v, Hypr__V1__NetworkAttachment ***out);
/* The VM was deleted: its addresses go back to the pools. */
void netmgr_vm_deleted(daemon_ctx *d, const char *vm_id);

#endif
