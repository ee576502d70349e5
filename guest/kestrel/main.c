/* kestrel: PID 1 flow, the poll loop, control-frame dispatch, power-off.
 * Outside PID 1: `kestrel --check-manifest FILE` and `kestrel --version`. */
#include "kestrel.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

kestrel *K;

/* Exit code reported when kestrel itself cannot start the workload (docker's
 * "the runtime failed" code). */
#define KESTREL_SETUP_FAILED 125

/* ---- small helpers ---- */

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t boottime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int read_file_all(const char *path, size_t max, char **out, size_t *out_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max) {
                free(buf);
                return -EFBIG;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(buf);
            return e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            free(buf);
            return -EFBIG;
        }
    }
    buf[len] = 0;
    *out = buf;
    if (out_len)
        *out_len = len;
    return 0;
}

int write_file_str(const char *path, const char *s, mode_t mode)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    return write_all(fd, s, strlen(s));
}

int mkdir_parents(const char *path, mode_t mode)
{
    size_t n = strlen(path);
    _cleanup_free_ char *p = malloc(n + 1);
    if (!p)
        return -ENOMEM;
    memcpy(p, path, n + 1);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
            *s = c;
            if (c == 0)
                break;
        }
    }
    return 0;
}

void klog(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg + 9, sizeof(msg) - 10, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    memcpy(msg, "kestrel: ", 9);
    size_t len = strlen(msg);
    msg[len++] = '\n';
    write_all(STDERR_FILENO, msg, len);
    if (K && channel_up(&K->ch) && K->ch.out.len < CHAN_OUT_HIGH) {
        if (ctl_encode_log(&K->ch.out, CTL_LOG_AGENT, msg + 9, len - 9) == 0)
            channel_flush(&K->ch);
    }
}

