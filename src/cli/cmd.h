/* hypr CLI command side: the context every command gets, the command tables,
 * and the helpers shared by the cmd_*.c files (connecting, calling, printing
 * errors, tables, JSON, progress bars). */
#ifndef HYPR_CLI_CMD_H
#define HYPR_CLI_CMD_H

#include "cli/cli.h"
#include "common/json_cleanup.h"
#include "rpc/rpc.h"

#include "hypr.pb-c.h"

#define RPC_SERVICE      "/hypr.v1.HyprService/"
#define RPC_METHOD(name) RPC_SERVICE name

#define HYPR_DEFAULT_HOST "unix:///run/hypr/hypr.sock"

typedef struct cli_ctx {
    char *target;  /* what rpc_client_connect takes */
    char *display; /* "unix:///run/hypr/hypr.sock" for messages */
    bool debug;
    char *cmdpath; /* "hypr volume ls": the command as typed, for usage lines */
    rpc_client *client;
    /* Why the command failed: set with cli_fail / cli_fail_with while the command
     * returns its exit code; main prints it once, after the command returns. */
    hypr_error err;
} cli_ctx;

typedef int (*cli_handler)(cli_ctx *ctx, int argc, char **argv);

typedef struct cli_subcommand {
    const char *name;
    const char *aliases; /* comma-separated, or NULL */
    const char *summary;
    cli_handler fn;
} cli_subcommand;

/* "hypr volume COMMAND": help with no command or --help, dispatch otherwise. */
int cli_dispatch_group(cli_ctx *ctx, const char *description, const cli_subcommand *subs, size_t n,
                       int argc, char **argv);
/* Looks a name or alias up in a table. */
const cli_subcommand *cli_find_subcommand(const cli_subcommand *subs, size_t n, const char *name);
/* Runs a handler with ctx->cmdpath extended by name for the duration of the call. */
int cli_run_subcommand(cli_ctx *ctx, const cli_subcommand *sub, const char *name, int argc,
                       char **argv);

/* ---- talking to hyprd (util.c) ------------------------------------------- */

/* Connects once; on failure prints the two-line "Cannot connect" message and
 * returns NULL (the command then exits 1). */
rpc_client *cli_connect(cli_ctx *ctx);
/* ---- errors (util.c) ------------------------------------------------------
 * A command that fails records why in ctx->err and returns its exit code (1, or
 * Docker's code for the case: 125 for run's own errors, the workload's code...);
 * main prints the record. Only failures a command goes on after (rm A B, one
 * error per argument, like Docker) are printed as they happen, by cli_unary. */

