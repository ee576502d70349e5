/* What a start attaches for a VM's filesystems:
 *   - each volume and bind mount is a shared directory (vmm_share) with the tag
 *     "hyprfsN": over virtiofs, one virtiofsd per directory (spawned here, its
 *     socket "<run>/<id>.fsN.sock"; it exits when the hypervisor goes), or over
 *     virtio-9p served by the hypervisor itself (the volume_transport setting,
 *     or virtiofsd missing);
 *   - tmpfs mounts are the guest's alone;
 *   - the writable layer: a sparse ext4 disk <data>/layers/<id>.ext4, made at
 *     the first start and kept until `hypr rm`, so the overlay's upper dir
 *     survives stop/start (Docker keeps a container's layer until rm). A disk
 *     and not a shared directory: overlayfs cannot use virtiofs or 9p as its
 *     upper layer, and a disk's ENOSPC is the guest's, never the host's.
 * kestrel mounts them all before the workload starts; one that fails fails the start. */
#define LOG_MODULE "vm"
#include "vm_internal.h"
#include "kestrel/manifest.h"
#include "volstore.h"

#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

struct vm_mounts {
    vmm_share shares[VMM_MAX_SHARES];
    size_t n_shares;
    char *tags[VMM_MAX_SHARES], *paths[VMM_MAX_SHARES], *sockets[VMM_MAX_SHARES];
    vmm_disk upper;
    char *upper_path;
    uint64_t upper_mb;
    char *virtiofsd;
    uv_process_t fsd[VMM_MAX_SHARES];
    bool fsd_spawned[VMM_MAX_SHARES], fsd_running[VMM_MAX_SHARES];
    bool bind[VMM_MAX_SHARES]; /* the host edits it too: no attribute caching */
};

static const char *const virtiofsd_paths[] = {"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd",
                                              "/usr/bin/virtiofsd"};

static char *find_virtiofsd(void)
{
    const char *env = getenv("HYPR_VIRTIOFSD");
    if (env)
        return access(env, X_OK) == 0 ? xstrdup(env) : NULL;
    for (size_t i = 0; i < ARRAY_SIZE(virtiofsd_paths); i++)
        if (access(virtiofsd_paths[i], X_OK) == 0)
            return xstrdup(virtiofsd_paths[i]);
    return NULL;
}

char *vm_layer_path(daemon_ctx *d, const char *id)
{
    return xasprintf("%s/layers/%s.ext4", d->data_dir, id);
}

void vm_mounts_free(vm_mounts *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_shares; i++) {
        free(p->tags[i]);
        free(p->paths[i]);
        free(p->sockets[i]);
    }
    free(p->upper_path);
    free(p->virtiofsd);
    free(p);
}

