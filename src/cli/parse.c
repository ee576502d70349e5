/* Value parsers for CLI flags: ports, env, labels, volumes, sizes, restart
 * policies, hosts. Each error names the bad part of the value and what would
 * be accepted, because the caller only prefixes it with the flag. */
#include "cli/cli.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void cli_port_free(cli_port *p)
{
    free(p->host_ip);
    p->host_ip = NULL;
}

static int parse_port_number(const char *s, const char *what, uint32_t *out, hypr_error *err)
{
    int64_t v;
    if (strchr(s, '-'))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "port ranges are not supported (%s port \"%s\"); publish each port "
                        "with its own -p",
                        what, s);
    int r = parse_int64(s, 1, 65535, &v);
    if (r == -ERANGE)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, ERANGE,
                        "invalid %s port %s: must be between 1 and 65535", what, s);
    if (r < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid %s port \"%s\": not a number",
                        what, s);
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_port(const char *spec, cli_port *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_free_ char *s = xstrdup(spec);
    char *proto = strrchr(s, '/');
    snprintf(out->protocol, sizeof(out->protocol), "tcp");
    if (proto) {
        *proto++ = '\0';
        if (strcmp(proto, "tcp") && strcmp(proto, "udp"))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "unsupported protocol \"%s\": use tcp or udp", proto);
        snprintf(out->protocol, sizeof(out->protocol), "%s", proto);
    }
    /* Split off HOST_IP (which may itself contain colons when bracketed IPv6). */
    char *rest = s;
    _cleanup_free_ char *ip = NULL;
    if (s[0] == '[') {
        char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid host IP in \"%s\": expected [IPv6]:HOST_PORT:GUEST_PORT",
                            spec);
        ip = xstrndup(s + 1, (size_t)(close - s - 1));
        rest = close + 2;
    } else {
        int colons = 0;
        for (char *p = s; *p; p++)
            colons += *p == ':';
        if (colons == 0) { /* GUEST_PORT alone: hyprd picks a free host port */
            int r = parse_port_number(s, "guest", &out->guest_port, err);
            return r < 0 ? r : 0;
        }
        if (colons > 2)
            return hypr_err(
                err, HYPR_INVALID_ARGUMENT, EINVAL,
                "invalid port spec: expected [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]");
        if (colons == 2) {
            char *c = strchr(s, ':');
            ip = xstrndup(s, (size_t)(c - s));
            rest = c + 1;
        }
    }
    if (ip && *ip) {
        unsigned char addr[16];
        if (inet_pton(AF_INET, ip, addr) != 1 && inet_pton(AF_INET6, ip, addr) != 1)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid host IP \"%s\": not an IPv4 or IPv6 address", ip);
        out->host_ip = TAKE_PTR(ip);
    }
    char *c = strchr(rest, ':');
    if (!c)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid port spec: expected [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]");
    *c = '\0';
    const char *host = rest, *guest = c + 1;
    int r;
    if (!*host && out->host_ip)
        r = 0; /* HOST_IP::GUEST_PORT: a free host port on that address */
    else if (!*host)
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                     "invalid port spec \"%s\": the host port is empty; use GUEST_PORT, "
                     "HOST_PORT:GUEST_PORT or HOST_IP::GUEST_PORT",
                     spec);
    else
        r = parse_port_number(host, "host", &out->host_port, err);
    if (r >= 0)
        r = parse_port_number(guest, "guest", &out->guest_port, err);
    if (r < 0)
        cli_port_free(out);
    return r;
}

static int check_key(const char *what, const char *spec, const char *key, hypr_error *err)
{
    if (!*key)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid %s \"%s\": the name before '=' is empty", what, spec);
    for (const char *p = key; *p; p++)
        if (isspace((unsigned char)*p))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid %s \"%s\": name '%s' contains whitespace", what, spec, key);
    return 0;
}

