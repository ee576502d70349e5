/* Internals shared by the image module's files (not for other modules). */
#ifndef HYPR_IMAGE_PRIVATE_H
#define HYPR_IMAGE_PRIVATE_H

#include "creds/creds.h"
#include "image/image.h"

#include <archive.h>
#include <archive_entry.h>

/* ---- the in-memory tree (layers.c) ------------------------------------------- */

typedef struct img_xattr {
    char *key;
    void *value;
    size_t len;
} img_xattr;

/* One inode; hard links share it (nlink counts the tree paths naming it). */
typedef struct img_inode {
    mode_t mode; /* type and permission bits */
    uint32_t uid, gid;
    int64_t mtime;
    uint64_t size;  /* regular files */
    char *target;   /* symlinks */
    uint32_t devno; /* devices, Linux encoding */
    img_xattr *xattrs;
    size_t n_xattrs;
    uint32_t nlink;
    /* Where a regular file's bytes are: entry `ordinal` of layer `layer`, or a
     * host file (import). */
    int layer;
    int64_t ordinal;
    int64_t spill_off; /* offset of the bytes in layer `layer`'s spill file, or -1 */
    char *host_path;
    /* squashfs writer state */
    void *sq_inode; /* sqfs_inode_generic_t *, filled by the block processor */
    uint32_t ino_num;
    uint64_t ino_ref;
    bool numbered, written;
} img_inode;

typedef struct img_node {
    char *name;
    struct img_node *parent;
    img_inode *ino;
    int layer;                  /* layer that created or last declared this path */
    unsigned depth;             /* components from the root (bounded: the writers recurse) */
    struct img_node **children; /* directories: sorted by strcmp (squashfs order) */
    size_t n_children, cap_children;
} img_node;

struct image_tree {
    img_node *root;
    size_t n_nodes;
    size_t n_inodes;
    /* tar entry counters */
    uint64_t entries;
    /* File contents spilled while each layer was read (image_tree_set_spill_dir):
     * spill_fds[layer], -1 where a layer has none. */
    char *spill_dir;
    int *spill_fds;
    size_t n_spill;
};

#define IMG_MAX_NODES     (4u * 1024 * 1024)
#define IMG_MAX_NAME      255
#define IMG_MAX_TARGET    4095
#define IMG_MAX_SYMLINKS  40
#define IMG_MAX_XATTR_LEN (64 * 1024)
#define IMG_MAX_DEPTH     512

/* Opens a layer source for reading (tar, gzip/zstd/xz/bzip2 or plain). */
int img_layer_open(const image_layer_src *src, struct archive **out, hypr_error *err);
const char *img_layer_label(const image_layer_src *src);
/* The decompressors a layer may use (gzip, zstd, xz, bzip2; all in-process). */
void img_archive_add_filters(struct archive *a);
/* Like img_layer_open, hashing the uncompressed stream in the same pass (layer_check.c):
 * once the tar reader is done, img_layer_check_finish reads what is left and compares
 * the sha256 with the expected diff_id (DATA_LOSS naming both when they differ). The check belongs
 * to the archive and goes with it. */
typedef struct img_layer_check img_layer_check;
int img_layer_open_checked(const image_layer_src *src, struct archive **out,
                           img_layer_check **check, hypr_error *err);
int img_layer_check_finish(img_layer_check *c, const char *diff_id, hypr_error *err);
void img_archive_freep(struct archive **a);
#define _cleanup_archive_ _cleanup_(img_archive_freep)

/* A layer's headers, read ahead (possibly on another thread). */
typedef struct img_scan {
    struct archive_entry **entries;
    int64_t *spill_offs; /* per entry: where its data went in spill_fd, or -1 */
    size_t n, cap;
    int spill_fd; /* -1 when the data was skipped */
} img_scan;
/* With spill_dir, regular files' contents are copied, in the same pass, to an
 * unlinked temp file there, so the layer is decompressed only once. */
int img_layer_scan(const image_layer_src *layer, const char *spill_dir,
                   const image_progress *cancel, img_scan *out, hypr_error *err);
void img_scan_free(img_scan *s);
/* Takes the scan's spill file (if any) into the tree. */
int img_tree_apply_scan(image_tree *t, img_scan *scan, int index, const char *label,
                        hypr_error *err);
/* Layer blobs becoming available while the layers are already being read: the
 * downloader marks each blob ready (or all failed), readers wait for theirs. */
typedef struct img_blob_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool *ready;
    size_t n;
    bool failed;  /* downloads ended without every blob: readers give up */
    bool aborted; /* a reader failed: downloads stop */
} img_blob_gate;
void img_blob_gate_init(img_blob_gate *g, size_t n);
void img_blob_gate_destroy(img_blob_gate *g);
void img_blob_gate_ready(img_blob_gate *g, size_t i);
void img_blob_gate_fail(img_blob_gate *g);
void img_blob_gate_abort(img_blob_gate *g);
bool img_blob_gate_aborted(img_blob_gate *g);
/* Waits for blob i; -ECANCELED when the downloads failed or were aborted. */
int img_blob_gate_wait(img_blob_gate *g, size_t i);

