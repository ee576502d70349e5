/* Port-forward proxy: the proxy runs on a libuv loop in its own thread; targets
 * are plain-socket servers on threads; clients are blocking sockets in the test.
 * Everything stays on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common/common.h"
#include "net/net.h"

/* ---- the proxy's loop on a thread -------------------------------------------- */

enum { CMD_NONE, CMD_SNAPSHOT, CMD_UDP_IDLE_150MS, CMD_STOP };

typedef struct env {
    uv_loop_t loop;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    net_proxy *proxy;
    int cmd;
    bool done;
    net_proxy_stats stats;
    size_t conns;
} env;

static void env_async_cb(uv_async_t *a)
{
    env *e = a->data;
    pthread_mutex_lock(&e->mu);
    if (e->cmd == CMD_SNAPSHOT) {
        net_proxy_get_stats(e->proxy, &e->stats);
        e->conns = net_proxy_connections(e->proxy);
    } else if (e->cmd == CMD_UDP_IDLE_150MS) {
        net_proxy_set_udp_idle(e->proxy, 150);
    } else if (e->cmd == CMD_STOP) {
        net_proxy_stop(e->proxy);
        e->proxy = NULL;
        uv_close((uv_handle_t *)&e->async, NULL);
    }
    e->cmd = CMD_NONE;
    e->done = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void *env_thread(void *arg)
{
    env *e = arg;
    uv_run(&e->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void env_cmd(env *e, int cmd)
{
    pthread_mutex_lock(&e->mu);
    e->cmd = cmd;
    e->done = false;
    uv_async_send(&e->async);
    while (!e->done)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

static uint16_t env_start(env *e, const char *proto, uint16_t target_port)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_async_init(&e->loop, &e->async, env_async_cb);
    e->async.data = e;
    net_forward fwd = {proto, "127.0.0.1", 0, "127.0.0.1", target_port};
    hypr_error err = HYPR_ERROR_INIT;
    int r = net_proxy_start(&e->loop, &fwd, &e->proxy, &err);
    if (r < 0)
        fail_msg("net_proxy_start: %s", err.message);
    assert_int_equal(pthread_create(&e->thread, NULL, env_thread, e), 0);
    return net_proxy_port(e->proxy);
}

static void env_snapshot(env *e)
{
    env_cmd(e, CMD_SNAPSHOT);
}

/* Waits (bounded) until the proxy reports want connections. */
static void env_wait_conns(env *e, size_t want)
{
    for (int i = 0; i < 500; i++) {
        env_snapshot(e);
        if (e->conns == want)
            return;
        usleep(10 * 1000);
    }
    fail_msg("proxy has %zu connections, want %zu", e->conns, want);
}

/* Waits (bounded) until a stalled reader has stalled the proxy: it relayed bytes,
 * then relayed no more over several snapshots (its reads stopped for backpressure). */
static void env_wait_stalled(env *e)
{
    uint64_t last = 0;
    int still = 0;
    for (int i = 0; i < 1000 && still < 5; i++) {
        env_snapshot(e);
        still = e->stats.bytes_relayed > 0 && e->stats.bytes_relayed == last ? still + 1 : 0;
        last = e->stats.bytes_relayed;
        usleep(20 * 1000);
    }
    if (still < 5)
        fail_msg("the proxy never stalled (relayed %llu bytes and counting)",
                 (unsigned long long)last);
}

static void env_stop(env *e)
{
    env_cmd(e, CMD_STOP);
    pthread_join(e->thread, NULL);
    /* Every handle of the proxy is closed (and freed: ASan checks). */
    assert_int_equal(uv_loop_close(&e->loop), 0);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
}

/* ---- target servers ------------------------------------------------------------ */

enum { SRV_ECHO, SRV_REPLY_AFTER_EOF, SRV_SOURCE };

#define MAX_HANDLERS   256
#define REPLY_SIZE     (1024 * 1024)
#define SOURCE_SIZE    (32 * 1024 * 1024)
#define IO_TIMEOUT_SEC 20

typedef struct server {
    int mode;
    int fd;
    uint16_t port;
    atomic_bool stop;
    pthread_t acceptor;
    pthread_t handlers[MAX_HANDLERS];
    atomic_int n_handlers;
    atomic_ullong received;
    atomic_ullong checksum; /* sum over connections */
} server;

typedef struct handler_arg {
    server *s;
    int fd;
} handler_arg;

static uint64_t sum_update(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void set_timeouts(int fd)
{
    struct timeval tv = {IO_TIMEOUT_SEC, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void *handler_thread(void *arg)
{
    handler_arg *h = arg;
    server *s = h->s;
    int fd = h->fd;
    free(h);
    set_timeouts(fd);
    char *buf = xmalloc(65536);
    uint64_t sum = 1469598103934665603ull, total = 0;
    if (s->mode == SRV_SOURCE) {
        for (size_t off = 0; off < SOURCE_SIZE; off += 65536) {
            for (size_t i = 0; i < 65536; i++)
                buf[i] = (char)pattern(off + i);
            if (!write_all(fd, buf, 65536))
                break;
        }
    } else {
        for (;;) {
            ssize_t n = recv(fd, buf, 65536, 0);
            if (n <= 0)
                break;
            total += (uint64_t)n;
            sum = sum_update(sum, (uint8_t *)buf, (size_t)n);
            if (s->mode == SRV_ECHO && !write_all(fd, buf, (size_t)n))
                break;
        }
        atomic_fetch_add(&s->received, total);
        atomic_fetch_add(&s->checksum, sum);
        if (s->mode == SRV_REPLY_AFTER_EOF) {
            uint64_t be = total;
            write_all(fd, &be, sizeof(be));
            for (size_t off = 0; off < REPLY_SIZE; off += 65536) {
                for (size_t i = 0; i < 65536; i++)
                    buf[i] = (char)pattern(off + i);
                if (!write_all(fd, buf, 65536))
                    break;
            }
        }
    }
    shutdown(fd, SHUT_WR);
    close(fd);
    free(buf);
    return NULL;
}

static void *acceptor_thread(void *arg)
{
    server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {s->fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        int i = atomic_load(&s->n_handlers);
        if (i >= MAX_HANDLERS) {
            close(fd);
            continue;
        }
        handler_arg *h = xmalloc(sizeof(*h));
        h->s = s;
        h->fd = fd;
        pthread_create(&s->handlers[i], NULL, handler_thread, h);
        atomic_store(&s->n_handlers, i + 1);
    }
    return NULL;
}

static int listen_any(int type, uint16_t *port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    if (type == SOCK_STREAM)
        assert_int_equal(listen(fd, 512), 0);
    socklen_t len = sizeof(sin);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    *port = ntohs(sin.sin_port);
    return fd;
}

static void server_start(server *s, int mode)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->fd = listen_any(SOCK_STREAM, &s->port);
    assert_int_equal(pthread_create(&s->acceptor, NULL, acceptor_thread, s), 0);
}

static void server_stop(server *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->acceptor, NULL);
    for (int i = 0; i < atomic_load(&s->n_handlers); i++)
        pthread_join(s->handlers[i], NULL);
    close(s->fd);
}

static int client_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    set_timeouts(fd);
    struct sockaddr_in sin = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static bool read_exact(int fd, void *data, size_t len)
{
    char *p = data;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* 0: orderly EOF; -errno: reset or timeout. */
static int read_until_closed(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0)
            return 0;
        if (n < 0)
            return -errno;
    }
}

/* ---- TCP ------------------------------------------------------------------------ */

static void test_tcp_echo(void **state)
{
    server s;
    server_start(&s, SRV_ECHO);
    env e;
    uint16_t port = env_start(&e, "tcp", s.port);
    int fd = client_connect(port);
    assert_true(write_all(fd, "hello, guest", 12));
    char buf[12];
    assert_true(read_exact(fd, buf, sizeof(buf)));
    assert_memory_equal(buf, "hello, guest", 12);
    env_wait_conns(&e, 1);
    close(fd);
    env_wait_conns(&e, 0);
    env_stop(&e);
    server_stop(&s);
}

#define BIG_SIZE (10 * 1024 * 1024)

typedef struct sender {
    int fd;
    uint64_t sum;
} sender;

static void *sender_thread(void *arg)
{
    sender *snd = arg;
    char *buf = xmalloc(65536);
    uint64_t sum = 1469598103934665603ull;
    for (size_t off = 0; off < BIG_SIZE; off += 65536) {
        for (size_t i = 0; i < 65536; i++)
            buf[i] = (char)(pattern(off + i) ^ (uint8_t)(off >> 16));
        sum = sum_update(sum, (uint8_t *)buf, 65536);
        if (!write_all(snd->fd, buf, 65536))
            break;
    }
    shutdown(snd->fd, SHUT_WR);
    snd->sum = sum;
    free(buf);
    return NULL;
}

static void test_tcp_10mb_identical(void **state)
{
    server s;
    server_start(&s, SRV_ECHO);
    env e;
    uint16_t port = env_start(&e, "tcp", s.port);
    int fd = client_connect(port);
    sender snd = {fd, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sender_thread, &snd), 0);
    char *buf = xmalloc(65536);
    uint64_t sum = 1469598103934665603ull, total = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, 65536, 0);
        if (n <= 0) {
            assert_int_equal(n, 0);
            break;
        }
        total += (uint64_t)n;
        sum = sum_update(sum, (uint8_t *)buf, (size_t)n);
    }
    pthread_join(t, NULL);
    free(buf);
    close(fd);
    assert_int_equal(total, BIG_SIZE);
    assert_int_equal(sum, snd.sum);
    env_wait_conns(&e, 0);
    server_stop(&s);
    assert_int_equal(atomic_load(&s.received), BIG_SIZE);
    assert_int_equal(atomic_load(&s.checksum), snd.sum);
    env_snapshot(&e);
    assert_true(e.stats.bytes_relayed >= 2ull * BIG_SIZE);
    assert_int_equal(e.stats.queued, 0);
    env_stop(&e);
}

