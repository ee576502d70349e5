/* VM commands: run, ps, start, stop, restart, rm, logs, inspect. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

/* ---- run ------------------------------------------------------------------ */

typedef struct run_opts {
    const char *name, *cpus, *memory, *entrypoint, *workdir, *user, *restart, *hostname, *gpu;
    const char *stop_signal, *pull, *cidfile, *detach_keys;
    cli_list env, env_file, publish, volume, mount, tmpfs, network, label, label_file, dns,
        add_host, expose;
    bool rm, detach, interactive, tty, gpu_force, init, publish_all, read_only;
    int64_t stop_timeout;
} run_opts;

static void run_opts_free(run_opts *o)
{
    cli_list_free(&o->env);
    cli_list_free(&o->env_file);
    cli_list_free(&o->publish);
    cli_list_free(&o->volume);
    cli_list_free(&o->mount);
    cli_list_free(&o->tmpfs);
    cli_list_free(&o->network);
    cli_list_free(&o->label);
    cli_list_free(&o->label_file);
    cli_list_free(&o->dns);
    cli_list_free(&o->add_host);
    cli_list_free(&o->expose);
}

/* Owns everything a VMConfig built from flags points at. */
typedef struct run_config {
    Hypr__V1__VMConfig cfg;
    Hypr__V1__RestartPolicy restart;
    cli_restart restart_policy;
    Hypr__V1__GpuRequest gpu;
    cli_map env, labels;
    char **label_lines; /* of --label-file, which labels points into */
    cli_list all_labels;
    Hypr__V1__PortMapping *ports;
    Hypr__V1__PortMapping **port_ptrs;
    cli_port *cports;
    Hypr__V1__VolumeMount *vols;
    Hypr__V1__VolumeMount **vol_ptrs;
    volume_mount_spec *specs;
    char *entrypoint[1];
} run_config;

static void run_config_free(run_config *rc)
{
    cli_map_free(&rc->env);
    cli_map_free(&rc->labels);
    cli_list_free(&rc->all_labels);
    strv_free(rc->label_lines);
    for (size_t i = 0; i < rc->cfg.n_ports; i++)
        cli_port_free(&rc->cports[i]);
    volume_mount_specs_free(rc->specs, rc->cfg.n_volumes);
    free(rc->ports);
    free(rc->port_ptrs);
    free(rc->cports);
    free(rc->vols);
    free(rc->vol_ptrs);
}

static int add_env(const cli_command *cmd, const char *flag, const char *spec, run_config *rc)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_free_ char *k = NULL, *v = NULL;
    int r = cli_parse_env(spec, &k, &v, &err);
    if (r < 0)
        return cli_invalid_value(cmd, flag, spec, err.message);
    if (r > 0)
        cli_map_set(&rc->env, &hypr__v1__vmconfig__env_entry__descriptor, k, v);
    return 0;
}

