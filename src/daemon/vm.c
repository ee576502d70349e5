/* VM records: config validation and defaults, create, delete, status changes,
 * and their API message form. The running side is in vm_start.c. */
#define LOG_MODULE "vm"
#include "vm.h"

#include "image/image.h"
#include "netmgr.h"

#include <dirent.h>
#include <string.h>

static const struct {
    const char *name;
    Hypr__V1__VMStatus status;
} vm_statuses[] = {
    {"created", HYPR__V1__VMSTATUS__VM_STATUS_CREATED},
    {"booting", HYPR__V1__VMSTATUS__VM_STATUS_BOOTING},
    {"running", HYPR__V1__VMSTATUS__VM_STATUS_RUNNING},
    {"stopping", HYPR__V1__VMSTATUS__VM_STATUS_STOPPING},
    {"stopped", HYPR__V1__VMSTATUS__VM_STATUS_STOPPED},
    {"failed", HYPR__V1__VMSTATUS__VM_STATUS_FAILED},
    {"restarting", HYPR__V1__VMSTATUS__VM_STATUS_RESTARTING},
};

static Hypr__V1__VMStatus vm_status_from_string(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(vm_statuses); i++)
        if (strcmp(vm_statuses[i].name, s) == 0)
            return vm_statuses[i].status;
    return HYPR__V1__VMSTATUS__VM_STATUS_UNSPECIFIED;
}

Hypr__V1__VM *vm_to_message(daemon_ctx *d, const store_vm *vm)
{
    Hypr__V1__VM *m = xmalloc(sizeof(*m));
    hypr__v1__vm__init(m);
    m->id = (char *)vm->id;
    m->name = vm->name;
    m->status = vm_status_from_string(vm->status);
    m->ip_address = vm->ip_address ? vm->ip_address : "";
    m->exit_code = vm->exit_code;
    m->error = vm->error ? vm->error : "";
    m->created_at = vm->created_at;
    m->started_at = vm->started_at;
    m->stopped_at = vm->stopped_at;
    m->pid = vm->pid;
    m->image_id = vm->image_id ? vm->image_id : "";
    m->restart_count = (uint32_t)vm->restart_count;
    m->stack = vm->stack ? vm->stack : "";
    if (vm->config_len > 0)
        m->config = hypr__v1__vmconfig__unpack(NULL, vm->config_len, (const uint8_t *)vm->config);
    vm_runtime *rt = d ? vm_runtime_find(d, vm->id) : NULL;
    if (rt && rt->net)
        m->n_networks = (size_t)netmgr_vm_attachments(rt->net, &m->networks);
    return m;
}

void vm_message_free(Hypr__V1__VM *m)
{
    if (!m)
        return;
    if (m->config)
        hypr__v1__vmconfig__free_unpacked(m->config, NULL);
    for (size_t i = 0; i < m->n_networks; i++)
        free(m->networks[i]);
    free(m->networks);
    free(m);
}

/* ---- validation ------------------------------------------------------------ */

/* Replaces a string field of an unpacked message: unset fields point at
 * protobuf-c's static empty string, which must not be freed. */
static void set_field(char **field, char *value)
{
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = value;
}

static int check_ports(daemon_ctx *d, Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    for (size_t i = 0; i < cfg->n_ports; i++) {
        Hypr__V1__PortMapping *p = cfg->ports[i];
        if (p->host_port < 1 || p->host_port > 65535 || p->guest_port < 1 || p->guest_port > 65535)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid port mapping %u:%u: ports must be from 1 to 65535",
                            p->host_port, p->guest_port);
        if (str_empty(p->protocol)) {
            set_field(&p->protocol, xstrdup("tcp"));
        } else if (strcmp(p->protocol, "tcp") != 0 && strcmp(p->protocol, "udp") != 0) {
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid protocol \"%s\" for port %u: use tcp or udp", p->protocol,
                            p->host_port);
        }
        if (str_empty(p->host_ip)) {
            set_field(&p->host_ip, settings_get(d, "default_host_ip"));
        }
    }
    return 0;
}

