/* What GetDiskUsage and PruneSystem share: the walks of the data and run dirs
 * (blocking: thread-pool work only), and, on the loop, the labels and users of
 * the records they judge. */
#define LOG_MODULE "api"
#include "api.h"
#include "common/json_cleanup.h"
#include "image/image.h"
#include "vm.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* Deeper trees are counted to this depth (a volume is the user's data: its walk
 * must not exhaust the worker's stack). */
#define MAX_WALK_DEPTH 128

static uint64_t dir_size_at(int dfd, unsigned depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth >= MAX_WALK_DEPTH)
                continue;
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                total += dir_size_at(sub, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_size;
        }
    }
    closedir(d);
    return total;
}

/* A file's size, or the space it takes when that is less (a sparse VM layer). */
static uint64_t file_space(const struct stat *st)
{
    uint64_t used = (uint64_t)st->st_blocks * 512;
    return used < (uint64_t)st->st_size ? used : (uint64_t)st->st_size;
}

uint64_t disk_path_size(const char *path)
{
    struct stat st;
    if (!path || lstat(path, &st) < 0)
        return 0;
    if (S_ISREG(st.st_mode))
        return (uint64_t)st.st_size;
    if (!S_ISDIR(st.st_mode))
        return 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? 0 : dir_size_at(fd, 0);
}

bool disk_vm_file_id(const char *name, char id[HYPR_ID_LEN + 1])
{
    if (strlen(name) <= HYPR_ID_LEN || name[HYPR_ID_LEN] != '.')
        return false;
    memcpy(id, name, HYPR_ID_LEN);
    id[HYPR_ID_LEN] = '\0';
    return id_is_valid(id);
}

void disk_list_dir(const char *dir, bool vm_files, disk_files *out)
{
    *out = (disk_files){0};
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char id[HYPR_ID_LEN + 1] = "";
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            (vm_files && !disk_vm_file_id(de->d_name, id)))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 16;
            out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
        }
        _cleanup_free_ char *path = path_join(dir, de->d_name);
        disk_file *f = &out->v[out->n++];
        *f = (disk_file){.name = xstrdup(de->d_name),
                         .size = S_ISDIR(st.st_mode)   ? disk_path_size(path)
                                 : S_ISREG(st.st_mode) ? file_space(&st)
                                                       : 0,
                         .mtime = (int64_t)st.st_mtim.tv_sec};
        memcpy(f->vm_id, id, sizeof(id));
    }
    closedir(d);
}

void disk_files_free(disk_files *f)
{
    for (size_t i = 0; f && i < f->n; i++)
        free(f->v[i].name);
    if (f) {
        free(f->v);
        *f = (disk_files){0};
    }
}

/* ---- the records' labels and users (loop) ------------------------------------------- */

char **disk_labels_from_json(const char *json)
{
    if (str_empty(json))
        return NULL;
    _cleanup_json_ json_t *o = json_loads(json, 0, NULL);
    if (!json_is_object(o))
        return NULL;
    char **v = NULL;
    const char *k;
    json_t *val;
    json_object_foreach(o, k, val)
    {
        v = strv_append(v, k);
        v = strv_append(v, json_is_string(val) ? json_string_value(val) : "");
    }
    return v;
}

char **disk_vm_labels(const store_vm *vm)
{
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    if (vm_config_decode(vm, &cfg, NULL) < 0 || !cfg)
        return NULL;
    char **v = NULL;
    for (size_t i = 0; i < cfg->n_labels; i++) {
        v = strv_append(v, cfg->labels[i]->key);
        v = strv_append(v, cfg->labels[i]->value);
    }
    return v;
}

char **disk_image_labels(const store_image *img)
{
    _cleanup_image_info_ image_info info = {0};
    if (!img->manifest || image_info_from_json(img->manifest, &info, NULL) < 0)
        return NULL;
    return TAKE_PTR(info.config.labels);
}

size_t disk_image_users(const store_vm *vms, size_t n, const char *image_id)
{
    size_t users = 0;
    for (size_t i = 0; i < n; i++)
        users += vms[i].image_id && !strcmp(vms[i].image_id, image_id);
    return users;
}

size_t disk_volume_users(const store_vm *vms, size_t n, const char *volume)
{
    size_t users = 0;
    for (size_t i = 0; i < n; i++) {
        bool uses = false;
        for (size_t k = 0; k < vms[i].n_volumes; k++)
            uses = uses || (vms[i].volumes[k].source && !strcmp(vms[i].volumes[k].source, volume));
        users += uses;
    }
    return users;
}
