/* hypr's nftables rules through libnftables, all in the table `inet hypr`.
 *
 * Commands are nft's text syntax built from validated values only (interface names,
 * canonical addresses, numbers), so nothing a user typed reaches the parser
 * verbatim. Every rule carries a comment naming its owner; removal lists the table
 * as JSON with handles, picks the rules with that comment and deletes them by handle
 * in one transaction with whatever replaces them. */
#define LOG_MODULE "net"
#include "net/net.h"

#include <jansson.h>
#include <nftables/libnftables.h>
#include <string.h>

#define FW_FAMILY_TABLE "inet " NET_FW_TABLE

/* The base chains; `add` is a no-op for an existing identical chain, so every
 * transaction starts with these and works whether or not net_fw_init ran. */
static const char fw_base[] = "add table " FW_FAMILY_TABLE "\n"
                              "add chain " FW_FAMILY_TABLE " forward"
                              " { type filter hook forward priority filter; policy accept; }\n"
                              "add chain " FW_FAMILY_TABLE " prerouting"
                              " { type nat hook prerouting priority dstnat; policy accept; }\n"
                              "add chain " FW_FAMILY_TABLE " postrouting"
                              " { type nat hook postrouting priority srcnat; policy accept; }\n";

static void nft_ctx_freep(struct nft_ctx **p)
{
    if (*p)
        nft_ctx_free(*p);
}

static struct nft_ctx *fw_ctx(bool json)
{
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx)
        return NULL;
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    if (json)
        nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
    return ctx;
}

/* The first line of nft's error output, without the "Error: " prefix. */
static char *fw_error_text(struct nft_ctx *ctx)
{
    const char *e = nft_ctx_get_error_buffer(ctx);
    if (!e)
        return xstrdup("unknown nftables error");
    while (*e == '\n' || *e == ' ')
        e++;
    if (str_startswith(e, "netlink: "))
        e += strlen("netlink: ");
    if (str_startswith(e, "Error: "))
        e += strlen("Error: ");
    size_t n = strcspn(e, "\n");
    return n ? xstrndup(e, n) : xstrdup("unknown nftables error");
}

static hypr_status fw_status_for(const char *msg, int *errnum)
{
    if (strstr(msg, "Operation not permitted")) {
        *errnum = EPERM;
        return HYPR_PERMISSION_DENIED;
    }
    if (strstr(msg, "No such file or directory")) {
        *errnum = ENOENT;
        return HYPR_NOT_FOUND;
    }
    if (strstr(msg, "not supported") || strstr(msg, "Protocol not supported")) {
        *errnum = EOPNOTSUPP;
        return HYPR_FAILED_PRECONDITION;
    }
    *errnum = EIO;
    return HYPR_INTERNAL;
}

/* Runs cmds; on failure fills err with "<what>: <nft's message>". With out, the
 * output buffer is copied there. */
static int fw_run(const char *cmds, bool json, char **out, const char *what, hypr_error *err)
{
    _cleanup_(nft_ctx_freep) struct nft_ctx *ctx = fw_ctx(json);
    if (!ctx)
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "%s: cannot create nftables context", what);
    log_trace("nft: %s", cmds);
    if (nft_run_cmd_from_buffer(ctx, cmds) != 0) {
        _cleanup_free_ char *msg = fw_error_text(ctx);
        int errnum;
        hypr_status st = fw_status_for(msg, &errnum);
        return hypr_err(err, st, errnum, "%s: %s", what, msg);
    }
    if (out) {
        const char *o = nft_ctx_get_output_buffer(ctx);
        *out = xstrdup(o ? o : "");
    }
    return 0;
}

/* Appends "delete rule" commands for every rule of the table whose comment is tag.
 * A missing table has no rules. */
