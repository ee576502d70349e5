/* hypr kill, wait and port: what Docker users do to a running VM besides stop. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <string.h>

/* ---- kill ------------------------------------------------------------------- */

static int kill_one(cli_ctx *ctx, const char *id, void *userdata)
{
    Hypr__V1__KillVMRequest req = HYPR__V1__KILL_VMREQUEST__INIT;
    req.id = (char *)id;
    req.signal = (char *)userdata;
    _cleanup_pb_ Hypr__V1__KillVMResponse *resp = NULL;
    if (cli_call(ctx, "KillVM", &req, &resp) < 0)
        return -1;
    printf("%s\n", id);
    fflush(stdout);
    return 0;
}

int cmd_kill(cli_ctx *ctx, int argc, char **argv)
{
    const char *sig = "KILL";
    const cli_option opts[] = {
        CLI_STRING('s', "signal", "string", &sig,
                   "Signal to send to the VM's workload (default \"KILL\")"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] VM [VM...]",
        .description = "Kill one or more running VMs",
        .options = opts,
        .min_args = 1,
        .max_args = -1,
        .notes = "The signal goes to the VM's main process. SIGKILL and the VM's stop signal "
                 "stop the VM, and its restart policy is off until it is started again; any "
                 "other signal (USR1, HUP...) leaves the policy in place.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (signal_parse(sig) < 0)
        return cli_invalid_value(&cmd, "signal", sig, "not a signal name or number");
    return cli_for_each_arg(ctx, &p, kill_one, (void *)sig);
}

/* ---- pause / unpause ---------------------------------------------------------- */

static int pause_one(cli_ctx *ctx, const char *id, void *userdata)
{
    _cleanup_pb_ ProtobufCMessage *resp = NULL;
    if (cli_call_ref(ctx, userdata, "id", id, false, &resp) < 0)
        return -1;
    printf("%s\n", id);
    fflush(stdout);
    return 0;
}

static int pause_cmd(cli_ctx *ctx, int argc, char **argv, bool pause)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "VM [VM...]",
        .description = pause ? "Pause all processes within one or more VMs"
                             : "Unpause all processes within one or more VMs",
        .min_args = 1,
        .max_args = -1,
        .notes = "A paused VM keeps its memory and devices; its vCPUs do not run. stop and kill "
                 "end it at once; exec waits for unpause.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    return cli_for_each_arg(ctx, &p, pause_one, (void *)(pause ? "PauseVM" : "UnpauseVM"));
}

int cmd_pause(cli_ctx *ctx, int argc, char **argv)
{
    return pause_cmd(ctx, argc, argv, true);
}

int cmd_unpause(cli_ctx *ctx, int argc, char **argv)
{
    return pause_cmd(ctx, argc, argv, false);
}

/* ---- wait ------------------------------------------------------------------- */

static int wait_one(cli_ctx *ctx, const char *id, void *userdata)
{
    (void)userdata;
    Hypr__V1__WaitVMRequest req = HYPR__V1__WAIT_VMREQUEST__INIT;
    req.id = (char *)id;
    _cleanup_pb_ Hypr__V1__WaitVMResponse *resp = NULL;
    if (cli_call(ctx, "WaitVM", &req, &resp) < 0)
        return -1;
    printf("%d\n", resp->exit_code);
    fflush(stdout);
    return 0;
}

int cmd_wait(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "VM [VM...]",
        .description = "Block until one or more VMs stop, then print their exit codes",
        .min_args = 1,
        .max_args = -1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    return cli_for_each_arg(ctx, &p, wait_one, NULL);
}

/* ---- port ------------------------------------------------------------------- */