/* Turns flags into a VMConfig; on a bad value prints it and returns the exit code. */
static int build_config(const cli_command *cmd, run_opts *o, cli_parsed *p, run_config *rc)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    Hypr__V1__VMConfig *c = &rc->cfg;
    *c = (Hypr__V1__VMConfig)HYPR__V1__VMCONFIG__INIT;
    c->image = p->args[0];
    if (o->name) {
        if (!name_is_valid(o->name))
            return cli_invalid_value(cmd, "name", o->name,
                                     "names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*");
        c->name = (char *)o->name;
    }
    if (o->cpus && cli_parse_cpus(o->cpus, &c->cpus, &err) < 0)
        return cli_invalid_value(cmd, "cpus", o->cpus, err.message);
    if (o->memory && cli_parse_memory(o->memory, &c->memory_mb, &err) < 0)
        return cli_invalid_value(cmd, "memory", o->memory, err.message);
    /* Docker order: --env-file first, then -e overrides. */
    for (size_t i = 0; i < o->env_file.n; i++) {
        _cleanup_strv_ char **lines = NULL;
        if (cli_read_env_file(o->env_file.items[i], &lines, &err) < 0)
            return cli_invalid_value(cmd, "env-file", o->env_file.items[i], err.message);
        for (char **l = lines; *l; l++) {
            int r = add_env(cmd, "env-file", *l, rc);
            if (r)
                return r;
        }
    }
    for (size_t i = 0; i < o->env.n; i++) {
        int r = add_env(cmd, "env", o->env.items[i], rc);
        if (r)
            return r;
    }
    c->env = (Hypr__V1__VMConfig__EnvEntry **)rc->env.entries;
    c->n_env = rc->env.n;
    /* Docker order: --label-file first, then -l overrides. */
    for (size_t i = 0; i < o->label_file.n; i++) {
        _cleanup_strv_ char **lines = NULL;
        if (cli_read_env_file(o->label_file.items[i], &lines, &err) < 0)
            return cli_invalid_value(cmd, "label-file", o->label_file.items[i], err.message);
        for (char **l = lines; *l; l++)
            rc->label_lines = strv_append(rc->label_lines, *l);
    }
    for (char **l = rc->label_lines; l && *l; l++)
        cli_list_push(&rc->all_labels, *l);
    for (size_t i = 0; i < o->label.n; i++)
        cli_list_push(&rc->all_labels, o->label.items[i]);
    int r = cli_labels_to_map(cmd, "label", &rc->all_labels,
                              &hypr__v1__vmconfig__labels_entry__descriptor, &rc->labels);
    if (r)
        return r;
    c->labels = (Hypr__V1__VMConfig__LabelsEntry **)rc->labels.entries;
    c->n_labels = rc->labels.n;

    rc->cports = xcalloc(o->publish.n + 1, sizeof(*rc->cports));
    rc->ports = xcalloc(o->publish.n + 1, sizeof(*rc->ports));
    rc->port_ptrs = xcalloc(o->publish.n + 1, sizeof(*rc->port_ptrs));
    for (size_t i = 0; i < o->publish.n; i++) {
        if (cli_parse_port(o->publish.items[i], &rc->cports[i], &err) < 0)
            return cli_invalid_value(cmd, "publish", o->publish.items[i], err.message);
        c->n_ports = i + 1;
        Hypr__V1__PortMapping *pm = &rc->ports[i];
        *pm = (Hypr__V1__PortMapping)HYPR__V1__PORT_MAPPING__INIT;
        if (rc->cports[i].host_ip)
            pm->host_ip = rc->cports[i].host_ip;
        pm->host_port = rc->cports[i].host_port;
        pm->guest_port = rc->cports[i].guest_port;
        pm->protocol = rc->cports[i].protocol;
        rc->port_ptrs[i] = pm;
    }
    c->ports = rc->port_ptrs;

    /* -v, then --mount, then --tmpfs, each in its order: the daemon checks the set. */
    const struct {
        const cli_list *list;
        cli_mount_flag flag;
        const char *name;
    } mount_flags[] = {{&o->volume, CLI_MOUNT_VOLUME, "volume"},
                       {&o->mount, CLI_MOUNT_MOUNT, "mount"},
                       {&o->tmpfs, CLI_MOUNT_TMPFS, "tmpfs"}};
    size_t n_mounts = o->volume.n + o->mount.n + o->tmpfs.n;
    rc->specs = xcalloc(n_mounts + 1, sizeof(*rc->specs));
    rc->vols = xcalloc(n_mounts + 1, sizeof(*rc->vols));
    rc->vol_ptrs = xcalloc(n_mounts + 1, sizeof(*rc->vol_ptrs));
    static const char *const mount_types[] = {"volume", "bind", "tmpfs"};
    for (size_t f = 0; f < ARRAY_SIZE(mount_flags); f++) {
        for (size_t i = 0; i < mount_flags[f].list->n; i++) {
            const char *spec = mount_flags[f].list->items[i];
            volume_mount_spec *s = &rc->specs[c->n_volumes];
            if (cli_parse_mount(mount_flags[f].flag, spec, s, &err) < 0)
                return cli_invalid_value(cmd, mount_flags[f].name, spec, err.message);
            Hypr__V1__VolumeMount *vm = &rc->vols[c->n_volumes];
            *vm = (Hypr__V1__VolumeMount)HYPR__V1__VOLUME_MOUNT__INIT;
            vm->type = (char *)mount_types[s->type];
            vm->source = s->source ? s->source : "";
            vm->target = s->target;
            vm->read_only = s->read_only;
            vm->nocopy = s->nocopy;
            vm->create_host_path = s->create_host_path;
            vm->tmpfs_size = s->tmpfs_size;
            vm->tmpfs_mode = s->tmpfs_mode;
            vm->tmpfs_options = s->options ? s->options : "";
            rc->vol_ptrs[c->n_volumes++] = vm;
        }
    }
    c->volumes = rc->vol_ptrs;
    c->read_only = o->read_only;

    for (size_t i = 0; i < o->network.n; i++)
        if (!name_is_valid(o->network.items[i]))
            return cli_invalid_value(cmd, "network", o->network.items[i],
                                     "not a valid network name");
    c->networks = (char **)o->network.items;
    c->n_networks = o->network.n;

    if (o->entrypoint) {
        /* --entrypoint "" clears the image's entrypoint, like Docker. */
        c->entrypoint_set = true;
        rc->entrypoint[0] = (char *)o->entrypoint;
        c->entrypoint = rc->entrypoint;
        c->n_entrypoint = *o->entrypoint ? 1 : 0;
    }
    c->cmd = p->args + 1;
    c->n_cmd = (size_t)(p->nargs - 1);
    if (o->workdir) {
        if (o->workdir[0] != '/')
            return cli_invalid_value(cmd, "workdir", o->workdir, "must be an absolute path");
        c->workdir = (char *)o->workdir;
    }
    if (o->user)
        c->user = (char *)o->user;
    if (o->hostname)
        c->hostname = (char *)o->hostname;
    if (o->restart) {
        cli_restart *rp = &rc->restart_policy;
        if (cli_parse_restart(o->restart, rp, &err) < 0)
            return cli_invalid_value(cmd, "restart", o->restart, err.message);
        if (o->rm && strcmp(rp->name, "no"))
            return cli_usage_error(cmd, "Conflicting options: --restart and --rm");
        rc->restart = (Hypr__V1__RestartPolicy)HYPR__V1__RESTART_POLICY__INIT;
        rc->restart.name = rp->name;
        rc->restart.max_retries = rp->max_retries;
        c->restart = &rc->restart;
    }
    if (o->gpu && !*o->gpu)
        return cli_invalid_value(cmd, "gpu", o->gpu,
                                 "expected a PCI address like 0000:01:00.0, or all");
    if (o->gpu_force && !o->gpu)
        return cli_usage_error(cmd, "--gpu-force needs --gpu");
    if (o->gpu) {
        rc->gpu = (Hypr__V1__GpuRequest)HYPR__V1__GPU_REQUEST__INIT;
        rc->gpu.pci_address = (char *)o->gpu;
        rc->gpu.force = o->gpu_force;
        c->gpu = &rc->gpu;
    }
    c->auto_remove = o->rm;
    c->tty = o->tty;
    c->open_stdin = o->interactive;
    c->dns = (char **)o->dns.items;
    c->n_dns = o->dns.n;
    c->extra_hosts = (char **)o->add_host.items;
    c->n_extra_hosts = o->add_host.n;
    c->expose = (char **)o->expose.items;
    c->n_expose = o->expose.n;
    c->publish_all = o->publish_all;
    if (o->stop_timeout >= 0)
        c->stop_timeout = (uint32_t)o->stop_timeout;
    if (o->stop_signal) {
        if (signal_parse(o->stop_signal) < 0)
            return cli_invalid_value(cmd, "stop-signal", o->stop_signal,
                                     "not a signal name or number");
        c->stop_signal = (char *)o->stop_signal;
    }
    return 0;
}