int cli_parse_env(const char *spec, char **key, char **value, hypr_error *err)
{
    const char *eq = strchr(spec, '=');
    _cleanup_free_ char *k = eq ? xstrndup(spec, (size_t)(eq - spec)) : xstrdup(spec);
    int r = check_key("environment variable", spec, k, err);
    if (r < 0)
        return r;
    const char *v = eq ? eq + 1 : getenv(k);
    if (!v)
        return 0;
    *value = xstrdup(v);
    *key = TAKE_PTR(k);
    return 1;
}

int cli_parse_label(const char *spec, char **key, char **value, hypr_error *err)
{
    const char *eq = strchr(spec, '=');
    _cleanup_free_ char *k = eq ? xstrndup(spec, (size_t)(eq - spec)) : xstrdup(spec);
    int r = check_key("label", spec, k, err);
    if (r < 0)
        return r;
    *value = xstrdup(eq ? eq + 1 : "");
    *key = TAKE_PTR(k);
    return 0;
}

int cli_read_env_file(const char *path, char ***out, hypr_error *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    int r = read_file(path, 16u * 1024 * 1024, &data, &len);
    if (r < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, -r, "open %s: %s", path, strerror(-r));
    _cleanup_strv_ char **v = NULL;
    int lineno = 0;
    for (char *line = data, *next; line && *line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[n - 1] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '#')
            continue;
        const char *eq = strchr(line, '=');
        _cleanup_free_ char *k = eq ? xstrndup(line, (size_t)(eq - line)) : xstrdup(line);
        if (check_key("environment variable", line, k, err) < 0)
            return hypr_err_prefix(err, "%s line %d", path, lineno);
        v = strv_append(v, line);
    }
    *out = TAKE_PTR(v);
    if (!*out)
        *out = xcalloc(1, sizeof(char *));
    return 0;
}

int cli_parse_mount(cli_mount_flag flag, const char *spec, volume_mount_spec *out, hypr_error *err)
{
    if (flag == CLI_MOUNT_MOUNT)
        return volume_parse_mount_flag(spec, out, err);
    if (flag == CLI_MOUNT_TMPFS)
        return volume_parse_tmpfs_flag(spec, out, err);
    /* "./dir:/x" and "../dir:/x" name host paths relative to where hypr runs. */
    if (str_startswith(spec, "./") || str_startswith(spec, "../") ||
        (spec[0] == '.' && (spec[1] == ':' || (spec[1] == '.' && spec[2] == ':')))) {
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        if (!cwd)
            return hypr_err(err, HYPR_INTERNAL, errno, "getcwd: %s", strerror(errno));
        _cleanup_free_ char *abs = xasprintf("%s/%s", cwd, spec);
        /* The parser normalises the target; the source's dots are resolved here. */
        const char *colon = strchr(abs + strlen(cwd), ':');
        _cleanup_free_ char *src = xstrndup(abs, (size_t)(colon - abs));
        _cleanup_free_ char *real = realpath(src, NULL);
        _cleanup_free_ char *fixed = NULL;
        if (!real) /* -v creates a missing source: resolve its parent only */
            real = xstrdup(src);
        fixed = xasprintf("%s%s", real, colon);
        return volume_parse_volume_flag(fixed, out, err);
    }
    return volume_parse_volume_flag(spec, out, err);
}

int cli_parse_memory(const char *s, uint64_t *out_mib, hypr_error *err)
{
    int64_t mib;
    if (parse_size_mib(s, &mib) < 0 || mib < 1)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid memory size: use a whole number of MiB with an optional unit, "
                        "e.g. 512m, 2g or 512 (MiB)");
    *out_mib = (uint64_t)mib;
    return 0;
}

int cli_parse_cpus(const char *s, uint32_t *out, hypr_error *err)
{
    int64_t v;
    int r = parse_int64(s, 1, 256, &v);
    if (r == -ERANGE)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, ERANGE, "CPUs must be between 1 and 256");
    if (r < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "expected a whole number of vCPUs (a VM gets whole virtual CPUs)");
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_restart(const char *s, cli_restart *out, hypr_error *err)
{
    static const char *const names[] = {"no", "always", "unless-stopped", "on-failure"};
    memset(out, 0, sizeof(*out));
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strlen(names[i]) != len || strncmp(s, names[i], len))
            continue;
        snprintf(out->name, sizeof(out->name), "%s", names[i]);
        if (!colon)
            return 0;
        if (strcmp(names[i], "on-failure"))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "a maximum retry count can only be used with on-failure");
        int64_t v;
        if (parse_int64(colon + 1, 0, UINT32_MAX, &v) < 0)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid retry count \"%s\": expected a number >= 0", colon + 1);
        out->max_retries = (uint32_t)v;
        return 0;
    }
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "unknown restart policy: use no, always, unless-stopped or on-failure[:N]");
}

