/* One path for what the command groups do alike with their resources (VMs,
 * images, networks, volumes, stacks): calls named by RPC, inspect, rm, ls and
 * prune. The request and response types come from the service descriptor and
 * the fields are found by name, so each group only fills in a small table. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <assert.h>
#include <string.h>
#include <time.h>

static const ProtobufCMethodDescriptor *rpc_descriptor(const char *rpc)
{
    const ProtobufCMethodDescriptor *m =
        protobuf_c_service_descriptor_get_method_by_name(&hypr__v1__hypr_service__descriptor, rpc);
    assert(m);
    return m;
}

static void *field_at(const void *msg, const char *field, bool quantifier)
{
    const ProtobufCMessageDescriptor *desc = ((const ProtobufCMessage *)msg)->descriptor;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(desc, field);
    assert(f);
    return (char *)msg + (quantifier ? f->quantifier_offset : f->offset);
}

/* A fresh request of rpc's input type; free() it (its strings are borrowed). */
static ProtobufCMessage *new_request(const char *rpc)
{
    const ProtobufCMessageDescriptor *desc = rpc_descriptor(rpc)->input;
    ProtobufCMessage *req = xcalloc(1, desc->sizeof_message);
    protobuf_c_message_init(desc, req);
    return req;
}

int cli_call(cli_ctx *ctx, const char *rpc, const void *req, void *resp_out)
{
    _cleanup_free_ ProtobufCMessage *empty = req ? NULL : new_request(rpc);
    _cleanup_free_ char *method = xasprintf(RPC_SERVICE "%s", rpc);
    return cli_unary(ctx, method, req ? req : empty, rpc_descriptor(rpc)->output, resp_out);
}

int cli_call_ref(cli_ctx *ctx, const char *rpc, const char *ref_field, const char *ref, bool force,
                 void *resp_out)
{
    _cleanup_free_ ProtobufCMessage *req = new_request(rpc);
    *(const char **)field_at(req, ref_field, false) = ref;
    if (force)
        *(protobuf_c_boolean *)field_at(req, "force", false) = true;
    return cli_call(ctx, rpc, req, resp_out);
}

int cli_delete(cli_ctx *ctx, const cli_resource *r, const char *ref, bool force)
{
    _cleanup_pb_ ProtobufCMessage *resp = NULL;
    return cli_call_ref(ctx, r->delete_rpc, r->ref_field, ref, force, &resp);
}

int cli_list_resources(cli_ctx *ctx, const cli_resource *r, const void *req,
                       ProtobufCMessage **resp, void ***items, size_t *n)
{
    if (cli_call(ctx, r->list_rpc, req, resp) < 0)
        return -1;
    *n = *(size_t *)field_at(*resp, r->list_field, true);
    *items = *(void ***)field_at(*resp, r->list_field, false);
    return 0;
}

int cli_for_each_arg(cli_ctx *ctx, const cli_parsed *p, cli_arg_fn fn, void *userdata)
{
    if (!cli_connect(ctx))
        return 1;
    int rc = 0;
    for (int i = 0; i < p->nargs; i++)
        if (fn(ctx, p->args[i], userdata) < 0)
            rc = 1;
    return rc;
}

/* ---- inspect / rm --------------------------------------------------------- */

