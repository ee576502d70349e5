/* The volume store (volstore.c): volume records and their directories
 * (<data-dir>/volumes/local/<name>), who uses them, and the mounts a VM config
 * asks for, resolved against them when the VM is created. The mounts a start
 * attaches (shares, virtiofsd, the writable layer) are vm_mounts.c's. */
#ifndef HYPR_DAEMON_VOLSTORE_H
#define HYPR_DAEMON_VOLSTORE_H

#include "daemon.h"

/* <data-dir>/volumes/local/<name>; caller frees. */
char *volstore_dir(daemon_ctx *d, const char *name);
/* Creates a volume (a record and an empty directory), or finds it when the name
 * is taken (Docker's `volume create` of an existing name answers with it):
 * *created says which. name NULL or "" = a generated 64-hex name. */
int volstore_create(daemon_ctx *d, const char *name, const char *labels_json, bool anonymous,
                    store_volume *out, bool *created, hypr_error *err);
/* The names of the VM records whose config mounts the volume (NULL: none);
 * running ones count in *running. */
int volstore_users(daemon_ctx *d, const char *name, char ***vm_names, size_t *running,
                   hypr_error *err);
/* Removes a volume nobody uses: FAILED_PRECONDITION naming the VMs when one does
 * (force: only stopped VMs may still name it). The record goes now and its
 * directory is moved aside to *trash (NULL when it had none), which the caller
 * removes on the pool (volume_dir_remove) or hands to volstore_trash_remove. */
int volstore_delete(daemon_ctx *d, const char *name, bool force, char **trash, hypr_error *err);
/* Removes the trash directories (NULL-terminated, taken) on the pool. */
void volstore_trash_remove(daemon_ctx *d, char **trash);
/* CreateVM: checks every mount of cfg (INVALID_ARGUMENT / NOT_FOUND naming the
 * value, nothing created), then creates the named volumes that are missing,
 * anonymous ones (also for each image VOLUME nothing else is mounted on) and the
 * missing sources of -v binds; cfg's mounts are rewritten to name them. */
int volstore_prepare_mounts(daemon_ctx *d, Hypr__V1__VMConfig *cfg, const store_image *img,
                            hypr_error *err);
/* A VM's record is gone: with remove_anonymous (rm -v, --rm) its anonymous
 * volumes that no other VM uses go too. */
void volstore_vm_removed(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, bool remove_anonymous);

#endif
