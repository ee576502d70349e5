/* Applying an image's layers: reading a layer's headers means decompressing
 * all of it, so several layers are read ahead on worker threads while the
 * tree is built from them strictly in order on the calling thread. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <string.h>

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
        img_scan scan;
        int r = img_layer_scan(&p->layers[i], p->spill_dir, p->cancel, &scan, &err);
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
                          const image_progress *cancel, hypr_error *err)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t threads = cpus > 1 ? (size_t)(cpus > 8 ? 8 : cpus) : 1;
    if (threads > n)
        threads = n;
    if (threads <= 1) {
        for (size_t i = 0; i < n; i++) {
            int r = image_tree_apply_layer(t, &layers[i], (int)i, cancel, err);
            if (r < 0)
                return r;
        }
        return 0;
    }
    scan_pool p = {.layers = layers,
                   .n = n,
                   .lookahead = threads + 1,
                   .cancel = cancel,
                   .spill_dir = t->spill_dir};
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
