/* The --mount (Docker's CSV key=value record) and --tmpfs parsers, and the sizes both
 * take. */
#define LOG_MODULE "volume"
#include "volume/volume.h"

#include <ctype.h>
#include <string.h>

/* ---- sizes ---------------------------------------------------------------------------- */

int volume_parse_size(const char *s, uint64_t *out, hypr_error *err)
{
    *out = 0;
    const char *p = s ? s : "";
    unsigned __int128 whole = 0, frac = 0, frac_div = 1;
    size_t digits = 0;
    for (; isdigit((unsigned char)*p); p++, digits++) {
        whole = whole * 10 + (unsigned)(*p - '0');
        if (whole > INT64_MAX)
            goto range;
    }
    if (digits && *p == '.') {
        p++;
        size_t fd = 0;
        for (; isdigit((unsigned char)*p); p++, fd++) {
            /* Beyond 18 digits a fraction cannot change a byte count below 2^63. */
            if (fd < 18) {
                frac = frac * 10 + (unsigned)(*p - '0');
                frac_div *= 10;
            }
        }
        if (!fd)
            goto invalid;
    }
    if (!digits)
        goto invalid;
    if (*p == ' ')
        p++;
    unsigned __int128 mult = 1;
    const char *units = "kmgtp";
    const char *u = *p ? strchr(units, tolower((unsigned char)*p)) : NULL;
    if (u) {
        for (ptrdiff_t i = 0; i <= u - units; i++)
            mult *= 1024;
        p++;
    }
    if (*p == 'i' || *p == 'I')
        p++;
    if (*p == 'b' || *p == 'B')
        p++;
    if (*p)
        goto invalid;
    unsigned __int128 v = whole * mult + frac * mult / frac_div;
    if (v > INT64_MAX)
        goto range;
    *out = (uint64_t)v;
    return 0;
invalid:
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "invalid size \"%s\": use a number of bytes with an optional unit, e.g. "
                    "64m, 1.5g or 65536k",
                    s ? s : "");
range:
    return hypr_err(err, HYPR_INVALID_ARGUMENT, ERANGE, "invalid size \"%s\": too large", s);
}

static int parse_mode(const char *what, const char *s, uint32_t *out, hypr_error *err)
{
    uint32_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '7'; p++) {
        v = v * 8 + (uint32_t)(*p - '0');
        if (v > 07777)
            break;
    }
    if (p == s || *p || v > 07777)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid %s \"%s\": use octal permission bits, at most 7777 (e.g. 1777)",
                        what, s);
    *out = v;
    return 0;
}

/* ---- --mount -------------------------------------------------------------------------- */

/* Splits one CSV record as Go's encoding/csv (Comma ',', no lazy quotes). */
static int csv_split(const char *spec, char ***out, hypr_error *err)
{
    *out = NULL;
    if (strpbrk(spec, "\r\n"))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid mount specification \"%s\": line breaks are not allowed", spec);
    _cleanup_strv_ char **fields = NULL;
    _cleanup_buf_ hypr_buf b = {0};
    const char *p = spec;
    for (;;) {
        b.len = 0;
        buf_reserve(&b, 1);
        b.data[0] = '\0';
        if (*p == '"') {
            for (p++;; p++) {
                if (!*p)
                    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                    "invalid mount specification \"%s\": unterminated quote", spec);
                if (*p == '"') {
                    if (p[1] != '"')
                        break;
                    p++;
                }
                buf_append(&b, p, 1);
            }
            p++;
            if (*p && *p != ',')
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "invalid mount specification \"%s\": text after a closing quote "
                                "(write \"\" for a quote inside a quoted field)",
                                spec);
        } else {
            size_t n = strcspn(p, ",\"");
            if (p[n] == '"')
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "invalid mount specification \"%s\": a quote inside an unquoted "
                                "field (quote the whole field: \"key=value\")",
                                spec);
            buf_append(&b, p, n);
            p += n;
        }
        fields = strv_append(fields, b.data);
        if (!*p)
            break;
        p++; /* ',' */
    }
    *out = TAKE_PTR(fields);
    return 0;
}

/* Go's strconv.ParseBool. */
static int parse_bool(const char *key, const char *s, bool *out, hypr_error *err)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (!strcmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "invalid value \"%s\" for %s: use true or false (or 1 or 0)", s, key);
}

/* What --mount was given, before the type decides what applies. */
typedef struct mount_fields {
    const char *type;
    const char *source;
    const char *target;
    const char *nocopy_key; /* the key as given, for messages */
    const char *size_key;
    const char *mode_key;
    bool read_only, nocopy;
    uint64_t size;
    uint32_t mode;
} mount_fields;

static const char *const unsupported_keys[] = {
    "volume-driver",  "volume-label",      "volume-opt",      "volume-subpath",
    "bind-recursive", "bind-nonrecursive", "bind-create-src", NULL};

