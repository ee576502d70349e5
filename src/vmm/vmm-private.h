/* Internals shared by the vmm module's files and its unit tests; not for other modules. */
#ifndef HYPR_VMM_PRIVATE_H
#define HYPR_VMM_PRIVATE_H

#include "common/json_cleanup.h"
#include "vmm/vmm.h"

#define VMM_KVM_BOOT_TIMEOUT_MS 15000
/* A TCG boot of a distribution kernel takes ~3 s on an idle machine; leave
 * room for a loaded one. */
#define VMM_TCG_BOOT_TIMEOUT_MS 90000

extern const vmm_adapter_ops vmm_qemu_ops;
extern const vmm_adapter_ops vmm_cloud_hypervisor_ops;
extern const vmm_adapter_ops vmm_firecracker_ops;

/* ---- argv and command line helpers (adapter.c) -------------------------- */

void argv_add(char ***argv, const char *s);
void argv_addf(char ***argv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Validates the fields every adapter needs; fills err naming the bad one. */
int vmm_config_check(const vmm_config *cfg, hypr_error *err);
/* Starts a command: argv = {binary_path}, stdout_path = console path. */
void vmm_command_init(const vmm_adapter *a, const vmm_config *cfg, vmm_command *cmd);
/* Kernel command line: the adapter's base arguments, the control-channel hint
 * and then cfg->cmdline. Never "quiet" (a TCG boot was seen to stall with it). */
char *vmm_kernel_cmdline(const vmm_config *cfg, const char *base, bool vsock);
/* Unlinks <run-dir>/<id><suffix> for each suffix; missing files are fine. */
int vmm_remove_vm_files(const vmm_config *cfg, const char *const *suffixes, size_t n,
                        hypr_error *err);
/* ops->kill for every adapter: SIGKILL; an exited process is not an error. */
int vmm_op_kill(const vmm_adapter *a, const vmm_config *cfg, pid_t pid, hypr_error *err);
/* ops->control_path with hybrid vsock: <run-dir>/<id>.vsock_<VMM_CONTROL_VSOCK_PORT>. */
char *vmm_hybrid_vsock_control_path(const vmm_adapter *a, const vmm_config *cfg);
uint32_t vmm_guest_cid(const vmm_config *cfg);
/* cfg->console_log, else <run-dir>/<id>.log: every adapter's console_path. */
char *vmm_console_path(const vmm_adapter *a, const vmm_config *cfg);
/* Disk i of the VM: 0 is the rootfs ("root", read-only), then cfg->disks as
 * "disk1", "disk2"... The id is also the disk's serial where supported. */
typedef struct vmm_disk_info {
    char id[16];
    const char *path;
    bool readonly;
} vmm_disk_info;
size_t vmm_disk_count(const vmm_config *cfg);
void vmm_disk_at(const vmm_config *cfg, size_t i, vmm_disk_info *out);
/* Searches path_env (":"-separated) for an executable; NULL when not found. */
char *vmm_find_in_path(const char *name, const char *path_env);

/* ---- blocking socket I/O with deadlines (api.c) ------------------------- */

/* Connects to a unix stream socket, retrying while it does not exist yet or
 * refuses connections, until timeout_ms passes. Returns the fd. */
int vmm_unix_connect(const char *path, int timeout_ms, hypr_error *err);
/* deadline: time_monotonic_ms() value. */
int vmm_write_all(int fd, const void *data, size_t len, int64_t deadline_ms);
/* Reads what is available (waits until deadline); 0 = EOF. */
ssize_t vmm_read_some(int fd, void *buf, size_t len, int64_t deadline_ms);

/* One REST request to a hypervisor API socket. */
typedef struct vmm_api_request {
    const char *method;
    char *path;
    char *body; /* JSON text or NULL */
} vmm_api_request;
void vmm_api_request_clear(vmm_api_request *r);
/* Fills r; takes ownership of body (a json_t, may be NULL). */
void vmm_api_request_set(vmm_api_request *r, const char *method, const char *path, json_t *body);
/* HTTP/1.1 over a unix socket. A non-2xx answer is an error carrying the body's
 * message. resp_body may be NULL. */
int vmm_http_request(const char *socket_path, const vmm_api_request *req, int timeout_ms,
                     int *status, char **resp_body, hypr_error *err);
/* Sends each request in order, stopping at the first failure. */
int vmm_api_send_all(const char *socket_path, const vmm_api_request *reqs, size_t n, int timeout_ms,
                     hypr_error *err);
/* Parses a complete HTTP response in data[0..len). Returns -EAGAIN when more
 * bytes are needed, 0 when complete (body_off/body_len set). */
int vmm_http_parse_response(const char *data, size_t len, bool eof, int *status, size_t *body_off,
                            size_t *body_len);

/* ---- QMP (qmp.c) -------------------------------------------------------- */

/* Connects, reads the greeting, negotiates capabilities, runs one command and
 * returns its "return" value (new reference) in *ret (may be NULL). */
int qmp_execute(const char *socket_path, const char *command, int timeout_ms, json_t **ret,
                hypr_error *err);

/* ---- request builders --------------------------------------------------- */

int ch_request_create(const vmm_config *cfg, vmm_api_request *out, hypr_error *err);
/* "vm.boot", "vm.shutdown", "vm.power-button", "vm.delete", "vmm.shutdown". */
void ch_request_action(const char *action, vmm_api_request *out);
/* The configuration requests before InstanceStart, in order. */
int fc_requests_configure(const vmm_config *cfg, vmm_api_request **out, size_t *n, hypr_error *err);
void fc_request_action(const char *action_type, vmm_api_request *out);
void vmm_api_requests_free(vmm_api_request *reqs, size_t n);

/* ---- kernel images (kernel.c) ------------------------------------------- */

/* Finds the compressed payload inside a bzImage (gzip, xz, zstd, lzma) and
 * decompresses it; the result must be an ELF file. */
int vmm_kernel_decompress(const void *image, size_t len, hypr_buf *out, hypr_error *err);
/* The version in a bzImage's setup header, or in an ELF vmlinux's banner. */
char *vmm_kernel_image_version(const void *image, size_t len);
bool vmm_is_elf(const void *data, size_t len);

/* ---- cpio and modules (initramfs.c) ------------------------------------- */

typedef struct cpio_writer {
    hypr_buf *out;
    uint32_t next_ino;
} cpio_writer;
void cpio_init(cpio_writer *w, hypr_buf *out);
void cpio_add_dir(cpio_writer *w, const char *path, mode_t perm);
void cpio_add_file(cpio_writer *w, const char *path, mode_t perm, const void *data, size_t len);
void cpio_add_symlink(cpio_writer *w, const char *path, const char *target);
void cpio_finish(cpio_writer *w);

/* The module names the guest needs (NULL-terminated). */
extern const char *const vmm_guest_modules[];
/* Resolves wanted module names against <modules_dir>/modules.dep (and
 * modules.builtin for built-in ones) into the closure of module files
 * (paths relative to modules_dir), dependencies first. */
int vmm_modules_resolve(const char *modules_dir, const char *const *wanted, char ***out_paths,
                        hypr_error *err);
/* Reads a module file, decompressing .ko.xz / .ko.zst / .ko.gz. */
int vmm_module_read(const char *path, hypr_buf *out, hypr_error *err);
/* Decompresses a whole gzip/xz/zstd stream (format from its magic). */
int vmm_decompress_stream(const void *data, size_t len, hypr_buf *out, hypr_error *err);

#endif