static int fw_collect_deletes(const char *tag, hypr_buf *cmds, size_t *count, hypr_error *err)
{
    *count = 0;
    _cleanup_free_ char *out = NULL;
    _cleanup_error_ hypr_error lerr = HYPR_ERROR_INIT;
    int r = fw_run("list table " FW_FAMILY_TABLE, true, &out, "list table " FW_FAMILY_TABLE, &lerr);
    if (r < 0) {
        if (lerr.status == HYPR_NOT_FOUND)
            return 0;
        return hypr_err(err, lerr.status, lerr.errnum, "%s", lerr.message);
    }
    json_error_t jerr;
    json_t *root = json_loads(out, 0, &jerr);
    if (!root)
        return hypr_err(err, HYPR_INTERNAL, EIO, "list table %s: unreadable JSON: %s",
                        FW_FAMILY_TABLE, jerr.text);
    json_t *items = json_object_get(root, "nftables");
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        json_t *rule = json_object_get(item, "rule");
        if (!rule)
            continue;
        const char *comment = json_string_value(json_object_get(rule, "comment"));
        const char *chain = json_string_value(json_object_get(rule, "chain"));
        json_t *handle = json_object_get(rule, "handle");
        if (!comment || !chain || !json_is_integer(handle) || strcmp(comment, tag) != 0)
            continue;
        if (!net_ifname_is_valid(chain)) /* our chain names are simple words */
            continue;
        buf_printf(cmds, "delete rule %s %s handle %" PRId64 "\n", FW_FAMILY_TABLE, chain,
                   (int64_t)json_integer_value(handle));
        (*count)++;
    }
    json_decref(root);
    return 0;
}

int net_fw_init(hypr_error *err)
{
    _cleanup_buf_ hypr_buf cmds = {0};
    /* add + delete: the delete cannot fail on a missing table; all one transaction. */
    buf_puts(&cmds, "add table " FW_FAMILY_TABLE "\n");
    buf_puts(&cmds, "delete table " FW_FAMILY_TABLE "\n");
    buf_puts(&cmds, fw_base);
    int r = fw_run(cmds.data, false, NULL, "create table " FW_FAMILY_TABLE, err);
    if (r < 0)
        return r;
    log_debug("nftables table %s ready", FW_FAMILY_TABLE);
    return 0;
}

static char *network_tag(const char *bridge)
{
    return xasprintf("hypr-net %s", bridge);
}

int net_fw_network_add(const char *bridge, const char *subnet, bool internal, hypr_error *err)
{
    if (!net_ifname_is_valid(bridge))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "firewall: invalid bridge name \"%s\"",
                        bridge ? bridge : "");
    net_subnet sn;
    int r = net_subnet_parse(subnet, &sn, err);
    if (r < 0)
        return hypr_err_prefix(err, "firewall rules for %s", bridge);
    char cidr[NET_CIDR_STRLEN];
    net_subnet_format(&sn, cidr);

    _cleanup_free_ char *tag = network_tag(bridge);
    _cleanup_buf_ hypr_buf cmds = {0};
    buf_puts(&cmds, fw_base);
    size_t old = 0;
    r = fw_collect_deletes(tag, &cmds, &old, err);
    if (r < 0)
        return hypr_err_prefix(err, "firewall rules for %s", bridge);

    /* Isolation: never forward between two different hypr bridges. */
    buf_printf(&cmds,
               "add rule %s forward iifname \"%s\" oifname \"%s*\" oifname != \"%s\" drop"
               " comment \"%s\"\n",
               FW_FAMILY_TABLE, bridge, NET_BRIDGE_PREFIX, bridge, tag);
    if (internal) {
        buf_printf(&cmds,
                   "add rule %s forward iifname \"%s\" oifname != \"%s\" drop comment \"%s\"\n",
                   FW_FAMILY_TABLE, bridge, bridge, tag);
        buf_printf(&cmds,
                   "add rule %s forward oifname \"%s\" iifname != \"%s\" drop comment \"%s\"\n",
                   FW_FAMILY_TABLE, bridge, bridge, tag);
    } else {
        buf_printf(&cmds,
                   "add rule %s postrouting ip saddr %s oifname != \"%s\" masquerade"
                   " comment \"%s\"\n",
                   FW_FAMILY_TABLE, cidr, bridge, tag);
    }
    _cleanup_free_ char *what = xasprintf("add firewall rules for %s (%s)", bridge, cidr);
    r = fw_run(cmds.data, false, NULL, what, err);
    if (r < 0)
        return r;
    log_debug("firewall: network %s %s%s (replaced %zu rules)", bridge, cidr,
              internal ? " internal" : "", old);
    return 0;
}

