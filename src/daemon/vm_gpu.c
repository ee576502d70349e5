/* GPU passthrough for the VM lifecycle: which devices a VM's GpuRequest takes
 * (checked at create and again at each start), handing them to vfio-pci before
 * the hypervisor starts and back to their drivers once it is gone.
 *
 * Who holds a device is what the claims say: <run-dir>/<id>.gpu lists the
 * devices a VM holds and the drivers they go back to (gpu_claim_format). It is
 * written before the first sysfs write and removed only once every device is
 * back, so a hyprd that dies in between finds it at its next start and gives
 * the devices back then (vm_gpu_release_orphans). Binding and giving back run
 * on the thread pool (a driver's probe may take seconds), one at a time. */
#define LOG_MODULE "vm"
#include "vm_internal.h"

#include <dirent.h>
#include <string.h>

#define CLAIM_SUFFIX ".gpu"

struct vm_gpu_state {
    pthread_mutex_t lock; /* claims and sysfs writes: one VM at a time */
    gpu_ids *ids;         /* pci.ids, read at the first ListGpus */
};

void vm_gpu_init(daemon_ctx *d)
{
    d->gpu = xcalloc(1, sizeof(*d->gpu));
    pthread_mutex_init(&d->gpu->lock, NULL);
    d->gpu->ids = gpu_ids_new(NULL);
}

void vm_gpu_free(daemon_ctx *d)
{
    if (!d->gpu)
        return;
    gpu_ids_free(d->gpu->ids);
    pthread_mutex_destroy(&d->gpu->lock);
    free(d->gpu);
    d->gpu = NULL;
}

gpu_ids *vm_gpu_ids(daemon_ctx *d)
{
    return d->gpu->ids;
}

bool vm_gpu_file_is_claim(const char *name)
{
    return str_endswith(name, CLAIM_SUFFIX);
}

/* ---- claims ------------------------------------------------------------------------ */

static char *claim_path(daemon_ctx *d, const char *id)
{
    return xasprintf("%s/%s" CLAIM_SUFFIX, d->run_dir, id);
}

/* -ENOENT when the VM has no claim. */
static int claim_read(daemon_ctx *d, const char *id, gpu_claim *out, hypr_error *err)
{
    _cleanup_free_ char *path = claim_path(d, id);
    _cleanup_free_ char *text = NULL;
    int r = read_file(path, 1 << 16, &text, NULL);
    if (r == -ENOENT)
        return r;
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "read %s: %s", path, strerror(-r));
    r = gpu_claim_parse(text, out, err);
    return r < 0 ? hypr_err_prefix(err, "%s", path) : 0;
}

void vm_gpu_claims_load(daemon_ctx *d, vm_gpu_claims *out)
{
    *out = (vm_gpu_claims){0};
    DIR *dir = opendir(d->run_dir);
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        size_t len = strlen(de->d_name);
        if (len != HYPR_ID_LEN + strlen(CLAIM_SUFFIX) || !vm_gpu_file_is_claim(de->d_name))
            continue;
        char id[HYPR_ID_LEN + 1];
        memcpy(id, de->d_name, HYPR_ID_LEN);
        id[HYPR_ID_LEN] = '\0';
        gpu_claim c = {0};
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (!id_is_valid(id) || claim_read(d, id, &c, &err) < 0) {
            if (err.message)
                log_warn("ignoring GPU claim: %s", err.message);
            continue;
        }
        out->items = xrealloc(out->items, (out->n + 1) * sizeof(*out->items));
        memcpy(out->items[out->n].id, id, sizeof(id));
        out->items[out->n++].claim = c;
    }
    if (dir)
        closedir(dir);
}

void vm_gpu_claims_clear(vm_gpu_claims *c)
{
    for (size_t i = 0; i < c->n; i++)
        gpu_claim_clear(&c->items[i].claim);
    free(c->items);
    *c = (vm_gpu_claims){0};
}

const char *vm_gpu_claims_holder(const vm_gpu_claims *c, const char *address, const char *except)
{
    for (size_t i = 0; i < c->n; i++)
        if ((!except || strcmp(c->items[i].id, except) != 0) &&
            gpu_claim_has(&c->items[i].claim, address))
            return c->items[i].id;
    return NULL;
}

