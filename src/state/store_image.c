/* Images: addressed by ID (optionally "sha256:"-prefixed), name:tag, name@digest,
 * name (tag latest) or unique ID prefix. */
#define LOG_MODULE "state"

#include <string.h>

#include "state/store-private.h"

void store_image_clear(store_image *img)
{
    if (!img)
        return;
    free(img->name);
    free(img->tag);
    free(img->digest);
    free(img->path);
    free(img->manifest);
    memset(img, 0, sizeof(*img));
}

ENTITY_CLEAR(store_image, store_image_clear)

static void image_read_row(store_row *r, void *obj)
{
    store_image *img = obj;
    row_id(r, img->id);
    img->name = row_text(r);
    img->tag = row_text(r);
    img->digest = row_text(r);
    img->path = row_text(r);
    img->manifest = row_text(r);
    img->size_bytes = (uint64_t)row_int64(r);
    img->created_at = row_int64(r);
}

static void image_bind_row(store_binder *b, const void *obj)
{
    const store_image *img = obj;
    bind_text(b, img->id);
    bind_text(b, img->name);
    bind_text(b, img->tag);
    bind_text(b, img->digest);
    bind_text(b, img->path);
    bind_text(b, img->manifest);
    bind_int64(b, (int64_t)img->size_bytes);
    bind_int64(b, img->created_at);
}

static const store_entity image_entity = {
    .table = "images",
    .columns = "id, name, tag, digest, path, manifest, size_bytes, created_at",
    .key_col = "id",
    .order = "name, tag, id",
    .noun = "image",
    .nouns = "images",
    .name_label = "reference",
    .has_id = true,
    .size = sizeof(store_image),
    .read_row = image_read_row,
    .bind_row = image_bind_row,
    .clear = store_image_clear_obj,
    .load_links = NULL,
};

static const char *strip_algorithm(const char *ref)
{
    return str_startswith(ref, "sha256:") ? ref + strlen("sha256:") : ref;
}

void store_images_free(store_image *imgs, size_t n)
{
    store_records_free(&image_entity, imgs, n);
}

int store_image_insert(store *s, const store_image *img, hypr_error *err)
{
    STORE_LOCKED(s);
    _cleanup_free_ char *ref =
        xasprintf("%s:%s", img->name ? img->name : "", img->tag ? img->tag : "");
    if (img->size_bytes > INT64_MAX)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, ERANGE, "image %s: size out of range", ref);
    return store_insert_record(s, &image_entity, img, img->id, img->name ? ref : NULL, err);
}

int store_image_delete(store *s, const char *id, hypr_error *err)
{
    STORE_LOCKED(s);
    return store_delete_key(s, &image_entity, id ? strip_algorithm(id) : NULL, err);
}

/* Splits "name:tag" where the colon comes after the last slash, so a registry port
 * ("localhost:5000/app") is not taken for a tag. NULL when ref has no tag. */
static char *split_tag(const char *ref, const char **tag)
{
    const char *colon = strrchr(ref, ':');
    const char *slash = strrchr(ref, '/');
    if (!colon || (slash && colon < slash) || colon == ref || colon[1] == '\0')
        return NULL;
    *tag = colon + 1;
    return xstrndup(ref, (size_t)(colon - ref));
}

static int image_lookup(store *s, const char *ref, store_image *out, hypr_error *err)
{
    const store_entity *e = &image_entity;
    const char *id = strip_algorithm(ref);
    int r = store_find_where(s, e, "id = ?1", id, NULL, out, err);
    if (r != 0)
        return r;

    const char *at = strchr(ref, '@');
    if (at) {
        _cleanup_free_ char *name = xstrndup(ref, (size_t)(at - ref));
        return store_find_where(s, e, "name = ?1 AND digest = ?2", name, at + 1, out, err);
    }

    const char *tag = NULL;
    _cleanup_free_ char *name = split_tag(ref, &tag);
    if (name)
        r = store_find_where(s, e, "name = ?1 AND tag = ?2", name, tag, out, err);
    else
        r = store_find_where(s, e, "name = ?1 AND tag = ?2", ref, "latest", out, err);
    if (r != 0)
        return r;
    return store_find_id_prefix(s, e, id, out, err);
}

int store_image_find(store *s, const char *ref, store_image *out, hypr_error *err)
{
    STORE_LOCKED(s);
    memset(out, 0, sizeof(*out));
    if (str_empty(ref))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no image reference or ID given");
    int r = image_lookup(s, ref, out, err);
    if (r < 0)
        return r;
    if (r == 0)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "no such image: %s", ref);
    return 0;
}

int store_image_list(store *s, store_image **out, size_t *n, hypr_error *err)
{
    STORE_LOCKED(s);
    void *objs;
    int r = store_list_rows(s, &image_entity, &objs, n, err);
    *out = objs;
    return r;
}
