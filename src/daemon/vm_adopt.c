/* Start-up: the VMs an earlier hyprd left behind. A hypervisor that outlived it
 * (an upgrade, a crash, a shutdown that keeps VMs) is re-adopted with its workload
 * untouched; a VM whose hypervisor ended meanwhile is settled with what its
 * console says; then restart policies apply, as Docker's do when dockerd starts. */
#define LOG_MODULE "vm"
#include "vm_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* What <run-dir>/<id>.proc says. */
typedef struct proc_record {
    int pid;
    uint64_t start;
    char adapter[32];
    int paused; /* its vCPUs were stopped by hypr pause (absent in older records: 0) */
} proc_record;

static bool read_proc_record(daemon_ctx *d, const char *id, proc_record *out)
{
    _cleanup_free_ char *path = vm_proc_file(d, id);
    _cleanup_free_ char *text = NULL;
    if (read_file(path, 256, &text, NULL) < 0)
        return false;
    out->paused = 0;
    return sscanf(text, "%d %" SCNu64 " %31s %d", &out->pid, &out->start, out->adapter,
                  &out->paused) >= 3 &&
           out->pid > 0;
}

static bool cmdline_names(int pid, const char *needle)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    _cleanup_free_ char *cmd = NULL;
    size_t len = 0;
    if (read_file(path, 1 << 20, &cmd, &len) < 0)
        return false;
    return memmem(cmd, len, needle, strlen(needle)) != NULL;
}

/* A pidfd for the recorded hypervisor if it still runs: the same pid with the same
 * start time (a pid alone may have been reused), whose command line names the VM. */
static int open_hypervisor(const proc_record *p, const char *id)
{
    uint64_t start;
    if (proc_start_time(p->pid, &start) < 0 || start != p->start || !cmdline_names(p->pid, id))
        return -ESRCH;
    int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    if (fd < 0)
        return -errno;
    /* The process could have ended and its pid been reused between the check and
     * the open: the pidfd names whatever has the pid now, so look once more. */
    if (proc_start_time(p->pid, &start) < 0 || start != p->start) {
        close(fd);
        return -ESRCH;
    }
    return fd;
}

/* kestrel's last words on the console: "kestrel: workload finished with exit code N". */
static bool console_exit_code(daemon_ctx *d, const char *id, int *code)
{
    _cleanup_free_ char *path = vm_log_path(d, id);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    off_t size = lseek(fd, 0, SEEK_END);
    size_t want = size > 65536 ? 65536 : (size_t)(size < 0 ? 0 : size);
    _cleanup_free_ char *tail = xmalloc(want + 1);
    ssize_t n = pread(fd, tail, want, size - (off_t)want);
    if (n <= 0)
        return false;
    tail[n] = '\0';
    static const char marker[] = "kestrel: workload finished with exit code ";
    /* The tail may hold NULs (binary output): search it as bytes. */
    const char *last = NULL;
    for (const char *p = tail; (p = memmem(p, (size_t)(tail + n - p), marker, sizeof(marker) - 1));
         p++)
        last = p;
    if (!last)
        return false;
    int64_t v;
    const char *num = last + sizeof(marker) - 1;
    size_t digits = strspn(num, "0123456789");
    _cleanup_free_ char *text = xstrndup(num, digits);
    if (!digits || parse_int64(text, 0, 255, &v) < 0)
        return false;
    *code = (int)v;
    return true;
}

/* ---- a hypervisor that runs on --------------------------------------------------- */

/* qemu's chardev retries every second: this is ample. */
#define RECONNECT_TIMEOUT_MS 5000

static void on_reconnect_timeout(uv_timer_t *t)
{
    vm_runtime *vm = t->data;
    if (vm->ctl_connected)
        return;
    log_warn("VM %s: its control channel did not come back within %d s of the re-adoption",
             vm->name, RECONNECT_TIMEOUT_MS / 1000);
    vm_exec_end_all(vm, "the VM's control channel did not come back after hyprd restarted");
    vm_pause_resume_parked(vm);
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
    vm_runtime *vm = h->data;
    (void)status;
    (void)events;
    uv_poll_stop(h);
    /* Not our child: no exit status; kestrel's WORKLOAD_EXIT says how it ended. */
    vm_proc_ended(vm, false, 0, 0);
}

static vm_phase stored_phase(const char *status)
{
    if (strcmp(status, "running") == 0)
        return VM_PHASE_RUNNING;
    if (strcmp(status, "stopping") == 0)
        return VM_PHASE_STOPPING;
    return VM_PHASE_BOOTING;
}

