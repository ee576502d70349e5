/* hypr exec: runs a command in a running VM over the bidirectional Exec call.
 * The loop polls stdin, the rpc socket and a self-pipe fed by signal handlers
 * (SIGWINCH -> resize, SIGINT -> forwarded), so nothing blocks in a handler. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>

/* Terminal state, global because signal handlers and atexit restore it. */
static struct termios saved_termios;
static volatile sig_atomic_t raw_mode;
static int sig_pipe[2] = {-1, -1};

static void tty_restore(void)
{
    if (raw_mode) {
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_termios);
        raw_mode = 0;
    }
}

static int tty_make_raw(void)
{
    if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
        return -errno;
    struct termios raw = saved_termios;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) < 0)
        return -errno;
    raw_mode = 1;
    static bool registered;
    if (!registered) {
        atexit(tty_restore);
        registered = true;
    }
    return 0;
}

static void on_signal_pipe(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
        /* a full pipe already holds a wakeup */
    }
    errno = saved;
}

/* Fatal signals: put the terminal back first, then die the way the signal says. */
static void on_fatal_signal(int sig)
{
    tty_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void get_size(Hypr__V1__TerminalSize *ts)
{
    struct winsize ws;
    int fd = isatty(STDOUT_FILENO) ? STDOUT_FILENO : STDIN_FILENO;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
        ts->rows = ws.ws_row;
        ts->cols = ws.ws_col;
    } else {
        ts->rows = 24;
        ts->cols = 80;
    }
}

typedef struct exec_session {
    rpc_stream *s;
    hypr_error err;
    int exit_code;
    bool got_exit;
    int in_fd, out_fd;           /* the command's stdin source and stdout sink here */
    const cli_detach_keys *keys; /* run -it, attach: they leave the workload running */
    size_t matched;              /* input bytes held: the first ones of the keys */
    bool detached;
} exec_session;

/* Drains every message already received; returns 1 at the end of the call,
 * 0 when more may come, <0 on error (printed by the caller). */
static int drain(exec_session *x)
{
    for (;;) {
        Hypr__V1__ExecResponse *m = NULL;
        int r = rpc_stream_recv(x->s, &hypr__v1__exec_response__descriptor, (ProtobufCMessage **)&m,
                                0, &x->err);
        if (r == -ETIMEDOUT)
            return 0;
        if (r == 0)
            return 1;
        if (r < 0)
            return r;
        int w = 0;
        switch (m->msg_case) {
        case HYPR__V1__EXEC_RESPONSE__MSG_STDOUT:
            w = fd_write_all(x->out_fd, m->stdout.data, m->stdout.len);
            break;
        case HYPR__V1__EXEC_RESPONSE__MSG_STDERR:
            w = fd_write_all(STDERR_FILENO, m->stderr.data, m->stderr.len);
            break;
        case HYPR__V1__EXEC_RESPONSE__MSG_EXIT_CODE:
            x->exit_code = m->exit_code;
            x->got_exit = true;
            break;
        default:
            break;
        }
        protobuf_c_message_free_unpacked(&m->base, NULL);
        if (w < 0)
            return hypr_err(&x->err, HYPR_UNKNOWN, -w, "writing output: %s", strerror(-w));
    }
}

static int send_msg(exec_session *x, Hypr__V1__ExecRequest *req)
{
    return rpc_stream_send(x->s, &req->base, &x->err);
}

static void install(int sig, void (*fn)(int), struct sigaction *old)
{
    struct sigaction sa = {.sa_handler = fn, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, old);
}

/* Sends one message; if the call already ended (the command exited while we
 * were still sending input), that is not an error: the caller drains the rest. */
static int send_or_end(exec_session *x, Hypr__V1__ExecRequest *req)
{
    int r = send_msg(x, req);
    if (r < 0) {
        int d = drain(x);
        if (d == 1) {
            hypr_error_clear(&x->err);
            return 1;
        }
    }
    return r;
}