/* ---- what a request takes ----------------------------------------------------------- */

static bool wants_gpu(const Hypr__V1__VMConfig *cfg)
{
    return cfg->gpu && (!str_empty(cfg->gpu->pci_address) || !str_empty(cfg->gpu->vendor));
}

/* gpu_request.held_by: the name of the other VM holding a device. */
typedef struct holder_lookup {
    daemon_ctx *d;
    const vm_gpu_claims *claims;
    const char *self; /* the VM asking (its own claim does not count); may be NULL */
    char *name;       /* the last answer */
} holder_lookup;

static const char *held_by(void *ud, const char *address)
{
    holder_lookup *h = ud;
    const char *id = vm_gpu_claims_holder(h->claims, address, h->self);
    if (!id)
        return NULL;
    _cleanup_store_vm_ store_vm rec = {0};
    free(h->name);
    h->name = store_vm_find(h->d->db, id, &rec, NULL) == 0
                  ? xasprintf("%s (%.12s)", rec.name, id)
                  : xasprintf("%.12s (removed, its GPUs not given back yet)", id);
    return h->name;
}

static int select_devices(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, const char *self,
                          char ***out, hypr_error *err)
{
    _cleanup_gpu_list_ gpu_list l = {0};
    int r = gpu_scan(NULL, NULL, &l, err);
    if (r < 0)
        return r;
    vm_gpu_claims claims;
    vm_gpu_claims_load(d, &claims);
    holder_lookup h = {.d = d, .claims = &claims, .self = self};
    gpu_request req = {
        .address = cfg->gpu->pci_address,
        .vendor = cfg->gpu->vendor,
        .force = cfg->gpu->force,
        .held_by = held_by,
        .ud = &h,
    };
    r = gpu_select(&l, &req, out, err);
    free(h.name);
    vm_gpu_claims_clear(&claims);
    return r;
}

int vm_gpu_check(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    if (!wants_gpu(cfg))
        return 0;
    _cleanup_strv_ char **devices = NULL;
    return select_devices(d, cfg, NULL, &devices, err);
}

int vm_gpu_select(daemon_ctx *d, const char *id, const Hypr__V1__VMConfig *cfg,
                  const vmm_adapter *adapter, char ***out, hypr_error *err)
{
    *out = NULL;
    if (!wants_gpu(cfg))
        return 0;
    if (!adapter->ops->pci_passthrough)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EOPNOTSUPP,
                        "hypervisor %s cannot pass GPUs through: set the hypervisor to qemu or "
                        "cloud-hypervisor ('hypr system settings set hypervisor=qemu')",
                        adapter->ops->name);
    return select_devices(d, cfg, id, out, err);
}

/* ---- taking the devices (thread pool) ------------------------------------------------- */

/* Keeps the devices an earlier claim of this VM still holds (a run hyprd did not
 * finish) so they are given back too. */
static void keep_earlier(gpu_claim *c, const gpu_claim *earlier)
{
    for (size_t i = 0; i < earlier->n; i++) {
        if (gpu_claim_has(c, earlier->items[i].address))
            continue;
        const gpu_binding *b = &earlier->items[i];
        c->items = xrealloc(c->items, (c->n + 1) * sizeof(*c->items));
        c->items[c->n++] =
            (gpu_binding){xstrdup(b->address), b->driver ? xstrdup(b->driver) : NULL};
    }
}

