/* hypr volume: ls, create, rm, inspect, prune. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <string.h>

static json_t *volume_json(const Hypr__V1__Volume *v)
{
    json_t *vms = json_from_strv(v->vm_ids, v->n_vm_ids);
    json_t *o = json_object();
    json_object_set_new(o, "Name", json_string(v->name));
    json_object_set_new(o, "Driver", json_string(str_empty(v->driver) ? "local" : v->driver));
    json_object_set_new(o, "Mountpoint", json_string(v->mountpoint));
    json_object_set_new(o, "CreatedAt", json_time(v->created_at));
    json_object_set_new(o, "Labels", JSON_MAP(v, labels));
    json_object_set_new(o, "Scope", json_string("local"));
    json_object_set_new(o, "Size", json_integer((json_int_t)v->size_bytes));
    json_object_set_new(o, "Stack", json_string(v->stack));
    json_object_set_new(o, "VMs", vms);
    return o;
}

static const char json_keys[] =
    "JSON keys: Name, Driver, Mountpoint, CreatedAt, Labels, Scope, Size (bytes),\n"
    "Stack, VMs (IDs of the VMs using it).";

static int volume_ls(cli_ctx *ctx, int argc, char **argv)
{
    bool quiet = false;
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default) or json (a JSON array)"),
        CLI_BOOL('q', "quiet", &quiet, "Only display volume names"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "List volumes",
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
    Hypr__V1__ListVolumesRequest req = HYPR__V1__LIST_VOLUMES_REQUEST__INIT;
    _cleanup_pb_ Hypr__V1__ListVolumesResponse *resp = NULL;
    if (cli_unary(ctx, RPC_METHOD("ListVolumes"), &req,
                  &hypr__v1__list_volumes_response__descriptor, &resp) < 0)
        return 1;
    if (json) {
        _cleanup_json_ json_t *a = json_array();
        for (size_t i = 0; i < resp->n_volumes; i++)
            json_array_append_new(a, volume_json(resp->volumes[i]));
        cli_print_json(a);
        return 0;
    }
    if (quiet) {
        for (size_t i = 0; i < resp->n_volumes; i++)
            printf("%s\n", resp->volumes[i]->name);
        return 0;
    }
    _cleanup_table_ cli_table t = {0};
    table_init(&t, 2, "DRIVER", "VOLUME NAME");
    for (size_t i = 0; i < resp->n_volumes; i++) {
        const Hypr__V1__Volume *v = resp->volumes[i];
        table_add(&t, str_empty(v->driver) ? "local" : v->driver, v->name);
    }
    table_print(&t, stdout);
    return 0;
}

static int volume_create(cli_ctx *ctx, int argc, char **argv)
{
    const char *driver = NULL, *name = NULL;
    _cleanup_list_ cli_list labels = {0};
    const cli_option opts[] = {
        CLI_STRING('d', "driver", "string", &driver,
                   "Specify volume driver name (default \"local\")"),
        CLI_LIST('l', "label", "list", &labels, "Set metadata for a volume (K=V)"),
        CLI_STRING(0, "name", "string", &name, "Specify volume name"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] [VOLUME]",
        .description = "Create a volume",
        .options = opts,
        .max_args = 1,
        .notes = "Without a name the daemon generates one. The name is printed on success.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (p.nargs && name && strcmp(name, p.args[0]))
        return cli_usage_error(&cmd, "conflicting options: either specify --name or provide "
                                     "positional arg, not both");
    if (p.nargs)
        name = p.args[0];
    if (name && !name_is_valid(name))
        return cli_usage_error(&cmd,
                               "invalid volume name \"%s\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* "
                               "is allowed",
                               name);
    Hypr__V1__CreateVolumeRequest req = HYPR__V1__CREATE_VOLUME_REQUEST__INIT;
    _cleanup_map_ cli_map lm = {0};
    int r = cli_labels_to_map(&cmd, "label", &labels,
                              &hypr__v1__create_volume_request__labels_entry__descriptor, &lm);
    if (r)
        return r;
    req.labels = (Hypr__V1__CreateVolumeRequest__LabelsEntry **)lm.entries;
    req.n_labels = lm.n;
    if (name)
        req.name = (char *)name;
    if (driver)
        req.driver = (char *)driver;
    _cleanup_pb_ Hypr__V1__CreateVolumeResponse *resp = NULL;
    if (cli_unary(ctx, RPC_METHOD("CreateVolume"), &req,
                  &hypr__v1__create_volume_response__descriptor, &resp) < 0)
        return 1;
    printf("%s\n", resp->volume ? resp->volume->name : req.name);
    return 0;
}

static int volume_rm(cli_ctx *ctx, int argc, char **argv)
{
    bool force = false;
    const cli_option opts[] = {
        CLI_BOOL('f', "force", &force, "Force the removal of one or more volumes"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] VOLUME [VOLUME...]",
        .description = "Remove one or more volumes",
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
        Hypr__V1__DeleteVolumeRequest req = HYPR__V1__DELETE_VOLUME_REQUEST__INIT;
        req.name = p.args[i];
        req.force = force;
        _cleanup_pb_ Hypr__V1__DeleteVolumeResponse *resp = NULL;
        if (cli_unary(ctx, RPC_METHOD("DeleteVolume"), &req,
                      &hypr__v1__delete_volume_response__descriptor, &resp) < 0) {
            rc = 1;
            continue;
        }
        printf("%s\n", p.args[i]);
    }
    return rc;
}

static int volume_inspect(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "VOLUME [VOLUME...]",
        .description = "Display detailed information on one or more volumes (a JSON array)",
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
        Hypr__V1__GetVolumeRequest req = HYPR__V1__GET_VOLUME_REQUEST__INIT;
        req.name = p.args[i];
        _cleanup_pb_ Hypr__V1__GetVolumeResponse *resp = NULL;
        if (cli_unary(ctx, RPC_METHOD("GetVolume"), &req,
                      &hypr__v1__get_volume_response__descriptor, &resp) < 0) {
            rc = 1;
            continue;
        }
        if (resp->volume)
            json_array_append_new(a, volume_json(resp->volume));
    }
    cli_print_json(a);
    return rc;
}

static int volume_prune(cli_ctx *ctx, int argc, char **argv)
{
    bool force = false;
    const cli_option opts[] = {
        CLI_BOOL('f', "force", &force, "Do not prompt for confirmation"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "Remove all unused local volumes",
        .options = opts,
        .max_args = 0,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!force && !cli_confirm("WARNING! This will remove all local volumes not used by at least "
                               "one VM."))
        return 1;
    Hypr__V1__PruneVolumesRequest req = HYPR__V1__PRUNE_VOLUMES_REQUEST__INIT;
    _cleanup_pb_ Hypr__V1__PruneVolumesResponse *resp = NULL;
    if (cli_unary(ctx, RPC_METHOD("PruneVolumes"), &req,
                  &hypr__v1__prune_volumes_response__descriptor, &resp) < 0)
        return 1;
    if (resp->n_deleted) {
        printf("Deleted Volumes:\n");
        for (size_t i = 0; i < resp->n_deleted; i++)
            printf("%s\n", resp->deleted[i]);
        printf("\n");
    }
    char size[32];
    format_size(resp->reclaimed_bytes, size, sizeof(size));
    printf("Total reclaimed space: %s\n", size);
    return 0;
}

int cmd_volume(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"create", NULL, "Create a volume", volume_create},
        {"inspect", NULL, "Display detailed information on one or more volumes", volume_inspect},
        {"ls", "list", "List volumes", volume_ls},
        {"prune", NULL, "Remove unused local volumes", volume_prune},
        {"rm", "remove", "Remove one or more volumes", volume_rm},
    };
    return cli_dispatch_group(ctx, "Manage volumes", subs, ARRAY_SIZE(subs), argc, argv);
}
