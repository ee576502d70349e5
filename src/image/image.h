/* hypr image module: image references, the OCI distribution client, manifests
 * and configs, layer application, the squashfs writer and the image store.
 *
 * Pulling is blocking work (network, decompression, compression): the daemon
 * runs image_pull() on a worker thread and reads progress from an
 * image_progress it shares with that thread. Nothing here touches libuv or
 * the RPC layer. */
#ifndef HYPR_IMAGE_H
#define HYPR_IMAGE_H

#include "common/common.h"
#include "state/state.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- references (reference.c) ---------------------------------------------- */

/* A normalised reference: "nginx" is docker.io / library/nginx / latest. */
typedef struct image_ref {
    char *registry;   /* "docker.io", "localhost:5000", "[::1]:5000" */
    char *repository; /* "library/nginx" */
    char *tag;        /* NULL only when a digest was given without a tag */
    char *digest;     /* "sha256:<64 hex>" or NULL */
} image_ref;

/* Parses Docker-style references: "nginx", "user/repo:tag", "host:5000/a/b:1",
 * "name@sha256:...", "name:tag@sha256:...". Fills err (INVALID_ARGUMENT) with
 * what is wrong. */
int image_ref_parse(const char *s, image_ref *out, hypr_error *err);
void image_ref_clear(image_ref *r);
/* The _cleanup_image_*_ helpers clear a value of that type (zeroed or filled)
 * when it goes out of scope. */
#define _cleanup_image_ref_ _cleanup_(image_ref_clear)
/* A registry address as a reference names it: host[:port], the host a DNS name,
 * an IPv4 address or [IPv6]. Fills err (INVALID_ARGUMENT) with what is wrong. */
int image_registry_check(const char *host, hypr_error *err);
/* "docker.io/library/nginx" (caller frees). */
char *image_ref_name(const image_ref *r);
/* "docker.io/library/nginx:latest", with "@sha256:..." when a digest is set. */
char *image_ref_string(const image_ref *r);
/* Host to contact: docker.io is served by registry-1.docker.io. */
const char *image_ref_endpoint_host(const image_ref *r);
/* "sha256:<64 lowercase hex>" */
bool image_digest_valid(const char *digest);

/* ---- platforms and manifests (manifest.c) ---------------------------------- */

typedef struct image_platform {
    char *os;      /* "linux" */
    char *arch;    /* "amd64", "arm64" (GOARCH names) */
    char *variant; /* "v8", may be NULL */
} image_platform;

/* "linux/amd64", "linux/arm64/v8", "amd64" (os linux). */
int image_platform_parse(const char *s, image_platform *out, hypr_error *err);
/* The host's platform in OCI terms (uname machine mapped to GOARCH). */
void image_platform_host(image_platform *out);
void image_platform_clear(image_platform *p);
#define _cleanup_image_platform_ _cleanup_(image_platform_clear)
/* "linux/arm64/v8" (caller frees). */
char *image_platform_string(const image_platform *p);

typedef enum image_media_kind {
    IMAGE_MEDIA_UNKNOWN = 0,
    IMAGE_MEDIA_OCI_MANIFEST,
    IMAGE_MEDIA_OCI_INDEX,
    IMAGE_MEDIA_DOCKER_MANIFEST,
    IMAGE_MEDIA_DOCKER_LIST,
} image_media_kind;

#define IMAGE_MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define IMAGE_MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define IMAGE_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define IMAGE_MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"

typedef struct image_descriptor {
    char *media_type;
    char *digest;
    int64_t size;
    image_platform platform; /* index entries only */
} image_descriptor;

typedef struct image_manifest {
    image_media_kind kind;
    /* image manifests */
    image_descriptor config;
    image_descriptor *layers;
    size_t n_layers;
    /* indexes / manifest lists */
    image_descriptor *manifests;
    size_t n_manifests;
} image_manifest;

/* content_type: the response's Content-Type (may be NULL: mediaType decides). */
int image_manifest_parse(const char *content_type, const char *body, size_t len,
                         image_manifest *out, hypr_error *err);