/* Both directions at once through an echo server, with a reader that stalls:
 * the stall must propagate (client reader -> proxy -> echo server -> proxy ->
 * client writer) without the proxy holding more than a bounded amount, and every
 * byte must arrive intact both ways. */
static void test_tcp_both_ways_slow_reader(void **state)
{
    server s;
    server_start(&s, SRV_ECHO);
    env e;
    uint16_t port = env_start(&e, "tcp", s.port);
    int fd = client_connect(port);
    sender snd = {fd, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sender_thread, &snd), 0);
    env_wait_stalled(&e);
    const size_t bound = 2 * (NET_PROXY_HIGH_WATER + 64 * 1024); /* per direction */
    print_message("stalled echo: proxy queue %zu bytes (bound %zu)\n", e.stats.queued, bound);
    if (e.stats.queued > bound)
        fail_msg("proxy queued %zu bytes for a stalled reader (bound %zu)", e.stats.queued, bound);
    char *buf = xmalloc(65536);
    uint64_t sum = 1469598103934665603ull, total = 0;
    for (int i = 0;; i++) {
        ssize_t n = recv(fd, buf, i < 200 ? 1024 : 65536, 0);
        if (n <= 0) {
            assert_int_equal(n, 0);
            break;
        }
        total += (uint64_t)n;
        sum = sum_update(sum, (uint8_t *)buf, (size_t)n);
        if (i < 200 && i % 20 == 0)
            usleep(10 * 1000);
    }
    pthread_join(t, NULL);
    free(buf);
    close(fd);
    assert_int_equal(total, BIG_SIZE);
    assert_int_equal(sum, snd.sum);
    env_wait_conns(&e, 0);
    server_stop(&s);
    assert_int_equal(atomic_load(&s.received), BIG_SIZE);
    assert_int_equal(atomic_load(&s.checksum), snd.sum);
    env_snapshot(&e);
    if (e.stats.queued_peak > bound)
        fail_msg("proxy peak queue %zu bytes (bound %zu)", e.stats.queued_peak, bound);
    assert_int_equal(e.stats.queued, 0);
    assert_true(e.stats.bytes_relayed >= 2ull * BIG_SIZE);
    env_stop(&e);
}

