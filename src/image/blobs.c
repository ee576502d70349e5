/* Blob downloads: bounded parallel transfers on one curl multi handle, each
 * streamed to <data>/cache/blobs/sha256/<hex>.partial while its SHA-256 is
 * computed, then renamed into the cache only when the digest matches. Dropped
 * connections, 5xx and 429 (Retry-After) are retried with backoff, resuming
 * with a Range request from the bytes already on disk. Blobs already in the
 * cache (re-hashed on reuse) are not downloaded again. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define MAX_ATTEMPTS 5

bool img_backoff_sleep(const image_progress *cancel, long ms);

/* ---- sha256 --------------------------------------------------------------------------- */

static char *hex_digest(EVP_MD_CTX *ctx)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, md, &n);
    char *out = xmalloc(7 + 2 * n + 1);
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < n; i++) {
        static const char hex[] = "0123456789abcdef";
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[7 + 2 * i + 1] = hex[md[i] & 15];
    }
    out[7 + 2 * n] = '\0';
    return out;
}

char *img_sha256_digest(const void *data, size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        abort();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, data, len);
    char *d = hex_digest(ctx);
    EVP_MD_CTX_free(ctx);
    return d;
}

/* Hashes fd from its start up to len bytes into ctx. */
static int hash_fd(int fd, EVP_MD_CTX *ctx, uint64_t len)
{
    char *buf = xmalloc(256 * 1024);
    uint64_t off = 0;
    int r = 0;
    while (off < len) {
        size_t want = len - off > 256 * 1024 ? 256 * 1024 : (size_t)(len - off);
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : -EIO;
            break;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        off += (uint64_t)n;
    }
    free(buf);
    return r;
}

int img_sha256_file(const char *path, char **digest_out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    int r = hash_fd(fd, ctx, (uint64_t)st.st_size);
    if (r == 0)
        *digest_out = hex_digest(ctx);
    EVP_MD_CTX_free(ctx);
    return r;
}

char *blobs_cache_path(const char *data_dir, const char *digest)
{
    return xasprintf("%s/cache/blobs/sha256/%s", data_dir, digest + strlen("sha256:"));
}

/* ---- transfers ------------------------------------------------------------------------ */

typedef struct xfer {
    blob_job *job;
    char *final_path, *partial_path;
    int fd;
    uint64_t have; /* bytes on disk and hashed */
    EVP_MD_CTX *sha;
    CURL *easy;
    struct curl_slist *headers;
    int attempts;
    int64_t retry_at_ms; /* monotonic; 0 = not waiting */
    bool active, done, reauthed;
    int write_errno;
    long status;
    long retry_after;
    bool range_sent;
    char *www_auth;
} xfer;

typedef struct fetch_ctx {
    registry_client *reg;
    image_progress *progress;
    hypr_error *err;
} fetch_ctx;

static size_t xfer_header(char *line, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    if (n > 5 && !strncmp(line, "HTTP/", 5)) {
        free(x->www_auth);
        x->www_auth = NULL;
        x->retry_after = 0;
        const char *sp = memchr(line, ' ', n);
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        /* A 200 to a Range request restarts the blob from byte 0. */
        if (x->status == 200 && x->have > 0) {
            if (ftruncate(x->fd, 0) == 0) {
                x->have = 0;
                EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
            }
        }
    } else if (n > 17 && !strncasecmp(line, "WWW-Authenticate:", 17)) {
        free(x->www_auth);
        const char *v = line + 17;
        while (*v == ' ')
            v++;
        size_t vl = n - (size_t)(v - line);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        x->www_auth = xstrndup(v, vl);
    } else if (n > 12 && !strncasecmp(line, "Retry-After:", 12)) {
        x->retry_after = strtol(line + 12, NULL, 10);
    }
    return n;
}

