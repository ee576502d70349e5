/* VM records: config validation and defaults, create, rename and delete. The
 * running side is in vm_start.c. */
#define LOG_MODULE "vm"
#include "vm_internal.h"
#include "volstore.h"

#include "image/image.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static const char name_rules[] = "names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128 "
                                 "characters)";

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
        /* host port 0: a free one is picked when the VM is created */
        if (p->host_port > 65535 || p->guest_port < 1 || p->guest_port > 65535)
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

/* -P: a mapping (to a free host port) for each port the image exposes and the
 * flags did not publish. */
static void publish_exposed(daemon_ctx *d, Hypr__V1__VMConfig *cfg, const store_image *img)
{
    _cleanup_strv_ char **exposed = image_exposed_ports(img);
    for (size_t i = 0; i < cfg->n_expose; i++) /* --expose: as if the image had them */
        exposed = strv_append(exposed, cfg->expose[i]);
    for (char **e = exposed; e && *e; e++) {
        unsigned port;
        char proto[8] = "tcp";
        if (sscanf(*e, "%u/%7s", &port, proto) < 1 || port < 1 || port > 65535 ||
            (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0))
            continue;
        bool mapped = false;
        for (size_t i = 0; i < cfg->n_ports && !mapped; i++)
            mapped =
                cfg->ports[i]->guest_port == port && strcmp(cfg->ports[i]->protocol, proto) == 0;
        if (mapped)
            continue;
        Hypr__V1__PortMapping *m = xmalloc(sizeof(*m));
        hypr__v1__port_mapping__init(m);
        m->guest_port = port;
        m->protocol = xstrdup(proto);
        m->host_ip = settings_get(d, "default_host_ip");
        cfg->ports = xrealloc(cfg->ports, (cfg->n_ports + 1) * sizeof(*cfg->ports));
        cfg->ports[cfg->n_ports++] = m;
    }
}

/* A host port the kernel says is free on ip for the protocol (from its ephemeral
 * range, as Docker picks them). */
static int pick_host_port(const char *ip, const char *proto, uint32_t *out, hypr_error *err)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } a = {0};
    socklen_t len;
    if (inet_pton(AF_INET, ip, &a.in.sin_addr) == 1) {
        a.in.sin_family = AF_INET;
        len = sizeof(a.in);
    } else if (inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1) {
        a.in6.sin6_family = AF_INET6;
        len = sizeof(a.in6);
    } else {
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid host IP \"%s\"", ip);
    }
    int type = strcmp(proto, "udp") == 0 ? SOCK_DGRAM : SOCK_STREAM;
    _cleanup_close_ int fd = socket(a.sa.sa_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, &a.sa, len) < 0 || getsockname(fd, &a.sa, &len) < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, errno, "no free host port on %s for %s: %s",
                        ip, proto, strerror(errno));
    *out = ntohs(a.sa.sa_family == AF_INET ? a.in.sin_port : a.in6.sin6_port);
    return 0;
}

static int pick_free_ports(Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    for (size_t i = 0; i < cfg->n_ports; i++) {
        Hypr__V1__PortMapping *p = cfg->ports[i];
        int r = p->host_port ? 0 : pick_host_port(p->host_ip, p->protocol, &p->host_port, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool ip_is_valid(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* --dns addresses and --add-host NAME:IP entries (IPv6 after the first colon). */
static int check_dns_and_hosts(const Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    for (size_t i = 0; i < cfg->n_dns; i++)
        if (!ip_is_valid(cfg->dns[i]))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid DNS server \"%s\": not an IP address", cfg->dns[i]);
    for (size_t i = 0; i < cfg->n_extra_hosts; i++) {
        const char *h = cfg->extra_hosts[i], *colon = strchr(h, ':');
        bool name_ok = colon && colon > h && strcspn(h, " \t\n") >= (size_t)(colon - h);
        if (!name_ok || (strcmp(colon + 1, "host-gateway") != 0 && !ip_is_valid(colon + 1)))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid argument \"%s\" for --add-host: use NAME:IP or "
                            "NAME:host-gateway",
                            h);
    }
    return 0;
}

/* --expose PORT[/PROTO] (Docker also takes a range, which hypr does not yet). */
static int check_expose(const Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    for (size_t i = 0; i < cfg->n_expose; i++) {
        unsigned port;
        char proto[8] = "tcp", extra;
        int n = sscanf(cfg->expose[i], "%u/%7[a-z]%c", &port, proto, &extra);
        if (n < 1 || n > 2 || port < 1 || port > 65535 ||
            (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0) ||
            (n == 1 && strspn(cfg->expose[i], "0123456789") != strlen(cfg->expose[i])))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid argument \"%s\" for --expose: use PORT or PORT/tcp|udp",
                            cfg->expose[i]);
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
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid VM name \"%s\": %s", cfg->name,
                        name_rules);
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
    if (!str_empty(cfg->stop_signal)) {
        int sig = signal_parse(cfg->stop_signal);
        if (sig < 0)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid stop signal \"%s\": use a name (SIGTERM, USR1) or a number",
                            cfg->stop_signal);
        if (signal_name(sig)) /* as Docker shows it */
            set_field(&cfg->stop_signal, xstrdup(signal_name(sig)));
    }
    int r = check_ports(d, cfg, err);
    if (r < 0)
        return r;
    r = netmgr_check_networks(d, cfg, err);
    if (r < 0)
        return r;
    r = vm_gpu_check(d, cfg, err);
    if (r < 0)
        return r;
    r = check_dns_and_hosts(cfg, err);
    if (r < 0 || (r = check_expose(cfg, err)) < 0)
        return r;
    return check_restart(cfg, err);
}

