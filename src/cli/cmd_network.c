/* hypr network: ls, create, rm, inspect, prune. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <arpa/inet.h>
#include <string.h>

#define DEFAULT_NETWORK "bridge"

static json_t *network_json(const Hypr__V1__Network *n)
{
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
    json_object_set_new(o, "Labels", JSON_MAP(n, labels));
    return o;
}

static const char json_keys[] = "JSON keys: Name, Id, Created, Scope, Driver, IPAM{Driver, "
                                "Config[{Subnet, Gateway}]},\nInternal, Bridge, VMs, Labels.";

static int list_networks(cli_ctx *ctx, Hypr__V1__ListNetworksResponse **out)
{
    Hypr__V1__ListNetworksRequest req = HYPR__V1__LIST_NETWORKS_REQUEST__INIT;
    return cli_unary(ctx, RPC_METHOD("ListNetworks"), &req,
                     &hypr__v1__list_networks_response__descriptor, out);
}

static int network_ls(cli_ctx *ctx, int argc, char **argv)
{
    bool quiet = false, no_trunc = false;
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default) or json (a JSON array)"),
        CLI_BOOL(0, "no-trunc", &no_trunc, "Do not truncate the output"),
        CLI_BOOL('q', "quiet", &quiet, "Only display network IDs"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "List networks",
        .options = opts,
        .max_args = 0,
        .notes = json_keys,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    int json = cli_format_or_error(&cmd, format, &ec);
    if (json < 0)
        return ec;
    _cleanup_pb_ Hypr__V1__ListNetworksResponse *resp = NULL;
    if (list_networks(ctx, &resp) < 0)
        return 1;
    if (json) {
        _cleanup_json_ json_t *a = json_array();
        for (size_t i = 0; i < resp->n_networks; i++)
            json_array_append_new(a, network_json(resp->networks[i]));
        cli_print_json(a);
        return 0;
    }
    _cleanup_table_ cli_table t = {0};
    table_init(&t, 5, "NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET");
    for (size_t i = 0; i < resp->n_networks; i++) {
        const Hypr__V1__Network *n = resp->networks[i];
        _cleanup_free_ char *id = short_id(n->id, !no_trunc);
        if (quiet) {
            printf("%s\n", id);
            continue;
        }
        table_add(&t, id, n->name, str_empty(n->driver) ? "bridge" : n->driver, "local", n->subnet);
    }
    if (!quiet)
        table_print(&t, stdout);
    return 0;
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

static int delete_network(cli_ctx *ctx, const char *id, bool force)
{
    Hypr__V1__DeleteNetworkRequest req = HYPR__V1__DELETE_NETWORK_REQUEST__INIT;
    req.id = (char *)id;
    req.force = force;
    _cleanup_pb_ Hypr__V1__DeleteNetworkResponse *resp = NULL;
    return cli_unary(ctx, RPC_METHOD("DeleteNetwork"), &req,
                     &hypr__v1__delete_network_response__descriptor, &resp);
}

static int network_rm(cli_ctx *ctx, int argc, char **argv)
{
    bool force = false;
    const cli_option opts[] = {
        CLI_BOOL('f', "force", &force, "Force the removal of a network"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] NETWORK [NETWORK...]",
        .description = "Remove one or more networks",
        .options = opts,
        .min_args = 1,
        .max_args = -1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!cli_connect(ctx))
        return 1;
    int rc = 0;
    for (int i = 0; i < p.nargs; i++) {
        if (delete_network(ctx, p.args[i], force) < 0) {
            rc = 1;
            continue;
        }
        printf("%s\n", p.args[i]);
    }
    return rc;
}

static int network_inspect(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "NETWORK [NETWORK...]",
        .description = "Display detailed information on one or more networks (a JSON array)",
        .min_args = 1,
        .max_args = -1,
        .notes = json_keys,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!cli_connect(ctx))
        return 1;
    _cleanup_json_ json_t *a = json_array();
    int rc = 0;
    for (int i = 0; i < p.nargs; i++) {
        Hypr__V1__GetNetworkRequest req = HYPR__V1__GET_NETWORK_REQUEST__INIT;
        req.id = p.args[i];
        _cleanup_pb_ Hypr__V1__GetNetworkResponse *resp = NULL;
        if (cli_unary(ctx, RPC_METHOD("GetNetwork"), &req,
                      &hypr__v1__get_network_response__descriptor, &resp) < 0) {
            rc = 1;
            continue;
        }
        if (resp->network)
            json_array_append_new(a, network_json(resp->network));
    }
    cli_print_json(a);
    return rc;
}

int cli_prune_networks(cli_ctx *ctx)
{
    _cleanup_pb_ Hypr__V1__ListNetworksResponse *resp = NULL;
    if (list_networks(ctx, &resp) < 0)
        return 1;
    int rc = 0;
    bool header = false;
    for (size_t i = 0; i < resp->n_networks; i++) {
        const Hypr__V1__Network *n = resp->networks[i];
        if (n->n_vm_ids || !strcmp(n->name, DEFAULT_NETWORK))
            continue;
        if (delete_network(ctx, n->id, false) < 0) {
            rc = 1;
            continue;
        }
        if (!header) {
            printf("Deleted Networks:\n");
            header = true;
        }
        printf("%s\n", n->name);
    }
    if (header)
        printf("\n");
    return rc;
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
    if (!force && !cli_confirm("WARNING! This will remove all custom networks not used by at "
                               "least one VM."))
        return 1;
    if (!cli_connect(ctx))
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