int cmd_port(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "VM [PRIVATE_PORT[/PROTO]]",
        .description = "List port mappings or a specific mapping for the VM",
        .min_args = 1,
        .max_args = 2,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    /* PRIVATE_PORT[/PROTO]: -p's parser, which takes a guest port alone */
    _cleanup_error_ hypr_error perr = HYPR_ERROR_INIT;
    cli_port want = {0};
    if (p.nargs == 2 &&
        (cli_parse_port(p.args[1], &want, &perr) < 0 || want.host_port || want.host_ip)) {
        cli_port_free(&want);
        return cli_fail(ctx, 1, "invalid port \"%s\": use PORT or PORT/tcp|udp", p.args[1]);
    }
    const char *want_proto = want.protocol;
    _cleanup_pb_ Hypr__V1__GetVMResponse *resp = NULL;
    if (cli_call_ref(ctx, "GetVM", "id", p.args[0], false, &resp) < 0)
        return 1;
    /* Docker lists only what is bound: a VM that is not running has no ports. */
    bool up = resp->vm && resp->vm->status == HYPR__V1__VMSTATUS__VM_STATUS_RUNNING;
    const Hypr__V1__VMConfig *c = up ? resp->vm->config : NULL;
    size_t shown = 0;
    for (size_t i = 0; c && i < c->n_ports; i++) {
        const Hypr__V1__PortMapping *m = c->ports[i];
        const char *proto = str_empty(m->protocol) ? "tcp" : m->protocol;
        const char *ip = str_empty(m->host_ip) ? "127.0.0.1" : m->host_ip;
        bool v6 = strchr(ip, ':') != NULL; /* shown [::1]:8080, as Docker does */
        _cleanup_free_ char *host =
            xasprintf("%s%s%s:%u", v6 ? "[" : "", ip, v6 ? "]" : "", m->host_port);
        if (!want.guest_port)
            printf("%u/%s -> %s\n", m->guest_port, proto, host);
        else if (m->guest_port == want.guest_port && strcmp(proto, want_proto) == 0)
            printf("%s\n", host);
        else
            continue;
        shown++;
    }
    cli_port_free(&want);
    if (p.nargs == 2 && shown == 0)
        return cli_fail(ctx, 1, "No public port '%u/%s' published for %s", want.guest_port,
                        want_proto, p.args[0]);
    return 0;
}

/* ---- update ------------------------------------------------------------------- */

static int update_one(cli_ctx *ctx, const char *id, void *userdata)
{
    Hypr__V1__UpdateVMRequest *req = userdata;
    req->id = (char *)id;
    _cleanup_pb_ Hypr__V1__UpdateVMResponse *resp = NULL;
    if (cli_call(ctx, "UpdateVM", req, &resp) < 0)
        return -1;
    printf("%s\n", id);
    fflush(stdout);
    return 0;
}