/* ---- rename ----------------------------------------------------------------- */

/* A name that is free: INVALID_ARGUMENT for a bad one, ALREADY_EXISTS when taken. */
static int check_new_name(daemon_ctx *d, const char *name, hypr_error *err)
{
    if (!name_is_valid(name))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid VM name \"%s\": %s", name,
                        name_rules);
    _cleanup_store_vm_ store_vm other = {0};
    int r = store_vm_find(d->db, name, &other, err);
    if (r == 0)
        return hypr_err(err, HYPR_ALREADY_EXISTS, EEXIST,
                        "the name %s is already in use by VM %.12s", name, other.id);
    if (r != -ENOENT && r != -EINVAL) /* EINVAL: an ambiguous ID prefix, not a name */
        return r;
    hypr_error_clear(err);
    return 0;
}

/* Packs cfg as the record's stored config. */
static void config_store(store_vm *rec, const Hypr__V1__VMConfig *cfg)
{
    free(rec->config);
    rec->config_len = hypr__v1__vmconfig__get_packed_size(cfg);
    rec->config = xmalloc(rec->config_len ? rec->config_len : 1);
    hypr__v1__vmconfig__pack(cfg, (uint8_t *)rec->config);
}

/* The record's stored config with its name replaced. */
static int config_rename(store_vm *rec, const char *name, hypr_error *err)
{
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    int r = vm_config_decode(rec, &cfg, err);
    if (r < 0)
        return r;
    set_field(&cfg->name, xstrdup(name));
    config_store(rec, cfg);
    return 0;
}

int vm_update(daemon_ctx *d, const char *ref, const Hypr__V1__RestartPolicy *restart, uint32_t cpus,
              uint64_t memory_mb, store_vm *out, hypr_error *err)
{
    int r = store_vm_find(d->db, ref, out, err);
    if (r < 0)
        return r;
    if (vm_runtime_find(d, out->id))
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY,
                        "cannot update VM %s while it runs (its restart policy lives in its "
                        "agent, and hypr has no CPU or memory hotplug): stop it first",
                        out->name);
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    r = vm_config_decode(out, &cfg, err);
    if (r < 0)
        return r;
    if (restart && !str_empty(restart->name)) {
        if (!cfg->restart) {
            cfg->restart = xmalloc(sizeof(*cfg->restart));
            hypr__v1__restart_policy__init(cfg->restart);
        }
        set_field(&cfg->restart->name, xstrdup(restart->name));
        cfg->restart->max_retries = restart->max_retries;
    }
    if (cpus)
        cfg->cpus = cpus;
    if (memory_mb)
        cfg->memory_mb = memory_mb;
    r = vm_config_check(d, cfg, err);
    if (r < 0)
        return r;
    config_store(out, cfg);
    r = store_vm_update(d->db, out, err);
    if (r >= 0)
        log_info("updated VM %s (%.12s)", out->name, out->id);
    return r;
}

int vm_rename(daemon_ctx *d, const char *ref, const char *name, store_vm *out, hypr_error *err)
{
    if (!name_is_valid(name))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid VM name \"%s\": %s", name,
                        name_rules);
    int r = store_vm_find(d->db, ref, out, err);
    if (r < 0)
        return r;
    if (strcmp(out->name, name) == 0)
        return 0;
    r = check_new_name(d, name, err);
    if (r < 0)
        return r;
    r = config_rename(out, name, err);
    if (r < 0)
        return r;
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
    vm_notice n = {.kind = VM_NOTICE_RENAMED, .id = out->id, .name = out->name, .old_name = old};
    vm_notify(d, &n);
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

