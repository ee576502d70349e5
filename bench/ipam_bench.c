/* P9: time per IPAM allocation at 100 and at 65,000 allocated addresses, in memory
 * and with persistence through a temporary store.
 *
 *   ipam_bench [SAMPLES]
 *
 * For each fill level N and mode, fills a /16 to N addresses, then times SAMPLES
 * release+allocate pairs around that level (the allocation alone is timed: it is
 * the lowest free address, which the release just made a low one, the worst case
 * for a scan that starts at a hint is a release high up, so both are sampled).
 * Prints a JSON summary (nanoseconds per allocation) on stdout. */
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "net/net.h"
#include "state/state.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, hypr_error *err)
{
    fprintf(stderr, "ipam_bench: %s: %s\n", what, err->message ? err->message : "failed");
    exit(1);
}

/* Prints one result object: median, p99 and mean ns per allocation. */
static void measure(const char *mode, size_t fill, store *st, size_t samples, bool first)
{
    hypr_error err = HYPR_ERROR_INIT;
    _cleanup_free_ char *name = xasprintf("bench-%s-%zu", mode, fill);
    ipam *ip = NULL;
    if (ipam_new(name, "10.88.0.0/16", NULL, st, &ip, &err) < 0)
        die("create", &err);
    uint32_t a;
    int64_t t0 = now_ns();
    for (size_t i = 0; i < fill; i++)
        if (ipam_allocate(ip, "vm", NULL, &a, &err) < 0)
            die("fill", &err);
    int64_t fill_ns = now_ns() - t0;
    int64_t *t = xcalloc(samples, sizeof(*t));
    uint32_t base = 0x0a580002;
    for (size_t i = 0; i < samples; i++) {
        /* Alternate low and high victims inside the filled range. */
        uint32_t victim = base + (uint32_t)((i % 2 ? fill - 1 - (i * 31) % fill : (i * 17) % fill));
        if (ipam_release(ip, victim, &err) < 0)
            die("release", &err);
        int64_t s = now_ns();
        if (ipam_allocate(ip, "vm", NULL, &a, &err) < 0)
            die("allocate", &err);
        t[i] = now_ns() - s;
        if (a != victim)
            die("allocate returned another address", &err);
    }
    qsort(t, samples, sizeof(*t), cmp_i64);
    double sum = 0;
    for (size_t i = 0; i < samples; i++)
        sum += (double)t[i];
    printf("%s    {\"mode\": \"%s\", \"allocated\": %zu, \"samples\": %zu, \"median_ns\": %" PRId64
           ", \"p99_ns\": %" PRId64 ", \"mean_ns\": %.0f, \"fill_ns_per_alloc\": %.0f}",
           first ? "" : ",\n", mode, fill, samples, t[samples / 2], t[samples * 99 / 100],
           sum / (double)samples, (double)fill_ns / (double)fill);
    free(t);
    ipam_free(ip);
}

int main(int argc, char **argv)
{
    hypr_log_init("error");
    int64_t samples = 2000;
    if (argc > 1 && parse_int64(argv[1], 10, 10000000, &samples) < 0) {
        fprintf(stderr, "usage: ipam_bench [SAMPLES]\n");
        return 2;
    }
    char dir[] = "/tmp/hypr-ipam-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    _cleanup_free_ char *path = path_join(dir, "hypr.db");
    hypr_error err = HYPR_ERROR_INIT;
    store *st = NULL;
    if (store_open(path, &st, &err) < 0)
        die("open store", &err);
    printf("{\"benchmark\": \"ipam_allocate\", \"results\": [\n");
    size_t fills[] = {100, 65000};
    bool first = true;
    for (size_t i = 0; i < ARRAY_SIZE(fills); i++) {
        measure("memory", fills[i], NULL, (size_t)samples, first);
        first = false;
        measure("store", fills[i], st, (size_t)samples, first);
    }
    printf("\n]}\n");
    store_close(st);
    rm_rf(dir);
    return 0;
}
