/* kestrel: the workload (entrypoint + cmd): spawn, log relay, stop, restart
 * policy with exponential backoff. Its stdout/stderr become LOG frames, one per
 * line (a line longer than LINE_MAX_BYTES is cut into pieces); to the console
 * while the control channel is down. stdin is /dev/null. */
#include "kestrel.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define LINE_MAX_BYTES 16384

int workload_prepare(kestrel *k)
{
    workload *w = &k->wl;
    const kestrel_manifest *m = &k->m;
    int r = argv_build(m->entrypoint.v, m->cmd.v, &w->argv);
    if (r < 0) {
        klog("no command to run: %s", strerror(-r));
        return r;
    }
    const char *user = m->user ? m->user : "";
    r = user_resolve(user, "/etc/passwd", "/etc/group", &w->ids);
    if (r < 0) {
        char why[320];
        snprintf(why, sizeof(why), "unable to find user %s: %s", user,
                 r == -ENOENT ? "no matching entries in passwd file" : strerror(-r));
        klog("%s", why);
        send_error(k, 0, -ENOENT, why); /* hyprd's reason for the failed run */
        return -ENOENT;
    }
    w->ids_ok = true;
    w->env = env_merge(m->image_env.v, m->env.v);
    if (!w->env || env_default(&w->env, "PATH", KESTREL_DEFAULT_PATH) < 0 ||
        env_default(&w->env, "HOSTNAME", m->hostname ? m->hostname : "localhost") < 0 ||
        env_default(&w->env, "HOME", w->ids.home) < 0)
        return -ENOMEM;
    if (m->workdir && m->workdir[0]) {
        struct stat st;
        /* docker creates a missing working directory */
        if (stat(m->workdir, &st) < 0 && (r = mkdir_parents(m->workdir, 0755)) < 0)
            klog("workdir %s: %s", m->workdir, strerror(-r));
    }
    return 0;
}

static void emit(kestrel *k, int stream, const char *data, size_t len)
{
    if (len == 0)
        return;
    if (channel_up(&k->ch)) {
        if (ctl_encode_log(&k->ch.out, (uint8_t)stream, data, len) == 0)
            channel_flush(&k->ch);
        else
            k->ch.dropped_logs++;
        return;
    }
    write_all(stream == 2 ? STDERR_FILENO : STDOUT_FILENO, data, len);
}

static void close_pipe(workload *w, int stream)
{
    int *fd = stream == 1 ? &w->out_fd : &w->err_fd;
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void workload_flush_lines(kestrel *k)
{
    for (int i = 0; i < 2; i++) {
        emit(k, i + 1, k->wl.line[i], k->wl.line_len[i]);
        k->wl.line_len[i] = 0;
    }
}

void workload_output(kestrel *k, int stream, int fd)
{
    workload *w = &k->wl;
    int i = stream - 1;
    if (!w->line[i]) {
        w->line[i] = malloc(LINE_MAX_BYTES);
        if (!w->line[i])
            return;
    }
    for (int rounds = 0; rounds < 8; rounds++) {
        char *buf = w->line[i];
        size_t room = LINE_MAX_BYTES - w->line_len[i];
        ssize_t n = read(fd, buf + w->line_len[i], room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            emit(k, stream, buf, w->line_len[i]);
            w->line_len[i] = 0;
            close_pipe(w, stream);
            return;
        }
        size_t len = w->line_len[i] + (size_t)n, start = 0;
        for (size_t j = w->line_len[i]; j < len; j++) {
            if (buf[j] == '\n') {
                emit(k, stream, buf + start, j + 1 - start);
                start = j + 1;
            }
        }
        if (start == 0 && len == LINE_MAX_BYTES) {
            emit(k, stream, buf, len); /* an overlong line goes out in pieces */
            start = len;
        }
        memmove(buf, buf + start, len - start);
        w->line_len[i] = len - start;
    }
}

static int make_pipe(int *parent, int *child)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    int fl = fcntl(p[0], F_GETFL);
    fcntl(p[0], F_SETFL, fl | O_NONBLOCK);
    *parent = p[0];
    *child = p[1];
    return 0;
}

static void exited(kestrel *k, int code);

