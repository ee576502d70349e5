/* hypr state module: the SQLite store (<data-dir>/hypr.db). No SQL outside it.
 * Every function returns 0 or a negative errno and fills err where given;
 * -ENOENT (status NOT_FOUND) when a record does not exist, -EEXIST
 * (ALREADY_EXISTS) on a duplicate name/ID. Multi-row changes run in one transaction. */
#ifndef HYPR_STATE_H
#define HYPR_STATE_H

#include "common/common.h"

typedef struct store store;

/* Opens (creating if needed) the database: WAL, foreign keys, busy timeout,
 * migrations by PRAGMA user_version applied automatically. */
int store_open(const char *path, store **out, hypr_error *err);
/* Test-only: like store_open but migrates no further than version (1..latest), so
 * tests can build an old schema and check that store_open upgrades it. */
int store_open_at_version(const char *path, int version, store **out, hypr_error *err);
void store_close(store *s);
DEFINE_CLEANUP_FUNC(store, store_close)
int store_schema_version(store *s);
/* The schema version this build migrates to. */
int store_latest_version(void);

/* Runs fn inside one transaction (BEGIN IMMEDIATE .. COMMIT, ROLLBACK on error). */
int store_transaction(store *s, int (*fn)(store *s, void *ud), void *ud, hypr_error *err);

/* ---- settings: key/value strings --------------------------------------- */

typedef struct store_kv {
    char *key;
    char *value;
} store_kv;
void store_kv_free(store_kv *kv, size_t n);

/* -ENOENT when unset. */
int store_setting_get(store *s, const char *key, char **value, hypr_error *err);
/* Sets several settings in one transaction; a NULL value removes that key. */
int store_settings_set(store *s, const store_kv *kv, size_t n, hypr_error *err);
int store_settings_list(store *s, store_kv **out, size_t *n, hypr_error *err);

/* ---- VMs --------------------------------------------------------------- */

typedef struct store_port {
    char *host_ip;
    int host_port;
    int guest_port;
    char *protocol; /* "tcp" or "udp" */
} store_port;

typedef struct store_vm_volume {
    char *source; /* volume name or host path */
    char *target;
    bool read_only;
} store_vm_volume;

typedef struct store_vm {
    char id[HYPR_ID_LEN + 1];
    char *name;
    char *image;    /* reference as given */
    char *image_id; /* may be NULL */
    char *status;   /* "created", "booting", "running", "stopping", "stopped", "failed", ... */
    char *config;   /* opaque serialized VM config (the daemon owns the format) */
    size_t config_len;
    char *ip_address; /* may be NULL */
    char *error;      /* failure reason, may be NULL */
    char *stack;      /* owning stack name, may be NULL */
    int exit_code;
    int pid;
    int restart_count;
    int64_t created_at, started_at, stopped_at; /* unix seconds, 0 = never */
    bool manual_stop; /* the user stopped it (restart policies leave it stopped) */
    store_port *ports;
    size_t n_ports;
    char **networks; /* NULL-terminated network names, may be NULL */
    store_vm_volume *volumes;
    size_t n_volumes;
} store_vm;

void store_vm_clear(store_vm *vm);
void store_vms_free(store_vm *vms, size_t n);
#define _cleanup_store_vm_ _cleanup_(store_vm_clear)

/* Inserts the VM and its ports, networks and volumes in one transaction. */
int store_vm_insert(store *s, const store_vm *vm, hypr_error *err);
/* Replaces every column and link of an existing VM (by id). */
int store_vm_update(store *s, const store_vm *vm, hypr_error *err);
int store_vm_delete(store *s, const char *id, hypr_error *err);
/* By full ID, unique ID prefix, or name. Ambiguous prefix -> -EINVAL
 * (INVALID_ARGUMENT, message says it matches several). */
int store_vm_find(store *s, const char *ref, store_vm *out, hypr_error *err);
int store_vm_list(store *s, store_vm **out, size_t *n, hypr_error *err);

/* ---- images ------------------------------------------------------------ */

typedef struct store_image {
    char id[HYPR_ID_LEN + 1];
    char *name; /* "docker.io/library/busybox" */
    char *tag;
    char *digest;
    char *path;     /* directory in the image store */
    char *manifest; /* manifest.json contents (opaque to the store) */
    uint64_t size_bytes;
    int64_t created_at;
} store_image;