/* Records the failure (a later one replaces an earlier one); returns exit_code. */
int cli_fail(cli_ctx *ctx, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with an error record (an RPC's), moved into ctx->err; returns exit_code. */
int cli_fail_with(cli_ctx *ctx, int exit_code, hypr_error *err);
/* The one printer of errors: "Error: <message>" on stderr (the status name and
 * errno text when the record has no message). */
void cli_print_error(const hypr_error *err);

/* Unary call; on error prints it and returns <0 (err kept for callers that
 * look at the status when err is non-NULL). */
int cli_unary(cli_ctx *ctx, const char *method, const void *req,
              const ProtobufCMessageDescriptor *resp_desc, void *resp_out);
int cli_unary_err(cli_ctx *ctx, const char *method, const void *req,
                  const ProtobufCMessageDescriptor *resp_desc, void *resp_out, hypr_error *err);
/* Opens a server-streaming call: sends the request and half-closes. */
int cli_open_stream(cli_ctx *ctx, const char *method, const void *req, rpc_stream **out,
                    hypr_error *err);

DEFINE_CLEANUP_FUNC(rpc_stream, rpc_stream_free)
#define _cleanup_stream_ _cleanup_(rpc_stream_freep)

/* A protobuf map under construction. Every generated map-entry type is laid
 * out as {base, key, value}, so one builder serves them all. */
typedef struct pb_kv {
    ProtobufCMessage base;
    char *key;
    char *value;
} pb_kv;
typedef struct cli_map {
    pb_kv **entries;
    size_t n;
} cli_map;
/* Sets key (a later value replaces an earlier one, like repeated -e K=V). */
void cli_map_set(cli_map *m, const ProtobufCMessageDescriptor *entry_desc, const char *key,
                 const char *value);
void cli_map_free(cli_map *m);
static inline void cli_map_freep(cli_map *m)
{
    cli_map_free(m);
}
#define _cleanup_map_ _cleanup_(cli_map_freep)
/* Fills a map from -l K=V specs; on a bad one prints the error, returns the exit code. */
int cli_labels_to_map(const cli_command *cmd, const char *long_name, const cli_list *specs,
                      const ProtobufCMessageDescriptor *entry_desc, cli_map *m);

/* Asks "... [y/N] " on stderr; true for y/yes. If stdin is not a terminal,
 * records why it refuses (pass -f) with cli_fail and returns false. */
bool cli_confirm(cli_ctx *ctx, const char *warning);
/* Maps a --format value (a CLI_FORMAT_*); on error prints it and returns <0. */
int cli_format_or_error(const cli_command *cmd, const char *format, int *exit_code);
/* cli_parse_or_exit, then the --format value it filled: a CLI_FORMAT_*, or <0 (help
 * shown or an error printed) when the command returns *exit_code. */
int cli_parse_with_format(const cli_command *cmd, int argc, char **argv, cli_parsed *p,
                          const char *const *format, int *exit_code);

/* ---- output (output.c) --------------------------------------------------- */

typedef struct cli_table {
    size_t ncols;
    char **cells; /* row-major, header first */
    size_t nrows;
} cli_table;
void table_init(cli_table *t, size_t ncols, ...); /* header cells */
void table_init_array(cli_table *t, size_t ncols, const char *const *header);
void table_add(cli_table *t, ...); /* ncols const char* cells (NULL = "") */
/* Columns padded to their widest cell + 3 spaces, like Docker's tabwriter. */
void table_print(cli_table *t, FILE *f);
void table_free(cli_table *t);
static inline void table_freep(cli_table *t)
{
    table_free(t);
}
#define _cleanup_table_ _cleanup_(table_freep)

/* What the renderings of a resource get: --no-trunc, and the time for "3 minutes ago". */
typedef struct cli_view_opts {
    bool no_trunc;
    int64_t now;
    const char *format; /* the --format value, for CLI_FORMAT_TEMPLATE */
    cli_ctx *ctx;       /* inspect: for a view that asks hyprd more (network's Containers) */
} cli_view_opts;
typedef json_t *(*cli_json_fn)(const void *item, const cli_view_opts *o);

/* --format TEMPLATE: each of rows (a JSON array) through the template, a line
 * each; a "table" template adds the header row (headers: {field, name, ...,
 * NULL} overrides of cli_template_header_name) and aligns the columns like
 * Docker. trunc_ids shortens each row's "ID" like the table does. Prints nothing
 * when a row fails: records why in ctx and returns 1; else 0. */
int cli_print_template(cli_ctx *ctx, const char *format, json_t *rows, const char *const *headers,
                       bool trunc_ids);
/* Prints v (4-space indented, like docker inspect) and a newline to stdout. */
void cli_print_json(json_t *v);
json_t *json_from_map(pb_kv **entries, size_t n); /* pass (pb_kv **)msg->labels */
json_t *json_from_strv(char **v, size_t n);
json_t *json_time(int64_t unix_seconds);
#define JSON_MAP(msg, field) json_from_map((pb_kv **)(msg)->field, (msg)->n_##field)

const char *vm_state_name(Hypr__V1__VMStatus s); /* "running", "exited", ... */
/* Docker-like STATUS cell: "Up 3 minutes", "Exited (0) 2 minutes ago". Caller frees. */
char *vm_status_text(const Hypr__V1__VM *vm, int64_t now);
/* "127.0.0.1:8080->80/tcp, ..." Caller frees. */
char *ports_text(Hypr__V1__PortMapping **ports, size_t n);
/* ps's PORTS of a VM: its forwards while it runs (or is paused), "" otherwise. */
char *vm_ports_text(const Hypr__V1__VM *vm);
/* ps / inspect JSON of a VM (cli_json_fn: item is a Hypr__V1__VM). */
json_t *vm_summary_json(const void *item, const cli_view_opts *o);
json_t *vm_inspect_json(const void *item, const cli_view_opts *o);
/* Full ID unless trunc, then the first 12 characters (a "sha256:" prefix dropped). */
char *short_id(const char *id, bool trunc);

/* ---- resources: one path for inspect, rm, ls and prune (resource.c) ------- */

/* Unary call by RPC name ("GetVolume"); the types come from the service
 * descriptor. req NULL sends an empty request. Errors are printed (cli_unary). */
int cli_call(cli_ctx *ctx, const char *rpc, const void *req, void *resp_out);
/* Calls rpc with a request whose ref_field is ref (and whose "force" is set when force). */
int cli_call_ref(cli_ctx *ctx, const char *rpc, const char *ref_field, const char *ref, bool force,
                 void *resp_out);

/* Runs fn on each positional argument after connecting: Docker keeps going
 * after a failure (fn returns <0; it prints its own output) and returns 1 at the end. */
typedef int (*cli_arg_fn)(cli_ctx *ctx, const char *arg, void *userdata);
int cli_for_each_arg(cli_ctx *ctx, const cli_parsed *p, cli_arg_fn fn, void *userdata);

/* A kind of resource as the API serves it. */
typedef struct cli_resource {
    const char *get_rpc, *delete_rpc, *list_rpc; /* "GetVolume", "DeleteVolume", "ListVolumes" */
    /* The Get/Delete request field naming one ("name"), also the resource's own field. */
    const char *ref_field;
    const char *item_field; /* the resource in the Get response: "volume" */
    const char *list_field; /* the resources in the List response: "volumes" */
    const char *noun;       /* in usage lines: "VOLUME" */
    cli_json_fn inspect_json;
    const char *inspect_help, *inspect_notes; /* "inspect" --help */
    const char *rm_help, *force_help;         /* "rm" --help */
    const char *volumes_help; /* rm -v (the Delete request's remove_volumes); NULL: none */
    /* What rm prints for a removed one; NULL prints the argument. */
    void (*removed)(const char *ref, const ProtobufCMessage *delete_resp);
} cli_resource;

int cli_delete(cli_ctx *ctx, const cli_resource *r, const char *ref, bool force);
/* Calls r's List RPC (req NULL: an empty request); *items and *n point into *resp. */
int cli_list_resources(cli_ctx *ctx, const cli_resource *r, const void *req,
                       ProtobufCMessage **resp, void ***items, size_t *n);
/* "X inspect NAME...": a JSON array of what was found; exit 1 if anything was not. */
int cli_inspect_command(cli_ctx *ctx, int argc, char **argv, const cli_resource *r);
/* "X rm [-f] NAME...": removes each, printing it (or r->removed's lines). */
int cli_rm_command(cli_ctx *ctx, int argc, char **argv, const cli_resource *r);

/* How a list prints: --format json, -q, or a table. */
typedef struct cli_view {
    cli_json_fn json;
    char *(*quiet)(const void *item, const cli_view_opts *o); /* the -q line; caller frees */
    size_t ncols;
    const char *const *header;
    void (*row)(cli_table *t, const void *item, const cli_view_opts *o);
    const char *const *template_headers; /* cli_print_template's overrides; may be NULL */
} cli_view;
/* The -q line of a resource with an "id": short unless --no-trunc. */
char *cli_item_short_id(const void *item, const cli_view_opts *o);
/* format is a CLI_FORMAT_*; a template is o->format. Returns the exit code. */
int cli_print_items(cli_ctx *ctx, void *const *items, size_t n, const cli_view *v, int format,
                    bool quiet, const cli_view_opts *o);
/* "X ls": --format, and --no-trunc / -q when their help is set. */
typedef struct cli_ls_spec {
    const cli_resource *resource;
    const char *description, *notes;
    const char *format_help, *no_trunc_help, *quiet_help;
    const char *filter_help; /* --filter K=V into the List request's filters; NULL: none */
    cli_view view;
} cli_ls_spec;
int cli_ls_command(cli_ctx *ctx, int argc, char **argv, const cli_ls_spec *s);

/* Prune commands: asks unless force, then connects. False: exit 1. */
bool cli_prune_confirmed(cli_ctx *ctx, bool force, const char *warning);
/* Deletes the prunable items (by r->ref_field), "title" before the first and a
 * blank line after the last; deleted prints each. Returns 1 if a delete failed. */
typedef struct cli_prune_rule {
    const cli_resource *resource;
    const char *title; /* "Deleted Networks:" */
    bool (*prunable)(const void *item, void *userdata);
    void (*deleted)(const void *item, void *userdata);
} cli_prune_rule;
int cli_prune_items(cli_ctx *ctx, const cli_prune_rule *rule, void *const *items, size_t n,
                    void *userdata);
void cli_print_reclaimed(uint64_t bytes); /* "Total reclaimed space: 1.2kB" */

/* ---- pull progress (progress.c) ------------------------------------------ */

typedef struct cli_progress cli_progress;
/* tty: redraw one bar per layer in place with ANSI; else print a line per change. */
cli_progress *progress_new(FILE *f, bool tty);
void progress_update(cli_progress *p, const Hypr__V1__PullProgress *msg);
/* Ends the in-place block (so later output starts on a fresh line). */
void progress_done(cli_progress *p);
/* True when at least one layer was downloaded (vs. already present). */
bool progress_downloaded(const cli_progress *p);
void progress_free(cli_progress *p);
DEFINE_CLEANUP_FUNC(cli_progress, progress_free)
/* Docker's "Using default tag"/"TAG: Pulling from REPO" header for a reference. */
void progress_print_header(FILE *f, const char *reference);

/* ---- commands ------------------------------------------------------------ */

int cmd_login(cli_ctx *ctx, int argc, char **argv);
int cmd_logout(cli_ctx *ctx, int argc, char **argv);
int cmd_run(cli_ctx *ctx, int argc, char **argv);
int cmd_create(cli_ctx *ctx, int argc, char **argv);
int cmd_ps(cli_ctx *ctx, int argc, char **argv);
int cmd_start(cli_ctx *ctx, int argc, char **argv);
int cmd_stop(cli_ctx *ctx, int argc, char **argv);
int cmd_restart(cli_ctx *ctx, int argc, char **argv);
int cmd_rename(cli_ctx *ctx, int argc, char **argv);
int cmd_rm(cli_ctx *ctx, int argc, char **argv);
int cmd_logs(cli_ctx *ctx, int argc, char **argv);
int cmd_inspect(cli_ctx *ctx, int argc, char **argv);
int cmd_kill(cli_ctx *ctx, int argc, char **argv);
int cmd_wait(cli_ctx *ctx, int argc, char **argv);
int cmd_port(cli_ctx *ctx, int argc, char **argv);
int cmd_container(cli_ctx *ctx, int argc, char **argv);
int cmd_pause(cli_ctx *ctx, int argc, char **argv);
int cmd_unpause(cli_ctx *ctx, int argc, char **argv);
int cmd_update(cli_ctx *ctx, int argc, char **argv);
int cmd_top(cli_ctx *ctx, int argc, char **argv);
int cmd_attach(cli_ctx *ctx, int argc, char **argv);
int cmd_diff(cli_ctx *ctx, int argc, char **argv);
extern const cli_resource cli_vm_resource;
int cmd_exec(cli_ctx *ctx, int argc, char **argv);
/* Runs argv in the VM without a terminal: stdin from in_fd (-1: none), stdout to out_fd,
 * stderr to ours. *exit_code: the command's. <0 with err when the session failed. */
int cli_exec_pipe(cli_ctx *ctx, const char *vm, char **argv, size_t argc, int in_fd, int out_fd,
                  int *exit_code, hypr_error *err);
int cmd_cp(cli_ctx *ctx, int argc, char **argv);
/* run -it: starts the VM's workload as this terminal's session (config tty/open_stdin)
 * and relays it (attach: joins the one that runs); its exit code, or 0 after the detach
 * keys (the workload goes on). */
int cli_exec_main(cli_ctx *ctx, const char *vm, bool interactive, bool tty, bool attach,
                  const cli_detach_keys *keys);
/* Shows VM id's output from since_ms on (0: all) until it ends; its exit code.
 * events (may be NULL): vm.stopped/vm.failed, subscribed before the start, for a
 * --rm VM's code. Ctrl-C stops the VM. */
rpc_stream *cli_subscribe_vm_ends(cli_ctx *ctx); /* vm.stopped, vm.failed; NULL: none */
int cli_follow_until_exit(cli_ctx *ctx, const char *id, rpc_stream *events, int64_t since_ms);
/* start -a / -ai: starts VM ref and relays its workload until it ends (or detaches). */
int cli_start_attached(cli_ctx *ctx, const char *ref, bool interactive,
                       const cli_detach_keys *keys);
/* Writes a LogEntry to stdout/stderr by its stream ("console" entries only when
 * console is set, to stderr). prefix (may be NULL) and the timestamp start each
 * line; line_start[0] / [1] track stdout / stderr between calls (init true).
 * Returns 0 or -errno (EPIPE when our reader went away). */
int cli_write_log_entry(const Hypr__V1__LogEntry *e, bool timestamps, bool console,
                        const char *prefix, bool line_start[2]);

int cmd_images(cli_ctx *ctx, int argc, char **argv);
int cmd_pull(cli_ctx *ctx, int argc, char **argv);
int cmd_rmi(cli_ctx *ctx, int argc, char **argv);
int cmd_image(cli_ctx *ctx, int argc, char **argv);
int cmd_build(cli_ctx *ctx, int argc, char **argv);
/* Removes images no VM uses: dangling ones, or every unused one with all.
 * Adds reclaimed bytes; prints "Deleted Images:" lines. Returns 0 or 1. */
int cli_prune_images(cli_ctx *ctx, bool all, uint64_t *reclaimed);

int cmd_volume(cli_ctx *ctx, int argc, char **argv);
int cmd_network(cli_ctx *ctx, int argc, char **argv);
/* Removes networks with no VMs except the default "bridge"; prints "Deleted Networks:". */
int cli_prune_networks(cli_ctx *ctx);
/* The daemon's PruneVolumes; prints "Deleted Volumes:" and adds the reclaimed bytes. */
int cli_prune_volumes(cli_ctx *ctx, bool all, const cli_list *filters, uint64_t *reclaimed);
int cmd_compose(cli_ctx *ctx, int argc, char **argv);
int cmd_system(cli_ctx *ctx, int argc, char **argv);
int cmd_health(cli_ctx *ctx, int argc, char **argv);
int cmd_version(cli_ctx *ctx, int argc, char **argv);
int cmd_info(cli_ctx *ctx, int argc, char **argv);
int cmd_gpu(cli_ctx *ctx, int argc, char **argv);

#endif