/* Takes the VM back: its network state, control channel and exit watch. pidfd is taken. */
static int adopt(daemon_ctx *d, const store_vm *rec, const proc_record *p, int pidfd,
                 hypr_error *err)
{
    _cleanup_close_ int fd = pidfd;
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    int r = vm_config_decode(rec, &cfg, err);
    if (r < 0)
        return r;
    _cleanup_store_image_ store_image img = {0};
    r = store_image_find(d->db, str_empty(rec->image_id) ? rec->image : rec->image_id, &img, err);
    if (r < 0)
        return hypr_err_prefix(err, "image");
    _cleanup_vmm_adapter_ vmm_adapter *adapter = NULL;
    r = vmm_adapter_get(p->adapter, &adapter, err);
    if (r < 0)
        return r;
    struct vm_net *net = NULL;
    vm_net_boot boot = {0};
    r = netmgr_vm_adopt(d, rec->id, cfg, &net, &boot, err);
    if (r < 0)
        return hypr_err_prefix(err, "network");
    vm_runtime *vm = vm_runtime_for(d, rec, cfg, &img, TAKE_PTR(adapter), net, &boot);
    vm->adopted = true;
    vm->pidfd = TAKE_FD(fd);
    vm->proc_pid = p->pid;
    vm->paused = p->paused == 1; /* still stopped: unpause is what resumes it */
    vm->proc_running = true;
    vm->phase = stored_phase(rec->status);
    vm->manual_stop = rec->manual_stop;
    uv_poll_init(d->loop, &vm->pid_poll, vm->pidfd);
    vm->pid_poll.data = vm;
    vm->pid_polling = true;
    uv_poll_start(&vm->pid_poll, UV_READABLE, on_pidfd);
    /* qemu's chardev reconnects to the channel within a second; kestrel then
     * answers the HELLO with its phases, and its frames flow again. */
    uv_timer_start(&vm->reconnect_timer, on_reconnect_timeout, RECONNECT_TIMEOUT_MS, 0);
    r = vm_ctl_listen(vm, &vm_lifecycle_handlers, err);
    if (r < 0) {
        /* Without a channel the VM cannot be driven: end it (the exit settles it). */
        vm_proc_kill(vm, SIGKILL);
        return r;
    }
    if (vm->phase == VM_PHASE_STOPPING) {
        /* A stop was under way when hyprd went: it ends now. */
        vm->stop_requested = true;
        vm_proc_kill(vm, SIGKILL);
    } else if (vm->phase == VM_PHASE_RUNNING) {
        vm->workload_started = true;
        vm->keep_started_at = true;
        netmgr_vm_running(d, vm->net, vm->name);
    } else {
        vm_arm_boot_deadline(vm); /* the boot goes on, with a deadline from now */
    }
    vm_persist(vm, vm->phase); /* the pid, the address */
    log_info("re-adopted VM %s (%.12s, %s pid %d, %s)", vm->name, vm->id, p->adapter, p->pid,
             vm_phase_status(vm->phase));
    return 0;
}

/* ---- a hypervisor that is gone ----------------------------------------------------- */

/* The VM ended while no hyprd watched it: its final state from the console, its
 * hypervisor's leftovers removed. */
static void settle_gone(daemon_ctx *d, store_vm *v, const proc_record *p)
{
    int code = 0;
    bool known = console_exit_code(d, v->id, &code);
    free(v->status);
    free(v->error);
    v->error = NULL;
    if (known) {
        v->status = xstrdup("stopped");
        v->exit_code = code;
    } else {
        v->status = xstrdup("failed");
        v->exit_code = 255;
        v->error = xstrdup("the VM ended while hyprd was not running, and its console log does "
                           "not say how");
    }
    v->stopped_at = time_now_ms() / 1000;
    v->pid = 0;
    free(v->ip_address);
    v->ip_address = NULL;
    _cleanup_vmm_adapter_ vmm_adapter *adapter = NULL;
    if (vmm_adapter_get(p ? p->adapter : NULL, &adapter, NULL) == 0) {
        vmm_config cfg = {.id = v->id, .run_dir = d->run_dir};
        adapter->ops->delete (adapter, &cfg, NULL);
    }
    _cleanup_free_ char *proc_file = vm_proc_file(d, v->id);
    unlink(proc_file);
    log_info("VM %s ended while hyprd was away (%s, exit code %d)", v->name, v->status,
             v->exit_code);
}

/* ---- orphans ------------------------------------------------------------------------- */

/* Hypervisors of this run dir that no VM claims (hyprd died between a spawn and
 * its record): nothing can drive them, and they hold the VM's sockets. */
