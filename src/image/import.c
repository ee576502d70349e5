/* ImportImage: a rootfs tarball (plain or compressed) or a host directory
 * becomes an image through the same tree -> squashfs path as a pull. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>

static char **strv_dup_or_null(char **v)
{
    return v ? strv_copy(v) : NULL;
}

int image_import(const image_import_opts *o, image_progress *progress, image_staged *out,
                 hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (str_empty(o->source) || o->source[0] != '/')
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "import: the source must be an absolute path on the daemon's host");
    image_ref ref;
    int r = image_ref_parse(o->reference, &ref, err);
    if (r < 0)
        return hypr_err_prefix(err, "import");
    if (ref.digest) {
        image_ref_clear(&ref);
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "import: the reference must be name[:tag], without a digest");
    }
    struct stat st;
    if (stat(o->source, &st) < 0) {
        int e = errno;
        image_ref_clear(&ref);
        return hypr_err(err, e == ENOENT ? HYPR_NOT_FOUND : HYPR_INVALID_ARGUMENT, e,
                        "import %s: %s", o->source, strerror(e));
    }
    image_progress_set_phase(progress, IMAGE_PHASE_CONVERTING, "Importing");
    image_tree *tree = image_tree_new();
    image_layer_src src = {.path = o->source, .label = o->source};
    size_t n_layers = 0;
    if (S_ISDIR(st.st_mode)) {
        r = image_tree_add_directory(tree, o->source, progress, err);
    } else {
        r = image_tree_apply_layer(tree, &src, 0, progress, err);
        n_layers = 1;
    }
    if (r >= 0) {
        image_info *info = &out->info;
        info->name = image_ref_name(&ref);
        info->tag = xstrdup(ref.tag);
        image_config *c = &info->config;
        const image_config *in = &o->config;
        c->entrypoint = strv_dup_or_null(in->entrypoint);
        c->cmd = strv_dup_or_null(in->cmd);
        c->env = strv_dup_or_null(in->env);
        c->workdir = in->workdir ? xstrdup(in->workdir) : NULL;
        c->user = in->user ? xstrdup(in->user) : NULL;
        c->stop_signal = in->stop_signal ? xstrdup(in->stop_signal) : NULL;
        c->exposed_ports = strv_dup_or_null(in->exposed_ports);
        c->volumes = strv_dup_or_null(in->volumes);
        c->labels = strv_dup_or_null(in->labels);
        image_platform_host(&c->platform);
        c->created = (int64_t)time(NULL);
        c->history = xcalloc(1, sizeof(*c->history));
        c->n_history = 1;
        c->history[0].created = c->created;
        c->history[0].created_by = xasprintf("hypr image import %s", o->source);
        c->history[0].comment = xstrdup("imported");
        r = img_stage_write(out, o->data_dir, tree, &src, n_layers, progress, err);
    }
    if (r >= 0) {
        /* No config blob: a random ID. */
        r = id_generate(out->id);
        if (r < 0)
            r = hypr_err(err, HYPR_INTERNAL, -r, "generate an image ID");
    }
    image_tree_free(tree);
    image_ref_clear(&ref);
    if (r < 0) {
        if (err->status != HYPR_CANCELLED)
            hypr_err_prefix(err, "import %s", o->source);
        image_staged_discard(out);
        image_staged_clear(out);
    }
    return r;
}
