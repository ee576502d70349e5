/* The daemon's settings: their defaults, validation and persistence. A batch
 * is validated whole before anything is stored, so a bad value changes nothing. */
#define LOG_MODULE "settings"
#include "daemon.h"
#include "metrics_daemon.h"
#include "rest.h"

#include <arpa/inet.h>
#include <string.h>

static int validate_int(const setting_def *def, const char *value, hypr_error *err)
{
    int64_t v;
    if (parse_int64(value, def->min, def->max, &v) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid value \"%s\" for setting %s: must be an integer from %" PRId64
                        " to %" PRId64,
                        value, def->key, def->min, def->max);
    return 0;
}

static int validate_choice(const setting_def *def, const char *value, hypr_error *err)
{
    for (const char *const *c = def->choices; *c; c++)
        if (strcmp(*c, value) == 0)
            return 0;
    _cleanup_buf_ hypr_buf list = {0};
    for (const char *const *c = def->choices; *c; c++)
        buf_printf(&list, "%s%s", list.len ? ", " : "", *c);
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "invalid value \"%s\" for setting %s: must be one of %s", value, def->key,
                    list.data);
}

static int validate_path(const setting_def *def, const char *value, hypr_error *err)
{
    if (value[0] != '\0' && value[0] != '/')
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid value \"%s\" for setting %s: must be empty or an absolute path",
                        value, def->key);
    return 0;
}

static bool valid_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

static int validate_ipv4(const setting_def *def, const char *value, hypr_error *err)
{
    if (!valid_ipv4(value))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid value \"%s\" for setting %s: must be an IPv4 address", value,
                        def->key);
    return 0;
}

/* host:port with a numeric IPv4 host (the daemon binds it). */
static int validate_listen_address(const setting_def *def, const char *value, hypr_error *err)
{
    const char *colon = strrchr(value, ':');
    int64_t port;
    if (colon) {
        _cleanup_free_ char *host = xstrndup(value, (size_t)(colon - value));
        if (valid_ipv4(host) && parse_int64(colon + 1, 1, 65535, &port) == 0)
            return 0;
    }
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "invalid value \"%s\" for setting %s: must be IPv4:PORT, e.g. 127.0.0.1:41000",
                    value, def->key);
}

static int validate_optional_listen_address(const setting_def *def, const char *value,
                                            hypr_error *err)
{
    return value[0] == '\0' ? 0 : validate_listen_address(def, value, err);
}

static bool valid_registry_host(const char *s, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return false;
    }
    return true;
}

static int validate_registry_list(const setting_def *def, const char *value, hypr_error *err)
{
    const char *p = value;
    if (*p == '\0')
        return 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (!valid_registry_host(p, len))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid value for setting %s: entry \"%.*s\" is not a host[:port]",
                            def->key, (int)(len > 80 ? 80 : len), p);
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