static int exec_loop(exec_session *x, rpc_client *c, bool interactive, bool tty)
{
    bool stdin_open = interactive;
    int sigints = 0;
    enum { CHUNK = 32 * 1024 };
    _cleanup_free_ uint8_t *buf = xmalloc(CHUNK);
    for (;;) {
        int r = drain(x);
        if (r != 0)
            return r < 0 ? r : 0;
        struct pollfd fds[3] = {
            {.fd = rpc_client_fd(c), .events = POLLIN},
            {.fd = sig_pipe[0], .events = POLLIN},
            {.fd = stdin_open ? x->in_fd : -1, .events = POLLIN},
        };
        /* The timeout only bounds how long buffered HTTP/2 work can wait. */
        if (poll(fds, 3, 200) < 0 && errno != EINTR)
            return hypr_err(&x->err, HYPR_INTERNAL, errno, "poll: %s", strerror(errno));
        if (fds[1].revents & POLLIN) {
            unsigned char sigs[16];
            ssize_t k = read(sig_pipe[0], sigs, sizeof(sigs));
            for (ssize_t i = 0; i < k; i++) {
                Hypr__V1__ExecRequest req = HYPR__V1__EXEC_REQUEST__INIT;
                Hypr__V1__TerminalSize size = HYPR__V1__TERMINAL_SIZE__INIT;
                if (sigs[i] == SIGWINCH) {
                    if (!tty)
                        continue;
                    get_size(&size);
                    req.msg_case = HYPR__V1__EXEC_REQUEST__MSG_RESIZE;
                    req.resize = &size;
                } else {
                    /* Forward Ctrl-C like docker's signal proxy; the third one gives up. */
                    if (++sigints >= 3)
                        return 130;
                    req.msg_case = HYPR__V1__EXEC_REQUEST__MSG_SIGNAL;
                    req.signal = sigs[i];
                }
                r = send_or_end(x, &req);
                if (r != 0)
                    return r < 0 ? r : 0;
            }
        }
        if (stdin_open && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
            /* Room for held detach keys that turn out to be input. */
            ssize_t k = read(x->in_fd, buf, CHUNK - sizeof(((cli_detach_keys *)0)->key));
            if (k < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            Hypr__V1__ExecRequest req = HYPR__V1__EXEC_REQUEST__INIT;
            size_t len = k > 0 ? (size_t)k : 0;
            bool detach = k > 0 && x->keys && cli_detach_match(x->keys, &x->matched, buf, &len);
            if (k > 0 && len == 0 && !detach)
                continue; /* held: they may be the detach keys */
            if (k <= 0) {
                stdin_open = false;
                req.msg_case = HYPR__V1__EXEC_REQUEST__MSG_STDIN_EOF;
                req.stdin_eof = true;
            } else {
                req.msg_case = HYPR__V1__EXEC_REQUEST__MSG_STDIN;
                req.stdin.data = buf;
                req.stdin.len = len;
            }
            if (detach) {
                if (len > 0 && send_or_end(x, &req) != 0)
                    return 0;
                x->detached = true;
                return 0;
            }
            r = send_or_end(x, &req);
            /* Without a terminal there is nothing left to send after EOF. */
            if (r == 0 && !stdin_open && !tty)
                r = rpc_stream_close_send(x->s, &x->err);
            if (r != 0)
                return r < 0 ? r : 0;
        }
    }
}

/* Runs one session to its end: the terminal raw when tty && interactive, signals and
 * resizes forwarded; the command's exit code (0 after a detach). */
static int run_session(cli_ctx *ctx, Hypr__V1__ExecStart *start, bool interactive, bool tty,
                       const cli_detach_keys *keys)
{
    Hypr__V1__ExecRequest req = HYPR__V1__EXEC_REQUEST__INIT;
    req.msg_case = HYPR__V1__EXEC_REQUEST__MSG_START;
    req.start = start;

    exec_session x = {
        .err = HYPR_ERROR_INIT, .in_fd = STDIN_FILENO, .out_fd = STDOUT_FILENO, .keys = keys};
    int r = rpc_client_open(ctx->client, RPC_METHOD("Exec"), 0, &x.s, &x.err);
    if (r >= 0)
        r = send_msg(&x, &req);
    /* Without stdin or a terminal to resize there is nothing more to send. */
    if (r >= 0 && !interactive && !tty)
        r = rpc_stream_close_send(x.s, &x.err);
    if (r >= 0) {
        if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
            r = hypr_err(&x.err, HYPR_INTERNAL, errno, "pipe: %s", strerror(errno));
        } else {
            struct sigaction old_winch, old_int, old_term, old_hup, old_quit;
            install(SIGWINCH, on_signal_pipe, &old_winch);
            install(SIGINT, on_signal_pipe, &old_int);
            install(SIGTERM, on_fatal_signal, &old_term);
            install(SIGHUP, on_fatal_signal, &old_hup);
            install(SIGQUIT, on_fatal_signal, &old_quit);
            if (tty && interactive && tty_make_raw() < 0)
                log_debug("cannot put the terminal in raw mode: %s", strerror(errno));
            r = exec_loop(&x, ctx->client, interactive, tty);
            tty_restore();
            sigaction(SIGWINCH, &old_winch, NULL);
            sigaction(SIGINT, &old_int, NULL);
            sigaction(SIGTERM, &old_term, NULL);
            sigaction(SIGHUP, &old_hup, NULL);
            sigaction(SIGQUIT, &old_quit, NULL);
            close(sig_pipe[0]);
            close(sig_pipe[1]);
            sig_pipe[0] = sig_pipe[1] = -1;
        }
    }
    if (x.s)
        rpc_stream_free(x.s);
    if (r == 130 || r == 143) {
        hypr_error_clear(&x.err);
        return r;
    }
    if (r < 0)
        return cli_fail_with(ctx, 1, &x.err);
    hypr_error_clear(&x.err);
    if (x.detached) {
        fprintf(stderr, "\r\nread escape sequence\r\n"); /* Docker's words */
        return 0;
    }
    if (!x.got_exit)
        return cli_fail(ctx, 1, "the exec session ended without an exit code");
    if (start->main || start->attach) {
        /* The workload ended: so does the VM, soon. Return once it has, as docker does
         * (a 'rm' right after must find it stopped); a --rm VM may be gone already. */
        Hypr__V1__WaitVMRequest wreq = HYPR__V1__WAIT_VMREQUEST__INIT;
        wreq.id = start->id;
        _cleanup_pb_ Hypr__V1__WaitVMResponse *w = NULL;
        _cleanup_error_ hypr_error werr = HYPR_ERROR_INIT;
        if (rpc_client_unary(ctx->client, RPC_METHOD("WaitVM"), &wreq.base,
                             &hypr__v1__wait_vmresponse__descriptor, (ProtobufCMessage **)&w, 30000,
                             &werr) < 0)
            log_debug("waiting for VM %s to stop: %s", start->id, werr.message);
    }
    return x.exit_code;
}

