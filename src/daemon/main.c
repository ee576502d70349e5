/* hyprd: the hypr daemon. Owns the state, serves the gRPC API on a unix socket
 * (and optionally TCP), and shuts down cleanly on SIGTERM/SIGINT. */
#define LOG_MODULE "hyprd"
#include "api.h"
#include "metrics_daemon.h"
#include "rest.h"
#include "netmgr.h"
#include "vm.h"

#include "gpu/gpu.h"
#include "image/image.h"

#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#define DEFAULT_DATA_DIR "/var/lib/hypr"
#define DEFAULT_RUN_DIR  "/run/hypr"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: hyprd [OPTIONS]\n"
            "\n"
            "The hypr daemon: runs OCI images as microVMs and serves the hypr gRPC API.\n"
            "\n"
            "Options:\n"
            "  --data-dir DIR   persistent state (default %s, env HYPR_DATA_DIR)\n"
            "  --run-dir DIR    sockets and pid file (default %s, env HYPR_RUN_DIR)\n"
            "  --socket PATH    API socket (default <run-dir>/hypr.sock)\n"
            "  --foreground     stay attached to the terminal (hyprd never forks; accepted for\n"
            "                   compatibility with service managers)\n"
            "  -h, --help       show this help\n"
            "  --version        show the version\n"
            "\n"
            "Logging: HYPR_LOG=info | debug | info,rpc=debug,state=trace\n"
            "GPUs: HYPR_SYSFS_ROOT=DIR uses DIR/bus/pci instead of /sys/bus/pci (tests on a\n"
            "fake tree), HYPR_PCI_IDS=FILE the PCI names (default " GPU_PCI_IDS_PATH ")\n",
            DEFAULT_DATA_DIR, DEFAULT_RUN_DIR);
}

static char *absolute(const char *p)
{
    if (p[0] == '/')
        return xstrdup(p);
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        return xstrdup(p);
    return path_join(cwd, p);
}

/* Takes the pid-file lock. A lock held by a live daemon refuses the start; a
 * stale file from a dead one is simply taken over, since its lock died with it. */
static int pidfile_acquire(daemon_ctx *d, hypr_error *err)
{
    int fd = open(d->pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "open %s: %s", d->pid_path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char buf[32] = {0};
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        close(fd);
        if (e == EWOULDBLOCK) {
            long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EEXIST,
                            "hyprd is already running (pid %ld) with run dir %s", pid, d->run_dir);
        }
        return hypr_err(err, HYPR_INTERNAL, e, "lock %s: %s", d->pid_path, strerror(e));
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        int e = errno;
        close(fd);
        return hypr_err(err, HYPR_INTERNAL, e, "write %s: %s", d->pid_path, strerror(e));
    }
    d->pid_fd = fd;
    return 0;
}

static void pidfile_release(daemon_ctx *d)
{
    if (d->pid_fd < 0)
        return;
    unlink(d->pid_path);
    close(d->pid_fd);
    d->pid_fd = -1;
}

/* systemd Type=notify readiness, without linking libsystemd. */
static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (str_empty(path))
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    static const char msg[] = "READY=1\nSTATUS=serving the hypr API";
    if (sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        log_warn("sd_notify: %s", strerror(errno));
}

static void on_server_closed(rpc_server *s)
{
    daemon_ctx *d = rpc_server_userdata(s);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
}

/* VMs stop first (their calls may still be answered), then the API closes. */
static void on_vms_stopped(daemon_ctx *d)
{
    rest_stop(d);
    metrics_stop(d);
    netmgr_dns_stop(d);
    event_bus_close_all(d->events);
    rpc_server_shutdown(d->server, on_server_closed);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_ctx *d = h->data;
    if (d->shutting_down)
        return;
    d->shutting_down = true;
    log_info("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    vm_manager_shutdown(d, on_vms_stopped);
}

/* Group `hypr` may use the socket when that group exists (like docker's group). */
static void socket_group(const char *path)
{
    struct group *g = getgrnam("hypr");
    if (g && chown(path, (uid_t)-1, g->gr_gid) < 0)
        log_warn("chown %s to group hypr: %s", path, strerror(errno));
}

static int start_listeners(daemon_ctx *d, hypr_error *err)
{
    int r = rpc_server_listen_unix(d->server, d->socket_path, 0660, err);
    if (r < 0)
        return hypr_err_prefix(err, "listen on %s", d->socket_path);
    socket_group(d->socket_path);
    log_info("listening on unix://%s", d->socket_path);
    if (settings_get_bool(d, "grpc_tcp")) {
        _cleanup_free_ char *addr = settings_get(d, "grpc_tcp_address");
        char *colon = strrchr(addr, ':');
        if (!colon)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "bad grpc_tcp_address %s", addr);
        *colon = '\0';
        r = rpc_server_listen_tcp(d->server, addr, atoi(colon + 1), err);
        if (r < 0)
            return hypr_err_prefix(err, "listen on %s:%s", addr, colon + 1);
        log_info("listening on tcp://%s:%s", addr, colon + 1);
    }
    return 0;
}