int vm_mounts_plan(daemon_ctx *d, const store_vm *rec, const Hypr__V1__VMConfig *cfg,
                   const vmm_adapter *adapter, vm_mounts **out, hypr_error *err)
{
    vm_mounts *p = xcalloc(1, sizeof(*p));
    _cleanup_free_ char *transport = settings_get(d, "volume_transport");
    if (strcmp(transport, "9p") != 0) {
        p->virtiofsd = find_virtiofsd();
        if (!p->virtiofsd && strcmp(transport, "virtiofs") == 0) {
            vm_mounts_free(p);
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOENT,
                            "volume_transport is virtiofs but virtiofsd is not installed "
                            "(qemu-system-common, or HYPR_VIRTIOFSD): install it or set "
                            "volume_transport=9p");
        }
    }
    /* 9p needs no helper; cloud-hypervisor has only virtiofs (vmm_shares_check says so). */
    vmm_share_transport t = p->virtiofsd ? VMM_SHARE_VIRTIOFS : VMM_SHARE_9P;
    int r = 0;
    for (size_t i = 0; i < cfg->n_volumes && r >= 0; i++) {
        const Hypr__V1__VolumeMount *m = cfg->volumes[i];
        if (strcmp(m->type, "tmpfs") == 0)
            continue;
        bool bind = strcmp(m->type, "bind") == 0;
        _cleanup_store_volume_ store_volume v = {0};
        if (!bind && store_volume_find(d->db, m->source, &v, NULL) < 0) {
            r = hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                         "volume %s (mounted on %s) no longer exists: create it with 'hypr "
                         "volume create %s'",
                         m->source, m->target, m->source);
            break;
        }
        const char *path = bind ? m->source : v.mountpoint;
        struct stat st;
        int e = stat(path, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
        if (e) {
            r = hypr_err(err, HYPR_FAILED_PRECONDITION, e, "%s %s for %s: %s: %s",
                         bind ? "bind source" : "volume", m->source, m->target, path, strerror(e));
            break;
        }
        size_t k = p->n_shares++;
        p->bind[k] = bind;
        p->tags[k] = xasprintf("hyprfs%zu", k);
        p->paths[k] = xstrdup(path);
        p->sockets[k] = xasprintf("%s/%s.fs%zu.sock", d->run_dir, rec->id, k);
        p->shares[k] = (vmm_share){.tag = p->tags[k],
                                   .path = p->paths[k],
                                   .socket = p->sockets[k],
                                   /* a volume may be filled first: the guest
                                    * makes it read-only after */
                                   .readonly = m->read_only && bind,
                                   .transport = t};
    }
    vmm_config probe = {.shares = p->shares, .n_shares = p->n_shares};
    if (r >= 0)
        r = vmm_shares_check(adapter->ops, &probe, err);
    if (r < 0) {
        vm_mounts_free(p);
        return r;
    }
    p->upper_path = vm_layer_path(d, rec->id);
    p->upper = (vmm_disk){.path = p->upper_path, .readonly = false};
    p->upper_mb = (uint64_t)settings_get_int(d, "vm_writable_layer_size");
    *out = p;
    return 0;
}

void vm_mounts_attach(vm_mounts *p, vmm_config *cfg)
{
    cfg->shares = p->shares;
    cfg->n_shares = p->n_shares;
    cfg->disks = &p->upper;
    cfg->n_disks = 1;
}

void vm_mounts_manifest(const vm_mounts *p, const Hypr__V1__VMConfig *cfg, kestrel_manifest *m)
{
    size_t k = 0;
    for (size_t i = 0; i < cfg->n_volumes; i++) {
        const Hypr__V1__VolumeMount *v = cfg->volumes[i];
        const char *rw = v->read_only ? "ro" : "rw";
        if (strcmp(v->type, "tmpfs") == 0) {
            _cleanup_buf_ hypr_buf o = {0};
            buf_printf(&o, "%s,mode=%o", rw, v->tmpfs_mode ? v->tmpfs_mode : 01777);
            if (v->tmpfs_size)
                buf_printf(&o, ",size=%" PRIu64, v->tmpfs_size);
            if (!str_empty(v->tmpfs_options))
                buf_printf(&o, ",%s", v->tmpfs_options);
            manifest_add_volume(m, "tmpfs", v->target, "tmpfs", o.data);
            continue;
        }
        const vmm_share *s = &p->shares[k++];
        /* An empty volume takes the image's content at its target (Docker's copy-up);
         * kestrel copies only into an empty one. A bind is never filled. */
        bool populate = strcmp(v->type, "volume") == 0 && !v->nocopy;
        _cleanup_free_ char *opts =
            s->transport == VMM_SHARE_9P
                ? xasprintf("trans=virtio,version=9p2000.L,msize=262144,cache=mmap,%s%s", rw,
                            populate ? ",x-populate" : "")
                : xasprintf("%s%s", rw, populate ? ",x-populate" : "");
        manifest_add_volume(m, s->tag, v->target, s->transport == VMM_SHARE_9P ? "9p" : "virtiofs",
                            opts);
    }
    free(m->upper);
    m->upper = xstrdup("serial:disk1"); /* vmm_disk_at names cfg->disks[0] "disk1" */
    m->readonly_root = cfg->read_only;
}

/* ---- on the pool: the layer's disk, virtiofsd's sockets --------------------------- */

static int run_wait(char *const argv[], hypr_error *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, r, "run %s: %s", argv[0], strerror(r));
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return hypr_err(err, HYPR_INTERNAL, errno, "wait for %s: %s", argv[0], strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return hypr_err(err, HYPR_INTERNAL, EIO, "%s failed (status %d)", argv[0], st);
    return 0;
}