static void kill_orphans(daemon_ctx *d)
{
    _cleanup_free_ char *needle = xasprintf("%s/", d->run_dir);
    DIR *proc = opendir("/proc");
    struct dirent *de;
    while (proc && (de = readdir(proc))) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        int pid = atoi(de->d_name);
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
        _cleanup_free_ char *cmd = NULL;
        size_t len = 0;
        if (pid == getpid() || read_file(path, 1 << 20, &cmd, &len) < 0)
            continue;
        /* The hypervisors' per-VM paths are "<run-dir>/<64 hex id>.<suffix>". */
        for (const char *m = cmd; (m = memmem(m, (size_t)(cmd + len - m), needle, strlen(needle)));
             m++) {
            const char *id = m + strlen(needle);
            if ((size_t)(cmd + len - id) <= HYPR_ID_LEN || id[HYPR_ID_LEN] != '.')
                continue;
            _cleanup_free_ char *vm_id = xstrndup(id, HYPR_ID_LEN);
            if (!id_is_valid(vm_id))
                continue;
            vm_runtime *vm = vm_runtime_find(d, vm_id);
            /* A running VM's virtiofsd ("<id>.fsN.sock") serves it on. */
            bool share_helper = strncmp(id + HYPR_ID_LEN, ".fs", 3) == 0;
            if (vm && (vm->proc_pid == pid || share_helper))
                break;
            log_warn("killing %s pid %d of VM %.12s: no VM record holds it",
                     share_helper ? "virtiofsd" : "hypervisor", pid, vm_id);
            kill(pid, SIGKILL);
            break;
        }
    }
    if (proc)
        closedir(proc);
}

/* ---- restart policies at start-up ------------------------------------------------------ */

static void start_with_daemon(daemon_ctx *d, const store_vm *v)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    if (vm_config_decode(v, &cfg, &err) < 0) {
        log_warn("VM %s: %s", v->name, err.message);
        return;
    }
    if (cfg->auto_remove) {
        /* --rm: a VM that ended goes, whoever saw it end. */
        vm_remove_record(d, v->id, v->name, false);
        return;
    }
    if (!v->started_at || !cfg->restart ||
        !vm_policy_restarts_with_daemon(cfg->restart->name, cfg->restart->max_retries,
                                        (uint32_t)v->restart_count, v->manual_stop, v->exit_code))
        return;
    if (vm_start(d, v->id, false, &err) < 0)
        log_warn("restart VM %s: %s", v->name, err.message);
}

static bool ended(const char *status)
{
    return strcmp(status, "created") == 0 || strcmp(status, "stopped") == 0 ||
           strcmp(status, "failed") == 0;
}

int vm_adopt_all(daemon_ctx *d, hypr_error *err)
{
    store_vm *vms = NULL;
    size_t n = 0;
    int r = store_vm_list(d->db, &vms, &n, err);
    if (r < 0)
        return hypr_err_prefix(err, "reconcile VMs");
    bool *settled = xcalloc(n ? n : 1, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        store_vm *v = &vms[i];
        if (ended(v->status))
            continue;
        proc_record p = {0};
        bool have = read_proc_record(d, v->id, &p);
        int fd = have ? open_hypervisor(&p, v->id) : -ESRCH;
        _cleanup_error_ hypr_error aerr = HYPR_ERROR_INIT;
        if (fd >= 0 && adopt(d, v, &p, fd, &aerr) == 0)
            continue;
        if (fd >= 0)
            log_warn("VM %s: cannot re-adopt its hypervisor (pid %d): %s", v->name, p.pid,
                     aerr.message);
        if (vm_runtime_find(d, v->id))
            continue; /* being killed: its exit settles it */
        settle_gone(d, v, have ? &p : NULL);
        _cleanup_error_ hypr_error uerr = HYPR_ERROR_INIT;
        if (store_vm_update(d->db, v, &uerr) < 0) {
            log_warn("reconcile VM %s: %s", v->name, uerr.message);
            continue;
        }
        settled[i] = true;
    }
    kill_orphans(d);
    netmgr_remove_stale_taps(d);
    /* Before the policies: a VM they start may want the same devices. */
    vm_gpu_release_orphans(d);
    /* Policies last: a VM started now must not take an address or port that a
     * re-adopted one holds. */
    for (size_t i = 0; i < n; i++)
        if (settled[i] || (strcmp(vms[i].status, "created") != 0 && ended(vms[i].status) &&
                           !vm_runtime_find(d, vms[i].id)))
            start_with_daemon(d, &vms[i]);
    free(settled);
    store_vms_free(vms, n);
    return 0;
}