int net_fw_network_remove(const char *bridge, hypr_error *err)
{
    if (!net_ifname_is_valid(bridge))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "firewall: invalid bridge name \"%s\"",
                        bridge ? bridge : "");
    _cleanup_free_ char *tag = network_tag(bridge);
    _cleanup_buf_ hypr_buf cmds = {0};
    size_t n = 0;
    int r = fw_collect_deletes(tag, &cmds, &n, err);
    if (r < 0)
        return hypr_err_prefix(err, "remove firewall rules for %s", bridge);
    if (n == 0)
        return 0;
    _cleanup_free_ char *what = xasprintf("remove firewall rules for %s", bridge);
    return fw_run(cmds.data, false, NULL, what, err);
}

/* Validates a DNAT and returns its tag ("hypr-dnat tcp 0.0.0.0:8080 10.88.0.2:80"). */
static int dnat_tag(const char *proto, const char *host_ip, uint16_t host_port,
                    const char *guest_ip, uint16_t guest_port, char **tag, hypr_error *err)
{
    *tag = NULL;
    if (!proto || (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "port forward: invalid protocol \"%s\" (want tcp or udp)",
                        proto ? proto : "");
    uint32_t h, g;
    if (!host_ip || net_ip4_parse(host_ip, &h) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "port forward: invalid host address \"%s\"", host_ip ? host_ip : "");
    if (!guest_ip || net_ip4_parse(guest_ip, &g) < 0 || g == 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "port forward: invalid guest address \"%s\"", guest_ip ? guest_ip : "");
    if (host_port == 0 || guest_port == 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "port forward: ports must be 1-65535");
    char hs[NET_IP4_STRLEN], gs[NET_IP4_STRLEN];
    net_ip4_format(h, hs);
    net_ip4_format(g, gs);
    *tag = xasprintf("hypr-dnat %s %s:%u %s:%u", proto, hs, (unsigned)host_port, gs,
                     (unsigned)guest_port);
    return 0;
}

int net_fw_dnat_add(const char *proto, const char *host_ip, uint16_t host_port,
                    const char *guest_ip, uint16_t guest_port, hypr_error *err)
{
    _cleanup_free_ char *tag = NULL;
    int r = dnat_tag(proto, host_ip, host_port, guest_ip, guest_port, &tag, err);
    if (r < 0)
        return r;
    uint32_t h, g;
    net_ip4_parse(host_ip, &h);
    net_ip4_parse(guest_ip, &g);
    char hs[NET_IP4_STRLEN], gs[NET_IP4_STRLEN];
    net_ip4_format(h, hs);
    net_ip4_format(g, gs);

    _cleanup_buf_ hypr_buf cmds = {0};
    buf_puts(&cmds, fw_base);
    size_t old = 0;
    r = fw_collect_deletes(tag, &cmds, &old, err);
    if (r < 0)
        return hypr_err_prefix(err, "port forward %s:%u", hs, (unsigned)host_port);
    _cleanup_free_ char *match =
        h == 0 ? xstrdup("meta nfproto ipv4 fib daddr type local") : xasprintf("ip daddr %s", hs);
    buf_printf(&cmds, "add rule %s prerouting %s %s dport %u dnat ip to %s:%u comment \"%s\"\n",
               FW_FAMILY_TABLE, match, proto, (unsigned)host_port, gs, (unsigned)guest_port, tag);
    _cleanup_free_ char *what = xasprintf("add port forward %s:%u/%s -> %s:%u", hs,
                                          (unsigned)host_port, proto, gs, (unsigned)guest_port);
    return fw_run(cmds.data, false, NULL, what, err);
}

int net_fw_dnat_remove(const char *proto, const char *host_ip, uint16_t host_port,
                       const char *guest_ip, uint16_t guest_port, hypr_error *err)
{
    _cleanup_free_ char *tag = NULL;
    int r = dnat_tag(proto, host_ip, host_port, guest_ip, guest_port, &tag, err);
    if (r < 0)
        return r;
    _cleanup_buf_ hypr_buf cmds = {0};
    size_t n = 0;
    r = fw_collect_deletes(tag, &cmds, &n, err);
    if (r < 0)
        return hypr_err_prefix(err, "remove port forward");
    if (n == 0)
        return 0;
    return fw_run(cmds.data, false, NULL, "remove port forward", err);
}

int net_fw_dump(char **text, hypr_error *err)
{
    *text = NULL;
    return fw_run("list table " FW_FAMILY_TABLE, false, text, "list table " FW_FAMILY_TABLE, err);
}
