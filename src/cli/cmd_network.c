/* hypr network: ls, create, rm, inspect, prune. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <arpa/inet.h>
#include <string.h>

#define DEFAULT_NETWORK "bridge"

/* Docker's Containers of network inspect: {ID: {Name, MacAddress, IPv4Address}} of the
 * VMs attached now (asked of hyprd: only inspect passes the context). */
static json_t *containers_json(const Hypr__V1__Network *n, cli_ctx *ctx)
{
    json_t *out = json_object();
    for (size_t i = 0; ctx && i < n->n_vm_ids; i++) {
        _cleanup_pb_ Hypr__V1__GetVMResponse *resp = NULL;
        Hypr__V1__GetVMRequest req = HYPR__V1__GET_VMREQUEST__INIT;
        req.id = n->vm_ids[i];
        if (cli_unary(ctx, RPC_METHOD("GetVM"), &req, &hypr__v1__get_vmresponse__descriptor,
                      &resp) < 0 ||
            !resp->vm)
            continue;
        for (size_t j = 0; j < resp->vm->n_networks; j++) {
            const Hypr__V1__NetworkAttachment *a = resp->vm->networks[j];
            if (strcmp(a->network, n->name) != 0)
                continue;
            _cleanup_free_ char *cidr = xasprintf("%s/%d", a->ip_address, a->prefix_len);
            json_object_set_new(out, resp->vm->id,
                                json_pack("{s:s, s:s, s:s, s:s}", "Name", resp->vm->name,
                                          "MacAddress", a->mac_address, "IPv4Address", cidr,
                                          "IPv6Address", ""));
        }
    }
    return out;
}

static json_t *network_json(const void *item, const cli_view_opts *vo)
{
    const Hypr__V1__Network *n = item;
    json_t *config = json_array();
    if (!str_empty(n->subnet) || !str_empty(n->gateway))
        json_array_append_new(config,
                              json_pack("{s:s, s:s}", "Subnet", n->subnet, "Gateway", n->gateway));
    json_t *o = json_object();
    json_object_set_new(o, "Name", json_string(n->name));
    json_object_set_new(o, "Id", json_string(n->id));
    json_object_set_new(o, "Created", json_time(n->created_at));
    json_object_set_new(o, "Scope", json_string("local"));
    json_object_set_new(o, "Driver", json_string(str_empty(n->driver) ? "bridge" : n->driver));
    json_object_set_new(o, "IPAM", json_pack("{s:s, s:o}", "Driver", "default", "Config", config));
    json_object_set_new(o, "Internal", json_boolean(n->internal));
    json_object_set_new(o, "Bridge", json_string(n->bridge));
    json_object_set_new(o, "VMs", json_from_strv(n->vm_ids, n->n_vm_ids));
    if (vo->ctx)
        json_object_set_new(o, "Containers", containers_json(n, vo->ctx));
    json_object_set_new(o, "Labels", JSON_MAP(n, labels));
    return o;
}

static const char json_keys[] = "JSON keys: Name, Id, Created, Scope, Driver, IPAM{Driver, "
                                "Config[{Subnet, Gateway}]},\nInternal, Bridge, VMs, "
                                "Containers{ID: {Name, MacAddress, IPv4Address}}, Labels.";

static const cli_resource network_resource = {
    .get_rpc = "GetNetwork",
    .delete_rpc = "DeleteNetwork",
    .list_rpc = "ListNetworks",
    .ref_field = "id",
    .item_field = "network",
    .list_field = "networks",
    .noun = "NETWORK",
    .inspect_json = network_json,
    .inspect_help = "Display detailed information on one or more networks (a JSON array)",
    .inspect_notes = json_keys,
    .rm_help = "Remove one or more networks",
    .force_help = "Force the removal of a network",
};

static void network_ls_row(cli_table *t, const void *item, const cli_view_opts *o)
{
    const Hypr__V1__Network *n = item;
    _cleanup_free_ char *id = cli_item_short_id(n, o);
    table_add(t, id, n->name, str_empty(n->driver) ? "bridge" : n->driver, "local", n->subnet);
}

static int network_ls(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const header[] = {"NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"};
    static const char *const template_headers[] = {"ID", "NETWORK ID", NULL};
    static const cli_ls_spec spec = {
        .resource = &network_resource,
        .description = "List networks",
        .notes = json_keys,
        .format_help = "Format output: table (default), a Go template, or json (a JSON array)",
        .no_trunc_help = "Do not truncate the output",
        .quiet_help = "Only display network IDs",
        .view = {network_json, cli_item_short_id, ARRAY_SIZE(header), header, network_ls_row,
                 template_headers},
    };
    return cli_ls_command(ctx, argc, argv, &spec);
}

static bool cidr_is_valid(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash)
        return false;
    _cleanup_free_ char *ip = xstrndup(s, (size_t)(slash - s));
    unsigned char addr[16];
    int64_t bits;
    if (inet_pton(AF_INET, ip, addr) == 1)
        return parse_int64(slash + 1, 0, 32, &bits) == 0;
    if (inet_pton(AF_INET6, ip, addr) == 1)
        return parse_int64(slash + 1, 0, 128, &bits) == 0;
    return false;
}