static int check_restart(Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    if (!cfg->restart) {
        cfg->restart = xmalloc(sizeof(*cfg->restart));
        hypr__v1__restart_policy__init(cfg->restart);
    }
    const char *name = cfg->restart->name;
    if (str_empty(name)) {
        set_field(&cfg->restart->name, xstrdup("no"));
        return 0;
    }
    static const char *const policies[] = {"no", "always", "on-failure", "unless-stopped"};
    for (size_t i = 0; i < ARRAY_SIZE(policies); i++)
        if (strcmp(policies[i], name) == 0)
            return 0;
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "invalid restart policy \"%s\": use no, always, on-failure[:N] or "
                    "unless-stopped",
                    name);
}

static uint64_t host_memory_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / (1024 * 1024) : 0;
}

int vm_config_check(daemon_ctx *d, Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    if (str_empty(cfg->image))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "an image is required");
    if (!str_empty(cfg->name) && !name_is_valid(cfg->name))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid VM name \"%s\": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* "
                        "(at most 128 characters)",
                        cfg->name);
    if (cfg->cpus == 0)
        cfg->cpus = (uint32_t)settings_get_int(d, "default_cpus");
    if (cfg->cpus > 256)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid CPU count %u: must be from 1 to 256", cfg->cpus);
    if (cfg->memory_mb == 0)
        cfg->memory_mb = (uint64_t)settings_get_int(d, "default_memory_mb");
    uint64_t host_mb = host_memory_mb();
    if (cfg->memory_mb < 64 || (host_mb && cfg->memory_mb > host_mb))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid memory size %" PRIu64 " MiB: must be from 64 MiB to the host's "
                        "%" PRIu64 " MiB",
                        cfg->memory_mb, host_mb);
    if (cfg->stop_timeout == 0)
        cfg->stop_timeout = (uint32_t)settings_get_int(d, "stop_timeout");
    int r = check_ports(d, cfg, err);
    if (r >= 0)
        r = netmgr_check_networks(d, cfg, err);
    if (r < 0)
        return r;
    return check_restart(cfg, err);
}

/* ---- rename ----------------------------------------------------------------- */

int vm_rename(daemon_ctx *d, const char *ref, const char *name, store_vm *out, hypr_error *err)
{
    if (!name_is_valid(name))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid VM name \"%s\": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* "
                        "(at most 128 characters)",
                        name);
    int r = store_vm_find(d->db, ref, out, err);
    if (r < 0)
        return r;
    if (strcmp(out->name, name) == 0)
        return 0;
    store_vm other = {0};
    if (store_vm_find(d->db, name, &other, NULL) == 0) {
        r = hypr_err(err, HYPR_ALREADY_EXISTS, EEXIST, "the name %s is already in use by VM %.12s",
                     name, other.id);
        store_vm_clear(&other);
        return r;
    }
    /* The name lives in the record and in the stored config. */
    Hypr__V1__VMConfig *cfg =
        out->config_len
            ? hypr__v1__vmconfig__unpack(NULL, out->config_len, (const uint8_t *)out->config)
            : NULL;
    if (cfg) {
        set_field(&cfg->name, xstrdup(name));
        free(out->config);
        out->config_len = hypr__v1__vmconfig__get_packed_size(cfg);
        out->config = xmalloc(out->config_len ? out->config_len : 1);
        hypr__v1__vmconfig__pack(cfg, (uint8_t *)out->config);
        hypr__v1__vmconfig__free_unpacked(cfg, NULL);
    }
    _cleanup_free_ char *old = out->name;
    out->name = xstrdup(name);
    r = store_vm_update(d->db, out, err);
    if (r < 0)
        return r;
    vm_runtime *rt = vm_runtime_find(d, out->id);
    if (rt) {
        free(rt->name);
        rt->name = xstrdup(name);
        netmgr_vm_renamed(d, out->id, name);
    }
    log_info("renamed VM %s to %s (%.12s)", old, name, out->id);
    char *attrs[] = {"name", out->name, "oldName", old, NULL};
    event_publish(d->events, "vm.renamed", out->id, NULL, attrs);
    return 0;
}

/* ---- create / delete ----------------------------------------------------- */