static int take_locked(vm_runtime *vm, hypr_error *err)
{
    daemon_ctx *d = vm->d;
    vm_gpu_claims claims;
    vm_gpu_claims_load(d, &claims);
    const gpu_claim *earlier = NULL;
    int r = 0;
    for (size_t i = 0; i < claims.n; i++)
        if (strcmp(claims.items[i].id, vm->id) == 0)
            earlier = &claims.items[i].claim;
    /* Another start may have taken a device since this one was checked. */
    for (char **a = vm->gpus; *a && r == 0; a++) {
        const char *holder = vm_gpu_claims_holder(&claims, *a, vm->id);
        if (holder)
            r = hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY, "GPU %s is in use by VM %.12s", *a,
                         holder);
    }
    _cleanup_gpu_claim_ gpu_claim c = {0};
    if (r == 0)
        r = gpu_claim_plan(NULL, vm->gpus, earlier, &c, err);
    if (r == 0 && earlier)
        keep_earlier(&c, earlier);
    vm_gpu_claims_clear(&claims);
    if (r < 0)
        return r;
    /* On disk before sysfs changes: whatever happens next, the way back is known. */
    _cleanup_free_ char *path = claim_path(d, vm->id);
    _cleanup_free_ char *text = gpu_claim_format(&c);
    r = write_file_atomic(path, text, strlen(text), 0600);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "record the VM's GPUs in %s: %s", path,
                        strerror(-r));
    r = gpu_bind(NULL, &c, err);
    if (r >= 0)
        r = gpu_check_vfio(NULL, &c, NULL, err);
    return r;
}

int vm_gpu_take(vm_runtime *vm, hypr_error *err)
{
    pthread_mutex_lock(&vm->d->gpu->lock);
    int r = take_locked(vm, err);
    pthread_mutex_unlock(&vm->d->gpu->lock);
    return r < 0 ? hypr_err_prefix(err, "GPU passthrough") : 0;
}

/* ---- giving them back ------------------------------------------------------------------- */

/* Under the lock: the claim's devices back to their drivers, then the claim goes. */
static int give_back_locked(daemon_ctx *d, const char *id, hypr_error *err)
{
    _cleanup_gpu_claim_ gpu_claim c = {0};
    int r = claim_read(d, id, &c, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    r = gpu_release(NULL, &c, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = claim_path(d, id);
    if (unlink(path) < 0 && errno != ENOENT)
        return hypr_err(err, HYPR_INTERNAL, errno, "remove %s: %s", path, strerror(errno));
    return 0;
}

typedef struct give_back_work {
    uv_work_t req;
    vm_runtime *vm;
    bool failed;
    void (*then)(vm_runtime *vm, bool failed);
    int r;
    hypr_error err;
} give_back_work;

static void give_back_run(uv_work_t *req)
{
    give_back_work *w = req->data;
    pthread_mutex_lock(&w->vm->d->gpu->lock);
    w->r = give_back_locked(w->vm->d, w->vm->id, &w->err);
    pthread_mutex_unlock(&w->vm->d->gpu->lock);
}

static void give_back_done(uv_work_t *req, int status)
{
    give_back_work *w = req->data;
    vm_runtime *vm = w->vm;
    vm->handles_open--;
    /* Nobody waits on this to answer: this is the top for its error. */
    if (w->r < 0)
        log_error("VM %s: giving its GPUs back failed (hyprd tries again when it next starts): "
                  "%s",
                  vm->name, w->err.message);
    w->then(vm, w->failed);
    hypr_error_clear(&w->err);
    free(w);
}

bool vm_gpu_give_back(vm_runtime *vm, bool failed, void (*then)(vm_runtime *vm, bool failed))
{
    _cleanup_free_ char *path = claim_path(vm->d, vm->id);
    if (access(path, F_OK) < 0)
        return false;
    give_back_work *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->vm = vm;
    w->failed = failed;
    w->then = then;
    vm->handles_open++;
    uv_queue_work(vm->d->loop, &w->req, give_back_run, give_back_done);
    return true;
}

void vm_gpu_release_orphans(daemon_ctx *d)
{
    vm_gpu_claims claims;
    vm_gpu_claims_load(d, &claims);
    pthread_mutex_lock(&d->gpu->lock);
    for (size_t i = 0; i < claims.n; i++) {
        const char *id = claims.items[i].id;
        if (vm_runtime_find(d, id))
            continue; /* re-adopted: it still uses them */
        log_info("giving back the GPUs of VM %.12s, which ended while hyprd was away", id);
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (give_back_locked(d, id, &err) < 0)
            log_error("VM %.12s: giving its GPUs back failed: %s", id, err.message);
    }
    pthread_mutex_unlock(&d->gpu->lock);
    vm_gpu_claims_clear(&claims);
}