int cli_parse_tail(const char *s, int32_t *out, hypr_error *err)
{
    if (!strcmp(s, "all")) {
        *out = -1;
        return 0;
    }
    int64_t v;
    if (parse_int64(s, 0, INT32_MAX, &v) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "expected a number of lines >= 0 or \"all\"");
    *out = (int32_t)v;
    return 0;
}

static int check_tcp(const char *hostport, const char *orig, hypr_error *err)
{
    const char *c = strrchr(hostport, ':');
    int64_t port;
    if (!c || c == hostport || parse_int64(c + 1, 1, 65535, &port) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid host \"%s\": expected tcp://HOST:PORT", orig);
    return 0;
}

int cli_parse_host(const char *host, char **target, char **display, hypr_error *err)
{
    if (str_empty(host))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "empty host");
    const char *path = NULL;
    if (str_startswith(host, "unix://"))
        path = host + 7;
    else if (str_startswith(host, "unix:"))
        path = host + 5;
    else if (str_startswith(host, "tcp://")) {
        int r = check_tcp(host + 6, host, err);
        if (r < 0)
            return r;
        *target = xstrdup(host);
        *display = xstrdup(host);
        return 0;
    } else if (strstr(host, "://")) {
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "unsupported host \"%s\": use a socket path, unix:///path or "
                        "tcp://HOST:PORT",
                        host);
    } else if (host[0] != '/' && host[0] != '.' && strchr(host, ':') && !strchr(host, '/')) {
        int r = check_tcp(host, host, err);
        if (r < 0)
            return r;
        *target = xasprintf("tcp://%s", host);
        *display = xstrdup(*target);
        return 0;
    } else {
        path = host;
    }
    if (!*path)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid host \"%s\": empty path",
                        host);
    *target = xstrdup(path);
    *display = xasprintf("unix://%s", path);
    return 0;
}

int cli_parse_format(const char *s, hypr_error *err)
{
    if (str_empty(s) || !strcmp(s, "table"))
        return CLI_FORMAT_TABLE;
    if (!strcmp(s, "json"))
        return CLI_FORMAT_JSON;
    if (!cli_format_is_template(s))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "unsupported format: use table, json or a Go template such as "
                        "'{{.Name}}'");
    /* Parsed now so that a bad template is refused before any call to hyprd. */
    _cleanup_template_ cli_template *t = NULL;
    int r = cli_template_parse_format(s, &t, err);
    return r < 0 ? r : CLI_FORMAT_TEMPLATE;
}

void cli_human_duration(int64_t seconds, char *out, size_t outlen)
{
    int64_t minutes = seconds / 60;
    int64_t hours = (seconds + 1800) / 3600; /* Docker rounds hours to the nearest */
    if (seconds < 1)
        snprintf(out, outlen, "Less than a second");
    else if (seconds == 1)
        snprintf(out, outlen, "1 second");
    else if (seconds < 60)
        snprintf(out, outlen, "%" PRId64 " seconds", seconds);
    else if (minutes == 1)
        snprintf(out, outlen, "About a minute");
    else if (minutes < 60)
        snprintf(out, outlen, "%" PRId64 " minutes", minutes);
    else if (hours == 1)
        snprintf(out, outlen, "About an hour");
    else if (hours < 48)
        snprintf(out, outlen, "%" PRId64 " hours", hours);
    else if (hours < 24 * 7 * 2)
        snprintf(out, outlen, "%" PRId64 " days", hours / 24);
    else if (hours < 24 * 30 * 2)
        snprintf(out, outlen, "%" PRId64 " weeks", hours / 24 / 7);
    else if (hours < 24 * 365 * 2)
        snprintf(out, outlen, "%" PRId64 " months", hours / 24 / 30);
    else
        snprintf(out, outlen, "%" PRId64 " years", seconds / 3600 / 24 / 365);
}

