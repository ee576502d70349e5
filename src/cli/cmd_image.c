/* Image commands: images, pull, rmi, and the "image" group (ls, pull, rm,
 * inspect, prune, history, build). */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <limits.h>
#include <string.h>
#include <time.h>

/* ---- images / image ls ---------------------------------------------------- */

static int cmp_image_created_desc(const void *a, const void *b)
{
    const Hypr__V1__Image *x = *(Hypr__V1__Image *const *)a, *y = *(Hypr__V1__Image *const *)b;
    return (x->created_at < y->created_at) - (x->created_at > y->created_at);
}

/* One row per repository tag, like Docker; untagged images show <none>. */
typedef void (*image_row_fn)(const Hypr__V1__Image *img, const char *repo, const char *tag,
                             void *userdata);

static void for_each_image_row(const Hypr__V1__Image *img, image_row_fn fn, void *userdata)
{
    if (img->n_repo_tags) {
        for (size_t i = 0; i < img->n_repo_tags; i++) {
            _cleanup_free_ char *name = NULL, *tag = NULL;
            cli_split_reference(img->repo_tags[i], &name, &tag, false);
            fn(img, cli_short_image_name(name), str_empty(tag) ? "<none>" : tag, userdata);
        }
        return;
    }
    fn(img, str_empty(img->name) ? "<none>" : cli_short_image_name(img->name),
       str_empty(img->tag) ? "<none>" : img->tag, userdata);
}

typedef struct rows_ctx {
    cli_table *table;
    json_t *json;
    int64_t now;
    bool no_trunc;
    const char *want_repo, *want_tag; /* "hypr images REPOSITORY[:TAG]" filter */
} rows_ctx;

static bool row_wanted(const rows_ctx *rc, const char *repo, const char *tag)
{
    if (rc->want_repo && strcmp(repo, rc->want_repo) &&
        strcmp(repo, cli_short_image_name(rc->want_repo)))
        return false;
    return !rc->want_tag || !strcmp(tag, rc->want_tag);
}

static void add_table_row(const Hypr__V1__Image *img, const char *repo, const char *tag, void *u)
{
    rows_ctx *rc = u;
    if (!row_wanted(rc, repo, tag))
        return;
    _cleanup_free_ char *id = short_id(img->id, !rc->no_trunc);
    char size[32], ago[64], created[80];
    format_size(img->size_bytes, size, sizeof(size));
    if (img->created_at > 0) {
        cli_human_duration(rc->now - img->created_at, ago, sizeof(ago));
        snprintf(created, sizeof(created), "%s ago", ago);
    } else {
        snprintf(created, sizeof(created), "N/A");
    }
    table_add(rc->table, repo, tag, id, created, size);
}

static void add_json_row(const Hypr__V1__Image *img, const char *repo, const char *tag, void *u)
{
    rows_ctx *rc = u;
    if (!row_wanted(rc, repo, tag))
        return;
    char size[32], ago[64];
    format_size(img->size_bytes, size, sizeof(size));
    cli_human_duration(rc->now - img->created_at, ago, sizeof(ago));
    _cleanup_free_ char *since = xasprintf("%s ago", ago);
    json_t *o = json_object();
    json_object_set_new(o, "ID", json_string(img->id));
    json_object_set_new(o, "Repository", json_string(repo));
    json_object_set_new(o, "Tag", json_string(tag));
    json_object_set_new(o, "Digest", json_string(str_empty(img->digest) ? "<none>" : img->digest));
    json_object_set_new(o, "CreatedAt", json_time(img->created_at));
    json_object_set_new(o, "CreatedSince", json_string(since));
    json_object_set_new(o, "Size", json_string(size));
    json_object_set_new(o, "SizeBytes", json_integer((json_int_t)img->size_bytes));
    json_array_append_new(rc->json, o);
}

