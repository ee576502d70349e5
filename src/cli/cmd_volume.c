/* hypr volume: ls, create, rm, inspect, prune. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <string.h>

static json_t *volume_json(const void *item, const cli_view_opts *vo)
{
    const Hypr__V1__Volume *v = item;
    json_t *vms = json_from_strv(v->vm_ids, v->n_vm_ids);
    json_t *o = json_object();
    json_object_set_new(o, "Name", json_string(v->name));
    json_object_set_new(o, "Driver", json_string(str_empty(v->driver) ? "local" : v->driver));
    json_object_set_new(o, "Mountpoint", json_string(v->mountpoint));
    json_object_set_new(o, "CreatedAt", json_time(v->created_at));
    json_object_set_new(o, "Labels", JSON_MAP(v, labels));
    json_object_set_new(o, "Scope", json_string(str_empty(v->scope) ? "local" : v->scope));
    json_object_set_new(o, "Options", json_null());
    json_object_set_new(o, "Anonymous", json_boolean(v->anonymous));
    /* Docker's UsageData: the size is measured by inspect only (-1 in lists). */
    json_object_set_new(o, "UsageData",
                        json_pack("{s:I,s:I}", "Size",
                                  (json_int_t)(vo && vo->ctx ? (json_int_t)v->size_bytes : -1),
                                  "RefCount", (json_int_t)v->n_vm_ids));
    json_object_set_new(o, "Stack", json_string(v->stack));
    json_object_set_new(o, "VMs", vms);
    return o;
}

static const char json_keys[] =
    "JSON keys: Name, Driver, Mountpoint, CreatedAt, Labels, Scope, Options, Anonymous,\n"
    "UsageData {Size (bytes, measured by inspect; -1 in lists), RefCount}, Stack,\n"
    "VMs (names of the VMs whose config mounts it).";

static const cli_resource volume_resource = {
    .get_rpc = "GetVolume",
    .delete_rpc = "DeleteVolume",
    .list_rpc = "ListVolumes",
    .ref_field = "name",
    .item_field = "volume",
    .list_field = "volumes",
    .noun = "VOLUME",
    .inspect_json = volume_json,
    .inspect_help = "Display detailed information on one or more volumes (a JSON array)",
    .inspect_notes = json_keys,
    .rm_help = "Remove one or more volumes",
    .force_help = "Force the removal of one or more volumes",
};

static char *volume_ls_quiet(const void *item, const cli_view_opts *o)
{
    return xstrdup(((const Hypr__V1__Volume *)item)->name);
}

static void volume_ls_row(cli_table *t, const void *item, const cli_view_opts *o)
{
    const Hypr__V1__Volume *v = item;
    table_add(t, str_empty(v->driver) ? "local" : v->driver, v->name);
}

static int volume_ls(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const header[] = {"DRIVER", "VOLUME NAME"};
    static const char *const template_headers[] = {"Name", "VOLUME NAME", NULL};
    static const cli_ls_spec spec = {
        .resource = &volume_resource,
        .description = "List volumes",
        .notes = json_keys,
        .format_help = "Format output: table (default), a Go template, or json (a JSON array)",
        .quiet_help = "Only display volume names",
        .filter_help = "Filter output: dangling=true|false, label=K[=V], name=SUBSTRING",
        .view = {volume_json, volume_ls_quiet, ARRAY_SIZE(header), header, volume_ls_row,
                 template_headers},
    };
    return cli_ls_command(ctx, argc, argv, &spec);
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
    _cleanup_error_ hypr_error nerr = HYPR_ERROR_INIT;
    if (name && volume_name_check(name, &nerr) < 0)
        return cli_usage_error(&cmd, "%s", nerr.message);
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
    return cli_rm_command(ctx, argc, argv, &volume_resource);
}

static int volume_inspect(cli_ctx *ctx, int argc, char **argv)
{
    return cli_inspect_command(ctx, argc, argv, &volume_resource);
}

int cli_prune_volumes(cli_ctx *ctx, bool all, const cli_list *filters, uint64_t *reclaimed)
{
    _cleanup_pb_ Hypr__V1__PruneVolumesResponse *resp = NULL;
    Hypr__V1__PruneVolumesRequest req = HYPR__V1__PRUNE_VOLUMES_REQUEST__INIT;
    req.all = all;
    req.n_filters = filters ? filters->n : 0;
    req.filters = filters ? (char **)filters->items : NULL;
    if (cli_call(ctx, "PruneVolumes", &req, &resp) < 0)
        return 1;
    if (resp->n_deleted) {
        printf("Deleted Volumes:\n");
        for (size_t i = 0; i < resp->n_deleted; i++)
            printf("%s\n", resp->deleted[i]);
        printf("\n");
    }
    *reclaimed += resp->reclaimed_bytes;
    return 0;
}

static int volume_prune(cli_ctx *ctx, int argc, char **argv)
{
    bool force = false, all = false;
    _cleanup_list_ cli_list filters = {0};
    const cli_option opts[] = {
        CLI_BOOL('a', "all", &all, "Remove all unused volumes, not just anonymous ones"),
        CLI_LIST(0, "filter", "filter", &filters, "Provide filter values (e.g. \"label=<label>\")"),
        CLI_BOOL('f', "force", &force, "Do not prompt for confirmation"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "Remove unused local volumes",
        .options = opts,
        .max_args = 0,
        .notes = "As Docker 23+: without -a only anonymous volumes (made for one VM by -v\n"
                 "/path or an image's VOLUME) that no VM uses are removed.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!cli_prune_confirmed(ctx, force,
                             all ? "WARNING! This will remove all local volumes not used by at "
                                   "least one VM."
                                 : "WARNING! This will remove anonymous local volumes not used by "
                                   "at least one VM."))
        return 1;
    uint64_t reclaimed = 0;
    if (cli_prune_volumes(ctx, all, &filters, &reclaimed))
        return 1;
    cli_print_reclaimed(reclaimed);
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