void cli_rfc3339(int64_t unix_seconds, char *out, size_t outlen)
{
    struct tm tm;
    time_t t = (time_t)unix_seconds;
    if (unix_seconds <= 0 || !gmtime_r(&t, &tm)) {
        snprintf(out, outlen, "0001-01-01T00:00:00Z");
        return;
    }
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *cli_short_image_name(const char *name)
{
    if (str_startswith(name, "docker.io/library/"))
        return name + strlen("docker.io/library/");
    if (str_startswith(name, "docker.io/"))
        return name + strlen("docker.io/");
    return name;
}

void cli_split_reference(const char *ref, char **name, char **tag, bool default_latest)
{
    const char *at = strchr(ref, '@');
    if (at) {
        *name = xstrndup(ref, (size_t)(at - ref));
        *tag = xstrdup(at + 1);
        return;
    }
    const char *slash = strrchr(ref, '/');
    const char *colon = strrchr(slash ? slash : ref, ':');
    if (colon) {
        *name = xstrndup(ref, (size_t)(colon - ref));
        *tag = xstrdup(colon + 1);
    } else {
        *name = xstrdup(ref);
        *tag = xstrdup(default_latest ? "latest" : "");
    }
}

char *cli_project_name(const char *dir)
{
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    hypr_buf b = {0};
    for (const char *p = base; *p; p++) {
        char c = (char)tolower((unsigned char)*p);
        if (isalnum((unsigned char)c) || ((c == '_' || c == '-') && b.len > 0))
            buf_append(&b, &c, 1);
    }
    if (!b.len)
        buf_puts(&b, "default");
    return buf_steal(&b);
}

int cli_parse_detach_keys(const char *spec, cli_detach_keys *out, hypr_error *err)
{
    static const char ctrl_punct[] = "@[\\]^_"; /* ctrl-@ is 0, ctrl-_ is 31 */
    *out = (cli_detach_keys){0};
    if (str_empty(spec)) {
        out->key[out->n++] = 0x10; /* Docker's default: Ctrl-P Ctrl-Q */
        out->key[out->n++] = 0x11;
        return 0;
    }
    _cleanup_free_ char *copy = xstrdup(spec);
    char *rest = copy;
    for (char *k; (k = strsep(&rest, ","));) {
        int byte = -1;
        if (strlen(k) == 1)
            byte = (unsigned char)k[0];
        else if (strncasecmp(k, "ctrl-", 5) == 0 && strlen(k) == 6) {
            char c = (char)tolower((unsigned char)k[5]);
            const char *punct = strchr(ctrl_punct, c);
            if (c >= 'a' && c <= 'z')
                byte = c - 'a' + 1;
            else if (punct && c)
                byte = punct == ctrl_punct ? 0 : 26 + (int)(punct - ctrl_punct);
        }
        if (byte < 0 || out->n == sizeof(out->key))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid detach keys \"%s\": use a comma-separated list of single "
                            "characters and ctrl-<a-z, @, [, \\, ], ^ or _> (at most %zu)",
                            spec, sizeof(out->key));
        out->key[out->n++] = (uint8_t)byte;
    }
    return 0;
}

bool cli_detach_match(const cli_detach_keys *k, size_t *matched, uint8_t *buf, size_t *len)
{
    size_t n = *len, out = 0;
    bool detach = false;
    _cleanup_free_ uint8_t *copy = xmalloc(n + k->n);
    for (size_t i = 0; i < n && !detach; i++) {
        if (buf[i] != k->key[*matched]) {
            memcpy(copy + out, k->key, *matched); /* they were not the keys after all */
            out += *matched;
            *matched = 0;
        }
        if (buf[i] == k->key[*matched])
            detach = ++*matched == k->n;
        else
            copy[out++] = buf[i];
    }
    memcpy(buf, copy, out);
    *len = out;
    return detach;
}