/* A generated name ("eager-fox"); one that is taken gets the ID's first characters. */
static char *generated_name(daemon_ctx *d, const char *id)
{
    char *name = name_generate();
    _cleanup_store_vm_ store_vm other = {0};
    if (store_vm_find(d->db, name, &other, NULL) == 0) {
        char *longer = xasprintf("%s-%.6s", name, id);
        free(name);
        name = longer;
    }
    return name;
}

int vm_create(daemon_ctx *d, const Hypr__V1__VMConfig *in, store_vm *out, hypr_error *err)
{
    /* Work on a copy: defaults are filled in before the config is stored. */
    size_t len = hypr__v1__vmconfig__get_packed_size(in);
    _cleanup_free_ uint8_t *buf = xmalloc(len ? len : 1);
    hypr__v1__vmconfig__pack(in, buf);
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = hypr__v1__vmconfig__unpack(NULL, len, buf);
    if (!cfg)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "malformed VM config");
    int r = vm_config_check(d, cfg, err);
    if (r < 0)
        return r;
    _cleanup_store_image_ store_image img = {0};
    r = image_store_find(d->db, cfg->image, &img, err);
    if (r == -ENOENT)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT,
                        "image \"%s\" not found: pull it with 'hypr pull %s' or create it with "
                        "'hypr image import'",
                        cfg->image, cfg->image);
    if (r < 0)
        return r;
    if (cfg->publish_all)
        publish_exposed(d, cfg, &img);
    r = pick_free_ports(cfg, err);
    if (r < 0)
        return r;
    char *image_sig = str_empty(cfg->stop_signal) ? image_stop_signal(&img) : NULL;
    if (image_sig) /* fixed at creation, as Docker's Config.StopSignal */
        set_field(&cfg->stop_signal, image_sig);
    _cleanup_store_vm_ store_vm vm = {0};
    r = id_generate(vm.id);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "generate a VM ID: %s", strerror(-r));
    if (str_empty(cfg->name))
        set_field(&cfg->name, generated_name(d, vm.id));
    vm.name = xstrdup(cfg->name);
    vm.image = xstrdup(cfg->image);
    vm.image_id = xstrdup(img.id);
    vm.status = xstrdup(vm_phase_status(VM_PHASE_CREATED));
    vm.created_at = time_now_ms() / 1000;
    r = volstore_prepare_mounts(d, cfg, &img, err);
    if (r < 0)
        return r;
    vm.config_len = hypr__v1__vmconfig__get_packed_size(cfg);
    vm.config = xmalloc(vm.config_len + 1);
    hypr__v1__vmconfig__pack(cfg, (uint8_t *)vm.config);
    fill_links(&vm, cfg);
    r = store_vm_insert(d->db, &vm, err);
    if (r < 0) {
        volstore_vm_removed(d, cfg, true); /* the anonymous volumes made for it */
        return r;
    }
    log_info("created VM %s (%.12s) from %s", vm.name, vm.id, vm.image);
    vm_notice n = {.kind = VM_NOTICE_PHASE,
                   .id = vm.id,
                   .name = vm.name,
                   .phase = VM_PHASE_CREATED,
                   .image = vm.image};
    vm_notify(d, &n);
    *out = vm;
    vm = (store_vm){0};
    return 0;
}

int vm_delete(daemon_ctx *d, const char *ref, bool force, bool remove_volumes, hypr_error *err)
{
    _cleanup_store_vm_ store_vm vm = {0};
    int r = store_vm_find(d->db, ref, &vm, err);
    if (r < 0)
        return r;
    vm_runtime *rt = vm_runtime_find(d, vm.id);
    if (!rt)
        return vm_remove_record_err(d, vm.id, vm.name, remove_volumes, err);
    if (!force)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY,
                        "VM %s is %s: stop it first, or remove it with force (hypr rm -f)", vm.name,
                        vm_phase_status(rt->phase));
    /* Killed now; the record goes once the hypervisor is gone (REMOVED follows EXIT). */
    rt->remove_after = true;
    rt->remove_volumes = remove_volumes;
    r = vm_stop(d, vm.id, 0, 0, err);
    return r < 0 ? r : 1;
}
