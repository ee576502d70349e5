/* The volume store: records in the store, directories under
 * <data-dir>/volumes/local/<name>, the VMs that use them, and the mounts of a
 * new VM resolved against them. Removal never follows a symlink out of a
 * volume's directory (volume_dir_remove), and a directory being removed is
 * first moved aside, so a new volume of the same name never meets its files. */
#define LOG_MODULE "volumes"
#include "volstore.h"
#include "api.h"
#include "image/image.h"
#include "vm.h"
#include "vm_internal.h"
#include "volume/volume.h"
#include "vmm/vmm.h"

#include <string.h>
#include <sys/stat.h>

/* At most this many mounts of any kind; shared directories have VMM_MAX_SHARES. */
#define MAX_MOUNTS 64

char *volstore_dir(daemon_ctx *d, const char *name)
{
    return xasprintf("%s/volumes/local/%s", d->data_dir, name);
}

int volstore_create(daemon_ctx *d, const char *name, const char *labels_json, bool anonymous,
                    store_volume *out, bool *created, hypr_error *err)
{
    _cleanup_free_ char *gen = NULL;
    *created = false;
    if (str_empty(name)) {
        gen = volume_generate_name();
        if (!gen)
            return hypr_err(err, HYPR_INTERNAL, EIO, "generate a volume name: no random source");
        name = gen;
    }
    int r = volume_name_check(name, err);
    if (r < 0)
        return r;
    r = store_volume_find(d->db, name, out, err);
    if (r == 0)
        return 0;
    if (r != -ENOENT)
        return r;
    hypr_error_clear(err);
    _cleanup_free_ char *dir = volstore_dir(d, name);
    _cleanup_free_ char *parent = path_join(d->data_dir, "volumes/local");
    if (mkdir_p(parent, 0700) < 0 || (mkdir(dir, 0755) < 0 && errno != EEXIST))
        return hypr_err(err, HYPR_INTERNAL, errno, "create volume %s: mkdir %s: %s", name, dir,
                        strerror(errno));
    store_volume v = {
        .name = (char *)name,
        .driver = "local",
        .mountpoint = dir,
        .labels = (char *)labels_json,
        .created_at = time_now_ms() / 1000,
        .anonymous = anonymous,
    };
    r = store_volume_insert(d->db, &v, err);
    if (r < 0) {
        (void)rmdir(dir); /* empty: made just now */
        return hypr_err_prefix(err, "create volume %s", name);
    }
    *created = true;
    char *attrs[] = {"name", (char *)name, "driver", "local", NULL};
    event_publish(d->events, "volume.created", name, NULL, attrs);
    log_info("created volume %s%s", name, anonymous ? " (anonymous)" : "");
    return store_volume_find(d->db, name, out, err);
}

int volstore_users(daemon_ctx *d, const char *name, char ***vm_names, size_t *running,
                   hypr_error *err)
{
    store_vm *vms = NULL;
    size_t n = 0;
    *vm_names = NULL;
    if (running)
        *running = 0;
    int r = store_vm_list(d->db, &vms, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (!disk_volume_users(&vms[i], 1, name))
            continue;
        *vm_names = strv_append(*vm_names, vms[i].name);
        if (running && vm_runtime_find(d, vms[i].id))
            (*running)++;
    }
    store_vms_free(vms, n);
    return 0;
}

/* Moves a volume directory aside (a rename within volumes/): NULL when it is
 * not one of the store's own directories or is already gone. */
static char *move_to_trash(daemon_ctx *d, const store_volume *v)
{
    _cleanup_free_ char *own = path_join(d->data_dir, "volumes/local/");
    if (!v->mountpoint || !str_startswith(v->mountpoint, own) || strstr(v->mountpoint, "/..") ||
        strchr(v->mountpoint + strlen(own), '/'))
        return NULL;
    _cleanup_free_ char *trash_dir = path_join(d->data_dir, "volumes/.trash");
    _cleanup_free_ char *rnd = volume_generate_name();
    char *trash = xasprintf("%s/%.16s", trash_dir, rnd ? rnd : "x");
    if (mkdir_p(trash_dir, 0700) < 0 || rename(v->mountpoint, trash) < 0) {
        if (errno != ENOENT)
            log_warn("volume %s: move %s aside: %s", v->name, v->mountpoint, strerror(errno));
        free(trash);
        return NULL;
    }
    return trash;
}

