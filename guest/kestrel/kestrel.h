/* kestrel, hypr's guest agent (PID 1 inside every microVM): internal interfaces.
 * A static, libc-only program: it must not include the host's common module, so
 * the cleanup helpers are defined here. Single-threaded: one poll() loop. */
#ifndef KESTREL_H
#define KESTREL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "kestrel/ctl_proto.h"
#include "kestrel/manifest.h"
#include "logic.h"

#define KESTREL_VERSION "0.1.0"

/* ---- cleanup helpers (same names and semantics as src/common) ---- */

#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void kfreep(void *p)
{
    free(*(void **)p);
}
static inline void kclosep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
static inline void kstrv_freep(char ***v)
{
    kstrv_free(*v);
}
#define _cleanup_free_  _cleanup_(kfreep)
#define _cleanup_close_ _cleanup_(kclosep)
#define _cleanup_strv_  _cleanup_(kstrv_freep)
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _tfd = (fd);                                                                           \
        (fd) = -1;                                                                                 \
        _tfd;                                                                                      \
    })

/* ---- logging: console always, the control channel (LOG stream 0) when up ---- */

void klog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- errors: a setup step returns -errno and names what failed in a kerr;
 * only main.c logs it, once (PID 1 never fails silently, nor twice). ---- */

typedef struct kerr {
    char msg[512]; /* "" while nothing failed */
} kerr;
/* Adds "what: strerror(-r)" to e, after "; " when e already names a failure
 * (a step that carries on past one reports them all). Returns r. */