static int network_create(cli_ctx *ctx, int argc, char **argv)
{
    const char *subnet = NULL, *gateway = NULL, *driver = NULL;
    bool internal = false;
    _cleanup_list_ cli_list labels = {0};
    const cli_option opts[] = {
        CLI_STRING('d', "driver", "string", &driver,
                   "Driver to manage the Network (default \"bridge\")"),
        CLI_STRING(0, "gateway", "string", &gateway, "IPv4 Gateway for the master subnet"),
        CLI_BOOL(0, "internal", &internal, "Restrict external access to the network"),
        CLI_LIST('l', "label", "list", &labels, "Set metadata on a network (K=V)"),
        CLI_STRING(0, "subnet", "string", &subnet, "Subnet in CIDR format, e.g. 10.89.0.0/24"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] NETWORK",
        .description = "Create a network",
        .options = opts,
        .min_args = 1,
        .max_args = 1,
        .notes = "Prints the new network's ID.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!name_is_valid(p.args[0]))
        return cli_usage_error(&cmd,
                               "invalid network name \"%s\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* "
                               "is allowed",
                               p.args[0]);
    if (subnet && !cidr_is_valid(subnet))
        return cli_invalid_value(&cmd, "subnet", subnet,
                                 "expected CIDR notation, e.g. 10.89.0.0/24");
    unsigned char addr[16];
    if (gateway && inet_pton(AF_INET, gateway, addr) != 1 &&
        inet_pton(AF_INET6, gateway, addr) != 1)
        return cli_invalid_value(&cmd, "gateway", gateway, "not an IP address");
    if (gateway && !subnet)
        return cli_usage_error(&cmd, "--gateway requires --subnet");
    if (driver && strcmp(driver, "bridge"))
        return cli_invalid_value(&cmd, "driver", driver, "only the bridge driver is supported");
    Hypr__V1__CreateNetworkRequest req = HYPR__V1__CREATE_NETWORK_REQUEST__INIT;
    _cleanup_map_ cli_map lm = {0};
    int r = cli_labels_to_map(&cmd, "label", &labels,
                              &hypr__v1__create_network_request__labels_entry__descriptor, &lm);
    if (r)
        return r;
    req.labels = (Hypr__V1__CreateNetworkRequest__LabelsEntry **)lm.entries;
    req.n_labels = lm.n;
    req.name = p.args[0];
    if (subnet)
        req.subnet = (char *)subnet;
    if (gateway)
        req.gateway = (char *)gateway;
    req.driver = (char *)(driver ? driver : "bridge");
    req.internal = internal;
    _cleanup_pb_ Hypr__V1__CreateNetworkResponse *resp = NULL;
    if (cli_unary(ctx, RPC_METHOD("CreateNetwork"), &req,
                  &hypr__v1__create_network_response__descriptor, &resp) < 0)
        return 1;
    printf("%s\n", resp->network && !str_empty(resp->network->id) ? resp->network->id : req.name);
    return 0;
}

static int network_rm(cli_ctx *ctx, int argc, char **argv)
{
    return cli_rm_command(ctx, argc, argv, &network_resource);
}

static int network_inspect(cli_ctx *ctx, int argc, char **argv)
{
    return cli_inspect_command(ctx, argc, argv, &network_resource);
}

static bool network_unused(const void *item, void *userdata)
{
    const Hypr__V1__Network *n = item;
    return !n->n_vm_ids && strcmp(n->name, DEFAULT_NETWORK);
}

static void print_network_name(const void *item, void *userdata)
{
    printf("%s\n", ((const Hypr__V1__Network *)item)->name);
}

int cli_prune_networks(cli_ctx *ctx)
{
    static const cli_prune_rule rule = {&network_resource, "Deleted Networks:", network_unused,
                                        print_network_name};
    _cleanup_pb_ ProtobufCMessage *resp = NULL;
    void **items;
    size_t n;
    if (cli_list_resources(ctx, &network_resource, NULL, &resp, &items, &n) < 0)
        return 1;
    return cli_prune_items(ctx, &rule, items, n, NULL);
}

static int network_prune(cli_ctx *ctx, int argc, char **argv)
{
    bool force = false;
    const cli_option opts[] = {
        CLI_BOOL('f', "force", &force, "Do not prompt for confirmation"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "Remove all unused networks",
        .options = opts,
        .max_args = 0,
        .notes = "The default network \"" DEFAULT_NETWORK "\" is never removed.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!cli_prune_confirmed(ctx, force,
                             "WARNING! This will remove all custom networks not used by at "
                             "least one VM."))
        return 1;
    return cli_prune_networks(ctx);
}

int cmd_network(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"create", NULL, "Create a network", network_create},
        {"inspect", NULL, "Display detailed information on one or more networks", network_inspect},
        {"ls", "list", "List networks", network_ls},
        {"prune", NULL, "Remove all unused networks", network_prune},
        {"rm", "remove", "Remove one or more networks", network_rm},
    };
    return cli_dispatch_group(ctx, "Manage networks", subs, ARRAY_SIZE(subs), argc, argv);
}
