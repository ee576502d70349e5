/* Volume names, mount targets and sources, the consistency of a VM's set of mounts,
 * and the -v / --volume parser. */
#define LOG_MODULE "volume"
#include "volume/volume.h"

#include <limits.h>
#include <string.h>
#include <sys/random.h>

#define NAME_RULE "[a-zA-Z0-9][a-zA-Z0-9_.-]+"

void volume_mount_spec_clear(volume_mount_spec *m)
{
    if (!m)
        return;
    free(m->source);
    free(m->target);
    free(m->options);
    memset(m, 0, sizeof(*m));
}

void volume_mount_specs_free(volume_mount_spec *mounts, size_t n)
{
    if (!mounts)
        return;
    for (size_t i = 0; i < n; i++)
        volume_mount_spec_clear(&mounts[i]);
    free(mounts);
}

/* ---- names ---------------------------------------------------------------------------- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int volume_name_check(const char *name, hypr_error *err)
{
    if (!name)
        name = "";
    size_t len = strlen(name);
    bool ok = len >= 2 && len <= VOLUME_NAME_MAX && is_alnum(name[0]);
    for (size_t i = 1; ok && i < len; i++)
        ok = is_alnum(name[i]) || name[i] == '_' || name[i] == '.' || name[i] == '-';
    if (ok)
        return 0;
    if (len > VOLUME_NAME_MAX)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid volume name \"%.32s...\": longer than %d characters", name,
                        VOLUME_NAME_MAX);
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "invalid volume name \"%s\": only " NAME_RULE
                    " is allowed (two characters at least); to mount a host directory, use an "
                    "absolute path",
                    name);
}

char *volume_generate_name(void)
{
    char id[HYPR_ID_LEN + 1];
    _Static_assert(VOLUME_NAME_LEN == HYPR_ID_LEN, "generated names are ids");
    if (id_generate(id) < 0)
        return NULL;
    return xstrdup(id);
}

/* ---- paths ---------------------------------------------------------------------------- */

/* Lexical normalisation shared by targets and bind sources; what names the path in
 * messages ("mount target", "bind source"). */
static int path_normalize(const char *path, const char *what, bool allow_root, char **out,
                          hypr_error *err)
{
    *out = NULL;
    if (str_empty(path))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "empty %s: give an absolute path",
                        what);
    size_t len = strlen(path);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid %s \"%s\": control characters are not allowed", what, path);
    }
    if (path[0] != '/')
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid %s \"%s\": must be an absolute path", what, path);
    if (len >= PATH_MAX)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid %s \"%.64s...\": longer than %d bytes", what, path, PATH_MAX - 1);
    _cleanup_buf_ hypr_buf b = {0};
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        if (n == 1 && p[0] == '.') {
            p += n;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid %s \"%s\": \"..\" components are not allowed", what, path);
        buf_puts(&b, "/");
        buf_append(&b, p, n);
        p += n;
    }
    if (b.len == 0) {
        if (!allow_root)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid %s \"%s\": cannot be \"/\"", what, path);
        buf_puts(&b, "/");
    }
    *out = buf_steal(&b);
    return 0;
}

int volume_target_normalize(const char *target, char **out, hypr_error *err)
{
    return path_normalize(target, "mount target", false, out, err);
}

int volume_source_normalize(const char *source, char **out, hypr_error *err)
{
    return path_normalize(source, "bind source", true, out, err);
}

/* ---- a VM's set of mounts ------------------------------------------------------------- */

static const char *type_name(volume_mount_type t)
{
    switch (t) {
    case VOLUME_MOUNT_VOLUME:
        return "volume";
    case VOLUME_MOUNT_BIND:
        return "bind";
    case VOLUME_MOUNT_TMPFS:
        return "tmpfs";
    }
    return "unknown";
}

/* The first tmpfs-only field set on a mount that is not a tmpfs, or NULL. */
static const char *tmpfs_field(const volume_mount_spec *m)
{
    return m->tmpfs_size   ? "tmpfs-size"
           : m->tmpfs_mode ? "tmpfs-mode"
           : m->options    ? "tmpfs options"
                           : NULL;
}

static int mount_check_one(const volume_mount_spec *m, char **target, hypr_error *err)
{
    int r = volume_target_normalize(m->target, target, err);
    if (r < 0)
        return r;
    const char *bad = NULL;
    switch (m->type) {
    case VOLUME_MOUNT_VOLUME:
        if (m->source && (r = volume_name_check(m->source, err)) < 0)
            return r;
        bad = m->create_host_path ? "create_host_path" : tmpfs_field(m);
        break;
    case VOLUME_MOUNT_BIND: {
        if (!m->source)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "bind mount on \"%s\" has no source: give an absolute host path",
                            m->target);
        _cleanup_free_ char *src = NULL;
        if ((r = volume_source_normalize(m->source, &src, err)) < 0)
            return r;
        bad = m->nocopy ? "nocopy" : tmpfs_field(m);
        break;
    }
    case VOLUME_MOUNT_TMPFS:
        if (m->source)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "tmpfs mount on \"%s\" cannot have a source (\"%s\")", m->target,
                            m->source);
        if (m->nocopy)
            bad = "nocopy";
        else if (m->create_host_path)
            bad = "create_host_path";
        else if (m->tmpfs_mode > 07777)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "tmpfs mount on \"%s\": mode %o is more than permission bits",
                            m->target, m->tmpfs_mode);
        break;
    default:
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "mount on \"%s\" has an unknown type %d", m->target, (int)m->type);
    }
    if (bad)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "%s mount on \"%s\": %s does not apply to a %s mount", type_name(m->type),
                        m->target, bad, type_name(m->type));
    return 0;
}

