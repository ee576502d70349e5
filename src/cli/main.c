/* hypr: the command-line client of hyprd. Global options, then one command;
 * commands and messages follow the docker CLI so its users feel at home.
 *
 * Exit codes: 0 success; 1 any error (usage, daemon unreachable, RPC error);
 * 125 for `hypr run`'s own errors before the VM starts (bad flags, daemon
 * errors), like `docker run`; otherwise `run` and `exec` exit with the
 * workload's exit code. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <signal.h>
#include <string.h>

enum section { SEC_COMMON, SEC_MANAGEMENT, SEC_OTHER };

typedef struct top_command {
    cli_subcommand sub;
    enum section section;
} top_command;

static const top_command commands[] = {
    {{"run", NULL, "Create and run a new VM from an image", cmd_run}, SEC_COMMON},
    {{"exec", NULL, "Execute a command in a running VM", cmd_exec}, SEC_COMMON},
    {{"ps", NULL, "List VMs", cmd_ps}, SEC_COMMON},
    {{"build", NULL, "Build an image from a Dockerfile", cmd_build}, SEC_COMMON},
    {{"pull", NULL, "Download an image from a registry", cmd_pull}, SEC_COMMON},
    {{"images", NULL, "List images", cmd_images}, SEC_COMMON},
    {{"health", NULL, "Check that the daemon is up", cmd_health}, SEC_COMMON},
    {{"version", NULL, "Show the hypr version information", cmd_version}, SEC_COMMON},
    {{"info", NULL, "Display system-wide information", cmd_info}, SEC_COMMON},
    {{"login", NULL, "Log in to a registry", cmd_login}, SEC_COMMON},
    {{"logout", NULL, "Log out from a registry", cmd_logout}, SEC_COMMON},
    {{"compose", NULL, "Define and run multi-VM applications", cmd_compose}, SEC_MANAGEMENT},
    {{"container", NULL, "Manage VMs (Docker's container commands)", cmd_container},
     SEC_MANAGEMENT},
    {{"gpu", NULL, "Manage GPUs", cmd_gpu}, SEC_MANAGEMENT},
    {{"image", NULL, "Manage images", cmd_image}, SEC_MANAGEMENT},
    {{"network", NULL, "Manage networks", cmd_network}, SEC_MANAGEMENT},
    {{"system", NULL, "Manage hypr", cmd_system}, SEC_MANAGEMENT},
    {{"volume", NULL, "Manage volumes", cmd_volume}, SEC_MANAGEMENT},
    {{"attach", NULL, "Attach to a running VM's workload", cmd_attach}, SEC_OTHER},
    {{"cp", NULL, "Copy files/folders between a VM and the local filesystem", cmd_cp}, SEC_OTHER},
    {{"create", NULL, "Create a new VM", cmd_create}, SEC_OTHER},
    {{"diff", NULL, "Inspect changes to files or directories on a VM's filesystem", cmd_diff},
     SEC_OTHER},
    {{"inspect", NULL, "Return low-level information on VMs", cmd_inspect}, SEC_OTHER},
    {{"kill", NULL, "Kill one or more running VMs", cmd_kill}, SEC_OTHER},
    {{"logs", NULL, "Fetch the logs of a VM", cmd_logs}, SEC_OTHER},
    {{"pause", NULL, "Pause all processes within one or more VMs", cmd_pause}, SEC_OTHER},
    {{"port", NULL, "List port mappings or a specific mapping for the VM", cmd_port}, SEC_OTHER},
    {{"rename", NULL, "Rename a VM", cmd_rename}, SEC_OTHER},
    {{"restart", NULL, "Restart one or more VMs", cmd_restart}, SEC_OTHER},
    {{"rm", NULL, "Remove one or more VMs", cmd_rm}, SEC_OTHER},
    {{"rmi", NULL, "Remove one or more images", cmd_rmi}, SEC_OTHER},
    {{"start", NULL, "Start one or more stopped VMs", cmd_start}, SEC_OTHER},
    {{"stop", NULL, "Stop one or more running VMs", cmd_stop}, SEC_OTHER},
    {{"top", NULL, "Display the running processes of a VM", cmd_top}, SEC_OTHER},
    {{"unpause", NULL, "Unpause all processes within one or more VMs", cmd_unpause}, SEC_OTHER},
    {{"update", NULL, "Update configuration of one or more VMs", cmd_update}, SEC_OTHER},
    {{"wait", NULL, "Block until one or more VMs stop, then print their exit codes", cmd_wait},
     SEC_OTHER},
};

static void print_help(const cli_option *globals, FILE *f)
{
    static const char *const titles[] = {"Common Commands", "Management Commands", "Commands"};
    fprintf(f, "\nUsage:  hypr [OPTIONS] COMMAND\n\n"
               "Docker's ergonomics with microVM isolation: run OCI images as microVMs\n");
    for (int s = SEC_COMMON; s <= SEC_OTHER; s++) {
        fprintf(f, "\n%s:\n", titles[s]);
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
            if ((int)commands[i].section == s)
                fprintf(f, "  %-11s %s\n", commands[i].sub.name, commands[i].sub.summary);
    }
    cli_command g = {.name = "hypr", .description = "", .options = globals};
    /* Reuse the options table renderer, without its usage header. */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m) {
        cli_print_help(&g, m);
        fclose(m);
        const char *opts = strstr(buf, "Options:\n");
        if (opts)
            fprintf(f, "\nGlobal %s", opts);
        free(buf);
    }
    fprintf(f, "\nRun 'hypr COMMAND --help' for more information on a command.\n");
}