static void fill_links(store_vm *vm, const Hypr__V1__VMConfig *cfg)
{
    vm->n_ports = cfg->n_ports;
    vm->ports = xcalloc(cfg->n_ports, sizeof(store_port));
    for (size_t i = 0; i < cfg->n_ports; i++) {
        vm->ports[i].host_ip = xstrdup(cfg->ports[i]->host_ip);
        vm->ports[i].host_port = (int)cfg->ports[i]->host_port;
        vm->ports[i].guest_port = (int)cfg->ports[i]->guest_port;
        vm->ports[i].protocol = xstrdup(cfg->ports[i]->protocol);
    }
    vm->n_volumes = cfg->n_volumes;
    vm->volumes = xcalloc(cfg->n_volumes, sizeof(store_vm_volume));
    for (size_t i = 0; i < cfg->n_volumes; i++) {
        vm->volumes[i].source = xstrdup(cfg->volumes[i]->source);
        vm->volumes[i].target = xstrdup(cfg->volumes[i]->target);
        vm->volumes[i].read_only = cfg->volumes[i]->read_only;
    }
    for (size_t i = 0; i < cfg->n_networks; i++)
        vm->networks = strv_append(vm->networks, cfg->networks[i]);
}

int vm_create(daemon_ctx *d, const Hypr__V1__VMConfig *in, store_vm *out, hypr_error *err)
{
    /* Work on a copy: defaults are filled in before the config is stored. */
    size_t len = hypr__v1__vmconfig__get_packed_size(in);
    _cleanup_free_ uint8_t *buf = xmalloc(len);
    hypr__v1__vmconfig__pack(in, buf);
    Hypr__V1__VMConfig *cfg = hypr__v1__vmconfig__unpack(NULL, len, buf);
    if (!cfg)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "malformed VM config");
    int r = vm_config_check(d, cfg, err);
    store_image img = {0};
    if (r >= 0) {
        r = image_store_find(d->db, cfg->image, &img, err);
        if (r == -ENOENT)
            hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                     "image \"%s\" not found: pull it with 'hypr pull %s' or create it with "
                     "'hypr image import'",
                     cfg->image, cfg->image);
    }
    store_vm vm = {0};
    if (r >= 0)
        r = id_generate(vm.id);
    if (r >= 0) {
        if (str_empty(cfg->name)) {
            set_field(&cfg->name, name_generate());
            /* A generated name that is taken gets the ID's first characters. */
            store_vm other = {0};
            if (store_vm_find(d->db, cfg->name, &other, NULL) == 0) {
                set_field(&cfg->name, xasprintf("%s-%.6s", cfg->name, vm.id));
            }
            store_vm_clear(&other);
        }
        vm.name = xstrdup(cfg->name);
        vm.image = xstrdup(cfg->image);
        vm.image_id = xstrdup(img.id);
        vm.status = xstrdup("created");
        vm.created_at = time_now_ms() / 1000;
        vm.config_len = hypr__v1__vmconfig__get_packed_size(cfg);
        vm.config = xmalloc(vm.config_len + 1);
        hypr__v1__vmconfig__pack(cfg, (uint8_t *)vm.config);
        fill_links(&vm, cfg);
        r = store_vm_insert(d->db, &vm, err);
    }
    hypr__v1__vmconfig__free_unpacked(cfg, NULL);
    store_image_clear(&img);
    if (r < 0) {
        store_vm_clear(&vm);
        return r;
    }
    char *attrs[] = {"name", vm.name, "image", vm.image, NULL};
    event_publish(d->events, "vm.created", vm.id, NULL, attrs);
    log_info("created VM %s (%.12s) from %s", vm.name, vm.id, vm.image);
    *out = vm;
    return 0;
}

/* Removes everything a VM left on disk: logs, sockets, per-VM initrd. */
static void vm_remove_files(daemon_ctx *d, const char *id)
{
    _cleanup_free_ char *log = vm_log_path(d, id);
    _cleanup_free_ char *records = xasprintf("%s.stdio", log);
    unlink(log);
    unlink(records);
    /* Every per-VM file in the run dir is "<id><suffix>" (vmm_vm_path), whatever
     * the hypervisor: sockets and initrd left by a daemon that died go too. */
    DIR *dir = opendir(d->run_dir);
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        if (str_startswith(de->d_name, id)) {
            _cleanup_free_ char *path = path_join(d->run_dir, de->d_name);
            unlink(path);
        }
    }
    if (dir)
        closedir(dir);
}