int cmd_update(cli_ctx *ctx, int argc, char **argv)
{
    const char *restart = NULL, *cpus = NULL, *memory = NULL;
    const cli_option opts[] = {
        CLI_STRING('c', "cpus", "uint", &cpus, "Number of vCPUs"),
        CLI_STRING('m', "memory", "bytes", &memory, "Memory limit: 512m, 2g, 512 (MiB)"),
        CLI_STRING(0, "restart", "string", &restart,
                   "Restart policy: no, always, unless-stopped, on-failure[:N]"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] VM [VM...]",
        .description = "Update configuration of one or more VMs",
        .options = opts,
        .min_args = 1,
        .max_args = -1,
        .notes = "The VM must not be running: its restart policy is kept by its agent, and "
                 "CPUs and memory\ncannot change under a running VM. The change applies at "
                 "the next start.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!restart && !cpus && !memory)
        return cli_usage_error(&cmd, "you must provide one or more flags when using this command");
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    Hypr__V1__UpdateVMRequest req = HYPR__V1__UPDATE_VMREQUEST__INIT;
    Hypr__V1__RestartPolicy rp = HYPR__V1__RESTART_POLICY__INIT;
    cli_restart parsed = {0};
    if (restart) {
        if (cli_parse_restart(restart, &parsed, &err) < 0)
            return cli_invalid_value(&cmd, "restart", restart, err.message);
        rp.name = parsed.name;
        rp.max_retries = parsed.max_retries;
        req.restart = &rp;
    }
    if (cpus && cli_parse_cpus(cpus, &req.cpus, &err) < 0)
        return cli_invalid_value(&cmd, "cpus", cpus, err.message);
    if (memory && cli_parse_memory(memory, &req.memory_mb, &err) < 0)
        return cli_invalid_value(&cmd, "memory", memory, err.message);
    return cli_for_each_arg(ctx, &p, update_one, &req);
}

/* ---- attach ------------------------------------------------------------------- */

/* The VM ref names, with its config (NULL when it has none). */
static Hypr__V1__GetVMResponse *get_vm(cli_ctx *ctx, const char *ref,
                                       const Hypr__V1__VMConfig **cfg)
{
    Hypr__V1__GetVMResponse *resp = NULL;
    if (cli_call_ref(ctx, "GetVM", "id", ref, false, &resp) < 0)
        return NULL;
    *cfg = resp->vm ? resp->vm->config : NULL;
    return resp;
}

static bool terminal_ok(bool tty, bool interactive)
{
    if (tty && interactive && !isatty(STDIN_FILENO)) {
        fprintf(stderr, "the input device is not a TTY\n"); /* Docker's words and code */
        return false;
    }
    return true;
}

int cli_start_attached(cli_ctx *ctx, const char *ref, bool interactive, const cli_detach_keys *keys)
{
    const Hypr__V1__VMConfig *c = NULL;
    _cleanup_pb_ Hypr__V1__GetVMResponse *vm = get_vm(ctx, ref, &c);
    if (!vm || !vm->vm)
        return 1;
    /* A -i/-t VM's workload waits for our session; any other's output is its logs. */
    bool waits = c && (c->tty || c->open_stdin), tty = c && c->tty;
    interactive = interactive && c && c->open_stdin;
    if (!terminal_ok(tty, interactive))
        return 1;
    _cleanup_stream_ rpc_stream *events = waits ? NULL : cli_subscribe_vm_ends(ctx);
    int64_t since = time_now_ms();
    Hypr__V1__StartVMRequest req = HYPR__V1__START_VMREQUEST__INIT;
    req.id = vm->vm->id;
    req.attach = waits;
    _cleanup_pb_ Hypr__V1__StartVMResponse *started = NULL;
    if (cli_call(ctx, "StartVM", &req, &started) < 0)
        return 1;
    if (waits)
        return cli_exec_main(ctx, vm->vm->id, interactive, tty, false, keys);
    return cli_follow_until_exit(ctx, vm->vm->id, events, since);
}

int cmd_attach(cli_ctx *ctx, int argc, char **argv)
{
    bool no_stdin = false;
    const char *keys_spec = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "detach-keys", "string", &keys_spec,
                   "Override the key sequence for detaching a VM (default: ctrl-p,ctrl-q)"),
        CLI_BOOL(0, "no-stdin", &no_stdin, "Do not attach STDIN"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] VM",
        .description = "Attach local standard input, output, and error streams to a running VM",
        .options = opts,
        .min_args = 1,
        .max_args = 1,
        .notes = "Joins the workload of a VM started with -it or -i (run, run -d, start): its "
                 "output from\nnow on, your input, your window size; Ctrl-P Ctrl-Q (or "
                 "--detach-keys) detaches\nagain. hypr exits "
                 "with the workload's\nexit code when it ends.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    cli_detach_keys keys;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (cli_parse_detach_keys(keys_spec, &keys, &err) < 0)
        return cli_invalid_value(&cmd, "detach-keys", keys_spec, err.message);
    const Hypr__V1__VMConfig *c = NULL;
    _cleanup_pb_ Hypr__V1__GetVMResponse *resp =
        cli_connect(ctx) ? get_vm(ctx, p.args[0], &c) : NULL;
    if (!resp)
        return 1;
    bool tty = c && c->tty, interactive = c && c->open_stdin && !no_stdin;
    if (!terminal_ok(tty, interactive))
        return 1;
    return cli_exec_main(ctx, p.args[0], interactive, tty, true, &keys);
}

/* ---- diff ---------------------------------------------------------------------- */

int cmd_diff(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "VM",
        .description = "Inspect changes to files or directories on a VM's filesystem",
        .min_args = 1,
        .max_args = 1,
        .notes = "A added, C changed, D deleted, against the VM's image. The files hypr itself "
                 "writes\n(/etc/hosts, /etc/hostname, /etc/resolv.conf) and mount points are "
                 "not listed.\nThe VM must be running: its agent reads the writable layer.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (!cli_connect(ctx))
        return 1;
    static char *diff_argv[] = {(char *)"kestrel:diff"}; /* kestrel's built-in */
    int code = 0;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (cli_exec_pipe(ctx, p.args[0], diff_argv, 1, -1, STDOUT_FILENO, &code, &err) < 0) {
        if (err.status == HYPR_FAILED_PRECONDITION && strstr(err.message, "not running"))
            return cli_fail(ctx, 1,
                            "%s; hypr diff reads a running VM's writable layer: start it first",
                            err.message);
        return cli_fail_with(ctx, 1, &err);
    }
    return code ? 1 : 0;
}