/* Each forwarded connection holds up to 6 fds (2 sockets, 2 pipes of 2) and each
 * VM a few more: take the hard limit, as dockerd's unit does with LimitNOFILE. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            log_debug("open files limit raised from %llu to %llu", (unsigned long long)was,
                      (unsigned long long)rl.rlim_cur);
    }
}

static int run(daemon_ctx *d, hypr_error *err)
{
    raise_fd_limit();
    int r = mkdir_p(d->data_dir, 0711);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "create data dir %s: %s", d->data_dir,
                        strerror(-r));
    r = mkdir_p(d->run_dir, 0711);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "create run dir %s: %s", d->run_dir, strerror(-r));
    r = pidfile_acquire(d, err);
    if (r < 0)
        return r;

    _cleanup_free_ char *db_path = path_join(d->data_dir, "hypr.db");
    r = store_open(db_path, &d->db, err);
    if (r < 0)
        return r;
    /* Interrupted pulls leave temp dirs and partial blobs: never registered, so remove them. */
    int removed = image_store_cleanup(d->data_dir);
    if (removed > 0)
        log_info("removed %d leftovers of interrupted pulls", removed);
    settings_apply(d);
    event_bus_new(&d->events);
    event_bus_watch_vms(d);
    api_init(d);
    vm_manager_init(d);
    r = netmgr_init(d, err);
    if (r < 0)
        return hypr_err_prefix(err, "networking");

    const rpc_method *methods;
    size_t n_methods;
    api_methods(&methods, &n_methods);
    rpc_server_options opts = {.userdata = d, .observe = metrics_rpc_observe};
    r = rpc_server_new(d->loop, methods, n_methods, &opts, &d->server, err);
    if (r < 0)
        return r;
    r = start_listeners(d, err);
    if (r < 0)
        return r;
    rest_start(d);
    metrics_start(d);

    d->sig_term.data = d->sig_int.data = d;
    uv_signal_init(d->loop, &d->sig_term);
    uv_signal_init(d->loop, &d->sig_int);
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);

    r = vm_manager_reconcile(d, err);
    if (r < 0)
        return r;
    log_info("hyprd %s ready (data %s, run %s)", HYPR_VERSION, d->data_dir, d->run_dir);
    notify_ready();
    uv_run(d->loop, UV_RUN_DEFAULT);
    log_info("stopped");
    return 0;
}

static void cleanup(daemon_ctx *d)
{
    rest_stop(d);
    metrics_stop(d);
    if (d->server)
        rpc_server_free(d->server);
    api_free(d);
    event_bus_unwatch_vms(d);
    event_bus_free(d->events);
    netmgr_dns_stop(d);
    vm_manager_free(d);
    netmgr_free(d);
    store_close(d->db);
    pidfile_release(d);
    free(d->data_dir);
    free(d->run_dir);
    free(d->socket_path);
    free(d->pid_path);
}

int main(int argc, char **argv)
{
    enum { OPT_DATA = 256, OPT_RUN, OPT_SOCKET, OPT_FOREGROUND, OPT_VERSION };
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA},
        {"run-dir", required_argument, NULL, OPT_RUN},
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"foreground", no_argument, NULL, OPT_FOREGROUND},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *data_dir = getenv("HYPR_DATA_DIR");
    const char *run_dir = getenv("HYPR_RUN_DIR");
    const char *socket_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA:
            data_dir = optarg;
            break;
        case OPT_RUN:
            run_dir = optarg;
            break;
        case OPT_SOCKET:
            socket_path = optarg;
            break;
        case OPT_FOREGROUND:
            break;
        case OPT_VERSION:
            printf("hyprd %s\n", HYPR_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "See 'hyprd --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hyprd: unexpected argument '%s'\nSee 'hyprd --help'.\n", argv[optind]);
        return 2;
    }
    if (hypr_log_init(getenv("HYPR_LOG")) < 0)
        fprintf(stderr, "hyprd: ignoring bad parts of HYPR_LOG=%s\n", getenv("HYPR_LOG"));

    daemon_ctx d = {.loop = uv_default_loop(), .pid_fd = -1};
    d.data_dir = absolute(str_empty(data_dir) ? DEFAULT_DATA_DIR : data_dir);
    d.run_dir = absolute(str_empty(run_dir) ? DEFAULT_RUN_DIR : run_dir);
    d.socket_path = socket_path ? absolute(socket_path) : path_join(d.run_dir, "hypr.sock");
    d.pid_path = path_join(d.run_dir, "hyprd.pid");
    d.started_at_ms = time_now_ms();
    d.started_mono_ms = time_monotonic_ms();

    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = run(&d, &err);
    if (r < 0)
        fprintf(stderr, "hyprd: %s\n", err.message ? err.message : strerror(-r));
    cleanup(&d);
    uv_loop_close(d.loop);
    return r < 0 ? 1 : 0;
}
