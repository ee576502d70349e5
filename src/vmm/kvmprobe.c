/* Whether KVM really runs a guest. /dev/kvm can open and create VMs yet fail
 * on the first instruction its nested emulator lacks ("KVM internal error"),
 * after which qemu hangs with the VM paused. One short boot of the guest
 * kernel under KVM, without a root filesystem, tells: a working KVM reaches the
 * root mount (and panics there) in well under a second. */
#define LOG_MODULE "vmm"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

#include "vmm/vmm-private.h"

#define PROBE_MAX_OUTPUT ((size_t)1 << 20)

extern char **environ;

static const char *const probe_ok_markers[] = {"VFS: ", "Kernel panic", "Run /init",
                                               "Freeing unused kernel"};
static const char *const probe_bad_markers[] = {"KVM internal error", "emulation failure",
                                                "failed to initialize kvm", "Could not access KVM"};

static const char *find_any(const char *text, const char *const *markers, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strstr(text, markers[i]))
            return markers[i];
    return NULL;
}

static char **probe_argv(const vmm_adapter *a, const char *kernel)
{
    char **v = NULL;
    const char *fixed[] = {"-M",
                           "microvm,x-option-roms=off,isa-serial=on,rtc=on",
                           "-accel",
                           "kvm",
                           "-cpu",
                           "host",
                           "-m",
                           "256M",
                           "-smp",
                           "1",
                           "-nodefaults",
                           "-no-user-config",
                           "-display",
                           "none",
                           "-no-reboot",
                           "-chardev",
                           "stdio,id=console,signal=off",
                           "-serial",
                           "chardev:console",
                           "-append",
                           "console=ttyS0 reboot=t panic=-1 root=/dev/hypr-kvm-probe",
                           "-kernel"};
    argv_add(&v, a->binary_path);
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        argv_add(&v, fixed[i]);
    argv_add(&v, kernel);
    return v;
}

/* Runs the probe; *verdict = NULL when KVM works, else why not. */
static int run_probe(const vmm_adapter *a, const char *kernel, int timeout_ms, const char **verdict,
                     hypr_error *err)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "pipe: %s", strerror(errno));
    _cleanup_close_ int rd = pipefd[0];
    _cleanup_close_ int wr = pipefd[1];
    _cleanup_strv_ char **argv = probe_argv(a, kernel);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, wr, 1);
    posix_spawn_file_actions_adddup2(&fa, wr, 2);
    pid_t pid;
    int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0)
        return hypr_err(err, HYPR_INTERNAL, r, "spawn %s: %s", argv[0], strerror(r));
    close(TAKE_FD(wr));

    int64_t deadline = time_monotonic_ms() + timeout_ms;
    _cleanup_buf_ hypr_buf out = {0};
    *verdict = "no kernel output in time";
    for (;;) {
        buf_reserve(&out, 4096);
        ssize_t n = vmm_read_some(rd, out.data + out.len, 4096, deadline);
        if (n <= 0) {
            if (n == 0)
                *verdict = "qemu exited before the guest kernel got far";
            break;
        }
        out.len += (size_t)n;
        out.data[out.len] = '\0';
        const char *bad = find_any(out.data, probe_bad_markers, ARRAY_SIZE(probe_bad_markers));
        if (bad) {
            *verdict = bad;
            break;
        }
        if (find_any(out.data, probe_ok_markers, ARRAY_SIZE(probe_ok_markers))) {
            *verdict = NULL;
            break;
        }
        if (out.len > PROBE_MAX_OUTPUT)
            break;
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

int vmm_adapter_verify_kvm(vmm_adapter *a, const char *kernel, int timeout_ms, hypr_error *err)
{
    if (a->ops != &vmm_qemu_ops || !a->kvm)
        return 0;
    int64_t t0 = time_monotonic_ms();
    const char *verdict = NULL;
    int r = run_probe(a, kernel, timeout_ms, &verdict, err);
    if (r < 0)
        return r;
    if (!verdict) {
        log_debug("KVM runs guests (probe took %" PRId64 " ms)", time_monotonic_ms() - t0);
        return 0;
    }
    a->kvm = false;
    a->boot_timeout_ms = VMM_TCG_BOOT_TIMEOUT_MS;
    log_warn("/dev/kvm cannot run guests here (%s): qemu runs VMs with TCG software emulation "
             "(much slower)",
             verdict);
    return 0;
}