/* ---- top ---------------------------------------------------------------------- */

int cmd_top(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "VM [ps OPTIONS]",
        .description = "Display the running processes of a VM",
        .min_args = 1,
        .max_args = -1,
        .stop_at_positional = true,
        .notes = "Runs ps in the VM (default options -ef) and prints what it prints but the "
                 "kernel's own\nthreads; an image without ps gets PID and command name read "
                 "from /proc. kestrel,\nthe VM's init, is PID 1 (/init).",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    /* ps with the options given, else a /proc listing a shell can make alone. */
    static const char script[] =
        "if command -v ps >/dev/null 2>&1; then ps \"$@\" | while IFS= read -r l; do "
        "case \"$l\" in *' ['*']' | *'command -v ps'* | *' ps '*) ;; "
        "*) printf '%s\\n' \"$l\" ;; esac; done; exit 0; fi; "
        "echo 'PID CMD'; "
        "for d in /proc/[0-9]*; do read -r c < \"$d/comm\" 2>/dev/null || continue; "
        "echo \"${d#/proc/} $c\"; done";
    _cleanup_free_ char **vm_argv = xcalloc((size_t)p.nargs + 5, sizeof(char *));
    size_t n = 0;
    vm_argv[n++] = "sh";
    vm_argv[n++] = "-c";
    vm_argv[n++] = (char *)script;
    vm_argv[n++] = "sh";
    if (p.nargs == 1)
        vm_argv[n++] = "-ef";
    for (int i = 1; i < p.nargs; i++)
        vm_argv[n++] = p.args[i];
    if (!cli_connect(ctx))
        return 1;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int code = 0;
    if (cli_exec_pipe(ctx, p.args[0], vm_argv, n, -1, STDOUT_FILENO, &code, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    if (code == 126 || code == 127)
        return cli_fail(ctx, 1, "hypr top needs sh in VM %s's image", p.args[0]);
    return code ? cli_fail(ctx, 1, "ps in VM %s exited with %d", p.args[0], code) : 0;
}

/* ---- container ---------------------------------------------------------------- */

/* Docker's `container` management command: the same VM commands under it. */
int cmd_container(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"attach", NULL, "Attach to a running VM's workload", cmd_attach},
        {"cp", NULL, "Copy files/folders between a VM and the local filesystem", cmd_cp},
        {"create", NULL, "Create a new VM", cmd_create},
        {"diff", NULL, "Inspect changes to files or directories on a VM's filesystem", cmd_diff},
        {"exec", NULL, "Execute a command in a running VM", cmd_exec},
        {"inspect", NULL, "Display detailed information on one or more VMs", cmd_inspect},
        {"kill", NULL, "Kill one or more running VMs", cmd_kill},
        {"logs", NULL, "Fetch the logs of a VM", cmd_logs},
        {"pause", NULL, "Pause all processes within one or more VMs", cmd_pause},
        {"ls", "list,ps", "List VMs", cmd_ps},
        {"port", NULL, "List port mappings or a specific mapping for the VM", cmd_port},
        {"rename", NULL, "Rename a VM", cmd_rename},
        {"restart", NULL, "Restart one or more VMs", cmd_restart},
        {"rm", "remove", "Remove one or more VMs", cmd_rm},
        {"run", NULL, "Create and run a new VM from an image", cmd_run},
        {"start", NULL, "Start one or more stopped VMs", cmd_start},
        {"stop", NULL, "Stop one or more running VMs", cmd_stop},
        {"top", NULL, "Display the running processes of a VM", cmd_top},
        {"unpause", NULL, "Unpause all processes within one or more VMs", cmd_unpause},
        {"update", NULL, "Update configuration of one or more VMs", cmd_update},
        {"wait", NULL, "Block until one or more VMs stop, then print their exit codes", cmd_wait},
    };
    return cli_dispatch_group(ctx, "Manage VMs (Docker's container commands)", subs,
                              ARRAY_SIZE(subs), argc, argv);
}