int cli_inspect_command(cli_ctx *ctx, int argc, char **argv, const cli_resource *r)
{
    _cleanup_free_ char *usage = xasprintf("[OPTIONS] %s [%s...]", r->noun, r->noun);
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING('f', "format", "string", &format,
                   "Format output: json (default) or a Go template ('{{.Name}}', "
                   "'{{json .Config}}')"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = usage,
        .description = r->inspect_help,
        .options = opts,
        .min_args = 1,
        .max_args = -1,
        .notes = r->inspect_notes,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    int fmt = cli_parse_with_format(&cmd, argc, argv, &p, &format, &ec);
    if (fmt < 0)
        return ec;
    if (!cli_connect(ctx))
        return 1;
    const cli_view_opts o = {.now = time(NULL), .ctx = ctx};
    _cleanup_json_ json_t *a = json_array();
    int rc = 0;
    for (int i = 0; i < p.nargs; i++) {
        _cleanup_pb_ ProtobufCMessage *resp = NULL;
        if (cli_call_ref(ctx, r->get_rpc, r->ref_field, p.args[i], false, &resp) < 0) {
            rc = 1;
            continue;
        }
        const void *item = *(void **)field_at(resp, r->item_field, false);
        if (item)
            json_array_append_new(a, r->inspect_json(item, &o));
    }
    if (fmt == CLI_FORMAT_TEMPLATE) {
        /* like docker inspect -f: a line per object found; exit 1 if a name was not */
        int trc = cli_print_template(ctx, format, a, NULL, false);
        return trc ? trc : rc;
    }
    cli_print_json(a);
    return rc;
}

typedef struct remove_ctx {
    const cli_resource *r;
    bool force, volumes;
} remove_ctx;

static int remove_one(cli_ctx *ctx, const char *ref, void *userdata)
{
    const remove_ctx *rm = userdata;
    _cleanup_pb_ ProtobufCMessage *resp = NULL;
    _cleanup_free_ ProtobufCMessage *req = new_request(rm->r->delete_rpc);
    *(const char **)field_at(req, rm->r->ref_field, false) = ref;
    *(protobuf_c_boolean *)field_at(req, "force", false) = rm->force;
    if (rm->volumes)
        *(protobuf_c_boolean *)field_at(req, "remove_volumes", false) = true;
    if (cli_call(ctx, rm->r->delete_rpc, req, &resp) < 0)
        return -1;
    if (rm->r->removed)
        rm->r->removed(ref, resp);
    else
        printf("%s\n", ref);
    return 0;
}

int cli_rm_command(cli_ctx *ctx, int argc, char **argv, const cli_resource *r)
{
    remove_ctx rm = {.r = r};
    cli_option opts[3] = {CLI_BOOL('f', "force", &rm.force, r->force_help)};
    opts[1] = r->volumes_help ? (cli_option)CLI_BOOL('v', "volumes", &rm.volumes, r->volumes_help)
                              : (cli_option)CLI_OPTIONS_END;
    opts[2] = (cli_option)CLI_OPTIONS_END;
    _cleanup_free_ char *usage = xasprintf("[OPTIONS] %s [%s...]", r->noun, r->noun);
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = usage,
        .description = r->rm_help,
        .options = opts,
        .min_args = 1,
        .max_args = -1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    return cli_for_each_arg(ctx, &p, remove_one, &rm);
}

/* ---- ls ------------------------------------------------------------------- */

char *cli_item_short_id(const void *item, const cli_view_opts *o)
{
    return short_id(*(const char **)field_at(item, "id", false), !o->no_trunc);
}

int cli_print_items(cli_ctx *ctx, void *const *items, size_t n, const cli_view *v, int format,
                    bool quiet, const cli_view_opts *o)
{
    if (format == CLI_FORMAT_TEMPLATE) {
        _cleanup_json_ json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, v->json(items[i], o));
        return cli_print_template(ctx, o->format, a, v->template_headers, !o->no_trunc);
    }
    if (format == CLI_FORMAT_JSON) {
        _cleanup_json_ json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, v->json(items[i], o));
        cli_print_json(a);
        return 0;
    }
    if (quiet) {
        for (size_t i = 0; i < n; i++) {
            _cleanup_free_ char *line = v->quiet(items[i], o);
            printf("%s\n", line);
        }
        return 0;
    }
    _cleanup_table_ cli_table t = {0};
    table_init_array(&t, v->ncols, v->header);
    for (size_t i = 0; i < n; i++)
        v->row(&t, items[i], o);
    table_print(&t, stdout);
    return 0;
}

int cli_ls_command(cli_ctx *ctx, int argc, char **argv, const cli_ls_spec *s)
{
    const char *format = NULL;
    bool quiet = false;
    cli_view_opts o = {.now = time(NULL)};
    _cleanup_list_ cli_list filters = {0};
    cli_option opts[5] = {CLI_STRING(0, "format", "string", &format, s->format_help)};
    size_t nopts = 1;
    if (s->filter_help)
        opts[nopts++] = (cli_option)CLI_LIST('f', "filter", "filter", &filters, s->filter_help);
    if (s->no_trunc_help)
        opts[nopts++] = (cli_option)CLI_BOOL(0, "no-trunc", &o.no_trunc, s->no_trunc_help);
    if (s->quiet_help)
        opts[nopts++] = (cli_option)CLI_BOOL('q', "quiet", &quiet, s->quiet_help);
    opts[nopts] = (cli_option)CLI_OPTIONS_END;
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = s->description,
        .options = opts,
        .max_args = 0,
        .notes = s->notes,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    int json = cli_parse_with_format(&cmd, argc, argv, &p, &format, &ec);
    if (json < 0)
        return ec;
    _cleanup_pb_ ProtobufCMessage *resp = NULL;
    void **items;
    size_t n;
    _cleanup_free_ ProtobufCMessage *req = NULL;
    if (filters.n) {
        req = new_request(s->resource->list_rpc);
        *(size_t *)field_at(req, "filters", true) = filters.n;
        *(const char ***)field_at(req, "filters", false) = filters.items;
    }
    if (cli_list_resources(ctx, s->resource, req, &resp, &items, &n) < 0)
        return 1;
    o.format = format;
    return cli_print_items(ctx, items, n, &s->view, json, quiet, &o);
}

/* ---- prune ---------------------------------------------------------------- */

bool cli_prune_confirmed(cli_ctx *ctx, bool force, const char *warning)
{
    if (!force && !cli_confirm(ctx, warning))
        return false;
    return cli_connect(ctx) != NULL;
}

int cli_prune_items(cli_ctx *ctx, const cli_prune_rule *rule, void *const *items, size_t n,
                    void *userdata)
{
    int rc = 0;
    bool header = false;
    for (size_t i = 0; i < n; i++) {
        if (!rule->prunable(items[i], userdata))
            continue;
        const char *ref = *(const char **)field_at(items[i], rule->resource->ref_field, false);
        if (cli_delete(ctx, rule->resource, ref, false) < 0) {
            rc = 1;
            continue;
        }
        if (!header) {
            printf("%s\n", rule->title);
            header = true;
        }
        rule->deleted(items[i], userdata);
    }
    if (header)
        printf("\n");
    return rc;
}

void cli_print_reclaimed(uint64_t bytes)
{
    char size[32];
    format_size(bytes, size, sizeof(size));
    printf("Total reclaimed space: %s\n", size);
}