void image_manifest_clear(image_manifest *m);
#define _cleanup_image_manifest_ _cleanup_(image_manifest_clear)
/* Picks the entry of an index for want; INVALID_ARGUMENT/NOT_FOUND naming the
 * platforms the index offers when none matches. */
int image_index_select(const image_manifest *index, const image_platform *want,
                       const image_descriptor **out, hypr_error *err);

typedef struct image_history {
    int64_t created;
    char *created_by;
    char *comment;
    bool empty_layer;
    uint64_t size; /* compressed size of the layer it made (0 for empty ones) */
} image_history;

/* The runtime config of an image, and what manifest.json keeps of it. */
typedef struct image_config {
    char **entrypoint, **cmd, **env; /* NULL-terminated, may be NULL */
    char *workdir, *user;
    char *stop_signal;    /* StopSignal, as the image gives it ("SIGQUIT", "3") */
    char **exposed_ports; /* "80/tcp" */
    char **volumes;
    char **labels; /* key, value, key, value, ... NULL */
    image_platform platform;
    int64_t created;
    image_history *history;
    size_t n_history;
    char **diff_ids;
} image_config;

int image_config_parse(const char *body, size_t len, image_config *out, hypr_error *err);
void image_config_clear(image_config *c);
#define _cleanup_image_config_ _cleanup_(image_config_clear)

/* What the image store keeps in <image dir>/manifest.json and the images row. */
typedef struct image_info {
    char *name, *tag, *digest, *config_digest;
    image_config config;
    uint64_t size; /* bytes of rootfs.squashfs */
    char **layer_digests;
} image_info;

/* JSON text of manifest.json (caller frees). */
char *image_info_to_json(const image_info *info);
int image_info_from_json(const char *json, image_info *out, hypr_error *err);
void image_info_clear(image_info *info);
#define _cleanup_image_info_ _cleanup_(image_info_clear)

/* ---- cancellation and progress (shared with the daemon thread) ------------- */

typedef enum image_phase {
    IMAGE_PHASE_RESOLVING = 1,
    IMAGE_PHASE_DOWNLOADING = 2,
    IMAGE_PHASE_CONVERTING = 3,
    IMAGE_PHASE_DONE = 4,
} image_phase;

typedef struct image_layer_progress {
    char *digest;
    uint64_t done, total;
    const char *status; /* "waiting", "downloading", "verifying", "done", "exists" */
} image_layer_progress;

/* Written by the pull thread under lock; read by the daemon under lock.
 * notify() is called (from the pull threads) after each change; it must be
 * cheap and thread-safe (uv_async_send). */
typedef struct image_progress {
    pthread_mutex_t lock;
    image_phase phase;
    image_layer_progress *layers;
    size_t n_layers;
    char *message;
    char *digest;
    uint64_t generation; /* bumped on every change */
    atomic_bool cancelled;
    void (*notify)(void *ud);
    void *ud;
} image_progress;

void image_progress_init(image_progress *p, void (*notify)(void *ud), void *ud);
void image_progress_destroy(image_progress *p);
void image_progress_cancel(image_progress *p);
bool image_progress_cancelled(const image_progress *p);
/* Internal updates (thread-safe). */
void image_progress_set_phase(image_progress *p, image_phase phase, const char *message);
void image_progress_set_layers(image_progress *p, const image_descriptor *layers, size_t n);
void image_progress_layer(image_progress *p, size_t i, uint64_t done, const char *status);
void image_progress_set_digest(image_progress *p, const char *digest);

/* ---- layers -> tree -> squashfs (layers.c, squashfs.c) --------------------- */

typedef struct image_tree image_tree;

/* A layer: a file (tar, optionally gzip/zstd compressed) or a buffer. */
typedef struct image_layer_src {
    const char *path;
    const void *data;
    size_t len;
    const char *label;   /* for messages: "layer sha256:ab12.." */
    const char *diff_id; /* "sha256:<hex>" of the uncompressed tar, checked when set */
} image_layer_src;

image_tree *image_tree_new(void);
void image_tree_free(image_tree *t);
DEFINE_CLEANUP_FUNC(image_tree, image_tree_free)
/* Applies layer `index` (layers in order, 0 = bottom) to the tree: whiteouts,
 * opaque directories, hard links, symlinks, devices, ownership, modes, xattrs.
 * Entries that would leave the image (.. escapes, hard links to missing
 * targets, whiteouts of . or ..) fail the layer with INVALID_ARGUMENT; absolute
 * paths and symlinked parents are resolved inside the image root. */