int cmd_exec(cli_ctx *ctx, int argc, char **argv)
{
    bool interactive = false, tty = false;
    const char *workdir = NULL, *user = NULL;
    _cleanup_list_ cli_list env = {0};
    const cli_option opts[] = {
        CLI_LIST('e', "env", "list", &env, "Set environment variables (K=V, or K to copy it)"),
        CLI_BOOL('i', "interactive", &interactive, "Keep STDIN open and send it to the command"),
        CLI_BOOL('t', "tty", &tty, "Allocate a pseudo-TTY"),
        CLI_STRING('u', "user", "string", &user,
                   "Username or UID (format: <name|uid>[:<group|gid>])"),
        CLI_STRING('w', "workdir", "string", &workdir, "Working directory inside the VM"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] VM [--] [COMMAND] [ARG...]",
        .description = "Execute a command in a running VM",
        .options = opts,
        .min_args = 1,
        .max_args = -1,
        .stop_at_positional = true,
        .notes = "COMMAND defaults to /bin/sh. hypr exits with the command's exit code.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (tty && interactive && !isatty(STDIN_FILENO)) {
        fprintf(stderr, "the input device is not a TTY\n");
        return 1;
    }
    _cleanup_map_ cli_map envm = {0};
    for (size_t i = 0; i < env.n; i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_free_ char *k = NULL, *v = NULL;
        int r = cli_parse_env(env.items[i], &k, &v, &err);
        if (r < 0)
            return cli_invalid_value(&cmd, "env", env.items[i], err.message);
        if (r > 0)
            cli_map_set(&envm, &hypr__v1__exec_start__env_entry__descriptor, k, v);
    }
    if (!cli_connect(ctx))
        return 1;

    static char *default_cmd[] = {(char *)"/bin/sh"};
    Hypr__V1__TerminalSize size = HYPR__V1__TERMINAL_SIZE__INIT;
    Hypr__V1__ExecStart start = HYPR__V1__EXEC_START__INIT;
    start.id = p.args[0];
    start.command = p.nargs > 1 ? p.args + 1 : default_cmd;
    start.n_command = p.nargs > 1 ? (size_t)(p.nargs - 1) : 1;
    start.env = (Hypr__V1__ExecStart__EnvEntry **)envm.entries;
    start.n_env = envm.n;
    if (workdir)
        start.workdir = (char *)workdir;
    if (user)
        start.user = (char *)user;
    start.tty = tty;
    start.interactive = interactive;
    if (tty) {
        get_size(&size);
        start.size = &size;
    }
    return run_session(ctx, &start, interactive, tty, NULL);
}