int volstore_delete(daemon_ctx *d, const char *name, bool force, char **trash, hypr_error *err)
{
    *trash = NULL;
    _cleanup_store_volume_ store_volume v = {0};
    int r = store_volume_find(d->db, name, &v, err);
    if (r < 0)
        return r;
    _cleanup_strv_ char **users = NULL;
    size_t running = 0;
    r = volstore_users(d, v.name, &users, &running, err);
    if (r < 0)
        return r;
    if (users && (!force || running)) {
        _cleanup_buf_ hypr_buf list = {0};
        for (size_t i = 0; users[i]; i++)
            buf_printf(&list, "%s%s", i ? ", " : "", users[i]);
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY, "volume %s is in use by VM%s %s%s",
                        v.name, users[1] ? "s" : "", list.data,
                        running ? ": remove the VMs first (hypr rm -f)"
                                : ": remove the VMs first, or force it (hypr volume rm -f)");
    }
    r = store_volume_delete(d->db, v.name, err);
    if (r < 0)
        return hypr_err_prefix(err, "remove volume %s", v.name);
    *trash = move_to_trash(d, &v);
    char *attrs[] = {"name", v.name, NULL};
    event_publish(d->events, "volume.deleted", v.name, NULL, attrs);
    log_info("deleted volume %s", v.name);
    return 0;
}

typedef struct trash_work {
    uv_work_t req;
    char **paths;
} trash_work;

static void trash_run(uv_work_t *req)
{
    trash_work *w = req->data;
    for (size_t i = 0; w->paths[i]; i++) {
        _cleanup_error_ hypr_error e = HYPR_ERROR_INIT;
        if (volume_dir_remove(w->paths[i], &e) < 0)
            log_warn("remove %s: %s", w->paths[i], e.message);
    }
}

static void trash_done(uv_work_t *req, int status)
{
    trash_work *w = req->data;
    strv_free(w->paths);
    free(w);
}

void volstore_trash_remove(daemon_ctx *d, char **trash)
{
    if (!trash || !trash[0]) {
        strv_free(trash);
        return;
    }
    trash_work *w = xcalloc(1, sizeof(*w));
    w->paths = trash;
    w->req.data = w;
    uv_queue_work(d->loop, &w->req, trash_run, trash_done);
}

/* ---- the mounts of a new VM ------------------------------------------------------- */

/* The API's form as the parser's; a gRPC client's old form (no type, an
 * absolute source) is a bind, as Docker's Binds. */
static int spec_from_proto(const Hypr__V1__VolumeMount *m, volume_mount_spec *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *type = str_empty(m->type) ? NULL : m->type;
    if (!type)
        type = (m->source && m->source[0] == '/') ? "bind" : "volume";
    if (strcmp(type, "volume") == 0)
        out->type = VOLUME_MOUNT_VOLUME;
    else if (strcmp(type, "bind") == 0)
        out->type = VOLUME_MOUNT_BIND;
    else if (strcmp(type, "tmpfs") == 0)
        out->type = VOLUME_MOUNT_TMPFS;
    else
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid mount type \"%s\": use volume, bind or tmpfs", m->type);
    out->source = str_empty(m->source) ? NULL : xstrdup(m->source);
    out->target = xstrdup(m->target ? m->target : "");
    out->read_only = m->read_only;
    out->nocopy = m->nocopy;
    out->create_host_path =
        m->create_host_path || (str_empty(m->type) && out->type == VOLUME_MOUNT_BIND);
    out->tmpfs_size = m->tmpfs_size;
    out->tmpfs_mode = m->tmpfs_mode;
    if (!str_empty(m->tmpfs_options)) {
        /* Validated as --tmpfs would be: only options the guest can honour. */
        _cleanup_free_ char *spec = xasprintf("/x:%s", m->tmpfs_options);
        _cleanup_mount_spec_ volume_mount_spec t = {0};
        int r = volume_parse_tmpfs_flag(spec, &t, err);
        if (r < 0)
            return hypr_err_prefix(err, "tmpfs options of %s", out->target);
        out->options = TAKE_PTR(t.options);
    }
    return 0;
}

static char **image_volume_paths(const store_image *img)
{
    _cleanup_image_info_ image_info info = {0};
    if (str_empty(img->manifest) || image_info_from_json(img->manifest, &info, NULL) < 0)
        return NULL;
    return TAKE_PTR(info.config.volumes);
}

static Hypr__V1__VolumeMount *mount_new(void)
{
    Hypr__V1__VolumeMount *m = xmalloc(sizeof(*m));
    hypr__v1__volume_mount__init(m);
    return m;
}

static void set_str(char **field, char *value)
{
    /* Fields of an unpacked message: protobuf-c frees them with free(). */
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = value;
}

/* Adds an anonymous volume for each image VOLUME no mount covers (Docker's rule). */
static void add_image_volumes(Hypr__V1__VMConfig *cfg, const store_image *img)
{
    _cleanup_strv_ char **paths = image_volume_paths(img);
    for (size_t i = 0; paths && paths[i]; i++) {
        _cleanup_free_ char *t = NULL;
        if (volume_target_normalize(paths[i], &t, NULL) < 0)
            continue; /* "/" or garbage in an image config: Docker skips it too */
        bool covered = false;
        for (size_t k = 0; k < cfg->n_volumes && !covered; k++)
            covered = strcmp(cfg->volumes[k]->target, t) == 0;
        if (covered)
            continue;
        Hypr__V1__VolumeMount *m = mount_new();
        m->type = xstrdup("volume");
        m->target = TAKE_PTR(t);
        cfg->volumes = xrealloc(cfg->volumes, (cfg->n_volumes + 1) * sizeof(*cfg->volumes));
        cfg->volumes[cfg->n_volumes++] = m;
    }
}