#define N_CONCURRENT 100

static void test_tcp_100_concurrent(void **state)
{
    server s;
    server_start(&s, SRV_ECHO);
    env e;
    uint16_t port = env_start(&e, "tcp", s.port);
    int fds[N_CONCURRENT];
    for (int i = 0; i < N_CONCURRENT; i++)
        fds[i] = client_connect(port);
    char out[8192], in[8192];
    for (int i = 0; i < N_CONCURRENT; i++) {
        memset(out, 'a' + i % 26, sizeof(out));
        snprintf(out, sizeof(out), "connection %d", i);
        assert_true(write_all(fds[i], out, sizeof(out)));
    }
    env_wait_conns(&e, N_CONCURRENT);
    for (int i = 0; i < N_CONCURRENT; i++) {
        memset(out, 'a' + i % 26, sizeof(out));
        snprintf(out, sizeof(out), "connection %d", i);
        assert_true(read_exact(fds[i], in, sizeof(in)));
        assert_memory_equal(in, out, sizeof(out));
        shutdown(fds[i], SHUT_WR);
    }
    for (int i = 0; i < N_CONCURRENT; i++) {
        assert_int_equal(read_until_closed(fds[i]), 0);
        close(fds[i]);
    }
    env_wait_conns(&e, 0);
    env_stop(&e);
    server_stop(&s);
    assert_int_equal(atomic_load(&s.received), (unsigned long long)N_CONCURRENT * sizeof(out));
}