/* Ends the process quietly when our reader goes away (`hypr ps | head`):
 * writes then fail with EPIPE instead of killing us mid-RPC. */
static void setup_signals(void)
{
    struct sigaction sa = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &sa, NULL);
}

int main(int argc, char **argv)
{
    const char *host = NULL;
    bool debug = false, version = false;
    const cli_option globals[] = {
        CLI_BOOL('D', "debug", &debug, "Enable debug mode"),
        CLI_STRING('H', "host", "string", &host,
                   "Daemon socket to connect to (env HYPR_HOST; default " HYPR_DEFAULT_HOST ")"),
        CLI_BOOL('v', "version", &version, "Print version information and quit"),
        CLI_OPTIONS_END,
    };
    const cli_command top = {
        .name = "hypr",
        .usage = "[OPTIONS] COMMAND",
        .description = "Docker's ergonomics with microVM isolation",
        .options = globals,
        .min_args = 0,
        .max_args = -1,
        .stop_at_positional = true,
    };
    setup_signals();
    hypr_log_init(getenv("HYPR_LOG"));

    _cleanup_parsed_ cli_parsed p = {0};
    _cleanup_free_ char *error = NULL;
    int r = cli_parse(&top, argc, argv, &p, &error);
    if (r == CLI_PARSE_HELP) {
        print_help(globals, stdout);
        return 0;
    }
    if (r < 0) {
        fprintf(stderr, "%s\nSee 'hypr --help'.\n", error);
        return 1;
    }
    if (version) {
        printf("hypr version %s\n", HYPR_VERSION);
        return 0;
    }
    if (p.nargs == 0) {
        print_help(globals, stdout);
        return 0;
    }
    if (debug)
        hypr_log_init("debug");

    /* The command's argv starts at its name inside the original argv, so a
     * "--" the global parse saw is still there for the command. */
    int first = 1;
    while (first < argc && argv[first] != p.args[0])
        first++;
    const char *name = argv[first];
    char *hargv[] = {NULL, (char *)"--help", NULL};
    if (!strcmp(name, "help")) {
        if (first + 1 < argc) {
            /* "hypr help run" = "hypr run --help" */
            hargv[0] = argv[first + 1];
            argv = hargv;
            argc = 2;
            first = 0;
            name = argv[0];
        } else {
            print_help(globals, stdout);
            return 0;
        }
    }
    const cli_subcommand *cmd = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (!strcmp(commands[i].sub.name, name))
            cmd = &commands[i].sub;
    if (!cmd) {
        fprintf(stderr, "hypr: '%s' is not a hypr command.\nSee 'hypr --help'.\n", name);
        return 1;
    }

    cli_ctx ctx = {.debug = debug};
    if (!host)
        host = getenv("HYPR_HOST");
    if (str_empty(host))
        host = HYPR_DEFAULT_HOST;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (cli_parse_host(host, &ctx.target, &ctx.display, &err) < 0) {
        fprintf(stderr, "invalid argument \"%s\" for \"-H, --host\" flag: %s\n", host, err.message);
        return 1;
    }
    ctx.cmdpath = xstrdup("hypr");
    r = cli_run_subcommand(&ctx, cmd, name, argc - first, argv + first);
    if (ctx.client)
        rpc_client_free(ctx.client);
    free(ctx.cmdpath);
    free(ctx.target);
    free(ctx.display);
    /* Output first: the error comes after what the command printed, like Docker's. */
    if (fflush(stdout) != 0 && errno != EPIPE && !ctx.err.message) {
        int e = errno;
        hypr_err(&ctx.err, HYPR_UNKNOWN, e, "writing output: %s", strerror(e));
        r = r ? r : 1;
    }
    if (ctx.err.message || ctx.err.status != HYPR_OK)
        cli_print_error(&ctx.err);
    hypr_error_clear(&ctx.err);
    return r;
}