/* Checks every mount and rewrites them normalised; creates nothing. */
static int check_mounts(Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    size_t n = cfg->n_volumes, shares = 0;
    volume_mount_spec *specs = xcalloc(n ? n : 1, sizeof(*specs));
    int r = 0;
    for (size_t i = 0; i < n && r >= 0; i++)
        r = spec_from_proto(cfg->volumes[i], &specs[i], err);
    if (r >= 0)
        r = volume_mounts_check(specs, n, MAX_MOUNTS, err);
    for (size_t i = 0; i < n && r >= 0; i++) {
        const volume_mount_spec *s = &specs[i];
        Hypr__V1__VolumeMount *m = cfg->volumes[i];
        shares += s->type != VOLUME_MOUNT_TMPFS;
        _cleanup_free_ char *t = NULL;
        r = volume_target_normalize(s->target, &t, err);
        if (r < 0)
            break;
        set_str(&m->target, TAKE_PTR(t));
        static const char *const types[] = {"volume", "bind", "tmpfs"};
        set_str(&m->type, xstrdup(types[s->type]));
        set_str(&m->tmpfs_options, xstrdup(s->options ? s->options : ""));
        m->create_host_path = s->create_host_path;
        if (s->type == VOLUME_MOUNT_BIND) {
            struct stat st;
            int sr = stat(s->source, &st);
            if (sr < 0 && !(errno == ENOENT && s->create_host_path))
                r = hypr_err(err, HYPR_INVALID_ARGUMENT, errno,
                             "invalid mount config for type \"bind\": bind source path %s: %s",
                             s->source, errno == ENOENT ? "does not exist" : strerror(errno));
            else if (sr == 0 && !S_ISDIR(st.st_mode))
                r = hypr_err(err, HYPR_INVALID_ARGUMENT, ENOTDIR,
                             "bind source %s is not a directory: hypr shares directories with "
                             "VMs (bind its directory instead)",
                             s->source);
        }
    }
    if (r >= 0 && shares > VMM_MAX_SHARES)
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, E2BIG,
                     "%zu volumes and bind mounts: at most %d per VM (tmpfs mounts do not count)",
                     shares, VMM_MAX_SHARES);
    volume_mount_specs_free(specs, n);
    return r;
}

int volstore_prepare_mounts(daemon_ctx *d, Hypr__V1__VMConfig *cfg, const store_image *img,
                            hypr_error *err)
{
    int r = check_mounts(cfg, err);
    if (r < 0)
        return r;
    add_image_volumes(cfg, img);
    _cleanup_strv_ char **made = NULL; /* anonymous volumes to undo on failure */
    for (size_t i = 0; i < cfg->n_volumes && r >= 0; i++) {
        Hypr__V1__VolumeMount *m = cfg->volumes[i];
        if (strcmp(m->type, "bind") == 0) {
            if (m->create_host_path && mkdir_p(m->source, 0755) < 0)
                r = hypr_err(err, HYPR_INVALID_ARGUMENT, errno, "create bind source %s: %s",
                             m->source, strerror(errno));
            continue;
        }
        if (strcmp(m->type, "volume") != 0)
            continue;
        bool anonymous = str_empty(m->source), created = false;
        _cleanup_store_volume_ store_volume v = {0};
        r = volstore_create(d, anonymous ? NULL : m->source, NULL, anonymous, &v, &created, err);
        if (r < 0)
            break;
        if (anonymous) {
            set_str(&m->source, xstrdup(v.name));
            m->anonymous = true;
            made = strv_append(made, v.name);
        }
    }
    if (r < 0) {
        for (size_t i = 0; made && made[i]; i++) {
            char *trash = NULL;
            if (volstore_delete(d, made[i], true, &trash, NULL) == 0 && trash)
                (void)rmdir(trash); /* empty: made just now */
            free(trash);
        }
    }
    return r;
}

void volstore_vm_removed(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, bool remove_anonymous)
{
    if (!cfg || !remove_anonymous)
        return;
    char **trash = NULL;
    for (size_t i = 0; i < cfg->n_volumes; i++) {
        const Hypr__V1__VolumeMount *m = cfg->volumes[i];
        if (!m->anonymous || str_empty(m->source))
            continue;
        _cleanup_error_ hypr_error e = HYPR_ERROR_INIT;
        char *t = NULL;
        if (volstore_delete(d, m->source, false, &t, &e) < 0) {
            if (e.status != HYPR_NOT_FOUND)
                log_info("anonymous volume %s stays: %s", m->source, e.message);
            continue;
        }
        if (t)
            trash = strv_append(trash, t);
        free(t);
    }
    volstore_trash_remove(d, trash);
}