int kerr_add(kerr *e, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- small file helpers (util in main.c) ---- */

/* Reads a whole file (at most max bytes, else -EFBIG), NUL-terminated. */
int read_file_all(const char *path, size_t max, char **out, size_t *out_len);
/* Writes the whole buffer, retrying on EINTR/short writes. 0 or -errno. */
int write_all(int fd, const void *data, size_t len);
int write_file_str(const char *path, const char *s, mode_t mode);
int mkdir_parents(const char *path, mode_t mode);
int64_t mono_ms(void);
uint64_t boottime_ns(void);

/* ---- mounts.c ---- */

/* Each of these tries every mount, adds each failure to e and returns -errno
 * of the first. */
int mounts_early(kerr *e);
/* After the root switch: /run, /tmp (and /dev/pts, /dev/shm if missing). */
int mounts_late(kerr *e);
/* Mounts manifest volumes in the current root (targets made, x-populate done);
 * stops at the first failure, named in e ("mount volume on /data (virtiofs
 * hyprfs0): No such device"). */
int mounts_volumes(const kestrel_manifest *m, kerr *e);
/* Remounts the root read-only (manifest readonly_root): after every write
 * setup makes to it; the mounts under it keep their own flags. */
int mounts_readonly_root(kerr *e);
/* "serial:NAME": the /dev/vdX whose /sys/block/vdX/serial is NAME (-ENODEV). */
int mounts_find_serial(const char *serial, char *dev, size_t len);
/* Waits up to ms for spec (a /dev path or "serial:NAME"); the path in dev. */
int mounts_wait_device(const char *spec, char *dev, size_t len, int ms);

/* ---- modules.c ---- */

/* Loads the modules listed in MODULES_ORDER then extra (may be NULL). Returns
 * the number that failed (logged). */
int modules_load(char *const *extra);

/* ---- rootfs.c ---- */

/* Mounts the rootfs (read-only) + overlay (tmpfs or m->upper), moves /dev /proc
 * /sys into it and makes it the root. Stops at the first failure (in e). */
int rootfs_setup(const kestrel_manifest *m, int *upper_fd, int *lower_fd, kerr *e);
/* hostname, /etc/hostname, /etc/hosts, /etc/resolv.conf in the new root;
 * failures in e, -errno of the first. */
int rootfs_identity(const kestrel_manifest *m, kerr *e);

/* ---- net.c ---- */

/* A failing interface does not stop the others: each failure is added to e,
 * -errno of the first is returned. */
int net_setup(const kestrel_manifest *m, kerr *e);

/* ---- metrics.c ---- */

void metrics_sample(uint64_t values[CTL_M_COUNT]);

/* ---- channel.c ---- */

typedef enum chan_state {
    CHAN_DOWN = 0,
    CHAN_CONNECTING, /* vsock connect in progress */
    CHAN_UP,
} chan_state;

typedef struct channel {
    int fd;
    chan_state state;
    bool vsock;
    ctl_decoder dec;
    ctl_buf out;
    int64_t retry_at_ms; /* when down: next attempt */
    uint64_t dropped_logs;
} channel;

#define CHAN_OUT_HIGH (4u << 20) /* above this, output producers are not polled */

void channel_init(channel *c);
/* One attempt: vsock first, then the virtio-serial port. 0 when up or
 * connecting, negative when neither is available (retry later). */
int channel_open(channel *c);
void channel_close(channel *c);
/* Flushes as much of c->out as the fd takes now. 0, or -errno (the channel
 * was closed). */
int channel_flush(channel *c);
/* Waits up to timeout_ms for everything queued to be written. */
void channel_drain(channel *c, int timeout_ms);
/* Completes a non-blocking vsock connect after POLLOUT. */
int channel_connect_done(channel *c);
static inline bool channel_up(const channel *c)
{
    return c->state == CHAN_UP;
}

/* ---- exec.c ---- */

typedef struct spawn_opts {
    char *const *argv;
    char *const *env;
    const char *workdir;
    const kestrel_ids *ids;
    int stdin_fd, stdout_fd, stderr_fd; /* -1: /dev/null */
    const char *tty_slave;              /* when set: setsid + controlling tty on all three */
    /* When set: why the child could not exec ("exec nosuchcmd: No such file or
     * directory"), "" when it did; kestrel_spawn returns once the exec happened. */
    char *why;
    size_t why_size;
    /* When set: the child runs this instead of an exec (kestrel's built-in commands);
     * it exits 0 when it returns 0, 1 otherwise. */
    int (*builtin)(void *arg);
    void *builtin_arg;
} spawn_opts;
/* fork + exec with shell-style 126/127 on failure. Returns the pid or -errno. */
pid_t kestrel_spawn(const spawn_opts *o);

typedef struct exec_session exec_session;
struct pollfd;

/* ---- the agent (main.c) ---- */

typedef struct workload {
    char **argv;
    char **env;
    kestrel_ids ids;
    bool ids_ok;
    pid_t pid;     /* 0 when not running */
    int out_fd;    /* stdout pipe, -1 when closed */
    int err_fd;    /* stderr pipe */
    char *line[2]; /* partial log lines of stdout / stderr */
    size_t line_len[2];
    uint32_t restarts;
    uint32_t quick_failures;
    int64_t started_ms;
    int64_t restart_at_ms; /* >0: restart pending */
    int64_t kill_at_ms;    /* >0: SIGKILL the workload at this time */
    int last_code;
    bool done;
    /* manifest attach: the workload runs as exec session main_session (0: not yet) */
    uint32_t main_session;
    pid_t main_pid; /* 0 when it is not running */
} workload;

typedef struct kestrel {
    kestrel_manifest m;
    channel ch;
    workload wl;
    exec_session *sessions;
    ctl_phase_ts phases[CTL_PHASE_MAX];
    size_t nphases;
    bool stop_requested;
    bool finishing;
    int sig_fd;
    int64_t metrics_at_ms;
    int upper_fd, lower_fd; /* the overlay's layers (hypr diff); -1 */
} kestrel;

extern kestrel *K; /* the one agent (kestrel is PID 1: one instance) */

void phase_mark(kestrel *k, enum ctl_phase phase);
/* Queues a frame built by fn; on a full or down channel the frame is dropped. */
void send_hello(kestrel *k);
void send_error(kestrel *k, uint32_t session, int negerr, const char *msg);

/* workload.c */
int workload_prepare(kestrel *k);
void workload_start(kestrel *k);
/* A reaped pid: true when it was the workload. */
bool workload_reaped(kestrel *k, pid_t pid, int status);
void workload_stop(kestrel *k, int sig);
void workload_timers(kestrel *k, int64_t now);
int64_t workload_next_deadline(const kestrel *k);
void workload_output(kestrel *k, int stream, int fd);
void workload_flush_lines(kestrel *k);

/* exec.c */
void exec_handle_frame(kestrel *k, const ctl_frame *f);
bool exec_reaped(kestrel *k, pid_t pid, int status);
size_t exec_poll_count(const kestrel *k);
/* Fills pollfds; returns how many were written. */
size_t exec_poll_fill(kestrel *k, struct pollfd *pfd, bool can_produce);
void exec_poll_handle(kestrel *k, struct pollfd *pfd, size_t n);
void exec_close_all(kestrel *k);

#endif