static volatile sig_atomic_t interrupted;
static void on_interrupt(int sig)
{
    interrupted = sig;
}

/* Shows the VM's output until it stops; Ctrl-C stops the VM (like docker run's
 * signal proxy) instead of leaving it running behind the user's back. */
/* The exit code of a --rm VM that the daemon already removed: from the
 * vm.stopped/vm.failed event that the events stream (opened before RunVM) saw. */
static int exit_code_from_events(cli_ctx *ctx, rpc_stream *events, const char *id)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    for (int i = 0; events && i < 64; i++) {
        _cleanup_pb_ Hypr__V1__Event *ev = NULL;
        if (rpc_stream_recv(events, &hypr__v1__event__descriptor, (ProtobufCMessage **)&ev, 5000,
                            &err) <= 0)
            break;
        if (strcmp(ev->id, id) != 0)
            continue;
        for (size_t a = 0; a < ev->n_attributes; a++) {
            if (strcmp(ev->attributes[a]->key, "exit_code") == 0) {
                int code = atoi(ev->attributes[a]->value);
                if (strcmp(ev->type, "vm.failed") == 0 && !str_empty(ev->message))
                    return cli_fail(ctx, code, "%s", ev->message);
                return code;
            }
        }
    }
    return 0;
}

static int stop_vm(cli_ctx *ctx, const char *id, uint32_t timeout, const char *sig)
{
    Hypr__V1__StopVMRequest req = HYPR__V1__STOP_VMREQUEST__INIT;
    req.id = (char *)id;
    req.timeout_seconds = timeout;
    req.signal = (char *)(sig ? sig : "");
    _cleanup_pb_ Hypr__V1__StopVMResponse *resp = NULL;
    return cli_call(ctx, "StopVM", &req, &resp);
}

rpc_stream *cli_subscribe_vm_ends(cli_ctx *ctx)
{
    Hypr__V1__SubscribeEventsRequest req = HYPR__V1__SUBSCRIBE_EVENTS_REQUEST__INIT;
    char *types[] = {"vm.stopped", "vm.failed"};
    req.types = types;
    req.n_types = ARRAY_SIZE(types);
    rpc_stream *events = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (cli_open_stream(ctx, RPC_METHOD("SubscribeEvents"), &req, &events, &err) < 0)
        return NULL; /* the exit code of a --rm VM is then unknown */
    return events;
}

