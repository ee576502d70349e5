/* kestrel: process spawning and exec sessions (hypr exec).
 *
 * A session starts with EXEC_START and ends with exactly one EXIT (the process
 * ran; 126/127 when it could not be executed) or one ERROR (it never started,
 * or the host sent a malformed frame for it: the process is then killed).
 * Frames for unknown sessions are dropped: they race with a session's end. */
#include "diff.h"
#include "kestrel.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

#define EXEC_STDIN_MAX (8u << 20)

struct exec_session {
    exec_session *next;
    uint32_t id;
    bool main; /* the workload itself (manifest attach) */
    pid_t pid;
    bool exited;
    int code;
    bool tty;
    int in_fd;  /* stdin pipe, or a dup of the pty master */
    int out_fd; /* stdout pipe, or the pty master */
    int err_fd; /* stderr pipe; -1 with a tty */
    ctl_buf inq;
    bool in_eof;
};

/* ---- spawning ---- */

/* In the child: where it tells the parent why it could not exec (-1: nowhere). The
 * descriptor is close-on-exec, so a successful exec ends it with nothing written. */
static int child_report_fd = -1;

static void child_fail(const char *what, const char *arg, int err, int code)
{
    const char *msg = strerror(err);
    const char *parts[] = {"kestrel: ", what, " ", arg, ": ", msg, "\n"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        write_all(STDERR_FILENO, parts[i], strlen(parts[i]));
    for (size_t i = 1; child_report_fd >= 0 && i < sizeof(parts) / sizeof(parts[0]) - 1; i++)
        write_all(child_report_fd, parts[i], strlen(parts[i]));
    _exit(code);
}

/* The parent's side of the report: "" after an exec, the reason otherwise. */
static void read_report(int fd, char *why, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = read(fd, why + n, size - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    why[n] = '\0';
}

static void move_fd(int fd, int target)
{
    if (fd == target)
        fcntl(fd, F_SETFD, 0); /* keep it across exec */
    else
        dup2(fd, target);
}

pid_t kestrel_spawn(const spawn_opts *o)
{
    int report[2] = {-1, -1};
    if (o->why && o->why_size) {
        o->why[0] = '\0';
        if (pipe2(report, O_CLOEXEC) < 0)
            report[0] = report[1] = -1;
    }
    pid_t pid = fork();
    if (pid != 0) {
        int e = errno;
        if (report[1] >= 0)
            close(report[1]);
        if (report[0] >= 0) {
            if (pid > 0)
                read_report(report[0], o->why, o->why_size);
            close(report[0]);
        }
        return pid < 0 ? -e : pid;
    }
    if (report[0] >= 0)
        close(report[0]);
    child_report_fd = report[1];

    /* child: kestrel is single-threaded, so anything goes until exec */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    int in = o->stdin_fd, out = o->stdout_fd, err = o->stderr_fd;
    if (o->tty_slave) {
        int t = open(o->tty_slave, O_RDWR);
        if (t < 0)
            child_fail("open", o->tty_slave, errno, 126);
        ioctl(t, TIOCSCTTY, 0);
        in = out = err = t;
    }
    int devnull = open("/dev/null", O_RDWR);
    move_fd(in >= 0 ? in : devnull, STDIN_FILENO);
    move_fd(out >= 0 ? out : devnull, STDOUT_FILENO);
    move_fd(err >= 0 ? err : devnull, STDERR_FILENO);

    if (o->builtin)
        _exit(o->builtin(o->builtin_arg) < 0 ? 1 : 0);
    if (o->workdir && o->workdir[0] && chdir(o->workdir) < 0)
        child_fail("chdir", o->workdir, errno, 126);
    if (o->ids) {
        if (setgroups(o->ids->ngroups, o->ids->groups) < 0 && errno != EPERM)
            child_fail("setgroups", "", errno, 126);
        if (setgid(o->ids->gid) < 0)
            child_fail("setgid", "", errno, 126);
        if (setuid(o->ids->uid) < 0)
            child_fail("setuid", "", errno, 126);
    }
    int e = exec_search(o->argv[0], o->argv, o->env, env_get(o->env, "PATH"));
    child_fail("exec", o->argv[0], e, exec_failure_code(e));
    return -1; /* not reached */
}

/* ---- built-in commands ---- */

/* hypr diff: in the session's child, stdout is the session's. */
static int builtin_diff(void *arg)
{
    const kestrel *k = arg;
    if (k->upper_fd < 0 || k->lower_fd < 0) {
        fprintf(stderr, "kestrel: diff: this VM's root filesystem has no overlay to compare\n");
        return -ENOENT;
    }
    /* The init layer: what kestrel writes and the mount points it makes. */
    size_t n = 3 + k->m.n_volumes;
    const char **hidden = calloc(n + 1, sizeof(*hidden));
    if (!hidden)
        return -ENOMEM;
    hidden[0] = "/etc/hosts";
    hidden[1] = "/etc/hostname";
    hidden[2] = "/etc/resolv.conf";
    for (size_t i = 0; i < k->m.n_volumes; i++)
        hidden[3 + i] = k->m.volumes[i].target;
    int r = kestrel_diff(k->upper_fd, k->lower_fd, hidden, STDOUT_FILENO);
    if (r < 0)
        fprintf(stderr, "kestrel: diff: %s\n", strerror(-r));
    free(hidden);
    return r;
}

/* ---- sessions ---- */

static exec_session *find(kestrel *k, uint32_t id)
{
    for (exec_session *s = k->sessions; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void session_free(kestrel *k, exec_session *s)
{
    for (exec_session **pp = &k->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (!s->exited && s->pid > 0)
        kill(-s->pid, SIGKILL); /* the session leader's whole group */
    close_fd(&s->in_fd);
    close_fd(&s->out_fd);
    close_fd(&s->err_fd);
    ctl_buf_free(&s->inq);
    free(s);
}

/* Ends a session with ERROR (for a session that cannot go on). */
static void session_abort(kestrel *k, exec_session *s, int negerr, const char *msg)
{
    send_error(k, s->id, negerr, msg);
    session_free(k, s);
}

static void session_maybe_done(kestrel *k, exec_session *s)
{
    if (!s->exited || s->out_fd >= 0 || s->err_fd >= 0)
        return;
    if (channel_up(&k->ch) && ctl_encode_exit(&k->ch.out, s->id, s->code) == 0)
        channel_flush(&k->ch);
    if (s->main) { /* the workload ended: so does the VM */
        k->wl.main_pid = 0;
        k->wl.last_code = s->code;
        k->wl.done = true;
    }
    session_free(k, s);
}

/* Reads once (drain=false) or until nothing is left (drain=true). */
static void session_read(kestrel *k, exec_session *s, int *fd, uint8_t type, bool drain)
{
    uint8_t buf[65536];
    do {
        if (*fd < 0)
            return;
        ssize_t n = read(*fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) { /* EOF, or EIO from a pty master whose slave is gone */
            close_fd(fd);
            if (s->tty)
                close_fd(&s->in_fd);
            return;
        }
        if (channel_up(&k->ch) && ctl_encode_data(&k->ch.out, type, s->id, buf, (size_t)n) == 0)
            channel_flush(&k->ch);
    } while (drain);
}

static void session_write_stdin(exec_session *s)
{
    while (s->in_fd >= 0 && s->inq.len > 0) {
        ssize_t n = write(s->in_fd, s->inq.data, s->inq.len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                s->inq.len = 0; /* the reader is gone: drop what is left */
                if (!s->tty)
                    close_fd(&s->in_fd);
            }
            return;
        }
        ctl_buf_consume(&s->inq, (size_t)n);
    }
    if (s->in_eof && s->inq.len == 0 && s->in_fd >= 0) {
        if (s->tty) {
            /* A pty has no half-close: send the EOF character once. */
            const char eot = 4;
            (void)!write(s->in_fd, &eot, 1);
            s->in_eof = false;
        } else {
            close_fd(&s->in_fd);
        }
    }
}

static char **session_env(kestrel *k, const ctl_exec_start *e, const kestrel_ids *ids)
{
    _cleanup_strv_ char **base = env_merge(k->m.image_env.v, k->m.env.v);
    if (!base)
        return NULL;
    char **env = env_merge(base, e->env);
    if (!env)
        return NULL;
    const char *host = k->m.hostname ? k->m.hostname : "localhost";
    if (env_default(&env, "PATH", KESTREL_DEFAULT_PATH) < 0 ||
        env_default(&env, "HOSTNAME", host) < 0 || env_default(&env, "HOME", ids->home) < 0 ||
        (e->tty && env_default(&env, "TERM", "xterm") < 0)) {
        kstrv_free(env);
        return NULL;
    }
    return env;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static void exec_start(kestrel *k, const ctl_frame *f)
{
    char msg[512];
    if (f->session == 0 || find(k, f->session)) {
        send_error(k, f->session, -EEXIST, "exec session id 0 or already in use");
        return;
    }
    ctl_exec_start e;
    int r = ctl_parse_exec_start(f->payload, f->len, &e);
    if (r < 0) {
        send_error(k, f->session, r, "malformed EXEC_START");
        return;
    }
    if (e.main && (!k->m.attach || k->wl.main_session || k->wl.done || !k->wl.ids_ok)) {
        send_error(k, f->session, -EBUSY,
                   k->wl.main_session ? "the workload has started already"
                                      : "this VM's workload does not wait for the host");
        ctl_exec_start_free(&e);
        return;
    }
    const char *user = e.user[0] ? e.user : (k->m.user ? k->m.user : "");
    const char *workdir = e.workdir[0] ? e.workdir : (k->m.workdir ? k->m.workdir : "/");
    kestrel_ids ids;
    r = user_resolve(user, "/etc/passwd", "/etc/group", &ids);
    if (r < 0) {
        snprintf(msg, sizeof(msg), "unable to find user %s: %s", user, strerror(-r));
        send_error(k, f->session, r, msg);
        ctl_exec_start_free(&e);
        return;
    }
    /* The workload's own environment, or the session's on top of the VM's. */
    _cleanup_strv_ char **env = e.main ? NULL : session_env(k, &e, &ids);
    if (e.main && !(env = env_merge(k->wl.env, NULL)))
        r = -ENOMEM;
    if (e.main && e.tty && env && env_default(&env, "TERM", "xterm") < 0)
        r = -ENOMEM;
    exec_session *s = calloc(1, sizeof(*s));
    int child[3] = {-1, -1, -1};
    char slave[128] = "";
    if (!env || !s) {
        r = -ENOMEM;
        goto fail;
    }
    s->id = f->session;
    s->tty = e.tty;
    s->main = e.main;
    s->in_fd = s->out_fd = s->err_fd = -1;
    if (e.tty) {
        int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, sizeof(slave))) {
            r = -errno;
            if (m >= 0)
                close(m);
            goto fail;
        }
        s->out_fd = m;
        s->in_fd = fcntl(m, F_DUPFD_CLOEXEC, 3);
        if (e.rows && e.cols) {
            struct winsize ws = {.ws_row = e.rows, .ws_col = e.cols};
            ioctl(m, TIOCSWINSZ, &ws);
        }
    } else {
        int p[3][2];
        for (int i = 0; i < 3; i++) {
            if (pipe2(p[i], O_CLOEXEC) < 0) {
                r = -errno;
                for (int j = 0; j < i; j++) {
                    close(p[j][0]);
                    close(p[j][1]);
                }
                goto fail;
            }
        }
        s->in_fd = p[0][1];
        child[0] = p[0][0];
        s->out_fd = p[1][0];
        child[1] = p[1][1];
        s->err_fd = p[2][0];
        child[2] = p[2][1];
    }
    set_nonblock(s->out_fd);
    set_nonblock(s->in_fd);
    if (s->err_fd >= 0)
        set_nonblock(s->err_fd);

    spawn_opts o = {
        .argv = e.main ? k->wl.argv : e.argv,
        .env = env,
        .workdir = e.main ? (k->m.workdir && k->m.workdir[0] ? k->m.workdir : "/") : workdir,
        .ids = e.main ? &k->wl.ids : &ids,
        .stdin_fd = child[0],
        .stdout_fd = child[1],
        .stderr_fd = child[2],
        .tty_slave = e.tty ? slave : NULL,
        .builtin = !e.main && strcmp(e.argv[0], KESTREL_DIFF_COMMAND) == 0 ? builtin_diff : NULL,
        .builtin_arg = k,
    };
    pid_t pid = kestrel_spawn(&o);
    for (int i = 0; i < 3; i++)
        if (child[i] >= 0)
            close(child[i]);
    if (pid < 0) {
        r = pid;
        goto fail;
    }
    s->pid = pid;
    s->next = k->sessions;
    k->sessions = s;
    if (s->main) {
        k->wl.main_session = s->id;
        k->wl.main_pid = pid;
    }
    kestrel_ids_free(&ids);
    ctl_exec_start_free(&e);
    return;
fail:
    snprintf(msg, sizeof(msg), "exec %s: %s", e.main ? k->wl.argv[0] : e.argv[0], strerror(-r));
    send_error(k, f->session, r, msg);
    if (e.main) { /* the workload could not run: the VM ends with Docker's code */
        k->wl.last_code = r == -ENOENT ? 127 : 126;
        k->wl.done = true;
    }
    if (s) {
        close_fd(&s->in_fd);
        close_fd(&s->out_fd);
        close_fd(&s->err_fd);
        free(s);
    }
    kestrel_ids_free(&ids);
    ctl_exec_start_free(&e);
}

void exec_handle_frame(kestrel *k, const ctl_frame *f)
{
    if (f->type == CTL_EXEC_START) {
        exec_start(k, f);
        return;
    }
    exec_session *s = find(k, f->session);
    if (!s)
        return;
    switch (f->type) {
    case CTL_STDIN:
        if (s->in_fd < 0 || s->in_eof)
            return;
        if (s->inq.len + f->len > EXEC_STDIN_MAX) {
            session_abort(k, s, -ENOBUFS, "stdin buffer overflow");
            return;
        }
        {
            /* ctl_buf grows through the encoder only: append by hand. */
            size_t need = s->inq.len + f->len;
            if (need > s->inq.cap) {
                size_t cap = s->inq.cap ? s->inq.cap : 4096;
                while (cap < need)
                    cap *= 2;
                uint8_t *nd = realloc(s->inq.data, cap);
                if (!nd) {
                    session_abort(k, s, -ENOMEM, "out of memory");
                    return;
                }
                s->inq.data = nd;
                s->inq.cap = cap;
            }
            memcpy(s->inq.data + s->inq.len, f->payload, f->len);
            s->inq.len = need;
        }
        session_write_stdin(s);
        return;
    case CTL_STDIN_EOF:
        if (ctl_parse_empty(f->payload, f->len) < 0) {
            session_abort(k, s, -EBADMSG, "malformed STDIN_EOF");
            return;
        }
        s->in_eof = true;
        session_write_stdin(s);
        return;
    case CTL_RESIZE: {
        uint16_t rows, cols;
        if (ctl_parse_resize(f->payload, f->len, &rows, &cols) < 0) {
            session_abort(k, s, -EBADMSG, "malformed RESIZE");
            return;
        }
        if (s->tty && s->out_fd >= 0) {
            struct winsize ws = {.ws_row = rows, .ws_col = cols};
            ioctl(s->out_fd, TIOCSWINSZ, &ws);
        }
        return;
    }
    case CTL_SIGNAL: {
        uint32_t sig;
        if (ctl_parse_signal(f->payload, f->len, &sig) < 0 || sig == 0 || sig > 64) {
            session_abort(k, s, -EBADMSG, "malformed SIGNAL");
            return;
        }
        if (!s->exited)
            kill(s->pid, (int)sig);
        return;
    }
    default:
        return;
    }
}

bool exec_reaped(kestrel *k, pid_t pid, int status)
{
    for (exec_session *s = k->sessions; s; s = s->next) {
        if (s->pid != pid || s->exited)
            continue;
        s->exited = true;
        s->code = exit_code_from_status(status);
        /* What the process wrote before exiting is in the pipe now; take it
         * and stop: a background child may hold the pipe open forever. */
        session_read(k, s, &s->out_fd, CTL_STDOUT, true);
        session_read(k, s, &s->err_fd, CTL_STDERR, true);
        close_fd(&s->out_fd);
        close_fd(&s->err_fd);
        close_fd(&s->in_fd);
        session_maybe_done(k, s);
        return true;
    }
    return false;
}

size_t exec_poll_count(const kestrel *k)
{
    size_t n = 0;
    for (exec_session *s = k->sessions; s; s = s->next)
        n += 3;
    return n;
}

size_t exec_poll_fill(kestrel *k, struct pollfd *pfd, bool can_produce)
{
    size_t n = 0;
    for (exec_session *s = k->sessions; s; s = s->next) {
        if (can_produce && s->out_fd >= 0)
            pfd[n++] = (struct pollfd){.fd = s->out_fd, .events = POLLIN};
        if (can_produce && s->err_fd >= 0)
            pfd[n++] = (struct pollfd){.fd = s->err_fd, .events = POLLIN};
        if (s->in_fd >= 0 && (s->inq.len || s->in_eof))
            pfd[n++] = (struct pollfd){.fd = s->in_fd, .events = POLLOUT};
    }
    return n;
}

void exec_poll_handle(kestrel *k, struct pollfd *pfd, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!pfd[i].revents)
            continue;
        /* Look the fd up again: a frame handled earlier may have ended a session. */
        for (exec_session *s = k->sessions; s; s = s->next) {
            if (pfd[i].fd == s->out_fd && (pfd[i].events & POLLIN)) {
                session_read(k, s, &s->out_fd, CTL_STDOUT, false);
            } else if (pfd[i].fd == s->err_fd && (pfd[i].events & POLLIN)) {
                session_read(k, s, &s->err_fd, CTL_STDERR, false);
            } else if (pfd[i].fd == s->in_fd && (pfd[i].events & POLLOUT)) {
                session_write_stdin(s);
            } else {
                continue;
            }
            session_maybe_done(k, s);
            break;
        }
    }
}

void exec_close_all(kestrel *k)
{
    /* The workload's own session (manifest attach) outlives the channel: it is the
     * workload, and hyprd may come back to it. */
    for (exec_session *s = k->sessions, *next; s; s = next) {
        next = s->next;
        if (!s->main)
            session_free(k, s);
    }
}
