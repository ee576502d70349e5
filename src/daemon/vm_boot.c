/* What a boot needs: the kestrel binary, the guest kernel and the shared
 * initramfs (prepared once per daemon, on the thread pool), and each VM's runtime
 * manifest, appended to that initramfs as its own initrd. */
#define LOG_MODULE "vm"
#include "vm_internal.h"

#include "image/image.h"
#include "kestrel/manifest.h"

#include <string.h>

/* ---- the kestrel binary and the guest kernel ------------------------------ */

static char *find_kestrel(void)
{
    const char *env = getenv("HYPR_KESTREL");
    if (!str_empty(env))
        return xstrdup(env);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            /* In the build tree hyprd is build/src/daemon/hyprd. */
            char *in_tree = xasprintf("%s/../../guest/kestrel/kestrel", self);
            if (access(in_tree, X_OK) == 0)
                return in_tree;
            free(in_tree);
            char *installed = xasprintf("%s/../libexec/hypr/kestrel", self);
            if (access(installed, X_OK) == 0)
                return installed;
            free(installed);
        }
    }
    return xstrdup("/usr/libexec/hypr/kestrel");
}

/* Runs on the thread pool: decompressing a kernel and building the initramfs
 * take seconds the first time, and nothing afterwards. A changed `kernel`
 * setting is looked up again. */
static int host_prepare_locked(vm_host *h, const char *data_dir, const char *kernel_setting,
                               hypr_error *err)
{
    if (h->ready && strcmp(h->kernel_setting, kernel_setting) == 0)
        return 0;
    h->ready = false;
    vmm_kernel_clear(&h->kernel);
    free(h->kernel_setting);
    h->kernel_setting = xstrdup(kernel_setting);
    vmm_kernel_opts kopts = {.setting = kernel_setting, .data_dir = data_dir};
    int r = vmm_kernel_find(&kopts, &h->kernel, err);
    if (r < 0)
        return r;
    if (access(h->kestrel, X_OK) < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, errno,
                        "guest agent not found at %s (build it with 'make', or set HYPR_KESTREL)",
                        h->kestrel);
    vmm_initramfs_opts iopts = {
        .kestrel = h->kestrel,
        .kernel_version = h->kernel.version,
        .modules_dir = h->kernel.modules_dir,
        .out = h->initramfs,
    };
    r = vmm_initramfs_ensure(&iopts, NULL, err);
    if (r < 0)
        return r;
    h->ready = true;
    return 0;
}

/* ---- the runtime manifest ------------------------------------------------- */

static void strv_push_all(manifest_strv *out, char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        manifest_strv_push(out, v[i]);
}

/* Entrypoint, cmd, env, workdir and user of the image, from its manifest.json (an
 * image imported without one has none). */
static int image_defaults(const store_image *img, kestrel_manifest *m, hypr_error *err)
{
    _cleanup_image_info_ image_info info = {0};
    if (str_empty(img->manifest))
        return 0;
    if (image_info_from_json(img->manifest, &info, err) < 0)
        return hypr_err_prefix(err, "image %.12s: its stored manifest", img->id);
    strv_push_all(&m->entrypoint, info.config.entrypoint);
    strv_push_all(&m->cmd, info.config.cmd);
    strv_push_all(&m->image_env, info.config.env);
    if (!str_empty(info.config.workdir))
        m->workdir = xstrdup(info.config.workdir);
    if (!str_empty(info.config.user))
        m->user = xstrdup(info.config.user);
    return 0;
}

char **image_exposed_ports(const store_image *img)
{
    _cleanup_image_info_ image_info info = {0};
    if (str_empty(img->manifest) || image_info_from_json(img->manifest, &info, NULL) < 0)
        return NULL;
    return TAKE_PTR(info.config.exposed_ports);
}

char *image_stop_signal(const store_image *img)
{
    _cleanup_image_info_ image_info info = {0};
    if (str_empty(img->manifest) || image_info_from_json(img->manifest, &info, NULL) < 0)
        return NULL;
    int sig = signal_parse(info.config.stop_signal);
    return sig > 0 && signal_name(sig) ? xstrdup(signal_name(sig))
           : sig > 0                   ? xasprintf("%d", sig)
                                       : NULL;
}