int cli_follow_until_exit(cli_ctx *ctx, const char *id, rpc_stream *events, int64_t since_ms)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    Hypr__V1__StreamLogsRequest lreq = HYPR__V1__STREAM_LOGS_REQUEST__INIT;
    lreq.id = (char *)id;
    lreq.follow = true;
    lreq.tail = -1;
    lreq.since_ms = since_ms;
    rpc_stream *s = NULL;
    if (cli_open_stream(ctx, RPC_METHOD("StreamLogs"), &lreq, &s, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    struct sigaction sa = {.sa_handler = on_interrupt}, old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    bool line_start[2] = {true, true};
    int r;
    for (;;) {
        Hypr__V1__LogEntry *e = NULL;
        r = rpc_stream_recv(s, &hypr__v1__log_entry__descriptor, (ProtobufCMessage **)&e, 250,
                            &err);
        if (interrupted)
            break;
        if (r == -ETIMEDOUT || r == -EINTR)
            continue;
        if (r <= 0)
            break;
        int w = cli_write_log_entry(e, false, ctx->debug, NULL, line_start);
        protobuf_c_message_free_unpacked(&e->base, NULL);
        if (w < 0)
            break;
    }
    rpc_stream_free(s);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (interrupted) {
        fprintf(stderr, "Stopping %.12s...\n", id);
        stop_vm(ctx, id, 0, NULL);
        return 128 + interrupted;
    }
    if (r < 0)
        return cli_fail_with(ctx, 1, &err);
    Hypr__V1__GetVMRequest greq = HYPR__V1__GET_VMREQUEST__INIT;
    greq.id = (char *)id;
    _cleanup_pb_ Hypr__V1__GetVMResponse *g = NULL;
    hypr_error_clear(&err);
    r = cli_unary_err(ctx, RPC_METHOD("GetVM"), &greq, &hypr__v1__get_vmresponse__descriptor, &g,
                      &err);
    if (r < 0) {
        /* --rm: the daemon removed it as soon as it stopped. */
        if (err.status == HYPR_NOT_FOUND)
            return exit_code_from_events(ctx, events, id);
        return cli_fail_with(ctx, 1, &err);
    }
    if (!g->vm)
        return 0;
    if (g->vm->status == HYPR__V1__VMSTATUS__VM_STATUS_FAILED)
        return cli_fail(ctx, g->vm->exit_code ? g->vm->exit_code : 1, "%s",
                        str_empty(g->vm->error) ? "the VM failed" : g->vm->error);
    return g->vm->exit_code;
}

/* --cidfile: Docker refuses a file that exists (another VM may own it). */
static int cidfile_check(const cli_command *cmd, const char *path)
{
    if (path && access(path, F_OK) == 0)
        return cli_usage_error(cmd,
                               "Container ID file found, make sure the other VM isn't running or "
                               "delete %s",
                               path);
    return 0;
}

static int cidfile_write(cli_ctx *ctx, const char *path, const char *id)
{
    if (!path)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int r = fd < 0 ? -errno : fd_write_all(fd, id, strlen(id));
    if (fd >= 0 && close(fd) < 0 && r >= 0)
        r = -errno;
    if (r < 0)
        return cli_fail(ctx, 125, "failed to write the VM ID to %s: %s", path, strerror(-r));
    return 0;
}

/* run and create: flags into rc. 0 = go on; -1 = help was shown; otherwise the exit
 * code of a usage error. */
static int parse_run_config(const cli_command *cmd, int argc, char **argv, bool attaches,
                            run_opts *o, cli_parsed *p, run_config *rc)
{
    int ec;
    if (!cli_parse_or_exit(cmd, argc, argv, p, &ec))
        return ec ? ec : -1;
    /* run -it uses this terminal; run -dit and create -it leave it to hypr attach. */
    if (attaches && !o->detach && o->interactive && o->tty && !isatty(STDIN_FILENO)) {
        fprintf(stderr, "the input device is not a TTY\n"); /* Docker's words and code */
        return 1;
    }
    int r = build_config(cmd, o, p, rc);
    return r ? r : cidfile_check(cmd, o->cidfile);
}

// clang-format off
/* The VM flags of run and create (o: a run_opts *); ...: the -d option and a comma
 * (run), or nothing (create). Sorted by long name, as Docker's help is. */
#define RUN_CONFIG_OPTIONS(o, ...)                                                                 \
    CLI_LIST(0, "add-host", "list", &(o)->add_host,                                                \
             "Add a custom host-to-IP mapping (host:ip, or host:host-gateway)"),                   \
    CLI_STRING(0, "cidfile", "string", &(o)->cidfile, "Write the VM ID to the file"),              \
    CLI_STRING('c', "cpus", "uint", &(o)->cpus, "Number of vCPUs"),                                \
    __VA_ARGS__                                                                                    \
    CLI_LIST(0, "dns", "list", &(o)->dns, "Set custom DNS servers (instead of hyprd's)"),          \
    CLI_LIST('e', "env", "list", &(o)->env, "Set environment variables (K=V, or K to copy it)"),   \
    CLI_LIST(0, "env-file", "list", &(o)->env_file, "Read in a file of environment variables"),    \
    CLI_STRING(0, "entrypoint", "string", &(o)->entrypoint,                                        \
               "Overwrite the default ENTRYPOINT of the image"),                                   \
    CLI_LIST(0, "expose", "list", &(o)->expose,                                                    \
             "Expose a port (PORT[/udp]) beside the image's: -P publishes it"),                    \
    CLI_STRING(0, "gpu", "string", &(o)->gpu,                                                      \
               "Pass a GPU and its IOMMU group through: PCI address or all"),                      \
    CLI_BOOL(0, "gpu-force", &(o)->gpu_force,                                                      \
             "Allow --gpu to take the boot VGA device (the host's display)"),                      \
    CLI_STRING('h', "hostname", "string", &(o)->hostname, "VM host name"),                         \
    CLI_BOOL(0, "init", &(o)->init, "Accepted for Docker's sake: kestrel is always the init"),     \
    CLI_BOOL('i', "interactive", &(o)->interactive, "Keep STDIN open and send it to the workload"),\
    CLI_LIST('l', "label", "list", &(o)->label, "Set metadata on a VM (K=V)"),                     \
    CLI_LIST(0, "label-file", "list", &(o)->label_file, "Read in a line delimited file of labels"),\
    CLI_STRING('m', "memory", "bytes", &(o)->memory, "Memory limit: 512m, 2g, 512 (MiB)"),         \
    CLI_LIST(0, "mount", "mount", &(o)->mount,                                                     \
             "Attach a filesystem mount: type=volume|bind|tmpfs,source=,target=[,readonly]"),      \
    CLI_STRING('n', "name", "string", &(o)->name, "Assign a name to the VM"),                      \
    CLI_LIST(0, "network", "list", &(o)->network,                                                  \
             "Connect a VM to a network (repeatable; none: no network at all)"),                   \
    CLI_LIST('p', "publish", "list", &(o)->publish,                                                \
             "Publish a VM's port: [HOST_IP:][HOST_PORT:]GUEST_PORT[/udp]"),                       \
    CLI_BOOL('P', "publish-all", &(o)->publish_all,                                                \
             "Publish every port the image exposes on a free host port"),                          \
    CLI_STRING(0, "pull", "string", &(o)->pull,                                                    \
               "Pull image before running: always, missing, never (default \"missing\")"),         \
    CLI_BOOL(0, "read-only", &(o)->read_only, "Mount the VM's root filesystem as read only"),      \
    CLI_STRING(0, "restart", "string", &(o)->restart,                                              \
               "Restart policy: no, always, unless-stopped, on-failure[:N] (default \"no\")"),     \
    CLI_BOOL(0, "rm", &(o)->rm, "Automatically remove the VM when it exits"),                      \
    CLI_STRING(0, "stop-signal", "string", &(o)->stop_signal,                                      \
               "Signal to stop the VM's workload (default: the image's, else SIGTERM)"),           \
    CLI_INT(0, "stop-timeout", "int", &(o)->stop_timeout, 0, 86400,                                \
            "Seconds to wait for the VM to stop before killing it"),                               \
    CLI_LIST(0, "tmpfs", "list", &(o)->tmpfs, "Mount a tmpfs directory: TARGET[:size=64m,mode=1777]"),\
    CLI_BOOL('t', "tty", &(o)->tty, "Allocate a pseudo-TTY for the workload"),                     \
    CLI_STRING('u', "user", "string", &(o)->user,                                                  \
               "Username or UID (format: <name|uid>[:<group|gid>])"),                              \
    CLI_LIST('v', "volume", "list", &(o)->volume,                                                  \
             "Bind mount a volume: NAME:TARGET, /HOST/DIR:TARGET or TARGET (anonymous), "          \
             "options :ro, :nocopy"),                                                              \
    CLI_STRING('w', "workdir", "string", &(o)->workdir, "Working directory inside the VM")

// clang-format on
int cmd_run(cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(run_opts_free) run_opts o = {.stop_timeout = -1};
    const cli_option opts[] = {
        RUN_CONFIG_OPTIONS(
            &o, CLI_BOOL('d', "detach", &o.detach, "Run VM in background and print VM ID"),
            CLI_STRING(0, "detach-keys", "string", &o.detach_keys,
                       "Override the key sequence for detaching a VM (default: ctrl-p,ctrl-q)"), ),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        .description = "Create and run a new VM from an image",
        .options = opts,
        .min_args = 1,
        .max_args = -1,
        .stop_at_positional = true,
        .error_exit = 125,
        .notes = "-p GUEST_PORT and -P publish on a free host port (see 'hypr port'). Without -d,\n"
                 "the VM's output is shown until it exits and hypr exits with its exit code;\n"
                 "Ctrl-C stops the VM. With -it the workload runs on this terminal (Ctrl-P\n"
                 "Ctrl-Q, or --detach-keys, detaches and leaves it running; 'hypr attach'\n"
                 "joins it again); -i alone pipes stdin to it; -dit starts it detached.\n"
                 "Exit code 125 means hypr itself failed to run the VM.\n"
                 "--gpu 0000:01:00.0 (see 'hypr gpu list') hands that GPU and every device of\n"
                 "its IOMMU group to vfio-pci while the VM runs; all takes every GPU but the\n"
                 "boot VGA device.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    _cleanup_(run_config_free) run_config rc = {0};
    int r = parse_run_config(&cmd, argc, argv, true, &o, &p, &rc);
    if (r)
        return r == -1 ? 0 : r;
    cli_detach_keys keys;
    _cleanup_error_ hypr_error kerr = HYPR_ERROR_INIT;
    if (cli_parse_detach_keys(o.detach_keys, &keys, &kerr) < 0)
        return cli_invalid_value(&cmd, "detach-keys", o.detach_keys, kerr.message);
    if (!cli_connect(ctx))
        return 1;

    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    /* Subscribed before the VM exists, so its end cannot be missed. */
    _cleanup_stream_ rpc_stream *events = NULL;
    if (!o.detach && o.rm)
        events = cli_subscribe_vm_ends(ctx);
    Hypr__V1__RunVMRequest req = HYPR__V1__RUN_VMREQUEST__INIT;
    req.config = &rc.cfg;
    req.pull = (char *)(o.pull ? o.pull : "");
    req.attach = !o.detach && (o.interactive || o.tty); /* we start its workload's session */
    _cleanup_stream_ rpc_stream *s = NULL;
    r = cli_open_stream(ctx, RPC_METHOD("RunVM"), &req, &s, &err);
    if (r < 0)
        return cli_fail_with(ctx, 125, &err);
    _cleanup_(progress_freep) cli_progress *prog = NULL;
    _cleanup_free_ char *id = NULL;
    for (;;) {
        _cleanup_pb_ Hypr__V1__RunVMEvent *ev = NULL;
        r = rpc_stream_recv(s, &hypr__v1__run_vmevent__descriptor, (ProtobufCMessage **)&ev, -1,
                            &err);
        if (r <= 0)
            break;
        if (ev->vm && !str_empty(ev->vm->id) && !id)
            id = xstrdup(ev->vm->id);
        switch (ev->phase) {
        case HYPR__V1__RUN_VMEVENT__PHASE__PULLING:
            if (!prog) {
                if (!o.pull || strcmp(o.pull, "always") != 0)
                    fprintf(stderr, "Unable to find image '%s' locally\n", rc.cfg.image);
                progress_print_header(stderr, rc.cfg.image);
                prog = progress_new(stderr, isatty(STDERR_FILENO));
            }
            if (ev->pull)
                progress_update(prog, ev->pull);
            else if (!str_empty(ev->message))
                fprintf(stderr, "%s\n", ev->message);
            break;
        case HYPR__V1__RUN_VMEVENT__PHASE__FAILED:
            if (prog)
                progress_done(prog);
            /* Docker's codes: 126 cannot be run (user, permission), 127 not found */
            return cli_fail(ctx,
                            ev->vm && (ev->vm->exit_code == 126 || ev->vm->exit_code == 127)
                                ? ev->vm->exit_code
                                : 125,
                            "%s",
                            !str_empty(ev->message)               ? ev->message
                            : ev->vm && !str_empty(ev->vm->error) ? ev->vm->error
                                                                  : "the VM failed to start");
        default:
            if (prog && ev->phase != HYPR__V1__RUN_VMEVENT__PHASE__PULLING) {
                progress_done(prog);
                progress_free(TAKE_PTR(prog));
                prog = progress_new(stderr, false); /* keep the header printed once */
            }
            if (ctx->debug && !str_empty(ev->message))
                fprintf(stderr, "%s\n", ev->message);
            break;
        }
    }
    if (r < 0)
        return cli_fail_with(ctx, 125, &err);
    if (!id)
        return cli_fail(ctx, 125, "the daemon ended RunVM without reporting a VM");
    rpc_stream_free(TAKE_PTR(s));
    if ((r = cidfile_write(ctx, o.cidfile, id)))
        return r;
    if (o.detach) {
        printf("%s\n", id);
        return 0;
    }
    fflush(stdout);
    if (o.interactive || o.tty) /* the workload starts as this terminal's session */
        return cli_exec_main(ctx, id, o.interactive, o.tty, false, &keys);
    return cli_follow_until_exit(ctx, id, events, 0);
}

int cmd_create(cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(run_opts_free) run_opts o = {.stop_timeout = -1};
    const cli_option opts[] = {RUN_CONFIG_OPTIONS(&o), CLI_OPTIONS_END};
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        .description = "Create a new VM",
        .options = opts,
        .min_args = 1,
        .max_args = -1,
        .stop_at_positional = true,
        .error_exit = 125,
        .notes = "The VM is created, not started: 'hypr start VM' boots it. A missing image is "
                 "pulled first.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    _cleanup_(run_config_free) run_config rc = {0};
    int r = parse_run_config(&cmd, argc, argv, false, &o, &p, &rc);
    if (r)
        return r == -1 ? 0 : r;
    Hypr__V1__CreateVMRequest req = HYPR__V1__CREATE_VMREQUEST__INIT;
    req.config = &rc.cfg;
    req.pull = (char *)(o.pull ? o.pull : "");
    _cleanup_pb_ Hypr__V1__CreateVMResponse *resp = NULL;
    if (!cli_connect(ctx) || cli_call(ctx, "CreateVM", &req, &resp) < 0)
        return 125;
    const char *id = resp->vm ? resp->vm->id : "";
    if ((r = cidfile_write(ctx, o.cidfile, id)))
        return r;
    printf("%s\n", id);
    return 0;
}

/* ---- ps ------------------------------------------------------------------- */

static int cmp_created_desc(const void *a, const void *b)
{
    const Hypr__V1__VM *x = *(Hypr__V1__VM *const *)a, *y = *(Hypr__V1__VM *const *)b;
    return (x->created_at < y->created_at) - (x->created_at > y->created_at);
}

static void vm_row(cli_table *t, const void *item, const cli_view_opts *o)
{
    const Hypr__V1__VM *vm = item;
    _cleanup_free_ char *id = cli_item_short_id(vm, o);
    _cleanup_free_ char *status = vm_status_text(vm, o->now);
    _cleanup_free_ char *ports = vm_ports_text(vm);
    table_add(t, id, vm->name, vm->config ? vm->config->image : "", status, vm->ip_address, ports);
}

int cmd_ps(cli_ctx *ctx, int argc, char **argv)
{
    bool all = false, quiet = false, no_trunc = false;
    const char *format = NULL;
    _cleanup_list_ cli_list filters = {0};
    const cli_option opts[] = {
        CLI_BOOL('a', "all", &all, "Show all VMs (default shows just running)"),
        CLI_LIST('f', "filter", "filter", &filters,
                 "Filter output by KEY=VALUE (repeatable; keys below)"),
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default), json (a JSON array, full IDs), or a Go "
                   "template ('{{.ID}} {{.Names}}', 'table {{.ID}}\\t{{.Status}}')"),
        CLI_BOOL(0, "no-trunc", &no_trunc, "Don't truncate output"),
        CLI_BOOL('q', "quiet", &quiet, "Only display VM IDs"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "List VMs",
        .options = opts,
        .max_args = 0,
        .notes = "Filters: id=ID-PREFIX, name=SUBSTRING, label=KEY[=VALUE], status=STATE\n"
                 "(created, restarting, running, removing, paused, exited, dead, or hypr's\n"
                 "booting, stopping, stopped, failed), exited=CODE, ancestor=IMAGE,\n"
                 "network=NAME|ID, volume=SOURCE|TARGET, publish=PORT[-PORT][/PROTO],\n"
                 "expose=PORT[-PORT][/PROTO], before=VM, since=VM. The same key given twice\n"
                 "matches either value; different keys must all match, as must every label.\n"
                 "status, exited, before and since list stopped VMs without -a.\n"
                 "JSON keys: ID, Names, Image, ImageID, State, Status, ExitCode, IPAddress, "
                 "Ports,\nNetworks, Labels, CreatedAt, RunningFor, Command, Stack, Error. --format "
                 "also takes a Go\ntemplate of them, as Docker's does.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    int json = cli_parse_with_format(&cmd, argc, argv, &p, &format, &ec);
    if (json < 0)
        return ec;
    Hypr__V1__ListVmsRequest req = HYPR__V1__LIST_VMS_REQUEST__INIT;
    req.all = all;
    req.filters = (char **)filters.items; /* the daemon parses and applies them */
    req.n_filters = filters.n;
    _cleanup_pb_ Hypr__V1__ListVmsResponse *resp = NULL;
    if (cli_call(ctx, "ListVms", &req, &resp) < 0)
        return 1;
    if (resp->n_vms > 1)
        qsort(resp->vms, resp->n_vms, sizeof(*resp->vms), cmp_created_desc);
    static const char *const header[] = {"ID", "NAME", "IMAGE", "STATUS", "IP", "PORTS"};
    /* Docker's column names for the template fields they differ on */
    static const char *const template_headers[] = {"ID", "CONTAINER ID", "RunningFor", "CREATED",
                                                   NULL};
    static const cli_view view = {vm_summary_json, cli_item_short_id, ARRAY_SIZE(header), header,
                                  vm_row,          template_headers};
    const cli_view_opts o = {.no_trunc = no_trunc, .now = time(NULL), .format = format};
    return cli_print_items(ctx, (void **)resp->vms, resp->n_vms, &view, json, quiet, &o);
}

/* ---- start / stop / restart / rm ------------------------------------------ */

typedef enum { ACT_START, ACT_STOP, ACT_RESTART, ACT_RM } vm_action;

typedef struct vm_action_args {
    vm_action act;
    uint32_t timeout;
    const char *signal; /* stop / restart -s */
    bool force, volumes;
} vm_action_args;

/* Prints the name as soon as it succeeded (flushed, so it shows before a later error). */
static int do_action(cli_ctx *ctx, const char *id, void *userdata)
{
    const vm_action_args *a = userdata;
    if ((a->act == ACT_STOP || a->act == ACT_RESTART) &&
        stop_vm(ctx, id, a->timeout, a->signal) < 0)
        return -1;
    _cleanup_pb_ Hypr__V1__StartVMResponse *started = NULL;
    if ((a->act == ACT_START || a->act == ACT_RESTART) &&
        cli_call_ref(ctx, "StartVM", "id", id, false, &started) < 0)
        return -1;
    Hypr__V1__DeleteVMRequest del = HYPR__V1__DELETE_VMREQUEST__INIT;
    del.id = (char *)id;
    del.force = a->force;
    del.remove_volumes = a->volumes;
    _cleanup_pb_ Hypr__V1__DeleteVMResponse *deleted = NULL;
    if (a->act == ACT_RM && cli_call(ctx, "DeleteVM", &del, &deleted) < 0)
        return -1;
    printf("%s\n", id);
    fflush(stdout);
    return 0;
}

static int simple_vm_cmd(cli_ctx *ctx, int argc, char **argv, vm_action act)
{
    int64_t timeout = -1;
    bool force = false, volumes = false, attach = false, interactive = false;
    const char *sig = NULL, *keys_spec = NULL;
    const cli_option start_opts[] = {
        CLI_BOOL('a', "attach", &attach, "Attach STDOUT/STDERR and forward signals"),
        CLI_STRING(0, "detach-keys", "string", &keys_spec,
                   "Override the key sequence for detaching a VM (default: ctrl-p,ctrl-q)"),
        CLI_BOOL('i', "interactive", &interactive, "Attach VM's STDIN"),
        CLI_OPTIONS_END,
    };
    const cli_option stop_opts[] = {
        CLI_STRING('s', "signal", "string", &sig,
                   "Signal to send the workload (default: the VM's stop signal)"),
        CLI_INT('t', "time", "int", &timeout, 0, 86400,
                "Seconds to wait before killing the VM (default: the VM's stop timeout)"),
        CLI_OPTIONS_END,
    };
    const cli_option rm_opts[] = {
        CLI_BOOL('f', "force", &force, "Force the removal of a running VM"),
        CLI_BOOL('v', "volumes", &volumes, "Remove anonymous volumes associated with the VM"),
        CLI_OPTIONS_END,
    };
    static const char *const desc[] = {"Start one or more stopped VMs",
                                       "Stop one or more running VMs", "Restart one or more VMs",
                                       "Remove one or more VMs"};
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] VM [VM...]",
        .description = desc[act],
        .options = act == ACT_RM                           ? rm_opts
                   : act == ACT_STOP || act == ACT_RESTART ? stop_opts
                                                           : start_opts,
        .min_args = 1,
        .max_args = -1,
        .notes = act == ACT_START
                     ? "A VM is named by its name, ID, or a unique ID prefix. -a shows the VM's "
                       "output\nuntil it exits and exits with its code; with -i, a VM created "
                       "with -i or -it also\ngets this terminal's input (Ctrl-P Ctrl-Q "
                       "detaches)."
                     : "A VM is named by its name, ID, or a unique ID prefix.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (sig && signal_parse(sig) < 0)
        return cli_invalid_value(&cmd, "signal", sig, "not a signal name or number");
    if (attach || interactive) {
        cli_detach_keys keys;
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (cli_parse_detach_keys(keys_spec, &keys, &err) < 0)
            return cli_invalid_value(&cmd, "detach-keys", keys_spec, err.message);
        if (p.nargs > 1) /* Docker's words */
            return cli_fail(ctx, 1, "you cannot start and attach multiple VMs at once");
        return cli_connect(ctx) ? cli_start_attached(ctx, p.args[0], interactive, &keys) : 1;
    }
    vm_action_args a = {act, timeout < 0 ? 0 : (uint32_t)timeout, sig, force, volumes};
    return cli_for_each_arg(ctx, &p, do_action, &a);
}

int cmd_start(cli_ctx *ctx, int argc, char **argv)
{
    return simple_vm_cmd(ctx, argc, argv, ACT_START);
}
int cmd_stop(cli_ctx *ctx, int argc, char **argv)
{
    return simple_vm_cmd(ctx, argc, argv, ACT_STOP);
}
int cmd_restart(cli_ctx *ctx, int argc, char **argv)
{
    return simple_vm_cmd(ctx, argc, argv, ACT_RESTART);
}
int cmd_rm(cli_ctx *ctx, int argc, char **argv)
{
    return simple_vm_cmd(ctx, argc, argv, ACT_RM);
}

/* ---- rename ----------------------------------------------------------------- */

int cmd_rename(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "VM NEW_NAME",
        .description = "Rename a VM",
        .min_args = 2,
        .max_args = 2,
        .notes = "A VM is named by its name, ID, or a unique ID prefix. A running VM's new "
                 "name resolves in DNS at once; its hostname stays as it booted.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    Hypr__V1__RenameVMRequest req = HYPR__V1__RENAME_VMREQUEST__INIT;
    req.id = p.args[0];
    req.name = p.args[1];
    _cleanup_pb_ Hypr__V1__RenameVMResponse *resp = NULL;
    return cli_call(ctx, "RenameVM", &req, &resp) < 0 ? 1 : 0;
}

/* ---- logs ----------------------------------------------------------------- */

static int write_prefix(int fd, const char *prefix, bool timestamps, int64_t ts_ms)
{
    int r = 0;
    if (prefix)
        r = fd_write_all(fd, prefix, strlen(prefix));
    if (r >= 0 && timestamps) {
        char base[48], out[64];
        cli_rfc3339(ts_ms / 1000, base, sizeof(base));
        base[strlen(base) - 1] = '\0'; /* drop Z: the milliseconds go before it */
        int n = snprintf(out, sizeof(out), "%s.%03dZ ", base, (int)(ts_ms % 1000));
        r = fd_write_all(fd, out, (size_t)n);
    }
    return r;
}

int cli_write_log_entry(const Hypr__V1__LogEntry *e, bool timestamps, bool console,
                        const char *prefix, bool line_start[2])
{
    int fd;
    if (!strcmp(e->stream, "stderr"))
        fd = STDERR_FILENO;
    else if (!strcmp(e->stream, "console")) {
        if (!console)
            return 0;
        fd = STDOUT_FILENO;
    } else
        fd = STDOUT_FILENO;
    bool *start = &line_start[fd == STDERR_FILENO];
    if (!prefix && !timestamps)
        return fd_write_all(fd, e->data.data, e->data.len);
    const char *p = (const char *)e->data.data, *end = p + e->data.len;
    while (p < end) {
        if (*start) {
            int r = write_prefix(fd, prefix, timestamps, e->timestamp_ms);
            if (r < 0)
                return r;
            *start = false;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl + 1 : end;
        int r = fd_write_all(fd, p, (size_t)(stop - p));
        if (r < 0)
            return r;
        if (nl)
            *start = true;
        p = stop;
    }
    return 0;
}

int cmd_logs(cli_ctx *ctx, int argc, char **argv)
{
    bool follow = false, timestamps = false, console = false, details = false;
    const char *tail = "all", *since = NULL, *until = NULL;
    const cli_option opts[] = {
        CLI_BOOL(0, "console", &console,
                 "Show the VM's console instead: kernel, kestrel and workload lines"),
        CLI_BOOL(0, "details", &details,
                 "Show extra details provided to logs (hypr keeps none: the same lines)"),
        CLI_BOOL('f', "follow", &follow, "Follow log output"),
        CLI_STRING(0, "since", "string", &since,
                   "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative "
                   "(e.g. \"42m\" for 42 minutes)"),
        CLI_STRING('n', "tail", "string", &tail,
                   "Number of lines to show from the end of the logs (default \"all\")"),
        CLI_BOOL('t', "timestamps", &timestamps, "Show timestamps"),
        CLI_STRING(0, "until", "string", &until,
                   "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative "
                   "(e.g. \"42m\" for 42 minutes)"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] VM",
        .description = "Fetch the logs of a VM",
        .options = opts,
        .min_args = 1,
        .max_args = 1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    Hypr__V1__StreamLogsRequest req = HYPR__V1__STREAM_LOGS_REQUEST__INIT;
    if (cli_parse_tail(tail, &req.tail, &err) < 0)
        return cli_invalid_value(&cmd, "tail", tail, err.message);
    int64_t now = time_now_ms();
    if (since && parse_time_reference(since, now, &req.since_ms) < 0)
        return cli_invalid_value(&cmd, "since", since,
                                 "use an RFC 3339 time, Unix seconds, or a duration like 10m");
    if (until && parse_time_reference(until, now, &req.until_ms) < 0)
        return cli_invalid_value(&cmd, "until", until,
                                 "use an RFC 3339 time, Unix seconds, or a duration like 10m");
    req.id = p.args[0];
    req.follow = follow;
    req.console = console;
    if (!cli_connect(ctx))
        return 1;
    _cleanup_stream_ rpc_stream *s = NULL;
    if (cli_open_stream(ctx, RPC_METHOD("StreamLogs"), &req, &s, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    bool line_start[2] = {true, true};
    for (;;) {
        _cleanup_pb_ Hypr__V1__LogEntry *e = NULL;
        int r =
            rpc_stream_recv(s, &hypr__v1__log_entry__descriptor, (ProtobufCMessage **)&e, -1, &err);
        if (r == 0)
            return 0;
        if (r < 0)
            return cli_fail_with(ctx, 1, &err);
        if (cli_write_log_entry(e, timestamps, console, NULL, line_start) < 0)
            return errno == EPIPE ? 0 : 1;
    }
}

/* ---- inspect -------------------------------------------------------------- */

const cli_resource cli_vm_resource = {
    .get_rpc = "GetVM",
    .delete_rpc = "DeleteVM",
    .list_rpc = "ListVms",
    .ref_field = "id",
    .item_field = "vm",
    .list_field = "vms",
    .noun = "VM",
    .inspect_json = vm_inspect_json,
    .inspect_help = "Return low-level information on VMs as a JSON array",
    .inspect_notes = "Docker-like keys: Id, Name, Created, Image, State{Status, Running, Pid, "
                     "ExitCode,\nError, StartedAt, FinishedAt}, Config, HostConfig, Mounts, "
                     "NetworkSettings.\nFor images, volumes and networks use 'hypr image "
                     "inspect', 'hypr volume\ninspect', 'hypr network inspect'.",
};

int cmd_inspect(cli_ctx *ctx, int argc, char **argv)
{
    return cli_inspect_command(ctx, argc, argv, &cli_vm_resource);
}