int kerr_add(kerr *e, int r, const char *fmt, ...)
{
    size_t len = strlen(e->msg);
    if (len && len + 2 < sizeof(e->msg)) {
        memcpy(e->msg + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg + len, sizeof(e->msg) - len, fmt, ap);
    va_end(ap);
    len = strlen(e->msg);
    snprintf(e->msg + len, sizeof(e->msg) - len, ": %s", strerror(-r));
    return r;
}

/* ---- frames to the host ---- */

void phase_mark(kestrel *k, enum ctl_phase phase)
{
    if (k->nphases < CTL_PHASE_MAX) {
        k->phases[k->nphases].phase = phase;
        k->phases[k->nphases].ns = boottime_ns();
        k->nphases++;
    }
    if (phase != CTL_PHASE_AGENT_START && phase != CTL_PHASE_MOUNTS_DONE)
        send_hello(k);
}

void send_hello(kestrel *k)
{
    if (channel_up(&k->ch) && ctl_encode_hello(&k->ch.out, k->phases, k->nphases) == 0)
        channel_flush(&k->ch);
}

void send_error(kestrel *k, uint32_t session, int negerr, const char *msg)
{
    if (channel_up(&k->ch) && ctl_encode_error(&k->ch.out, session, (uint32_t)-negerr, msg) == 0)
        channel_flush(&k->ch);
}

static void send_metrics(kestrel *k)
{
    uint64_t v[CTL_M_COUNT];
    if (!channel_up(&k->ch) || k->ch.out.len >= CHAN_OUT_HIGH)
        return;
    metrics_sample(v);
    if (ctl_encode_metrics(&k->ch.out, v, CTL_M_COUNT) == 0)
        channel_flush(&k->ch);
}

/* ---- power off ---- */

static void reap_all(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

static __attribute__((noreturn)) void power_off(kestrel *k)
{
    channel_drain(&k->ch, 2000);
    /* PID 1: kill(-1) reaches every other process. */
    kill(-1, SIGTERM);
    int64_t until = mono_ms() + 1000;
    while (mono_ms() < until) {
        reap_all();
        if (kill(-1, 0) < 0 && errno == ESRCH)
            break;
        usleep(20000);
    }
    kill(-1, SIGKILL);
    reap_all();
    sync();
    klog("powering off");
    reboot(RB_POWER_OFF);
    /* Only reached when the kernel refused: keep PID 1 alive, never exit. */
    for (;;)
        pause();
}

/* The workload is gone for good (or never started): report and power off. */
static __attribute__((noreturn)) void finish(kestrel *k, int code)
{
    workload_flush_lines(k);
    if (channel_up(&k->ch) &&
        ctl_encode_workload_exit(&k->ch.out, code, false, k->wl.restarts) == 0)
        channel_flush(&k->ch);
    klog("workload finished with exit code %d", code);
    power_off(k);
}

/* The one message for a step PID 1 cannot go on without: console, host, power off. */
static __attribute__((noreturn)) void setup_failed(kestrel *k, int r, const char *what,
                                                   const kerr *e)
{
    char msg[sizeof(e->msg) + 64];
    snprintf(msg, sizeof(msg), "%s: %s", what, e->msg[0] ? e->msg : strerror(-r));
    klog("%s", msg);
    send_error(k, 0, r, msg);
    finish(k, KESTREL_SETUP_FAILED);
}

/* A step PID 1 goes on without: logs its failures, once, and clears e for the next step. */
static void setup_warn(int r, const char *what, kerr *e)
{
    if (r < 0)
        klog("%s: %s", what, e->msg[0] ? e->msg : strerror(-r));
    *e = (kerr){0};
}

static void request_stop(kestrel *k, int sig)
{
    k->stop_requested = true;
    if (k->m.mode == MANIFEST_MODE_RUN)
        workload_stop(k, sig);
}

/* ---- control frames from the host ---- */

static void handle_frame(kestrel *k, const ctl_frame *f)
{
    switch (f->type) {
    case CTL_HELLO: {
        ctl_hello h;
        if (ctl_parse_hello(f->payload, f->len, &h) < 0) {
            send_error(k, f->session, -EBADMSG, "malformed HELLO");
            return;
        }
        send_hello(k);
        return;
    }
    case CTL_SHUTDOWN: {
        /* Empty: the stop signal of the manifest; or a u32 signal number. */
        uint32_t sig = k->m.stop_signal;
        if (f->len && ctl_parse_signal(f->payload, f->len, &sig) < 0) {
            send_error(k, 0, -EBADMSG, "malformed SHUTDOWN");
            return;
        }
        if (sig == 0 || sig > 64)
            sig = SIGTERM;
        klog("shutdown requested by the host (signal %u)", (unsigned)sig);
        request_stop(k, (int)sig);
        return;
    }
    case CTL_SIGNAL:
        if (f->session == 0) { /* to the workload: hypr kill -s SIG */
            uint32_t sig;
            if (ctl_parse_signal(f->payload, f->len, &sig) < 0 || sig == 0 || sig > 64)
                send_error(k, 0, -EBADMSG, "malformed SIGNAL");
            else if (k->wl.pid > 0 || k->wl.main_pid > 0)
                kill(k->wl.pid > 0 ? k->wl.pid : k->wl.main_pid, (int)sig);
            return;
        }
        exec_handle_frame(k, f);
        return;
    case CTL_EXEC_START:
    case CTL_STDIN:
    case CTL_STDIN_EOF:
    case CTL_RESIZE:
        exec_handle_frame(k, f);
        return;
    case CTL_ERROR: {
        uint32_t e;
        char *msg = NULL;
        if (ctl_parse_error(f->payload, f->len, &e, &msg) == 0)
            klog("host error on session %u: %s", (unsigned)f->session, msg);
        free(msg);
        return;
    }
    default: {
        char msg[96];
        snprintf(msg, sizeof(msg), "unexpected %s frame", ctl_type_name(f->type));
        send_error(k, f->session, -EBADMSG, msg);
        return;
    }
    }
}

static void channel_lost(kestrel *k, const char *why)
{
    klog("control channel closed: %s", why);
    exec_close_all(k);
    channel_close(&k->ch);
}

static void channel_readable(kestrel *k)
{
    uint8_t buf[65536];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(k->ch.fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            channel_lost(k, strerror(errno));
            return;
        }
        if (n == 0) {
            channel_lost(k, "end of stream");
            return;
        }
        int r = ctl_decoder_feed(&k->ch.dec, buf, (size_t)n);
        ctl_frame f;
        while (r == 0 && (r = ctl_decoder_next(&k->ch.dec, &f)) == 1) {
            handle_frame(k, &f);
            r = 0;
            if (!channel_up(&k->ch))
                return;
        }
        if (r < 0) {
            /* No way to find the next frame boundary: tell the host, reconnect. */
            send_error(k, 0, r, "malformed frame stream");
            channel_drain(&k->ch, 200);
            channel_lost(k, strerror(-r));
            return;
        }
    }
}

/* ---- the loop ---- */

static void handle_signals(kestrel *k)
{
    struct signalfd_siginfo si;
    while (read(k->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            continue; /* reaped below */
        klog("received signal %u, stopping the workload", (unsigned)si.ssi_signo);
        request_stop(k, (int)si.ssi_signo);
    }
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        if (!workload_reaped(k, pid, status))
            exec_reaped(k, pid, status);
    }
}

static int compute_timeout(kestrel *k, int64_t now)
{
    int64_t next = INT64_MAX;
    if (k->ch.state == CHAN_DOWN)
        next = k->ch.retry_at_ms;
    if (k->m.metrics_interval_ms && channel_up(&k->ch) && k->metrics_at_ms < next)
        next = k->metrics_at_ms;
    int64_t w = workload_next_deadline(k);
    if (w > 0 && w < next)
        next = w;
    if (next == INT64_MAX)
        return -1;
    if (next <= now)
        return 0;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

static void run_loop(kestrel *k)
{
    for (;;) {
        /* Exec sessions still open die with the VM. */
        if (k->wl.done)
            finish(k, k->wl.last_code);
        if (k->m.mode == MANIFEST_MODE_BUILD && k->stop_requested)
            finish(k, 0);

        int64_t now = mono_ms();
        if (k->ch.state == CHAN_DOWN && now >= k->ch.retry_at_ms) {
            if (channel_open(&k->ch) < 0)
                k->ch.retry_at_ms = now + 1000;
            else if (channel_up(&k->ch))
                send_hello(k);
        }
        if (channel_up(&k->ch) && k->m.metrics_interval_ms && now >= k->metrics_at_ms) {
            send_metrics(k);
            k->metrics_at_ms = now + k->m.metrics_interval_ms;
        }
        workload_timers(k, now);
        if (k->wl.done)
            continue;

        bool can_produce = !channel_up(&k->ch) || k->ch.out.len < CHAN_OUT_HIGH;
        size_t cap = 4 + exec_poll_count(k);
        struct pollfd *pfd = calloc(cap, sizeof(*pfd));
        if (!pfd) {
            usleep(100000);
            continue;
        }
        size_t n = 0;
        pfd[n++] = (struct pollfd){.fd = k->sig_fd, .events = POLLIN};
        size_t ch_idx = SIZE_MAX, out_idx = SIZE_MAX, err_idx = SIZE_MAX;
        if (k->ch.state != CHAN_DOWN) {
            ch_idx = n;
            short ev = k->ch.state == CHAN_CONNECTING ? POLLOUT : POLLIN;
            if (k->ch.state == CHAN_UP && k->ch.out.len)
                ev |= POLLOUT;
            pfd[n++] = (struct pollfd){.fd = k->ch.fd, .events = ev};
        }
        if (can_produce && k->wl.out_fd >= 0) {
            out_idx = n;
            pfd[n++] = (struct pollfd){.fd = k->wl.out_fd, .events = POLLIN};
        }
        if (can_produce && k->wl.err_fd >= 0) {
            err_idx = n;
            pfd[n++] = (struct pollfd){.fd = k->wl.err_fd, .events = POLLIN};
        }
        size_t ex_idx = n;
        n += exec_poll_fill(k, pfd + n, can_produce);

        int r = poll(pfd, n, compute_timeout(k, now));
        if (r < 0) {
            free(pfd);
            continue;
        }
        if (pfd[0].revents)
            handle_signals(k);
        if (ch_idx != SIZE_MAX && pfd[ch_idx].revents && k->ch.fd == pfd[ch_idx].fd) {
            short rev = pfd[ch_idx].revents;
            if (k->ch.state == CHAN_CONNECTING) {
                if (channel_connect_done(&k->ch) == 0) {
                    phase_mark(k, CTL_PHASE_CHANNEL_OPEN);
                    send_hello(k);
                }
            } else {
                if (rev & POLLOUT)
                    channel_flush(&k->ch);
                if (k->ch.state == CHAN_UP && (rev & (POLLIN | POLLHUP | POLLERR)))
                    channel_readable(k);
                if (k->ch.state == CHAN_DOWN)
                    exec_close_all(k);
            }
        }
        if (out_idx != SIZE_MAX && pfd[out_idx].revents)
            workload_output(k, 1, pfd[out_idx].fd);
        if (err_idx != SIZE_MAX && pfd[err_idx].revents)
            workload_output(k, 2, pfd[err_idx].fd);
        exec_poll_handle(k, pfd + ex_idx, n - ex_idx);
        free(pfd);
    }
}

/* ---- PID 1 ---- */

static int load_manifest(kestrel *k, kerr *e)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    int r = read_file_all(MANIFEST_PATH, MANIFEST_MAX_SIZE, &data, &len);
    if (r < 0)
        return kerr_add(e, r, "read %s", MANIFEST_PATH);
    /* The parser's message names the line and what is wrong with it. */
    return manifest_parse(data, len, &k->m, e->msg, sizeof(e->msg));
}

static void open_console(void)
{
    if (fcntl(STDIN_FILENO, F_GETFD) >= 0 && fcntl(STDERR_FILENO, F_GETFD) >= 0)
        return;
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

static int pid1(void)
{
    static kestrel agent;
    kestrel *k = &agent;
    K = k;
    manifest_init(&k->m);
    channel_init(&k->ch);
    k->wl.out_fd = k->wl.err_fd = -1;
    k->upper_fd = k->lower_fd = -1;
    phase_mark(k, CTL_PHASE_AGENT_START);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigdelset(&set, SIGPIPE);
    k->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    reboot(RB_DISABLE_CAD); /* ctrl-alt-del becomes SIGINT to us */

    kerr e = {0};
    int r = mounts_early(&e);
    open_console(); /* needs /dev: the failures are logged once it is there */
    setup_warn(r, "early mounts", &e);
    phase_mark(k, CTL_PHASE_MOUNTS_DONE);

    kerr manifest_err = {0};
    int mr = load_manifest(k, &manifest_err);
    modules_load(mr == 0 ? k->m.modules.v : NULL);
    phase_mark(k, CTL_PHASE_MODULES_DONE);

    /* The control port gets its name from the host a moment after its driver
     * loads: keep trying for up to 2 s, so a short workload's start and exit are
     * not missed; after that the loop keeps retrying every second. */
    for (int i = 0; i < 200 && channel_open(&k->ch) < 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (k->ch.state == CHAN_DOWN)
        k->ch.retry_at_ms = mono_ms() + 1000;
    else if (k->ch.state == CHAN_CONNECTING)
        channel_drain(&k->ch, 500); /* completes the connect if the host is there */
    if (channel_up(&k->ch))
        phase_mark(k, CTL_PHASE_CHANNEL_OPEN);

    if (mr < 0)
        setup_failed(k, mr, "runtime manifest", &manifest_err);
    if ((r = rootfs_setup(&k->m, &k->upper_fd, &k->lower_fd, &e)) < 0)
        setup_failed(k, r, "root filesystem", &e);
    setup_warn(mounts_late(&e), "late mounts", &e);
    setup_warn(rootfs_identity(&k->m, &e), "guest identity", &e);
    phase_mark(k, CTL_PHASE_ROOTFS_READY);
    setup_warn(net_setup(&k->m, &e), "network", &e);
    phase_mark(k, CTL_PHASE_NETWORK_READY);
    /* A volume that does not mount fails the start (never a half-started
     * workload), reported like any setup failure: CTL_ERROR with the message,
     * then the exit code 125. */
    if ((r = mounts_volumes(&k->m, &e)) < 0)
        setup_failed(k, r, "volumes", &e);
    if (k->m.readonly_root && (r = mounts_readonly_root(&e)) < 0)
        setup_failed(k, r, "read-only root", &e);

    k->metrics_at_ms = mono_ms();
    if (k->m.mode == MANIFEST_MODE_RUN) {
        /* From here on kestrel never exits on an error of its own. */
        if ((r = workload_prepare(k)) < 0) {
            k->wl.done = true;
            k->wl.last_code = r == -ENOENT ? 126 : KESTREL_SETUP_FAILED;
        } else if (k->m.attach) {
            phase_mark(k, CTL_PHASE_WORKLOAD_START); /* ready: the host starts it */
        } else {
            workload_start(k);
        }
    }
    run_loop(k);
    return 0;
}

static int check_manifest(const char *path)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    char err[256];
    kestrel_manifest m;
    int r = read_file_all(path, MANIFEST_MAX_SIZE, &data, &len);
    if (r < 0) {
        fprintf(stderr, "kestrel: read %s: %s\n", path, strerror(-r));
        return 1;
    }
    if (manifest_parse(data, len, &m, err, sizeof(err)) < 0) {
        fprintf(stderr, "kestrel: %s: %s\n", path, err);
        return 1;
    }
    /* Prints the normalised form: what kestrel understood. */
    char *out;
    size_t olen;
    r = manifest_encode(&m, &out, &olen);
    manifest_free(&m);
    if (r < 0) {
        fprintf(stderr, "kestrel: encode: %s\n", strerror(-r));
        return 1;
    }
    fwrite(out, 1, olen, stdout);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--check-manifest") == 0)
        return check_manifest(argv[2]);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("kestrel %s (protocol %d)\n", KESTREL_VERSION, CTL_PROTO_VERSION);
        return 0;
    }
    if (getpid() != 1) {
        fprintf(stderr, "usage: kestrel --check-manifest FILE | --version\n"
                        "(as PID 1 inside a hypr microVM it takes no arguments)\n");
        return 2;
    }
    return pid1();
}