int image_tree_apply_layer(image_tree *t, const image_layer_src *layer, int index,
                           const image_progress *cancel, hypr_error *err);
/* Adds a directory from the host (import): walks it without following symlinks. */
int image_tree_add_directory(image_tree *t, const char *dir, const image_progress *cancel,
                             hypr_error *err);

typedef struct image_tree_stat {
    mode_t mode;
    uid_t uid;
    gid_t gid;
    uint64_t size;
    uint32_t nlink;
    int64_t mtime;
    uint32_t rdev_major, rdev_minor;
    const char *target; /* symlink target (points into the tree) */
    size_t n_children;
    size_t n_xattrs;
} image_tree_stat;

/* Looks a path up ("/" or "" is the root; symlinks not followed). -ENOENT if absent. */
int image_tree_lookup(const image_tree *t, const char *path, image_tree_stat *st);
/* The xattr value of path, or NULL. */
const char *image_tree_xattr(const image_tree *t, const char *path, const char *key, size_t *len);
size_t image_tree_count(const image_tree *t); /* distinct inodes */

/* Applying layers then copies regular files' contents, while each layer is
 * decompressed for its headers, to unlinked temp files in dir (a spill of
 * file data, not an extracted rootfs), and the squashfs writer reads them
 * from there instead of decompressing every layer a second time. */
void image_tree_set_spill_dir(image_tree *t, const char *dir);

/* Writes the tree as a squashfs to out_path, reading file contents again from
 * the layers (the same sources, in the same order, as were applied) or from the
 * host directory that image_tree_add_directory() walked. */
int image_tree_write_squashfs(image_tree *t, const image_layer_src *layers, size_t n_layers,
                              const char *out_path, const image_progress *cancel, hypr_error *err);

/* ---- registry client and pull (registry.c, auth.c, blobs.c, pull.c) -------- */

typedef struct image_pull_opts {
    const char *reference;
    const char *platform;   /* NULL/"" = host */
    const char *data_dir;   /* images under <data_dir>/images, blobs under cache/ */
    char **insecure;        /* registries reached over plain HTTP (NULL-terminated) */
    const char *ca_file;    /* extra CA bundle, may be NULL */
    const char *certs_dir;  /* <dir>/<host[:port]>/ca.crt (+ client.cert/.key) turn TLS on
                               for that registry, loopback included; may be NULL */
    const char *config_dir; /* docker config dir; NULL = $DOCKER_CONFIG or ~/.docker */
    int max_parallel;       /* concurrent blob downloads; 0 = 4 */
    store *db;              /* for the "already present" check */
} image_pull_opts;

/* A finished image that is not registered yet: its directory is a temp dir
 * under <data_dir>/images until image_staged_commit renames it. */
typedef struct image_staged {
    char *tmp_dir;
    image_info info;
    char *final_dir;
    char id[HYPR_ID_LEN + 1];
    bool up_to_date; /* the image was already in the store: nothing to commit */
    store_image existing;
    struct img_blob_pins *pins; /* the pull's layer blobs, held until image_staged_clear */
} image_staged;

/* Resolves, downloads and converts; blocking (run it on a worker thread).
 * The result is staged, not registered. */
int image_pull(const image_pull_opts *o, image_progress *progress, image_staged *out,
               hypr_error *err);
/* Renames the staged dir into place and inserts the images row in one
 * transaction (replacing an older image of the same name:tag). Fills img. */
int image_staged_commit(image_staged *st, store *db, store_image *img, hypr_error *err);
/* Removes the temp dir (cancel / error after staging). */
void image_staged_discard(image_staged *st);
void image_staged_clear(image_staged *st);

/* ---- login check (registry.c) ---------------------------------------------- */

/* The credentials a pull uses come from config.json through the creds module;
 * login only checks them (saving them is the CLI's job). */
