/* A layer read with its diff_id checked in the same pass: one libarchive handle
 * (format raw, every filter) decompresses and hashes the uncompressed bytes, and
 * the tar reader parses them through a read callback. The tar reader stops at the
 * end-of-archive blocks, so the check drains whatever follows before it compares. */
#define LOG_MODULE "image"
#include "image-private.h"

#include <archive.h>
#include <openssl/evp.h>
#include <string.h>

struct img_layer_check {
    struct archive *raw;
    EVP_MD_CTX *sha;
    const image_layer_src *src;
    bool eof;
};

static void check_free(img_layer_check *c)
{
    if (!c)
        return;
    if (c->raw)
        archive_read_free(c->raw);
    if (c->sha)
        EVP_MD_CTX_free(c->sha);
    free(c);
}

/* The next block of uncompressed bytes (hashed); 0 at the end, -1 on error (the
 * message is raw's, and is copied to `into` when given). */
static const char *raw_error(const img_layer_check *c)
{
    const char *e = archive_error_string(c->raw);
    return e ? e : "read error";
}

static la_ssize_t raw_next(img_layer_check *c, struct archive *into, const void **buf)
{
    if (c->eof)
        return 0;
    size_t size;
    la_int64_t offset;
    int r = archive_read_data_block(c->raw, buf, &size, &offset);
    if (r == ARCHIVE_EOF) {
        c->eof = true;
        return 0;
    }
    if (r < ARCHIVE_WARN) {
        if (into)
            archive_set_error(into, archive_errno(c->raw) > 0 ? archive_errno(c->raw) : EIO, "%s",
                              raw_error(c));
        return -1;
    }
    EVP_DigestUpdate(c->sha, *buf, size);
    return (la_ssize_t)size;
}

static la_ssize_t chain_read(struct archive *tar, void *ud, const void **buf)
{
    return raw_next(ud, tar, buf);
}

static int chain_close(struct archive *tar, void *ud)
{
    (void)tar;
    check_free(ud);
    return ARCHIVE_OK;
}

int img_layer_open_checked(const image_layer_src *src, struct archive **out,
                           img_layer_check **check, hypr_error *err)
{
    *out = NULL;
    *check = NULL;
    img_layer_check *c = xcalloc(1, sizeof(*c));
    c->src = src;
    c->sha = EVP_MD_CTX_new();
    c->raw = archive_read_new();
    if (!c->sha || !c->raw)
        abort();
    EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL);
    img_archive_add_filters(c->raw);
    archive_read_support_format_raw(c->raw);
    archive_read_support_format_empty(c->raw);
    int r = src->path ? archive_read_open_filename(c->raw, src->path, 256 * 1024)
                      : archive_read_open_memory(c->raw, src->data, src->len);
    struct archive_entry *e;
    if (r == ARCHIVE_OK) {
        r = archive_read_next_header(c->raw, &e);
        if (r == ARCHIVE_EOF) { /* an empty layer */
            c->eof = true;
            r = ARCHIVE_OK;
        }
    }
    if (r != ARCHIVE_OK) {
        int e2 = archive_errno(c->raw);
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, e2 > 0 ? e2 : EINVAL, "%s: %s",
                     img_layer_label(src), archive_error_string(c->raw));
        check_free(c);
        return r;
    }
    struct archive *tar = archive_read_new();
    if (!tar)
        abort();
    archive_read_support_format_tar(tar);
    archive_read_support_format_empty(tar);
    /* From here the tar handle owns c (freed by chain_close). */
    if (archive_read_open(tar, c, NULL, chain_read, chain_close) != ARCHIVE_OK) {
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: %s", img_layer_label(src),
                     archive_error_string(tar));
        archive_read_free(tar);
        return r;
    }
    *out = tar;
    *check = c;
    return 0;
}

int img_layer_check_finish(img_layer_check *c, const char *diff_id, hypr_error *err)
{
    const void *buf;
    la_ssize_t n;
    while ((n = raw_next(c, NULL, &buf)) > 0)
        ;
    int r = 0;
    if (n < 0) {
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EIO, "%s: %s", img_layer_label(c->src),
                     raw_error(c));
    } else {
        unsigned char md[32];
        EVP_DigestFinal_ex(c->sha, md, NULL);
        char got[7 + 64 + 1] = "sha256:";
        for (int i = 0; i < 32; i++)
            snprintf(got + 7 + 2 * i, 3, "%02x", md[i]);
        if (strcmp(got, diff_id) != 0)
            r = hypr_err(err, HYPR_DATA_LOSS, EBADMSG,
                         "%s: uncompressed content %s does not match the image config's "
                         "diff_id %s",
                         img_layer_label(c->src), got, diff_id);
    }
    return r;
}