static int make_layer(const vm_mounts *p, hypr_error *err)
{
    if (access(p->upper_path, F_OK) == 0)
        return 0;
    _cleanup_free_ char *dir = xstrdup(p->upper_path);
    *strrchr(dir, '/') = '\0';
    _cleanup_free_ char *tmp = xasprintf("%s.new", p->upper_path);
    _cleanup_close_ int fd = -1;
    if (mkdir_p(dir, 0700) < 0 ||
        (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
        ftruncate(fd, (off_t)(p->upper_mb << 20)) < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "writable layer %s: %s", tmp, strerror(errno));
    /* Sparse, lazily initialised: a 10 GiB layer costs the host what the guest writes. */
    char *argv[] = {"mkfs.ext4",
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-E",
                    "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                    tmp,
                    NULL};
    int r = run_wait(argv, err);
    if (r < 0) {
        unlink(tmp);
        return hypr_err_prefix(err, "format the writable layer");
    }
    if (rename(tmp, p->upper_path) < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "writable layer %s: %s", p->upper_path,
                        strerror(errno));
    return 0;
}

int vm_mounts_prepare(vm_mounts *p, hypr_error *err)
{
    int r = make_layer(p, err);
    if (r < 0)
        return r;
    /* Each virtiofsd listens before the hypervisor connects (a condition, bounded). */
    int64_t deadline = time_monotonic_ms() + 5000;
    for (size_t i = 0; i < p->n_shares; i++) {
        if (p->shares[i].transport != VMM_SHARE_VIRTIOFS)
            continue;
        struct stat st;
        while (stat(p->sockets[i], &st) < 0 || !S_ISSOCK(st.st_mode)) {
            if (time_monotonic_ms() > deadline)
                return hypr_err(err, HYPR_FAILED_PRECONDITION, ETIMEDOUT,
                                "virtiofsd for %s did not start (its messages are in the "
                                "console log: hypr logs --console)",
                                p->paths[i]);
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

/* ---- on the loop: virtiofsd's processes -------------------------------------------- */

static void on_fsd_exit(uv_process_t *h, int64_t status, int sig)
{
    vm_runtime *vm = h->data;
    vm_mounts *p = vm->mounts;
    size_t i = (size_t)(h - p->fsd);
    p->fsd_running[i] = false;
    if (status || (sig && sig != SIGTERM))
        log_info("VM %s: virtiofsd for %s exited (%s %d)", vm->name, p->paths[i],
                 sig ? "signal" : "status", sig ? sig : (int)status);
}

int vm_mounts_spawn(vm_runtime *vm, hypr_error *err)
{
    vm_mounts *p = vm->mounts;
    for (size_t i = 0; i < p->n_shares; i++) {
        if (p->shares[i].transport != VMM_SHARE_VIRTIOFS)
            continue;
        unlink(p->sockets[i]);
        _cleanup_free_ char *sock = xasprintf("--socket-path=%s", p->sockets[i]);
        _cleanup_free_ char *src = xasprintf("source=%s", p->paths[i]);
        /* A bind is edited on the host while the guest reads it: sizes and times are
         * looked up again each time (timeout=0), or a grown file reads short. */
        char *argv[] = {p->virtiofsd, sock,
                        "-o",         src,
                        "-o",         "cache=auto",
                        "-o",         p->bind[i] ? "timeout=0" : "timeout=1",
                        "-o",         "log_level=warn",
                        NULL};
        /* Like the hypervisor it outlives a hyprd restart; its errors go to the console log. */
        int r = vm_spawn_detached(vm, &p->fsd[i], argv, NULL, vm->console_log, on_fsd_exit, err);
        if (r < 0)
            return r;
        p->fsd_spawned[i] = p->fsd_running[i] = true;
    }
    return 0;
}

void vm_mounts_end(vm_runtime *vm, bool kill_helpers)
{
    vm_mounts *p = vm->mounts;
    for (size_t i = 0; p && i < p->n_shares; i++) {
        if (!p->fsd_spawned[i])
            continue;
        if (kill_helpers && p->fsd_running[i])
            uv_process_kill(&p->fsd[i], SIGTERM);
        p->fsd_spawned[i] = false;
        vm_close_handle(vm, (uv_handle_t *)&p->fsd[i]);
    }
}