static size_t xfer_write(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    /* Error bodies (401/404/5xx) are not blob bytes. */
    if (x->status != 200 && x->status != 206)
        return n;
    if (x->job->size >= 0 && x->have + n > (uint64_t)x->job->size) {
        x->write_errno = EFBIG;
        return 0;
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(x->fd, data + done, n - done, (off_t)(x->have + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            x->write_errno = w < 0 ? errno : ENOSPC;
            return 0;
        }
        done += (size_t)w;
    }
    EVP_DigestUpdate(x->sha, data, n);
    x->have += n;
    return n;
}

static void xfer_start(fetch_ctx *f, xfer *x, CURLM *multi)
{
    if (!x->easy)
        x->easy = curl_easy_init();
    CURL *e = x->easy;
    curl_easy_reset(e);
    curl_slist_free_all(x->headers);
    x->headers = registry_auth_headers(f->reg);
    _cleanup_free_ char *url = registry_blob_url(f->reg, x->job->digest);
    registry_easy_setup(f->reg, e, url, x->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xfer_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, xfer_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    x->range_sent = x->have > 0;
    if (x->have > 0) {
        char range[48];
        snprintf(range, sizeof(range), "%" PRIu64 "-", x->have);
        curl_easy_setopt(e, CURLOPT_RANGE, range);
    }
    x->status = 0;
    x->write_errno = 0;
    x->attempts++;
    x->active = true;
    x->retry_at_ms = 0;
    curl_multi_add_handle(multi, e);
    image_progress_layer(f->progress, x->job->progress_index, x->have, "downloading");
}

/* Opens (or resumes) the partial file. A partial locked by another pull is
 * not shared: this pull downloads into a private one. */
static int xfer_open(fetch_ctx *f, xfer *x)
{
    x->fd = open(x->partial_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (x->fd >= 0 && flock(x->fd, LOCK_EX | LOCK_NB) < 0) {
        close(x->fd);
        free(x->partial_path);
        x->partial_path = xasprintf("%s.partial-%d-%p", x->final_path, (int)getpid(), (void *)x);
        x->fd = open(x->partial_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    }
    if (x->fd < 0)
        return hypr_err(f->err, HYPR_INTERNAL, errno, "create %s: %s", x->partial_path,
                        strerror(errno));
    x->sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
    struct stat st;
    if (fstat(x->fd, &st) == 0 && st.st_size > 0) {
        uint64_t have = (uint64_t)st.st_size;
        if (x->job->size >= 0 && have > (uint64_t)x->job->size)
            have = 0;
        if (have > 0 && hash_fd(x->fd, x->sha, have) < 0)
            have = 0;
        if (have == 0) {
            if (ftruncate(x->fd, 0) < 0)
                return hypr_err(f->err, HYPR_INTERNAL, errno, "truncate %s", x->partial_path);
            EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
        }
        x->have = have;
        if (have)
            log_debug("resuming %s at byte %" PRIu64, x->job->digest, have);
    }
    return 0;
}

static void xfer_close(xfer *x, CURLM *multi, bool remove_partial)
{
    if (x->easy) {
        if (x->active)
            curl_multi_remove_handle(multi, x->easy);
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    x->active = false;
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    if (x->sha)
        EVP_MD_CTX_free(x->sha);
    x->sha = NULL;
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
    if (remove_partial && x->partial_path)
        unlink(x->partial_path);
    free(x->www_auth);
    x->www_auth = NULL;
}

/* The transfer ended: verify, retry or fail. Returns 1 when it will retry. */
static int xfer_finished(fetch_ctx *f, xfer *x, CURLcode cc, CURLM *multi)
{
    curl_multi_remove_handle(multi, x->easy);
    x->active = false;
    const char *d = x->job->digest;
    if (img_cancelled(f->progress))
        return hypr_err(f->err, HYPR_CANCELLED, ECANCELED, "cancelled");
    if (x->write_errno == EFBIG)
        return hypr_err(f->err, HYPR_DATA_LOSS, EFBIG,
                        "layer %s: registry sent more than the %" PRId64 " bytes announced", d,
                        x->job->size);
    if (x->write_errno)
        return hypr_err(
            f->err,
            x->write_errno == ENOSPC || x->write_errno == EDQUOT ? HYPR_RESOURCE_EXHAUSTED
                                                                 : HYPR_INTERNAL,
            x->write_errno, "layer %s: write %s: %s", d, x->partial_path, strerror(x->write_errno));
    bool retry = false;
    long delay = 200L << (x->attempts - 1);
    if (cc == CURLE_OK && x->status == 401 && !x->reauthed && x->www_auth) {
        x->reauthed = true;
        int r = registry_reauth(f->reg, x->www_auth, f->err);
        if (r < 0)
            return hypr_err_prefix(f->err, "layer %s", d);
        x->attempts--; /* not a failure of the registry */
        retry = true;
        delay = 0;
    } else if (cc == CURLE_OK && (x->status == 200 || x->status == 206)) {
        if (x->job->size >= 0 && x->have < (uint64_t)x->job->size) {
            retry = true; /* the connection ended early */
        } else {
            _cleanup_free_ char *got = hex_digest(x->sha);
            if (strcmp(got, d)) {
                xfer_close(x, multi, true);
                return hypr_err(f->err, HYPR_DATA_LOSS, EBADMSG,
                                "layer %s: digest mismatch (the registry sent %s)", d, got);
            }
            /* No fsync: a blob that a power loss damaged is caught by the re-hash
             * on reuse (blobs_fetch), and only the squashfs has to be durable. */
            if (rename(x->partial_path, x->final_path) < 0) {
                int e = errno;
                return hypr_err(f->err, e == ENOSPC ? HYPR_RESOURCE_EXHAUSTED : HYPR_INTERNAL, e,
                                "layer %s: store %s: %s", d, x->final_path, strerror(e));
            }
            x->done = true;
            {
                double t_conn = 0, t_start = 0, t_total = 0;
                curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME, &t_conn);
                curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME, &t_start);
                curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &t_total);
                log_debug("blob %.19s: %" PRIu64
                          " bytes, connect %.1f ms, first byte %.1f ms, total %.1f ms",
                          d, x->have, t_conn * 1e3, t_start * 1e3, t_total * 1e3);
            }
            x->job->path = xstrdup(x->final_path);
            image_progress_layer(f->progress, x->job->progress_index, x->have, "done");
            xfer_close(x, multi, false);
            return 0;
        }
    } else if (cc == CURLE_OK && x->status == 416 && x->range_sent) {
        /* Our partial is stale or complete beyond what the server has: restart. */
        if (ftruncate(x->fd, 0) == 0) {
            x->have = 0;
            EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
        }
        retry = true;
    } else if (cc == CURLE_OK && (x->status >= 500 || x->status == 429)) {
        retry = true;
        if (x->retry_after > 0)
            delay = (x->retry_after > 30 ? 30 : x->retry_after) * 1000;
    } else if (cc == CURLE_OK) {
        if (x->status == 404)
            return hypr_err(f->err, HYPR_NOT_FOUND, ENOENT, "layer %s: blob not found in %s", d,
                            registry_host(f->reg));
        if (x->status == 401 || x->status == 403)
            return hypr_err(f->err, HYPR_UNAUTHENTICATED, EACCES,
                            "layer %s: access denied (HTTP %ld)", d, x->status);
        return hypr_err(f->err, HYPR_UNAVAILABLE, EIO, "layer %s: registry answered HTTP %ld", d,
                        x->status);
    } else {
        retry = true; /* transport error: dropped connection, timeout, ... */
    }
    if (!retry)
        return 0;
    if (x->attempts >= MAX_ATTEMPTS) {
        if (cc != CURLE_OK)
            return hypr_err(f->err, HYPR_UNAVAILABLE, EIO,
                            "layer %s: download failed after %d attempts: %s (%" PRIu64
                            " of %" PRId64 " bytes)",
                            d, x->attempts, curl_easy_strerror(cc), x->have, x->job->size);
        return hypr_err(f->err, HYPR_UNAVAILABLE, EIO,
                        "layer %s: download failed after %d attempts (HTTP %ld, %" PRIu64
                        " of %" PRId64 " bytes)",
                        d, x->attempts, x->status, x->have, x->job->size);
    }
    log_debug("layer %s: %s, retry %d in %ld ms from byte %" PRIu64, d,
              cc != CURLE_OK ? curl_easy_strerror(cc) : "incomplete", x->attempts, delay, x->have);
    x->retry_at_ms = time_monotonic_ms() + delay;
    image_progress_layer(f->progress, x->job->progress_index, x->have, "waiting");
    return 1;
}

/* Every job naming this digest (an image may list a blob twice) can be read. */
static void gate_ready_digest(img_blob_gate *gate, const blob_job *jobs, size_t n,
                              const char *digest)
{
    for (size_t i = 0; gate && i < n; i++)
        if (!strcmp(jobs[i].digest, digest))
            img_blob_gate_ready(gate, i);
}

static int fetch_all(registry_client *reg, const char *data_dir, blob_job *jobs, size_t n,
                     int max_parallel, img_blob_gate *gate, image_progress *progress,
                     hypr_error *err)
{
    _cleanup_free_ char *dir = xasprintf("%s/cache/blobs/sha256", data_dir);
    int r = mkdir_p(dir, 0700);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "create %s: %s", dir, strerror(-r));
    fetch_ctx f = {.reg = reg, .progress = progress, .err = err};
    xfer *xs = xcalloc(n ? n : 1, sizeof(*xs));
    size_t pending = 0;
    int64_t reported_ms = 0;
    for (size_t i = 0; i < n; i++) {
        xfer *x = &xs[i];
        x->job = &jobs[i];
        x->fd = -1;
        x->final_path = blobs_cache_path(data_dir, jobs[i].digest);
        struct stat st;
        bool dup = false;
        for (size_t k = 0; k < i; k++)
            dup = dup || !strcmp(jobs[k].digest, jobs[i].digest);
        _cleanup_free_ char *cached = NULL;
        if (stat(x->final_path, &st) == 0 &&
            (jobs[i].size < 0 || (uint64_t)st.st_size == (uint64_t)jobs[i].size) &&
            img_sha256_file(x->final_path, &cached) == 0 && !strcmp(cached, jobs[i].digest)) {
            x->done = true;
            jobs[i].path = xstrdup(x->final_path);
            image_progress_layer(progress, jobs[i].progress_index, (uint64_t)st.st_size, "exists");
            if (gate)
                img_blob_gate_ready(gate, i);
            continue;
        }
        if (dup) {
            x->done = true; /* the same blob twice in one image: fetched once */
            jobs[i].path = xstrdup(x->final_path);
            continue;
        }
        x->partial_path = xasprintf("%s.partial", x->final_path);
        pending++;
    }
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)(max_parallel > 0 ? max_parallel : 4));
    int limit = max_parallel > 0 ? max_parallel : 4;
    r = 0;
    while (pending > 0 && r >= 0) {
        if (img_cancelled(progress) || (gate && img_blob_gate_aborted(gate))) {
            r = hypr_err(err, HYPR_CANCELLED, ECANCELED, "cancelled");
            break;
        }
        int active = 0;
        for (size_t i = 0; i < n; i++)
            active += xs[i].active;
        int64_t now = time_monotonic_ms();
        for (size_t i = 0; i < n && active < limit && r >= 0; i++) {
            xfer *x = &xs[i];
            if (x->done || x->active || (x->retry_at_ms && x->retry_at_ms > now))
                continue;
            if (x->fd < 0 && (r = xfer_open(&f, x)) < 0)
                break;
            xfer_start(&f, x, multi);
            active++;
        }
        if (r < 0)
            break;
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            xfer *x;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            int fr = xfer_finished(&f, x, m->data.result, multi);
            if (fr < 0) {
                r = fr;
                break;
            }
            if (fr == 0 && x->done) {
                pending--;
                gate_ready_digest(gate, jobs, n, x->job->digest);
            }
        }
        if (r < 0 || pending == 0)
            break; /* not one more poll: it would sleep its whole timeout */
        int64_t wait_ms = 100;
        /* Progress at most every 50 ms (the daemon forwards it every 100 ms): not a
         * lock and a wake-up of the daemon's loop per received chunk. */
        bool report = now - reported_ms >= 50;
        if (report)
            reported_ms = now;
        for (size_t i = 0; i < n; i++) {
            if (xs[i].active && report)
                image_progress_layer(progress, xs[i].job->progress_index, xs[i].have,
                                     "downloading");
            else if (!xs[i].active && !xs[i].done && xs[i].retry_at_ms &&
                     xs[i].retry_at_ms - now < wait_ms)
                wait_ms = xs[i].retry_at_ms > now ? xs[i].retry_at_ms - now : 0;
        }
        curl_multi_poll(multi, NULL, 0, (int)wait_ms, NULL);
    }
    if (r >= 0 && img_cancelled(progress))
        r = hypr_err(err, HYPR_CANCELLED, ECANCELED, "cancelled");
    for (size_t i = 0; i < n; i++) {
        /* Keep a partial that can be resumed by the next pull, unless it is garbage. */
        xfer_close(&xs[i], multi, false);
        free(xs[i].final_path);
        free(xs[i].partial_path);
    }
    curl_multi_cleanup(multi);
    free(xs);
    return r;
}

int blobs_fetch(registry_client *reg, const char *data_dir, blob_job *jobs, size_t n,
                int max_parallel, img_blob_gate *gate, image_progress *progress, hypr_error *err)
{
    int r = fetch_all(reg, data_dir, jobs, n, max_parallel, gate, progress, err);
    if (r < 0 && gate)
        img_blob_gate_fail(gate);
    for (size_t i = 0; r >= 0 && gate && i < n; i++)
        img_blob_gate_ready(gate, i);
    return r;
}