int vm_delete(daemon_ctx *d, const char *ref, bool force, hypr_error *err)
{
    store_vm vm = {0};
    int r = store_vm_find(d->db, ref, &vm, err);
    if (r < 0)
        return r;
    vm_runtime *rt = vm_runtime_find(d, vm.id);
    if (rt) {
        if (!force) {
            r = hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY,
                         "VM %s is %s: stop it first, or remove it with force (hypr rm -f)",
                         vm.name, rt->status);
            store_vm_clear(&vm);
            return r;
        }
        /* The record goes once the hypervisor is gone (vm_start.c). */
        rt->remove_after = true;
        store_vm_clear(&vm);
        return 1;
    }
    r = store_vm_delete(d->db, vm.id, err);
    if (r == 0) {
        netmgr_vm_deleted(d, vm.id);
        vm_remove_files(d, vm.id);
        char *attrs[] = {"name", vm.name, NULL};
        event_publish(d->events, "vm.deleted", vm.id, NULL, attrs);
        log_info("deleted VM %s (%.12s)", vm.name, vm.id);
    }
    store_vm_clear(&vm);
    return r;
}

void vm_remove_record(daemon_ctx *d, const char *id, const char *name)
{
    netmgr_vm_deleted(d, id);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (store_vm_delete(d->db, id, &err) < 0 && err.errnum != ENOENT)
        log_warn("remove VM %s: %s", name, err.message);
    vm_remove_files(d, id);
    char *attrs[] = {"name", (char *)name, NULL};
    event_publish(d->events, "vm.deleted", id, NULL, attrs);
}

void vm_set_status(vm_runtime *vm, const char *status, const char *event)
{
    daemon_ctx *d = vm->d;
    free(vm->status);
    vm->status = xstrdup(status);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm rec = {0};
    if (store_vm_find(d->db, vm->id, &rec, &err) == 0) {
        free(rec.status);
        rec.status = xstrdup(status);
        int64_t now = time_now_ms() / 1000;
        if (strcmp(status, "running") == 0) {
            rec.started_at = now;
            rec.exit_code = 0;
            free(rec.error);
            rec.error = NULL;
        } else if (strcmp(status, "stopped") == 0 || strcmp(status, "failed") == 0) {
            rec.stopped_at = now;
            rec.exit_code = vm->exit_code;
            free(rec.error);
            rec.error = vm->failure ? xstrdup(vm->failure) : NULL;
        }
        rec.pid = vm->proc_running ? vm->proc_pid : 0;
        /* Like docker: a VM has an address while it is up. */
        free(rec.ip_address);
        rec.ip_address = vm->ip[0] ? xstrdup(vm->ip) : NULL;
        rec.restart_count = (int)vm->restarts;
        if (store_vm_update(d->db, &rec, &err) < 0)
            log_warn("update VM %s: %s", vm->name, err.message);
    }
    store_vm_clear(&rec);
    if (event) {
        char code[16];
        snprintf(code, sizeof(code), "%d", vm->exit_code);
        char *attrs[] = {"name",
                         vm->name,
                         "status",
                         (char *)status,
                         "exit_code",
                         code,
                         vm->failure ? "error" : NULL,
                         vm->failure,
                         NULL};
        event_publish(d->events, event, vm->id, vm->failure, attrs);
    }
}

void vm_notify_run_waiters(vm_runtime *vm, Hypr__V1__RunVMEvent__Phase phase, const char *message)
{
    store_vm rec = {0};
    bool have = store_vm_find(vm->d->db, vm->id, &rec, NULL) == 0;
    Hypr__V1__RunVMEvent ev = HYPR__V1__RUN_VMEVENT__INIT;
    ev.phase = phase;
    ev.message = (char *)(message ? message : "");
    ev.vm = have ? vm_to_message(vm->d, &rec) : NULL;
    bool final = phase == HYPR__V1__RUN_VMEVENT__PHASE__RUNNING ||
                 phase == HYPR__V1__RUN_VMEVENT__PHASE__FAILED;
    vm_waiter *w = vm->run_waiters;
    if (final)
        vm->run_waiters = NULL;
    while (w) {
        vm_waiter *next = w->next;
        rpc_call_send(w->call, &ev.base);
        if (final) {
            if (phase == HYPR__V1__RUN_VMEVENT__PHASE__FAILED)
                rpc_call_finish(w->call, HYPR_FAILED_PRECONDITION,
                                message ? message : "the VM failed to start");
            else
                rpc_call_finish(w->call, HYPR_OK, NULL);
            free(w);
        }
        w = next;
    }
    vm_message_free(ev.vm);
    store_vm_clear(&rec);
}