int cmd_images(cli_ctx *ctx, int argc, char **argv)
{
    bool all = false, quiet = false, no_trunc = false;
    const char *format = NULL;
    _cleanup_list_ cli_list filters = {0};
    const cli_option opts[] = {
        CLI_BOOL('a', "all", &all, "Show all images (default hides intermediate images)"),
        CLI_LIST('f', "filter", "filter", &filters,
                 "Filter output by KEY=VALUE (repeatable; keys below)"),
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default), json (a JSON array; keys ID, "
                   "Repository, Tag, Digest, CreatedAt, CreatedSince, Size, SizeBytes) or a Go "
                   "template"),
        CLI_BOOL(0, "no-trunc", &no_trunc, "Don't truncate output"),
        CLI_BOOL('q', "quiet", &quiet, "Only show image IDs"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] [REPOSITORY[:TAG]]",
        .description = "List images",
        .options = opts,
        .max_args = 1,
        .notes = "Filters: dangling=true|false, reference=PATTERN (busy*, *:latest),\n"
                 "label=KEY[=VALUE], before=IMAGE, since=IMAGE. The same key given twice\n"
                 "matches either value; different keys must all match, as must every label.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    int json = cli_parse_with_format(&cmd, argc, argv, &p, &format, &ec);
    if (json < 0)
        return ec;
    Hypr__V1__ListImagesRequest req = HYPR__V1__LIST_IMAGES_REQUEST__INIT;
    req.all = all;
    req.filters = (char **)filters.items; /* the daemon parses and applies them */
    req.n_filters = filters.n;
    _cleanup_pb_ Hypr__V1__ListImagesResponse *resp = NULL;
    if (cli_call(ctx, "ListImages", &req, &resp) < 0)
        return 1;
    if (resp->n_images > 1)
        qsort(resp->images, resp->n_images, sizeof(*resp->images), cmp_image_created_desc);
    _cleanup_free_ char *want_repo = NULL, *want_tag = NULL;
    if (p.nargs) {
        cli_split_reference(p.args[0], &want_repo, &want_tag, false);
        if (!*want_tag) {
            free(want_tag);
            want_tag = NULL;
        }
    }
    _cleanup_table_ cli_table t = {0};
    _cleanup_json_ json_t *a = json ? json_array() : NULL;
    rows_ctx rc = {.table = &t,
                   .json = a,
                   .now = time(NULL),
                   .no_trunc = no_trunc,
                   .want_repo = want_repo,
                   .want_tag = want_tag};
    table_init(&t, 5, "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
    if (quiet && !json) {
        /* Each image once, even when it has several tags. */
        for (size_t i = 0; i < resp->n_images; i++) {
            size_t before = t.nrows;
            for_each_image_row(resp->images[i], add_table_row, &rc);
            if (t.nrows == before)
                continue;
            _cleanup_free_ char *id = short_id(resp->images[i]->id, !no_trunc);
            printf("%s\n", id);
        }
        return 0;
    }
    for (size_t i = 0; i < resp->n_images; i++)
        for_each_image_row(resp->images[i], json ? add_json_row : add_table_row, &rc);
    static const char *const template_headers[] = {"ID", "IMAGE ID", "CreatedSince", "CREATED",
                                                   NULL};
    if (json == CLI_FORMAT_TEMPLATE)
        return cli_print_template(ctx, format, a, template_headers, !no_trunc);
    if (json)
        cli_print_json(a);
    else
        table_print(&t, stdout);
    return 0;
}

/* ---- pull ----------------------------------------------------------------- */

static bool has_tag_or_digest(const char *ref)
{
    const char *slash = strrchr(ref, '/');
    return strchr(ref, '@') || strchr(slash ? slash : ref, ':');
}

int cmd_pull(cli_ctx *ctx, int argc, char **argv)
{
    const char *platform = NULL;
    bool quiet = false;
    const cli_option opts[] = {
        CLI_STRING(0, "platform", "string", &platform,
                   "Set platform, e.g. linux/amd64, linux/arm64"),
        CLI_BOOL('q', "quiet", &quiet, "Suppress verbose output"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] NAME[:TAG|@DIGEST]",
        .description = "Download an image from a registry",
        .options = opts,
        .min_args = 1,
        .max_args = 1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    const char *ref = p.args[0];
    Hypr__V1__PullImageRequest req = HYPR__V1__PULL_IMAGE_REQUEST__INIT;
    req.reference = (char *)ref;
    if (platform)
        req.platform = (char *)platform;
    if (!cli_connect(ctx))
        return 1;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_stream_ rpc_stream *s = NULL;
    if (cli_open_stream(ctx, RPC_METHOD("PullImage"), &req, &s, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    FILE *out = quiet ? NULL : stdout;
    if (out)
        progress_print_header(out, ref);
    _cleanup_(progress_freep) cli_progress *prog =
        progress_new(out ? out : stderr, out && isatty(STDOUT_FILENO));
    _cleanup_free_ char *digest = NULL;
    for (;;) {
        _cleanup_pb_ Hypr__V1__PullProgress *m = NULL;
        int r = rpc_stream_recv(s, &hypr__v1__pull_progress__descriptor, (ProtobufCMessage **)&m,
                                -1, &err);
        if (r == 0)
            break;
        if (r < 0) {
            if (out)
                progress_done(prog);
            return cli_fail_with(ctx, 1, &err);
        }
        if (out)
            progress_update(prog, m);
        if (!str_empty(m->digest)) {
            free(digest);
            digest = xstrdup(m->digest);
        }
    }
    _cleanup_free_ char *full = has_tag_or_digest(ref) ? xstrdup(ref) : xasprintf("%s:latest", ref);
    if (out) {
        progress_done(prog);
        if (digest)
            printf("Digest: %s\n", digest);
        printf("Status: %s for %s\n",
               progress_downloaded(prog) ? "Downloaded newer image" : "Image is up to date", full);
    }
    printf("%s\n", full);
    return 0;
}

/* ---- rmi / image rm ------------------------------------------------------- */

static void print_removed_image(const char *ref, const ProtobufCMessage *delete_resp)
{
    const Hypr__V1__DeleteImageResponse *resp = (const Hypr__V1__DeleteImageResponse *)delete_resp;
    if (!resp->n_deleted)
        printf("Untagged: %s\n", ref);
    for (size_t j = 0; j < resp->n_deleted; j++)
        printf("Deleted: %s\n", resp->deleted[j]);
}

static json_t *image_inspect_json(const void *item, const cli_view_opts *vo);

static const cli_resource image_resource = {
    .get_rpc = "GetImage",
    .delete_rpc = "DeleteImage",
    .list_rpc = "ListImages",
    .ref_field = "id",
    .item_field = "image",
    .list_field = "images",
    .noun = "IMAGE",
    .inspect_json = image_inspect_json,
    .inspect_help = "Display detailed information on one or more images (a JSON array)",
    .inspect_notes =
        "Docker-like keys: Id, RepoTags, RepoDigests, Created, Size, Architecture, "
        "Os,\nConfig{Entrypoint, Cmd, Env, WorkingDir, User, StopSignal, ExposedPorts, Volumes, "
        "Labels}.",
    .rm_help = "Remove one or more images",
    .force_help = "Force removal of the image",
    .removed = print_removed_image,
};

int cmd_rmi(cli_ctx *ctx, int argc, char **argv)
{
    return cli_rm_command(ctx, argc, argv, &image_resource);
}

/* ---- image inspect / history ---------------------------------------------- */

static json_t *keys_object(char **v, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, v[i], json_object());
    return o;
}

static json_t *image_inspect_json(const void *item, const cli_view_opts *vo)
{
    const Hypr__V1__Image *img = item;
    json_t *config = json_object();
    json_object_set_new(config, "Entrypoint", json_from_strv(img->entrypoint, img->n_entrypoint));
    json_object_set_new(config, "Cmd", json_from_strv(img->cmd, img->n_cmd));
    json_object_set_new(config, "Env", json_from_strv(img->env, img->n_env));
    json_object_set_new(config, "WorkingDir", json_string(img->workdir));
    json_object_set_new(config, "User", json_string(img->user));
    if (!str_empty(img->stop_signal))
        json_object_set_new(config, "StopSignal", json_string(img->stop_signal));
    json_object_set_new(config, "ExposedPorts",
                        keys_object(img->exposed_ports, img->n_exposed_ports));
    json_object_set_new(config, "Volumes", keys_object(img->volumes, img->n_volumes));
    json_object_set_new(config, "Labels", JSON_MAP(img, labels));
    json_t *digests = json_array();
    if (!str_empty(img->digest) && !str_empty(img->name)) {
        _cleanup_free_ char *d = xasprintf("%s@%s", img->name, img->digest);
        json_array_append_new(digests, json_string(d));
    }
    _cleanup_free_ char *id = xasprintf("sha256:%s", img->id);
    json_t *o = json_object();
    json_object_set_new(o, "Id", json_string(id));
    json_object_set_new(o, "RepoTags", json_from_strv(img->repo_tags, img->n_repo_tags));
    json_object_set_new(o, "RepoDigests", digests);
    json_object_set_new(o, "Created", json_time(img->created_at));
    json_object_set_new(o, "Size", json_integer((json_int_t)img->size_bytes));
    json_object_set_new(o, "Architecture", json_string(img->architecture));
    json_object_set_new(o, "Os", json_string(img->os));
    if (!str_empty(img->variant))
        json_object_set_new(o, "Variant", json_string(img->variant));
    json_object_set_new(o, "Config", config);
    json_object_set_new(o, "StorePath", json_string(img->path));
    return o;
}

static int image_inspect(cli_ctx *ctx, int argc, char **argv)
{
    return cli_inspect_command(ctx, argc, argv, &image_resource);
}

static int image_history(cli_ctx *ctx, int argc, char **argv)
{
    bool no_trunc = false, quiet = false;
    const cli_option opts[] = {
        CLI_BOOL(0, "no-trunc", &no_trunc, "Don't truncate output"),
        CLI_BOOL('q', "quiet", &quiet, "Only show created-by lines"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] IMAGE",
        .description = "Show the history of an image",
        .options = opts,
        .min_args = 1,
        .max_args = 1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    _cleanup_pb_ Hypr__V1__GetImageHistoryResponse *resp = NULL;
    if (cli_call_ref(ctx, "GetImageHistory", "id", p.args[0], false, &resp) < 0)
        return 1;
    int64_t now = time(NULL);
    _cleanup_table_ cli_table t = {0};
    table_init(&t, 4, "CREATED", "CREATED BY", "SIZE", "COMMENT");
    for (size_t i = 0; i < resp->n_history; i++) {
        const Hypr__V1__ImageHistoryEntry *h = resp->history[i];
        if (quiet) {
            printf("%s\n", h->created_by);
            continue;
        }
        char ago[64], size[32];
        cli_human_duration(now - h->created_at, ago, sizeof(ago));
        _cleanup_free_ char *created =
            h->created_at > 0 ? xasprintf("%s ago", ago) : xstrdup("N/A");
        format_size(h->size_bytes, size, sizeof(size));
        _cleanup_free_ char *by = xstrdup(h->created_by);
        for (char *c = by; *c; c++)
            if (*c == '\n' || *c == '\t')
                *c = ' ';
        if (!no_trunc && strlen(by) > 45)
            memcpy(by + 42, "...", 4);
        table_add(&t, created, by, size, h->comment);
    }
    if (!quiet)
        table_print(&t, stdout);
    return 0;
}

/* ---- image prune ---------------------------------------------------------- */

typedef struct image_prune_ctx {
    bool all;
    const Hypr__V1__ListVmsResponse *vms;
    uint64_t *reclaimed;
} image_prune_ctx;

static bool image_unused(const void *item, void *userdata)
{
    const Hypr__V1__Image *img = item;
    const image_prune_ctx *pc = userdata;
    bool dangling = !img->n_repo_tags && str_empty(img->tag);
    if (!pc->all && !dangling)
        return false;
    for (size_t j = 0; j < pc->vms->n_vms; j++)
        if (!strcmp(pc->vms->vms[j]->image_id, img->id))
            return false;
    return true;
}

static void print_pruned_image(const void *item, void *userdata)
{
    const Hypr__V1__Image *img = item;
    const image_prune_ctx *pc = userdata;
    for (size_t j = 0; j < img->n_repo_tags; j++)
        printf("untagged: %s\n", img->repo_tags[j]);
    printf("deleted: sha256:%s\n", img->id);
    *pc->reclaimed += img->size_bytes;
}

int cli_prune_images(cli_ctx *ctx, bool all, uint64_t *reclaimed)
{
    static const cli_prune_rule rule = {&image_resource, "Deleted Images:", image_unused,
                                        print_pruned_image};
    Hypr__V1__ListImagesRequest ireq = HYPR__V1__LIST_IMAGES_REQUEST__INIT;
    ireq.all = true;
    _cleanup_pb_ ProtobufCMessage *images = NULL;
    void **items;
    size_t n;
    if (cli_list_resources(ctx, &image_resource, &ireq, &images, &items, &n) < 0)
        return 1;
    Hypr__V1__ListVmsRequest vreq = HYPR__V1__LIST_VMS_REQUEST__INIT;
    vreq.all = true;
    _cleanup_pb_ Hypr__V1__ListVmsResponse *vms = NULL;
    if (cli_call(ctx, "ListVms", &vreq, &vms) < 0)
        return 1;
    image_prune_ctx pc = {all, vms, reclaimed};
    return cli_prune_items(ctx, &rule, items, n, &pc);
}

static int image_prune(cli_ctx *ctx, int argc, char **argv)
{
    bool all = false, force = false;
    const cli_option opts[] = {
        CLI_BOOL('a', "all", &all, "Remove all unused images, not just dangling ones"),
        CLI_BOOL('f', "force", &force, "Do not prompt for confirmation"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "Remove unused images",
        .options = opts,
        .max_args = 0,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!cli_prune_confirmed(ctx, force,
                             all ? "WARNING! This will remove all images without at least one "
                                   "VM associated to them."
                                 : "WARNING! This will remove all dangling images."))
        return 1;
    uint64_t reclaimed = 0;
    int rc = cli_prune_images(ctx, all, &reclaimed);
    cli_print_reclaimed(reclaimed);
    return rc;
}

/* ---- image import ---------------------------------------------------------- */

static int image_import(cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_list_ cli_list env = {0};
    _cleanup_list_ cli_list ports = {0};
    const char *entrypoint = NULL, *user = NULL, *workdir = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "entrypoint", "string", &entrypoint, "Entrypoint (run by /bin/sh -c)"),
        CLI_LIST('e', "env", "list", &env, "Environment variables (K=V)"),
        CLI_LIST(0, "expose", "list", &ports, "Exposed ports (80/tcp)"),
        CLI_STRING('u', "user", "string", &user, "User (name or uid[:gid])"),
        CLI_STRING('w', "workdir", "string", &workdir, "Working directory"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] SOURCE REPOSITORY[:TAG]",
        .description = "Create an image from a rootfs tarball or directory",
        .options = opts,
        .min_args = 2,
        .max_args = 2,
        .notes = "SOURCE is a tar (plain, gzip or zstd) or a directory on the daemon's host.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    _cleanup_free_ char *source = realpath(p.args[0], NULL);
    if (!source) {
        fprintf(stderr, "hypr: %s: %s\n", p.args[0], strerror(errno));
        return 1;
    }
    Hypr__V1__ImportImageRequest req = HYPR__V1__IMPORT_IMAGE_REQUEST__INIT;
    req.source = source;
    req.reference = p.args[1];
    char *ep[] = {"/bin/sh", "-c", (char *)entrypoint};
    if (entrypoint) {
        req.n_entrypoint = 3;
        req.entrypoint = ep;
    }
    req.n_env = env.n;
    req.env = (char **)env.items;
    req.n_exposed_ports = ports.n;
    req.exposed_ports = (char **)ports.items;
    req.user = (char *)(user ? user : "");
    req.workdir = (char *)(workdir ? workdir : "");
    _cleanup_pb_ Hypr__V1__ImportImageResponse *resp = NULL;
    if (cli_unary(ctx, RPC_METHOD("ImportImage"), &req,
                  &hypr__v1__import_image_response__descriptor, &resp) < 0)
        return 1;
    printf("sha256:%s\n", resp->image ? resp->image->id : "");
    return 0;
}

/* ---- image group ---------------------------------------------------------- */

int cmd_image(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"build", NULL, "Build an image from a Dockerfile", cmd_build},
        {"history", NULL, "Show the history of an image", image_history},
        {"import", NULL, "Create an image from a rootfs tarball or directory", image_import},
        {"inspect", NULL, "Display detailed information on one or more images", image_inspect},
        {"ls", "list", "List images", cmd_images},
        {"prune", NULL, "Remove unused images", image_prune},
        {"pull", NULL, "Download an image from a registry", cmd_pull},
        {"rm", "remove,rmi", "Remove one or more images", cmd_rmi},
    };
    return cli_dispatch_group(ctx, "Manage images", subs, ARRAY_SIZE(subs), argc, argv);
}