static int mount_field(const char *spec, const char *field, mount_fields *f, hypr_error *err)
{
    const char *eq = strchr(field, '=');
    _cleanup_free_ char *key = xstrndup(field, eq ? (size_t)(eq - field) : strlen(field));
    for (char *c = key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *val = eq ? eq + 1 : NULL;
    if (!strcmp(key, "readonly") || !strcmp(key, "ro")) {
        f->read_only = true;
        if (val && parse_bool(key, val, &f->read_only, err) < 0)
            return hypr_err_prefix(err, "mount specification \"%s\"", spec);
        return 0;
    }
    if (!strcmp(key, "volume-nocopy")) {
        f->nocopy = true;
        f->nocopy_key = "volume-nocopy";
        if (val && parse_bool(key, val, &f->nocopy, err) < 0)
            return hypr_err_prefix(err, "mount specification \"%s\"", spec);
        return 0;
    }
    for (size_t i = 0; unsupported_keys[i]; i++)
        if (!strcmp(key, unsupported_keys[i]))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "mount specification \"%s\": \"%s\" is not supported by hypr", spec,
                            key);
    if (!strcmp(key, "bind-propagation"))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "mount specification \"%s\": bind-propagation is not supported: mounts "
                        "do not propagate between a VM and the host",
                        spec);
    static const char *const known[] = {"type",        "source", "src",        "target",
                                        "destination", "dst",    "tmpfs-size", "tmpfs-mode",
                                        "consistency", NULL};
    bool is_known = false;
    for (size_t i = 0; known[i]; i++)
        is_known = is_known || !strcmp(key, known[i]);
    if (!is_known)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "mount specification \"%s\": unknown key \"%s\"", spec, key);
    if (!val)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "mount specification \"%s\": field \"%s\" must be a key=value pair", spec,
                        field);
    if (!strcmp(key, "type"))
        f->type = val;
    else if (!strcmp(key, "source") || !strcmp(key, "src"))
        f->source = val;
    else if (!strcmp(key, "target") || !strcmp(key, "destination") || !strcmp(key, "dst"))
        f->target = val;
    else if (!strcmp(key, "tmpfs-size")) {
        f->size_key = "tmpfs-size";
        int r = volume_parse_size(val, &f->size, err);
        if (r < 0)
            return hypr_err_prefix(err, "mount specification \"%s\"", spec);
    } else if (!strcmp(key, "tmpfs-mode")) {
        f->mode_key = "tmpfs-mode";
        if (parse_mode("tmpfs-mode", val, &f->mode, err) < 0)
            return hypr_err_prefix(err, "mount specification \"%s\"", spec);
    }
    /* consistency: accepted and ignored, as Docker on Linux. */
    return 0;
}

int volume_parse_mount_flag(const char *spec, volume_mount_spec *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (str_empty(spec))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "empty mount specification: expected type=...,source=...,target=...");
    _cleanup_strv_ char **fields = NULL;
    int r = csv_split(spec, &fields, err);
    if (r < 0)
        return r;
    mount_fields f = {0};
    for (size_t i = 0; fields[i]; i++)
        if ((r = mount_field(spec, fields[i], &f, err)) < 0)
            return r;
    _cleanup_mount_spec_ volume_mount_spec m = {0};
    _cleanup_free_ char *type = xstrdup(f.type ? f.type : "volume");
    for (char *c = type; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *misplaced = NULL;
    if (!strcmp(type, "volume")) {
        m.type = VOLUME_MOUNT_VOLUME;
        misplaced = f.size_key ? f.size_key : f.mode_key;
    } else if (!strcmp(type, "bind")) {
        m.type = VOLUME_MOUNT_BIND;
        misplaced = f.nocopy_key ? f.nocopy_key : f.size_key ? f.size_key : f.mode_key;
    } else if (!strcmp(type, "tmpfs")) {
        m.type = VOLUME_MOUNT_TMPFS;
        misplaced = f.nocopy_key ? f.nocopy_key : f.source ? "source" : NULL;
    } else {
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "mount specification \"%s\": unsupported mount type \"%s\": use volume, "
                        "bind or tmpfs",
                        spec, f.type);
    }
    if (misplaced)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "mount specification \"%s\": %s does not apply to a %s mount", spec,
                        misplaced, type);
    if (!f.target)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "mount specification \"%s\": target is required", spec);
    if ((r = volume_target_normalize(f.target, &m.target, err)) < 0)
        return hypr_err_prefix(err, "mount specification \"%s\"", spec);
    m.read_only = f.read_only;
    m.nocopy = f.nocopy;
    m.tmpfs_size = f.size;
    m.tmpfs_mode = f.mode;
    if (m.type == VOLUME_MOUNT_BIND) {
        if (str_empty(f.source))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "mount specification \"%s\": a bind mount needs a source (an "
                            "absolute host path)",
                            spec);
        if ((r = volume_source_normalize(f.source, &m.source, err)) < 0)
            return hypr_err_prefix(err, "mount specification \"%s\"", spec);
    } else if (m.type == VOLUME_MOUNT_VOLUME && f.source) {
        if (!*f.source)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "mount specification \"%s\": empty source; leave it out for an "
                            "anonymous volume",
                            spec);
        if ((r = volume_name_check(f.source, err)) < 0)
            return hypr_err_prefix(err, "mount specification \"%s\"", spec);
        m.source = xstrdup(f.source);
    }
    *out = m;
    memset(&m, 0, sizeof(m));
    return 0;
}