static const char *const hypervisors[] = {"auto", "qemu", "cloud-hypervisor", "firecracker", NULL};
static const char *const booleans[] = {"true", "false", NULL};
static const char *const forwarders[] = {"userspace", "nftables", NULL};
static const char *const levels[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const shutdown_policies[] = {"keep", "stop", NULL};
static const char *const transports[] = {"auto", "virtiofs", "9p", NULL};

/* Sorted by key: GetSettings returns them in this order. */
static const setting_def defs[] = {
    {"default_cpus", "1", "vCPUs of a VM that does not ask for a number", validate_int, 1, 256},
    {"default_host_ip", "127.0.0.1", "host address that published ports bind to by default",
     validate_ipv4},
    {"default_memory_mb", "512", "memory (MiB) of a VM that does not ask for an amount",
     validate_int, 64, 1048576},
    {"dns_port", "41003", "port of the .hypr DNS server on 127.0.0.1", validate_int, 1, 65535},
    {"grpc_tcp", "false", "also serve the API on grpc_tcp_address (applies at start-up)",
     validate_choice, 0, 0, booleans},
    {"grpc_tcp_address", "127.0.0.1:41000", "TCP address of the API when grpc_tcp is true",
     validate_listen_address},
    {"hypervisor", "auto", "VMM used for new VMs (auto = first one installed)", validate_choice, 0,
     0, hypervisors},
    {"insecure_registries", "", "comma-separated registries reached over plain HTTP",
     validate_registry_list},
    {"kernel", "", "guest kernel (uncompressed vmlinux); empty = discover", validate_path},
    {"log_level", "info", "daemon log level (HYPR_LOG overrides it)", validate_choice, 0, 0,
     levels},
    {"metrics_addr", "127.0.0.1:41002",
     "address of the Prometheus /metrics endpoint (OpenMetrics on request); empty = off",
     validate_optional_listen_address},
    {"port_forward", "userspace", "how published ports are forwarded", validate_choice, 0, 0,
     forwarders},
    {"registry_certs_dir", "/etc/hypr/certs.d",
     "TLS for registries, as Docker's certs.d: <dir>/<host[:port]>/ca.crt, client.cert, "
     "client.key",
     validate_path},
    {"rest_addr", "127.0.0.1:41001",
     "address of the REST gateway (HTTP/1.1 + JSON, /v1/openapi.json); empty = off",
     validate_optional_listen_address},
    {"shutdown_policy", "keep",
     "what hyprd's shutdown does to running VMs: keep (they run on and the next hyprd re-adopts "
     "them, like Docker's live-restore) or stop (each stopped with its stop timeout)",
     validate_choice, 0, 0, shutdown_policies},
    {"stop_timeout", "10", "seconds a stopping workload gets before it is killed", validate_int, 0,
     3600},
    {"vm_writable_layer_size", "10240",
     "MiB of each VM's writable layer (a sparse disk made at its first start; a full one gives "
     "the guest ENOSPC); applies to VMs started for the first time",
     validate_int, 64, 16777216},
    {"volume_transport", "auto",
     "how volumes and bind mounts reach VMs: virtiofs (one virtiofsd per directory), 9p (virtio-9p "
     "in the hypervisor), or auto (virtiofs when virtiofsd is installed)",
     validate_choice, 0, 0, transports},
};

const setting_def *settings_all(size_t *n)
{
    *n = ARRAY_SIZE(defs);
    return defs;
}

const setting_def *settings_find(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(defs); i++)
        if (strcmp(defs[i].key, key) == 0)
            return &defs[i];
    return NULL;
}

char *settings_get(daemon_ctx *d, const char *key)
{
    const setting_def *def = settings_find(key);
    char *value = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = store_setting_get(d->db, key, &value, &err);
    if (r == 0)
        return value;
    /* Unset means the default; a store that cannot answer is said, not hidden. */
    if (r != -ENOENT)
        log_error("setting %s: %s; using its default", key, err.message);
    return xstrdup(def ? def->default_value : "");
}

int64_t settings_get_int(daemon_ctx *d, const char *key)
{
    _cleanup_free_ char *v = settings_get(d, key);
    const setting_def *def = settings_find(key);
    int64_t n = 0;
    if (parse_int64(v, def ? def->min : INT64_MIN, def ? def->max : INT64_MAX, &n) == 0)
        return n;
    /* Only a database edited by hand gets here: stored values were validated. */
    log_error("setting %s: stored value \"%s\" is not valid; using its default", key, v);
    if (def)
        parse_int64(def->default_value, INT64_MIN, INT64_MAX, &n);
    return n;
}

bool settings_get_bool(daemon_ctx *d, const char *key)
{
    _cleanup_free_ char *v = settings_get(d, key);
    return strcmp(v, "true") == 0;
}

int settings_update(daemon_ctx *d, const store_kv *kv, size_t n, hypr_error *err)
{
    if (n == 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no settings given");
    for (size_t i = 0; i < n; i++) {
        const setting_def *def = settings_find(kv[i].key);
        if (!def)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "unknown setting \"%s\" (see 'GetSettings' for the known ones)",
                            kv[i].key);
        int r = def->validate(def, kv[i].value, err);
        if (r < 0)
            return r;
    }
    int r = store_settings_set(d->db, kv, n, err);
    if (r < 0)
        return hypr_err_prefix(err, "update settings");
    settings_apply(d);
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, "rest_addr") == 0)
            rest_reconfigure(d);
        else if (strcmp(kv[i].key, "metrics_addr") == 0)
            metrics_reconfigure(d);
    return 0;
}

void settings_apply(daemon_ctx *d)
{
    /* HYPR_LOG from the environment wins over the stored level. */
    if (!str_empty(getenv("HYPR_LOG")))
        return;
    _cleanup_free_ char *level = settings_get(d, "log_level");
    hypr_log_init(level);
}