/* Applies n layers in order, reading ahead up to `threads` layers in parallel.
 * With a gate, layer i is read once its blob is ready (NULL: all are). */
int img_tree_apply_layers(image_tree *t, const image_layer_src *layers, size_t n,
                          img_blob_gate *gate, const image_progress *cancel, hypr_error *err);

/* Pre-order traversal helper: calls fn for every node (dirs before children). */
int img_tree_walk(img_node *n, int (*fn)(img_node *n, void *ud), void *ud);

/* ---- progress helpers ---------------------------------------------------------- */

static inline bool img_cancelled(const image_progress *p)
{
    return p && image_progress_cancelled(p);
}

/* ---- sha256 (blobs.c) ------------------------------------------------------------- */

/* "sha256:<hex>" of a buffer (caller frees). */
char *img_sha256_digest(const void *data, size_t len);
/* Hashes a file; -errno. */
int img_sha256_file(const char *path, char **digest_out);

/* ---- registry client (registry.c, auth.c) ------------------------------------------ */

typedef struct registry_client registry_client;

typedef struct registry_opts {
    const image_ref *ref;
    char **insecure;
    const char *ca_file;
    const char *certs_dir; /* Docker-style certs.d: <dir>/<host[:port]>/ca.crt, client.* */
    const char *config_dir;
    const image_progress *cancel;
} registry_opts;

int registry_client_new(const registry_opts *o, registry_client **out, hypr_error *err);
void registry_client_free(registry_client *c);
DEFINE_CLEANUP_FUNC(registry_client, registry_client_free)
/* GET /v2/ and set up authentication from its challenge. */
int registry_ping(registry_client *c, hypr_error *err);
/* GET /v2/<repo>/manifests/<ref>: body and content type; digest is the
 * sha256 of the body (verified against the reference when it is a digest). */
int registry_get_manifest(registry_client *c, const char *reference, char **body, size_t *len,
                          char **content_type, char **digest, hypr_error *err);
/* A small blob (config) into memory, verified. */
int registry_get_blob_mem(registry_client *c, const char *digest, size_t max, char **body,
                          size_t *len, hypr_error *err);
/* URL of a blob and the headers a request for it needs (auth); caller frees. */
char *registry_blob_url(registry_client *c, const char *digest);
struct curl_slist *registry_auth_headers(registry_client *c);
/* After a 401 on a blob: refresh the token from the last challenge. */
int registry_reauth(registry_client *c, const char *www_authenticate, hypr_error *err);
const char *registry_host(registry_client *c);
/* Sets the options every request to the registry shares on a (reset) curl easy
 * handle: url, headers (not copied: they must outlive the transfer), redirects,
 * http(s) only, connect and low-speed timeouts, user agent, no signals, the
 * client's TLS files, and aborting once the client's cancel is set. Callers add
 * their own write/header callbacks. */
void registry_easy_setup(registry_client *c, void *curl_easy, const char *url,
                         struct curl_slist *headers);

/* auth.c */
typedef struct auth_challenge {
    char *scheme; /* "bearer" / "basic" (lowercase) */
    char *realm, *service, *scope;
} auth_challenge;
int auth_parse_challenge(const char *header, auth_challenge *out);
void auth_challenge_clear(auth_challenge *c);
char *auth_basic_header(const char *user, const char *pass);

/* ---- blobs (blobs.c) ---------------------------------------------------------------- */

typedef struct blob_job {
    const char *digest;
    int64_t size;
    size_t progress_index; /* layer index in the progress record */
    char *path;            /* cache path once present (filled) */
} blob_job;

/* Downloads missing blobs into <data_dir>/cache/blobs/sha256 with at most
 * max_parallel transfers, verifying each digest while streaming. With a gate,
 * each job is marked ready there once its blob is in the cache, the gate is
 * failed when this returns an error, and an aborted gate stops the downloads. */
int blobs_fetch(registry_client *c, const char *data_dir, blob_job *jobs, size_t n,
                int max_parallel, img_blob_gate *gate, image_progress *progress, hypr_error *err);
char *blobs_cache_path(const char *data_dir, const char *digest);

/* A pull's hold on its layer blobs (blob_gc.c): the collector leaves them, and
 * their partial downloads, alone until the hold is released. Thread-safe. */
typedef struct img_blob_pins img_blob_pins;
img_blob_pins *img_blob_pins_take(const image_descriptor *layers, size_t n);
void img_blob_pins_release(img_blob_pins *p); /* NULL-safe */

/* ---- store helpers (store.c) ------------------------------------------------------ */

int img_stage_write(image_staged *st, const char *data_dir, image_tree *tree,
                    const image_layer_src *layers, size_t n_layers, image_progress *progress,
                    hypr_error *err);

#endif