int cli_exec_pipe(cli_ctx *ctx, const char *vm, char **argv, size_t argc, int in_fd, int out_fd,
                  int *exit_code, hypr_error *err)
{
    Hypr__V1__ExecStart start = HYPR__V1__EXEC_START__INIT;
    start.id = (char *)vm;
    start.command = argv;
    start.n_command = argc;
    start.interactive = in_fd >= 0;
    Hypr__V1__ExecRequest req = HYPR__V1__EXEC_REQUEST__INIT;
    req.msg_case = HYPR__V1__EXEC_REQUEST__MSG_START;
    req.start = &start;
    exec_session x = {.err = HYPR_ERROR_INIT, .in_fd = in_fd, .out_fd = out_fd};
    int r = rpc_client_open(ctx->client, RPC_METHOD("Exec"), 0, &x.s, &x.err);
    if (r >= 0)
        r = send_msg(&x, &req);
    if (r >= 0 && in_fd < 0)
        r = rpc_stream_close_send(x.s, &x.err);
    if (r >= 0)
        r = exec_loop(&x, ctx->client, in_fd >= 0, false);
    if (x.s)
        rpc_stream_free(x.s);
    if (r >= 0 && !x.got_exit)
        r = hypr_err(&x.err, HYPR_UNKNOWN, EPROTO, "the exec session ended without an exit code");
    if (r < 0) {
        if (err) { /* the record moves to the caller */
            hypr_error_clear(err);
            *err = x.err;
        } else {
            hypr_error_clear(&x.err);
        }
        return r;
    }
    hypr_error_clear(&x.err);
    *exit_code = x.exit_code;
    return 0;
}

int cli_exec_main(cli_ctx *ctx, const char *vm, bool interactive, bool tty, bool attach,
                  const cli_detach_keys *keys)
{
    Hypr__V1__TerminalSize size = HYPR__V1__TERMINAL_SIZE__INIT;
    Hypr__V1__ExecStart start = HYPR__V1__EXEC_START__INIT;
    static char *placeholder[] = {(char *)"main"}; /* kestrel runs the workload's own */
    start.id = (char *)vm;
    start.command = placeholder;
    start.n_command = 1;
    start.main = !attach;
    start.attach = attach;
    start.tty = tty;
    start.interactive = interactive;
    if (tty) {
        get_size(&size);
        start.size = &size;
    }
    return run_session(ctx, &start, interactive, tty, tty && interactive ? keys : NULL);
}