void workload_start(kestrel *k)
{
    workload *w = &k->wl;
    int cout = -1, cerr = -1;
    close_pipe(w, 1);
    close_pipe(w, 2);
    if (make_pipe(&w->out_fd, &cout) < 0 || make_pipe(&w->err_fd, &cerr) < 0)
        klog("workload output pipes: %s", strerror(errno));
    char why[512];
    spawn_opts o = {
        .argv = w->argv,
        .env = w->env,
        .workdir = k->m.workdir,
        .ids = &w->ids,
        .stdin_fd = -1,
        .stdout_fd = cout,
        .stderr_fd = cerr,
        .why = why,
        .why_size = sizeof(why),
    };
    w->started_ms = mono_ms();
    pid_t pid = kestrel_spawn(&o);
    /* Before the phase: hyprd learns why the workload never ran (exec nosuchcmd: ...). */
    if (pid > 0 && why[0])
        send_error(k, 0, -ENOEXEC, why);
    if (cout >= 0)
        close(cout);
    if (cerr >= 0)
        close(cerr);
    bool first = true;
    for (size_t i = 0; i < k->nphases; i++)
        if (k->phases[i].phase == CTL_PHASE_WORKLOAD_START)
            first = false;
    if (first && !(pid > 0 && why[0])) /* a workload that never ran did not start */
        phase_mark(k, CTL_PHASE_WORKLOAD_START);
    if (pid < 0) {
        klog("spawn %s: %s", w->argv[0], strerror((int)-pid));
        exited(k, 126);
        return;
    }
    w->pid = pid;
}

/* The workload is gone: restart it later, or we are done. */
static void exited(kestrel *k, int code)
{
    workload *w = &k->wl;
    int64_t now = mono_ms();
    w->pid = 0;
    w->kill_at_ms = 0;
    w->last_code = code;
    bool again =
        restart_should(k->m.restart, k->m.restart_max, code, w->restarts, k->stop_requested);
    if (!again) {
        w->done = true;
        return;
    }
    if (now - w->started_ms >= KESTREL_BACKOFF_RESET_MS)
        w->quick_failures = 0;
    uint32_t delay = restart_backoff_ms(w->quick_failures);
    if (w->quick_failures < UINT32_MAX)
        w->quick_failures++;
    workload_flush_lines(k);
    if (channel_up(&k->ch) && ctl_encode_workload_exit(&k->ch.out, code, true, w->restarts) == 0)
        channel_flush(&k->ch);
    w->restarts++;
    klog("workload exited with code %d; restart %u in %u ms", code, (unsigned)w->restarts,
         (unsigned)delay);
    w->restart_at_ms = now + delay;
}

bool workload_reaped(kestrel *k, pid_t pid, int status)
{
    workload *w = &k->wl;
    if (pid != w->pid || pid <= 0)
        return false;
    /* Take what it wrote before exiting; later writers (its orphans) still
     * share the pipe until the next start replaces it. */
    if (w->out_fd >= 0)
        workload_output(k, 1, w->out_fd);
    if (w->err_fd >= 0)
        workload_output(k, 2, w->err_fd);
    exited(k, exit_code_from_status(status));
    return true;
}

void workload_stop(kestrel *k, int sig)
{
    workload *w = &k->wl;
    if (w->restart_at_ms) {
        w->restart_at_ms = 0; /* no restart after a stop */
        w->done = true;
        return;
    }
    if (k->m.attach && w->main_pid <= 0) {
        w->done = true; /* never started by the host (or over): nothing to stop */
        return;
    }
    pid_t pid = w->pid > 0 ? w->pid : w->main_pid;
    if (pid <= 0)
        return;
    kill(pid, sig);
    if (w->kill_at_ms == 0)
        w->kill_at_ms = mono_ms() + (int64_t)k->m.stop_timeout_s * 1000;
}

void workload_timers(kestrel *k, int64_t now)
{
    workload *w = &k->wl;
    if (w->restart_at_ms && now >= w->restart_at_ms) {
        w->restart_at_ms = 0;
        if (k->stop_requested)
            w->done = true;
        else
            workload_start(k);
    }
    if (w->kill_at_ms && now >= w->kill_at_ms) {
        w->kill_at_ms = 0;
        pid_t pid = w->pid > 0 ? w->pid : w->main_pid;
        if (pid > 0) {
            klog("workload did not stop in %u s, killing it", (unsigned)k->m.stop_timeout_s);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
    }
}

int64_t workload_next_deadline(const kestrel *k)
{
    const workload *w = &k->wl;
    int64_t a = w->restart_at_ms, b = w->kill_at_ms;
    if (a && b)
        return a < b ? a : b;
    return a ? a : b;
}