/* ---- --tmpfs -------------------------------------------------------------------------- */

static const char *const tmpfs_flags[] = {
    "exec",       "noexec",   "suid",       "nosuid",      "dev",           "nodev",
    "sync",       "async",    "dirsync",    "atime",       "noatime",       "diratime",
    "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", NULL};
static const char *const tmpfs_numeric[] = {"uid", "gid", "nr_inodes", NULL};
static const char *const propagation_flags[] = {"shared",     "rshared",     "slave",
                                                "rslave",     "private",     "rprivate",
                                                "unbindable", "runbindable", NULL};

static bool in_set(const char *s, size_t n, const char *const *set)
{
    for (; *set; set++)
        if (strlen(*set) == n && !strncmp(s, *set, n))
            return true;
    return false;
}

static bool all_digits(const char *s)
{
    if (!*s || strlen(s) > 19)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static int tmpfs_option(const char *spec, const char *opt, volume_mount_spec *m, hypr_buf *opts,
                        hypr_error *err)
{
    const char *eq = strchr(opt, '=');
    size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
    const char *val = eq ? eq + 1 : NULL;
    if (!val && (!strcmp(opt, "ro") || !strcmp(opt, "rw"))) {
        m->read_only = !strcmp(opt, "ro");
        return 0;
    }
    if (val && klen == 4 && !strncmp(opt, "size", 4)) {
        int r = volume_parse_size(val, &m->tmpfs_size, err);
        return r < 0 ? hypr_err_prefix(err, "tmpfs specification \"%s\"", spec) : 0;
    }
    if (val && klen == 4 && !strncmp(opt, "mode", 4)) {
        int r = parse_mode("mode", val, &m->tmpfs_mode, err);
        return r < 0 ? hypr_err_prefix(err, "tmpfs specification \"%s\"", spec) : 0;
    }
    if (!val && in_set(opt, klen, tmpfs_flags)) {
        /* kept for the guest's mount(2) */
    } else if (val && in_set(opt, klen, tmpfs_numeric)) {
        if (!all_digits(val))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "tmpfs specification \"%s\": invalid value \"%s\" for %.*s: use a "
                            "decimal number",
                            spec, val, (int)klen, opt);
        uint64_t v = strtoull(val, NULL, 10);
        if (klen == 3 && v > UINT32_MAX - 1)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "tmpfs specification \"%s\": %.*s %s is out of range", spec, (int)klen,
                            opt, val);
    } else if (in_set(opt, klen, propagation_flags)) {
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "tmpfs specification \"%s\": \"%s\" (mount propagation) is not "
                        "supported: mounts do not propagate between a VM and the host",
                        spec, opt);
    } else {
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "tmpfs specification \"%s\": unsupported option \"%s\"", spec, opt);
    }
    if (opts->len)
        buf_puts(opts, ",");
    buf_puts(opts, opt);
    return 0;
}

int volume_parse_tmpfs_flag(const char *spec, volume_mount_spec *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (str_empty(spec))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "empty tmpfs specification: expected TARGET[:OPTIONS]");
    _cleanup_mount_spec_ volume_mount_spec m = {.type = VOLUME_MOUNT_TMPFS};
    const char *colon = strchr(spec, ':');
    _cleanup_free_ char *target = xstrndup(spec, colon ? (size_t)(colon - spec) : strlen(spec));
    int r = volume_target_normalize(target, &m.target, err);
    if (r < 0)
        return hypr_err_prefix(err, "tmpfs specification \"%s\"", spec);
    if (colon) {
        _cleanup_buf_ hypr_buf opts = {0};
        _cleanup_free_ char *copy = xstrdup(colon + 1);
        for (char *p = copy, *next; p; p = next) {
            next = strchr(p, ',');
            if (next)
                *next++ = '\0';
            if (!*p)
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "tmpfs specification \"%s\": empty option", spec);
            if ((r = tmpfs_option(spec, p, &m, &opts, err)) < 0)
                return r;
        }
        if (opts.len)
            m.options = buf_steal(&opts);
    }
    *out = m;
    memset(&m, 0, sizeof(m));
    return 0;
}
