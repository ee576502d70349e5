/* Unary Health round-trip latency through hypr's own gRPC client (src/rpc).
 *
 *   rpc_latency SOCKET [CALLS [WARMUP]]
 *
 * Connects once, makes WARMUP untimed calls, then CALLS timed calls one after
 * another on the same connection, and prints a JSON summary (microseconds) on
 * stdout. Exit 1 on any failed call. */
#include "common/common.h"
#include "rpc/rpc.h"
#include "hypr.pb-c.h"

#include <string.h>
#include <time.h>

#define HEALTH_PATH "/hypr.v1.HyprService/Health"

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

/* Nearest-rank percentile of a sorted array. */
static double pct_us(const int64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1000.0;
}

static int one_call(rpc_client *c, hypr_error *err)
{
    Hypr__V1__HealthRequest req = HYPR__V1__HEALTH_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int r = rpc_client_unary(c, HEALTH_PATH, &req.base, &hypr__v1__health_response__descriptor,
                             &resp, 10000, err);
    if (r < 0)
        return r;
    Hypr__V1__HealthResponse *h = (Hypr__V1__HealthResponse *)resp;
    if (!h || !h->status || strcmp(h->status, "healthy") != 0) {
        if (resp)
            protobuf_c_message_free_unpacked(resp, NULL);
        return hypr_err(err, HYPR_INTERNAL, EPROTO, "Health did not answer healthy");
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static long parse_count(const char *s, const char *what)
{
    int64_t v;
    if (parse_int64(s, 0, 100000000, &v) < 0) {
        fprintf(stderr, "rpc_latency: bad %s: %s\n", what, s);
        exit(2);
    }
    return (long)v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s SOCKET [CALLS [WARMUP]]\n", argv[0]);
        return 2;
    }
    const char *target = argv[1];
    long calls = argc > 2 ? parse_count(argv[2], "CALLS") : 10000;
    long warmup = argc > 3 ? parse_count(argv[3], "WARMUP") : 200;
    if (calls < 1) {
        fprintf(stderr, "rpc_latency: CALLS must be >= 1\n");
        return 2;
    }

    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    rpc_client *c = NULL;
    if (rpc_client_connect(target, &c, &err) < 0) {
        fprintf(stderr, "rpc_latency: %s\n", err.message ? err.message : "connect failed");
        return 1;
    }

    for (long i = 0; i < warmup; i++) {
        if (one_call(c, &err) < 0) {
            fprintf(stderr, "rpc_latency: warm-up call %ld: %s\n", i,
                    err.message ? err.message : "failed");
            rpc_client_free(c);
            return 1;
        }
    }

    int64_t *lat = xcalloc((size_t)calls, sizeof(*lat));
    int64_t start = now_ns();
    for (long i = 0; i < calls; i++) {
        int64_t t0 = now_ns();
        if (one_call(c, &err) < 0) {
            fprintf(stderr, "rpc_latency: call %ld: %s\n", i, err.message ? err.message : "failed");
            free(lat);
            rpc_client_free(c);
            return 1;
        }
        lat[i] = now_ns() - t0;
    }
    int64_t total = now_ns() - start;
    rpc_client_free(c);

    double sum = 0;
    for (long i = 0; i < calls; i++)
        sum += (double)lat[i];
    qsort(lat, (size_t)calls, sizeof(*lat), cmp_i64);
    size_t n = (size_t)calls;
    printf("{\"client\": \"hypr-c\", \"calls\": %ld, \"warmup\": %ld, "
           "\"min_us\": %.3f, \"mean_us\": %.3f, \"p50_us\": %.3f, \"p90_us\": %.3f, "
           "\"p99_us\": %.3f, \"p999_us\": %.3f, \"max_us\": %.3f, \"calls_per_s\": %.1f}\n",
           calls, warmup, (double)lat[0] / 1000.0, sum / (double)n / 1000.0, pct_us(lat, n, 50),
           pct_us(lat, n, 90), pct_us(lat, n, 99), pct_us(lat, n, 99.9),
           (double)lat[n - 1] / 1000.0, (double)calls * 1e9 / (double)total);
    free(lat);
    return 0;
}