void store_image_clear(store_image *img);
void store_images_free(store_image *imgs, size_t n);
#define _cleanup_store_image_ _cleanup_(store_image_clear)
int store_image_insert(store *s, const store_image *img, hypr_error *err);
int store_image_delete(store *s, const char *id, hypr_error *err);
/* By full ID, unique ID prefix, "name:tag" or "name" (tag latest). */
int store_image_find(store *s, const char *ref, store_image *out, hypr_error *err);
int store_image_list(store *s, store_image **out, size_t *n, hypr_error *err);

/* ---- networks ---------------------------------------------------------- */

typedef struct store_network {
    char id[HYPR_ID_LEN + 1];
    char *name;
    char *driver;
    char *subnet;
    char *gateway;
    char *bridge;
    bool internal;
    char *labels; /* JSON object text, may be NULL */
    int64_t created_at;
} store_network;

void store_network_clear(store_network *n);
void store_networks_free(store_network *nets, size_t n);
#define _cleanup_store_network_ _cleanup_(store_network_clear)
int store_network_insert(store *s, const store_network *net, hypr_error *err);
int store_network_delete(store *s, const char *id, hypr_error *err);
/* By ID, unique prefix or name. */
int store_network_find(store *s, const char *ref, store_network *out, hypr_error *err);
int store_network_list(store *s, store_network **out, size_t *n, hypr_error *err);

/* ---- volumes ----------------------------------------------------------- */

typedef struct store_volume {
    char *name;
    char *driver;
    char *mountpoint;
    char *labels; /* JSON object text, may be NULL */
    char *stack;  /* may be NULL */
    int64_t created_at;
    bool anonymous; /* made for one VM: rm -v and prune without -a remove it */
} store_volume;

void store_volume_clear(store_volume *v);
#define _cleanup_store_volume_ _cleanup_(store_volume_clear)
void store_volumes_free(store_volume *vols, size_t n);
int store_volume_insert(store *s, const store_volume *v, hypr_error *err);
int store_volume_delete(store *s, const char *name, hypr_error *err);
int store_volume_find(store *s, const char *name, store_volume *out, hypr_error *err);
int store_volume_list(store *s, store_volume **out, size_t *n, hypr_error *err);

/* ---- stacks ------------------------------------------------------------ */

typedef struct store_stack {
    char id[HYPR_ID_LEN + 1];
    char *name;
    char *compose; /* compose file text */
    char *status;
    int64_t created_at;
} store_stack;

void store_stack_clear(store_stack *st);
void store_stacks_free(store_stack *sts, size_t n);
int store_stack_insert(store *s, const store_stack *st, hypr_error *err);
int store_stack_delete(store *s, const char *name, hypr_error *err);
int store_stack_find(store *s, const char *ref, store_stack *out, hypr_error *err);
int store_stack_list(store *s, store_stack **out, size_t *n, hypr_error *err);

/* ---- IP allocations (the IPAM's rows) ---------------------------------- */

/* One allocated address of a network; vm_id NULL for a reservation. */
typedef struct store_ip_allocation {
    char *network;
    char *address;
    char *vm_id;
} store_ip_allocation;

void store_ip_allocations_free(store_ip_allocation *a, size_t n);
/* Records address in network for vm_id (may be NULL); -EEXIST (ALREADY_EXISTS)
 * when the address is already allocated there. */
int store_ip_allocate(store *s, const char *network, const char *address, const char *vm_id,
                      hypr_error *err);
/* -ENOENT (NOT_FOUND) when the address is not allocated in network. */
int store_ip_release(store *s, const char *network, const char *address, hypr_error *err);
/* Every allocation of network, ordered by address text. */
int store_ip_list(store *s, const char *network, store_ip_allocation **out, size_t *n,
                  hypr_error *err);
/* Releases every address of vm_id, in network or (network NULL) in every network.
 * released (may be NULL) receives the released rows; none is not an error. */
int store_ip_release_vm(store *s, const char *network, const char *vm_id,
                        store_ip_allocation **released, size_t *n_released, hypr_error *err);

/* ---- counts (GetSystemStats) ------------------------------------------- */

typedef struct store_counts {
    uint32_t vms, vms_running, images, networks, volumes, stacks;
    uint64_t images_size_bytes;
} store_counts;
int store_count(store *s, store_counts *out, hypr_error *err);

#endif