int volume_mounts_check(const volume_mount_spec *mounts, size_t n, size_t max, hypr_error *err)
{
    if (n > max)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "too many mounts: %zu given, at most %zu are allowed per VM", n, max);
    _cleanup_strv_ char **targets = xcalloc(n + 1, sizeof(*targets));
    for (size_t i = 0; i < n; i++) {
        int r = mount_check_one(&mounts[i], &targets[i], err);
        if (r < 0)
            return r;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(targets[i], targets[j]))
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "duplicate mount target \"%s\": \"%s\" and \"%s\" name the same "
                                "path in the VM",
                                targets[i], mounts[j].target, mounts[i].target);
    }
    return 0;
}

/* ---- -v / --volume -------------------------------------------------------------------- */

static bool str_in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return true;
    return false;
}

static const char *const rw_modes[] = {"ro", "rw", NULL};
static const char *const label_modes[] = {"z", "Z", NULL};
static const char *const propagation_modes[] = {"shared",  "rshared",  "slave", "rslave",
                                                "private", "rprivate", NULL};
static const char *const consistency_modes[] = {"consistent", "cached", "delegated", NULL};

static int parse_volume_modes(const char *spec, const char *modes, volume_mount_spec *out,
                              hypr_error *err)
{
    /* Docker accepts an empty mode ("/a:/b:"). */
    if (!*modes)
        return 0;
    unsigned seen_rw = 0, seen_copy = 0, seen_consistency = 0;
    _cleanup_free_ char *copy = xstrdup(modes);
    for (char *p = copy, *next; p; p = next) {
        next = strchr(p, ',');
        if (next)
            *next++ = '\0';
        if (str_in(p, rw_modes)) {
            seen_rw++;
            out->read_only = !strcmp(p, "ro");
        } else if (!strcmp(p, "nocopy")) {
            seen_copy++;
            out->nocopy = true;
        } else if (str_in(p, consistency_modes)) {
            seen_consistency++;
        } else if (str_in(p, label_modes)) {
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "volume specification \"%s\": mode \"%s\" (SELinux relabelling) is "
                            "not supported: a VM does not share the host's SELinux labels",
                            spec, p);
        } else if (str_in(p, propagation_modes)) {
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "volume specification \"%s\": mode \"%s\" (mount propagation) is not "
                            "supported: mounts do not propagate between a VM and the host",
                            spec, p);
        } else {
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "volume specification \"%s\": invalid mode \"%s\": use ro, rw or "
                            "nocopy, separated by commas",
                            spec, p);
        }
        if (seen_rw > 1 || seen_copy > 1 || seen_consistency > 1)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "volume specification \"%s\": mode \"%s\" conflicts with an earlier "
                            "one in \"%s\"",
                            spec, p, modes);
    }
    return 0;
}

int volume_parse_volume_flag(const char *spec, volume_mount_spec *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (str_empty(spec))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "empty volume specification: expected [SOURCE:]TARGET[:MODE]");
    _cleanup_strv_ char **parts = NULL;
    _cleanup_free_ char *s = xstrdup(spec);
    /* Split on every colon, keeping empty fields so "::/x" is an error, not "/x". */
    for (char *p = s;;) {
        char *c = strchr(p, ':');
        if (c)
            *c = '\0';
        parts = strv_append(parts, p);
        if (!c)
            break;
        p = c + 1;
    }
    size_t n = strv_length(parts);
    const char *src = NULL, *dst = NULL, *modes = "";
    switch (n) {
    case 1:
        dst = parts[0];
        break;
    case 2:
        if (parts[1][0] && parse_volume_modes(spec, parts[1], &(volume_mount_spec){0}, NULL) == 0)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid volume specification \"%s\": a mode needs a source, "
                            "expected SOURCE:TARGET:MODE",
                            spec);
        src = parts[0];
        dst = parts[1];
        break;
    case 3:
        src = parts[0];
        dst = parts[1];
        modes = parts[2];
        break;
    default:
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid volume specification \"%s\": expected [SOURCE:]TARGET[:MODE] "
                        "(paths cannot contain ':')",
                        spec);
    }
    _cleanup_mount_spec_ volume_mount_spec m = {0};
    int r = parse_volume_modes(spec, modes, &m, err);
    if (r < 0)
        return r;
    if ((r = volume_target_normalize(dst, &m.target, err)) < 0)
        return hypr_err_prefix(err, "volume specification \"%s\"", spec);
    if (!src) {
        m.type = VOLUME_MOUNT_VOLUME;
    } else if (!*src) {
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid volume specification \"%s\": empty source; give a volume "
                        "name or an absolute host path, or only TARGET for an anonymous volume",
                        spec);
    } else if (src[0] == '/') {
        m.type = VOLUME_MOUNT_BIND;
        m.create_host_path = true;
        if ((r = volume_source_normalize(src, &m.source, err)) < 0)
            return hypr_err_prefix(err, "volume specification \"%s\"", spec);
        if (m.nocopy)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "volume specification \"%s\": nocopy applies to volumes, not to the "
                            "bind mount of \"%s\"",
                            spec, src);
    } else if (strchr(src, '/')) {
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid volume specification \"%s\": source \"%s\" is a relative "
                        "path; use an absolute host path",
                        spec, src);
    } else {
        m.type = VOLUME_MOUNT_VOLUME;
        if ((r = volume_name_check(src, err)) < 0)
            return hypr_err_prefix(err, "volume specification \"%s\"", spec);
        m.source = xstrdup(src);
    }
    *out = m;
    memset(&m, 0, sizeof(m));
    return 0;
}