typedef struct image_login_opts {
    const char *server; /* a creds_key(), host[:port] or URL; empty = Docker Hub */
    const char *user, *pass;
    char **insecure;              /* registries reached over plain HTTP (NULL-terminated) */
    const char *ca_file;          /* extra CA bundle, may be NULL */
    const char *certs_dir;        /* as in image_pull_opts */
    const image_progress *cancel; /* only its cancel flag is used; may be NULL */
} image_login_opts;

/* Checks credentials against the registry: GET /v2/ with basic auth, or a
 * token from the bearer realm with them, like docker login. A server that is
 * not a host[:port] is INVALID_ARGUMENT, an unreachable one UNAVAILABLE, refused
 * credentials UNAUTHENTICATED ("... unauthorized: ..."). Blocking. */
int image_registry_login(const image_login_opts *o, hypr_error *err);

/* ---- import (import.c) ----------------------------------------------------- */

typedef struct image_import_opts {
    const char *source;    /* tar (optionally compressed) or directory */
    const char *reference; /* name[:tag] */
    const char *data_dir;
    image_config config; /* entrypoint, cmd, env, ... (borrowed) */
} image_import_opts;

int image_import(const image_import_opts *o, image_progress *progress, image_staged *out,
                 hypr_error *err);

/* ---- store (store.c) ------------------------------------------------------- */

/* <data_dir>/images/<name>_<tag> with '/' and ':' made safe (caller frees). */
char *image_store_dir_name(const char *name, const char *tag, const char *digest);
/* Creates <data_dir>/images/.tmp-XXXXXX (caller frees the path). */
int image_store_mktemp(const char *data_dir, char **out, hypr_error *err);
/* Removes .tmp-* leftovers of interrupted pulls and partial blobs; called once
 * at daemon start-up. Returns the number of entries removed. */
int image_store_cleanup(const char *data_dir);
/* store_image_find, then the normalised reference ("busybox" ->
 * docker.io/library/busybox:latest). */
int image_store_find(store *db, const char *ref, store_image *out, hypr_error *err);
/* Deletes the row then the directory. */
int image_store_remove(store *db, const store_image *img, hypr_error *err);
/* Takes img's name and tag away (docker rmi -f of an image a stopped VM uses): it
 * stays, dangling, under images/untagged-<id>, for the VMs that name it by ID. */
int image_store_untag(store *db, const store_image *img, hypr_error *err);
/* Removes an image's directory (blocking: a worker thread's job once the row is
 * gone); a path outside an image store is left alone. 0 or -errno. */
int image_store_remove_dir(const char *path);

/* ---- the blob cache: usage and garbage collection (blob_gc.c) -------------- */

/* One file of <data_dir>/cache/blobs: a layer blob or an unfinished download of one. */
typedef struct image_blob_file {
    char *digest; /* "sha256:<hex>" */
    uint64_t size;
    int64_t mtime; /* unix seconds */
    bool partial;
} image_blob_file;
/* Lists the cache (blocking). A missing cache is an empty one. */
int image_blobs_list(const char *data_dir, image_blob_file **out, size_t *n, hypr_error *err);
void image_blob_files_free(image_blob_file *f, size_t n);
/* Whether a pull in flight holds the blob (thread-safe). */
bool image_blob_held(const char *digest);
/* The layer digests a stored image was made of (its manifest.json); NULL for none. */
char **image_layer_digests(const store_image *img);

/* Removes the blobs no stored image references and no pull holds. Prepare on the
 * thread that owns the store (it snapshots the images' references); run on a
 * worker thread. A pull in flight at prepare, or one that ends between prepare
 * and run, keeps its blobs whatever the snapshot says. */
typedef struct image_blob_gc image_blob_gc;
int image_blob_gc_prepare(store *db, image_blob_gc **out, hypr_error *err);
/* Removes unreferenced blobs and partial downloads last modified before before_s
 * (unix seconds; 0 = any age); *count and *bytes say what went. Blocking. */
int image_blob_gc_run(image_blob_gc *gc, const char *data_dir, int64_t before_s, uint32_t *count,
                      uint64_t *bytes, hypr_error *err);
void image_blob_gc_free(image_blob_gc *gc);
DEFINE_CLEANUP_FUNC(image_blob_gc, image_blob_gc_free)

#endif