static void strv_reset(manifest_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

/* Docker's rules: --entrypoint replaces the image's entrypoint and drops its
 * cmd; a cmd given replaces the image's cmd. */
int vm_build_manifest(const store_vm *rec, const Hypr__V1__VMConfig *cfg, const store_image *img,
                      const vm_net_boot *net, const vm_mounts *mounts, char **out, size_t *out_len,
                      hypr_error *err)
{
    kestrel_manifest m;
    manifest_init(&m);
    int r = image_defaults(img, &m, err);
    if (r < 0) {
        manifest_free(&m);
        return r;
    }
    /* The first network has the default route and the resolver (hyprd's DNS server
     * on its gateway); the others only their subnets. kestrel finds each NIC by MAC. */
    for (size_t i = 0; i < net->n_nics; i++) {
        const vm_nic_boot *nic = &net->nics[i];
        if (i > 0) {
            manifest_add_netif(&m, nic->mac, nic->ip_cidr);
            continue;
        }
        m.ip = xstrdup(nic->ip_cidr);
        m.mac = xstrdup(nic->mac);
        m.gateway = xstrdup(nic->gateway);
        manifest_strv_push(&m.dns, nic->gateway);
    }
    if (cfg->n_dns > 0) { /* --dns replaces hyprd's resolver */
        strv_reset(&m.dns);
        for (size_t i = 0; i < cfg->n_dns; i++)
            manifest_strv_push(&m.dns, cfg->dns[i]);
    }
    for (size_t i = 0; i < cfg->n_extra_hosts; i++) {
        const char *h = cfg->extra_hosts[i], *colon = strchr(h, ':');
        if (!colon)
            continue; /* checked at creation */
        const char *ip = colon + 1;
        if (strcmp(ip, "host-gateway") == 0) /* Docker's name for the host, seen from the VM */
            ip = net->n_nics ? net->nics[0].gateway : "127.0.0.1";
        _cleanup_free_ char *line = xasprintf("%s %.*s", ip, (int)(colon - h), h);
        manifest_strv_push(&m.hosts, line);
    }
    m.hostname = xstrdup(str_empty(cfg->hostname) ? rec->name : cfg->hostname);
    if (cfg->entrypoint_set || cfg->n_entrypoint > 0) {
        strv_reset(&m.entrypoint);
        strv_reset(&m.cmd);
        for (size_t i = 0; i < cfg->n_entrypoint; i++)
            manifest_strv_push(&m.entrypoint, cfg->entrypoint[i]);
    }
    if (cfg->n_cmd > 0) {
        strv_reset(&m.cmd);
        for (size_t i = 0; i < cfg->n_cmd; i++)
            manifest_strv_push(&m.cmd, cfg->cmd[i]);
    }
    for (size_t i = 0; i < cfg->n_env; i++) {
        _cleanup_free_ char *kv = xasprintf("%s=%s", cfg->env[i]->key, cfg->env[i]->value);
        manifest_strv_push(&m.env, kv);
    }
    if (!str_empty(cfg->workdir)) {
        free(m.workdir);
        m.workdir = xstrdup(cfg->workdir);
    }
    if (!str_empty(cfg->user)) {
        free(m.user);
        m.user = xstrdup(cfg->user);
    }
    if (cfg->restart && !str_empty(cfg->restart->name)) {
        _cleanup_free_ char *policy =
            cfg->restart->max_retries && strcmp(cfg->restart->name, "on-failure") == 0
                ? xasprintf("on-failure:%u", cfg->restart->max_retries)
                : xstrdup(cfg->restart->name);
        restart_policy_parse(policy, &m.restart, &m.restart_max);
    }
    m.stop_timeout_s = cfg->stop_timeout;
    int sig = signal_parse(cfg->stop_signal);
    m.stop_signal = sig > 0 ? (uint32_t)sig : 0;
    m.attach = cfg->tty || cfg->open_stdin; /* started by the client's attach (run -it) */
    if (mounts)
        vm_mounts_manifest(mounts, cfg, &m);
    if (m.entrypoint.n == 0 && m.cmd.n == 0)
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                     "no command to run: the image has no entrypoint or cmd; give one after "
                     "the image name");
    else if (manifest_encode(&m, out, out_len) < 0)
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "VM config cannot be encoded");
    manifest_free(&m);
    return r;
}

vm_host *vm_host_new(const char *run_dir)
{
    vm_host *h = xcalloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->kernel_setting = xstrdup("");
    h->kestrel = find_kestrel();
    h->initramfs = path_join(run_dir, "kestrel-initramfs.cpio");
    return h;
}

void vm_host_free(vm_host *h)
{
    if (!h)
        return;
    vmm_kernel_clear(&h->kernel);
    pthread_mutex_destroy(&h->lock);
    free(h->kernel_setting);
    free(h->initramfs);
    free(h->kestrel);
    free(h);
}

int vm_host_prepare(vm_host *h, const char *data_dir, const char *kernel_setting,
                    const char *manifest, size_t manifest_len, const char *initrd_path,
                    char **kernel_path, hypr_error *err)
{
    pthread_mutex_lock(&h->lock);
    int r = host_prepare_locked(h, data_dir, kernel_setting, err);
    if (r >= 0)
        r = vmm_write_vm_initrd(h->initramfs, manifest, manifest_len, initrd_path, err);
    /* The kernel path is copied while the lock still guards it. */
    if (r >= 0)
        *kernel_path = xstrdup(h->kernel.path);
    pthread_mutex_unlock(&h->lock);
    return r;
}