static void test_tcp_half_close(void **state)
{
    server s;
    server_start(&s, SRV_REPLY_AFTER_EOF);
    env e;
    uint16_t port = env_start(&e, "tcp", s.port);
    int fd = client_connect(port);
    char *buf = xcalloc(1, 100000);
    assert_true(write_all(fd, buf, 100000));
    /* The server replies only once it has seen our EOF through the proxy. */
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    uint64_t count = 0;
    assert_true(read_exact(fd, &count, sizeof(count)));
    assert_int_equal(count, 100000);
    char *reply = xmalloc(REPLY_SIZE);
    assert_true(read_exact(fd, reply, REPLY_SIZE));
    for (size_t i = 0; i < REPLY_SIZE; i++)
        if ((uint8_t)reply[i] != pattern(i))
            fail_msg("reply byte %zu differs", i);
    assert_int_equal(read_until_closed(fd), 0);
    close(fd);
    free(reply);
    free(buf);
    env_wait_conns(&e, 0);
    env_stop(&e);
    server_stop(&s);
}

static void test_tcp_backpressure(void **state)
{
    server s;
    server_start(&s, SRV_SOURCE);
    env e;
    uint16_t port = env_start(&e, "tcp", s.port);
    int fd = client_connect(port);
    /* A slow reader: nothing until the proxy stalls, then small reads with pauses. */
    env_wait_stalled(&e);
    const size_t bound = NET_PROXY_HIGH_WATER + 64 * 1024;
    print_message("stalled reader: proxy queue %zu bytes (bound %zu)\n", e.stats.queued, bound);
    /* The proxy did queue (the reader really stalled it), but only up to the bound. */
    assert_true(e.stats.queued > 0);
    if (e.stats.queued > bound)
        fail_msg("proxy queued %zu bytes for a stalled reader (bound %zu)", e.stats.queued, bound);
    char *buf = xmalloc(65536);
    size_t total = 0;
    for (int i = 0; i < 10; i++) {
        ssize_t n = recv(fd, buf, 4096, 0);
        assert_true(n > 0);
        total += (size_t)n;
        usleep(20 * 1000);
    }
    for (;;) {
        ssize_t n = recv(fd, buf, 65536, 0);
        if (n <= 0) {
            assert_int_equal(n, 0);
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if ((uint8_t)buf[i] != pattern(total + (size_t)i))
                fail_msg("byte %zu differs", total + (size_t)i);
        total += (size_t)n;
    }
    assert_int_equal(total, SOURCE_SIZE);
    close(fd);
    free(buf);
    env_wait_conns(&e, 0);
    env_snapshot(&e);
    if (e.stats.queued_peak > bound)
        fail_msg("proxy peak queue %zu bytes (bound %zu)", e.stats.queued_peak, bound);
    assert_true(e.stats.bytes_relayed >= SOURCE_SIZE);
    env_stop(&e);
    server_stop(&s);
}

static void test_tcp_target_down(void **state)
{
    uint16_t dead_port;
    int tmp = listen_any(SOCK_DGRAM, &dead_port); /* a TCP port nobody listens on */
    env e;
    uint16_t port = env_start(&e, "tcp", dead_port);
    int fd = client_connect(port);
    int r = read_until_closed(fd);
    if (r != 0 && r != -ECONNRESET)
        fail_msg("client not closed: %s", strerror(-r));
    close(fd);
    env_wait_conns(&e, 0);
    env_stop(&e);
    close(tmp);
}

static void assert_start_fails(const char *proto, const char *host_ip, uint16_t host_port,
                               hypr_status status, const char *want)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    net_forward fwd = {proto, host_ip, host_port, "127.0.0.1", 9};
    net_proxy *p = (net_proxy *)&loop;
    hypr_error err = HYPR_ERROR_INIT;
    assert_true(net_proxy_start(&loop, &fwd, &p, &err) < 0);
    assert_null(p);
    assert_int_equal(err.status, status);
    if (!strstr(err.message, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err.message, want);
    hypr_error_clear(&err);
    uv_run(&loop, UV_RUN_DEFAULT); /* runs the close callbacks that free */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_port_in_use(void **state)
{
    uint16_t port;
    int fd = listen_any(SOCK_STREAM, &port);
    char want[64];
    snprintf(want, sizeof(want), "host port 127.0.0.1:%u/tcp is already in use", port);
    assert_start_fails("tcp", "127.0.0.1", port, HYPR_FAILED_PRECONDITION, want);
    close(fd);

    fd = listen_any(SOCK_DGRAM, &port);
    snprintf(want, sizeof(want), "host port 127.0.0.1:%u/udp is already in use", port);
    assert_start_fails("udp", "127.0.0.1", port, HYPR_FAILED_PRECONDITION, want);
    close(fd);

    assert_start_fails("sctp", "127.0.0.1", 8080, HYPR_INVALID_ARGUMENT, "sctp");
    assert_start_fails("tcp", "127.0.0.300", 8080, HYPR_INVALID_ARGUMENT, "127.0.0.300");
}

static void test_stop_with_open_connections(void **state)
{
    server echo, source;
    server_start(&echo, SRV_ECHO);
    server_start(&source, SRV_SOURCE);
    env e1, e2;
    uint16_t p1 = env_start(&e1, "tcp", echo.port);
    uint16_t p2 = env_start(&e2, "tcp", source.port);
    int fds[20];
    for (int i = 0; i < 10; i++) {
        fds[i] = client_connect(p1);
        assert_true(write_all(fds[i], "ping", 4));
        char buf[4];
        assert_true(read_exact(fds[i], buf, 4));
    }
    for (int i = 10; i < 20; i++)
        fds[i] = client_connect(p2); /* data in flight, queues full */
    env_wait_conns(&e1, 10);
    env_wait_conns(&e2, 10);
    usleep(100 * 1000);
    env_stop(&e1);
    env_stop(&e2);
    for (int i = 0; i < 20; i++) {
        int r = read_until_closed(fds[i]);
        if (r != 0 && r != -ECONNRESET)
            fail_msg("client %d not closed: %s", i, strerror(-r));
        close(fds[i]);
    }
    server_stop(&echo);
    server_stop(&source);
}

/* ---- UDP ------------------------------------------------------------------------ */

typedef struct udp_server {
    int fd;
    uint16_t port;
    atomic_bool stop;
    pthread_t thread;
} udp_server;

/* Replies "echo:" + the datagram to its sender. */
static void *udp_server_thread(void *arg)
{
    udp_server *u = arg;
    while (!atomic_load(&u->stop)) {
        struct pollfd pfd = {u->fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        char buf[2048];
        memcpy(buf, "echo:", 5);
        struct sockaddr_storage from;
        socklen_t len = sizeof(from);
        ssize_t n = recvfrom(u->fd, buf + 5, sizeof(buf) - 5, 0, (struct sockaddr *)&from, &len);
        if (n < 0)
            continue;
        sendto(u->fd, buf, (size_t)n + 5, 0, (struct sockaddr *)&from, len);
    }
    return NULL;
}

static int udp_client(void)
{
    uint16_t unused;
    int fd = listen_any(SOCK_DGRAM, &unused);
    set_timeouts(fd);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void udp_roundtrip(int fd, uint16_t port, const char *msg)
{
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof(to)),
                     (ssize_t)strlen(msg));
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    if (n < 0)
        fail_msg("no UDP reply for \"%s\": %s", msg, strerror(errno));
    buf[n] = '\0';
    char want[256];
    snprintf(want, sizeof(want), "echo:%s", msg);
    assert_string_equal(buf, want);
}

static void test_udp_two_clients(void **state)
{
    udp_server u = {0};
    u.fd = listen_any(SOCK_DGRAM, &u.port);
    assert_int_equal(pthread_create(&u.thread, NULL, udp_server_thread, &u), 0);
    env e;
    uint16_t port = env_start(&e, "udp", u.port);
    int a = udp_client(), b = udp_client();
    for (int i = 0; i < 20; i++) {
        char msg[64];
        snprintf(msg, sizeof(msg), "client A #%d", i);
        udp_roundtrip(a, port, msg);
        snprintf(msg, sizeof(msg), "client B #%d", i);
        udp_roundtrip(b, port, msg);
    }
    env_wait_conns(&e, 2);
    close(a);
    close(b);
    env_stop(&e);
    atomic_store(&u.stop, true);
    pthread_join(u.thread, NULL);
    close(u.fd);
}

static void test_udp_idle_expiry(void **state)
{
    udp_server u = {0};
    u.fd = listen_any(SOCK_DGRAM, &u.port);
    assert_int_equal(pthread_create(&u.thread, NULL, udp_server_thread, &u), 0);
    env e;
    uint16_t port = env_start(&e, "udp", u.port);
    env_cmd(&e, CMD_UDP_IDLE_150MS);
    int a = udp_client();
    udp_roundtrip(a, port, "one");
    env_snapshot(&e);
    assert_int_equal(e.conns, 1);
    env_wait_conns(&e, 0);         /* expired */
    udp_roundtrip(a, port, "two"); /* a new flow */
    env_snapshot(&e);
    assert_int_equal(e.conns, 1);
    close(a);
    env_stop(&e);
    atomic_store(&u.stop, true);
    pthread_join(u.thread, NULL);
    close(u.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_echo),
        cmocka_unit_test(test_tcp_10mb_identical),
        cmocka_unit_test(test_tcp_both_ways_slow_reader),
        cmocka_unit_test(test_tcp_100_concurrent),
        cmocka_unit_test(test_tcp_half_close),
        cmocka_unit_test(test_tcp_backpressure),
        cmocka_unit_test(test_tcp_target_down),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_stop_with_open_connections),
        cmocka_unit_test(test_udp_two_clients),
        cmocka_unit_test(test_udp_idle_expiry),
    };
    int failed = cmocka_run_group_tests_name("splice relay", tests, NULL, NULL);
    /* The userspace-copy fallback (used where pipes or splice are unavailable)
     * must keep every behaviour too. */
    setenv("HYPR_PROXY_SPLICE", "0", 1);
    failed += cmocka_run_group_tests_name("copy relay", tests, NULL, NULL);
    return failed;
}
