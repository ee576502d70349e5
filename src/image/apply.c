/* Applying an image's layers: reading a layer's headers means decompressing
 * all of it, so several layers are read ahead on worker threads while the
 * tree is built from them strictly in order on the calling thread. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <string.h>

/* ---- blobs becoming ready ---------------------------------------------------------- */

void img_blob_gate_init(img_blob_gate *g, size_t n)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->ready = xcalloc(n ? n : 1, sizeof(*g->ready));
    g->n = n;
}

void img_blob_gate_destroy(img_blob_gate *g)
{
    free(g->ready);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

void img_blob_gate_ready(img_blob_gate *g, size_t i)
{
    pthread_mutex_lock(&g->lock);
    if (i < g->n)
        g->ready[i] = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

void img_blob_gate_fail(img_blob_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->failed = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

void img_blob_gate_abort(img_blob_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->aborted = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

bool img_blob_gate_aborted(img_blob_gate *g)
{
    pthread_mutex_lock(&g->lock);
    bool a = g->aborted;
    pthread_mutex_unlock(&g->lock);
    return a;
}

int img_blob_gate_wait(img_blob_gate *g, size_t i)
{
    if (!g)
        return 0;
    pthread_mutex_lock(&g->lock);
    while (i < g->n && !g->ready[i] && !g->failed && !g->aborted)
        pthread_cond_wait(&g->cond, &g->lock);
    int r = i < g->n && g->ready[i] ? 0 : -ECANCELED;
    pthread_mutex_unlock(&g->lock);
    return r;
}

/* ---- reading layers ahead ----------------------------------------------------------- */

typedef struct scan_slot {
    img_scan scan;
    hypr_error err;
    int result;
    bool done;
} scan_slot;

typedef struct scan_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const image_layer_src *layers;
    size_t n, next, applied;
    size_t lookahead;
    scan_slot *slots;
    const image_progress *cancel;
    const char *spill_dir;
    img_blob_gate *gate;
    bool stop;
} scan_pool;

static void *scan_worker(void *ud)
{
    scan_pool *p = ud;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        /* Bound the layers held in memory: at most `lookahead` ahead of the applier. */
        while (!p->stop && p->next < p->n && p->next >= p->applied + p->lookahead)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stop || p->next >= p->n)
            break;
        size_t i = p->next++;
        pthread_mutex_unlock(&p->lock);
        scan_slot *s = &p->slots[i];
        hypr_error err = HYPR_ERROR_INIT;
        img_scan scan = {.spill_fd = -1};
        int r = img_blob_gate_wait(p->gate, i);
        if (r < 0)
            r = hypr_err(&err, HYPR_CANCELLED, ECANCELED, "%s: download failed",
                         img_layer_label(&p->layers[i]));
        else
            r = img_layer_scan(&p->layers[i], p->spill_dir, p->cancel, &scan, &err);
        pthread_mutex_lock(&p->lock);
        s->scan = scan;
        s->err = err;
        s->result = r;
        s->done = true;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int img_tree_apply_layers(image_tree *t, const image_layer_src *layers, size_t n,
                          img_blob_gate *gate, const image_progress *cancel, hypr_error *err)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t threads = cpus > 1 ? (size_t)(cpus > 8 ? 8 : cpus) : 1;
    if (threads > n)
        threads = n;
    if (threads <= 1) {
        for (size_t i = 0; i < n; i++) {
            if (img_blob_gate_wait(gate, i) < 0)
                return hypr_err(err, HYPR_CANCELLED, ECANCELED, "%s: download failed",
                                img_layer_label(&layers[i]));
            int r = image_tree_apply_layer(t, &layers[i], (int)i, cancel, err);
            if (r < 0) {
                if (gate)
                    img_blob_gate_abort(gate);
                return r;
            }
        }
        return 0;
    }
    scan_pool p = {.layers = layers,
                   .n = n,
                   .lookahead = threads + 1,
                   .cancel = cancel,
                   .spill_dir = t->spill_dir,
                   .gate = gate};
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    p.slots = xcalloc(n, sizeof(*p.slots));
    for (size_t i = 0; i < n; i++)
        p.slots[i].scan.spill_fd = -1;
    pthread_t *tids = xcalloc(threads, sizeof(*tids));
    size_t started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tids[started], NULL, scan_worker, &p) != 0)
            break;
    int r = 0;
    if (started == 0)
        r = hypr_err(err, HYPR_INTERNAL, EAGAIN, "cannot start layer reader threads");
    for (size_t i = 0; i < n && r >= 0; i++) {
        pthread_mutex_lock(&p.lock);
        while (!p.slots[i].done)
            pthread_cond_wait(&p.cond, &p.lock);
        pthread_mutex_unlock(&p.lock);
        scan_slot *s = &p.slots[i];
        if (s->result < 0) {
            hypr_error_clear(err);
            if (err)
                *err = s->err;
            else
                hypr_error_clear(&s->err);
            memset(&s->err, 0, sizeof(s->err));
            r = s->result;
        } else {
            r = img_tree_apply_scan(t, &s->scan, (int)i, img_layer_label(&layers[i]), err);
        }
        img_scan_free(&s->scan);
        pthread_mutex_lock(&p.lock);
        p.applied = i + 1;
        pthread_cond_broadcast(&p.cond);
        pthread_mutex_unlock(&p.lock);
    }
    if (r < 0 && gate)
        img_blob_gate_abort(gate); /* readers waiting for a blob, and the downloads */
    pthread_mutex_lock(&p.lock);
    p.stop = true;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    for (size_t i = 0; i < n; i++) {
        img_scan_free(&p.slots[i].scan);
        hypr_error_clear(&p.slots[i].err);
    }
    free(p.slots);
    free(tids);
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    return r;
}
