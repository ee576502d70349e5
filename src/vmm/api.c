/* Blocking unix-socket I/O with deadlines, and a minimal HTTP/1.1 client for
 * the cloud-hypervisor and firecracker API sockets. */
#define LOG_MODULE "vmm"

#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "vmm/vmm-private.h"

#define HTTP_MAX_RESPONSE (4u << 20)

static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        /* Past the deadline, still take what is ready now. */
        int64_t left = deadline_ms - time_monotonic_ms();
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r > 0)
            return 0;
        if (left <= 0)
            return -ETIMEDOUT;
    }
}

int vmm_write_all(int fd, const void *data, size_t len, int64_t deadline_ms)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            int r = wait_fd(fd, POLLOUT, deadline_ms);
            if (r < 0)
                return r;
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t vmm_read_some(int fd, void *buf, size_t len, int64_t deadline_ms)
{
    /* poll, then read: works for sockets and pipes, blocking or not. */
    for (;;) {
        int r = wait_fd(fd, POLLIN, deadline_ms);
        if (r < 0)
            return r;
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
    }
}

int vmm_unix_connect(const char *path, int timeout_ms, hypr_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, ENAMETOOLONG, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int64_t deadline = time_monotonic_ms() + timeout_ms;
    for (;;) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return hypr_err(err, HYPR_INTERNAL, errno, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return TAKE_FD(fd);
        int e = errno;
        /* The hypervisor creates its socket a moment after it starts. */
        bool retry = e == ENOENT || e == ECONNREFUSED || e == EAGAIN || e == EINTR;
        if (!retry || time_monotonic_ms() >= deadline)
            return hypr_err(err, HYPR_UNAVAILABLE, e, "connect %s: %s", path, strerror(e));
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void vmm_api_request_clear(vmm_api_request *r)
{
    free(r->path);
    free(r->body);
    *r = (vmm_api_request){0};
}

void vmm_api_request_set(vmm_api_request *r, const char *method, const char *path, json_t *body)
{
    r->method = method;
    r->path = xstrdup(path);
    r->body = NULL;
    if (body) {
        r->body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        if (!r->body) {
            fprintf(stderr, "hypr: out of memory\n");
            abort();
        }
        json_decref(body);
    }
}

void vmm_api_requests_free(vmm_api_request *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        vmm_api_request_clear(&reqs[i]);
    free(reqs);
}

static const char *find_header_end(const char *data, size_t len)
{
    const char *p = memmem(data, len, "\r\n\r\n", 4);
    return p ? p + 4 : NULL;
}

int vmm_http_parse_response(const char *data, size_t len, bool eof, int *status, size_t *body_off,
                            size_t *body_len)
{
    const char *hend = find_header_end(data, len);
    if (!hend)
        return eof ? -EBADMSG : -EAGAIN;
    if (len < 12 || strncmp(data, "HTTP/1.", 7) != 0 || data[8] != ' ')
        return -EBADMSG;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (data[i] < '0' || data[i] > '9')
            return -EBADMSG;
        code = code * 10 + (data[i] - '0');
    }
    *status = code;
    size_t hoff = (size_t)(hend - data);
    /* Headers: look for Content-Length and chunked encoding (not supported). */
    long long clen = -1;
    const char *line = memchr(data, '\n', hoff);
    while (line && (size_t)(line + 1 - data) < hoff) {
        line++;
        const char *eol = memchr(line, '\n', hoff - (size_t)(line - data));
        if (!eol)
            break;
        size_t l = (size_t)(eol - line);
        if (l > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            clen = 0;
            for (size_t i = 15; i < l; i++) {
                char c = line[i];
                if (c == ' ' || c == '\t' || c == '\r')
                    continue;
                if (c < '0' || c > '9' || clen > (long long)HTTP_MAX_RESPONSE)
                    return -EBADMSG;
                clen = clen * 10 + (c - '0');
            }
        } else if (l > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0) {
            return -EPROTONOSUPPORT;
        }
        line = eol;
    }
    *body_off = hoff;
    if (code == 204 || code == 304 || (code >= 100 && code < 200))
        clen = 0;
    if (clen >= 0) {
        if (len - hoff < (size_t)clen)
            return eof ? -EBADMSG : -EAGAIN;
        *body_len = (size_t)clen;
        return 0;
    }
    if (!eof)
        return -EAGAIN;
    *body_len = len - hoff;
    return 0;
}

/* A short message from an error body: firecracker's {"fault_message": ..},
 * or the body itself (cloud-hypervisor answers plain text). */
static char *error_message(const char *body, size_t len)
{
    if (len == 0)
        return xstrdup("no details");
    json_error_t jerr;
    _cleanup_json_ json_t *j = json_loadb(body, len, 0, &jerr);
    const char *fm = j ? json_string_value(json_object_get(j, "fault_message")) : NULL;
    if (fm)
        return xstrdup(fm);
    size_t n = len > 512 ? 512 : len;
    while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
        n--;
    return xstrndup(body, n);
}

int vmm_http_request(const char *socket_path, const vmm_api_request *req, int timeout_ms,
                     int *status, char **resp_body, hypr_error *err)
{
    int64_t deadline = time_monotonic_ms() + timeout_ms;
    _cleanup_close_ int fd = vmm_unix_connect(socket_path, timeout_ms, err);
    if (fd < 0)
        return fd;

    size_t blen = req->body ? strlen(req->body) : 0;
    _cleanup_buf_ hypr_buf out = {0};
    buf_printf(&out, "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n",
               req->method, req->path);
    if (req->body)
        buf_printf(&out, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    else if (strcmp(req->method, "GET") != 0)
        buf_puts(&out, "Content-Length: 0\r\n");
    buf_puts(&out, "Connection: close\r\n\r\n");
    if (req->body)
        buf_append(&out, req->body, blen);
    int r = vmm_write_all(fd, out.data, out.len, deadline);
    if (r < 0)
        return hypr_err(err, HYPR_UNAVAILABLE, -r, "%s %s: send: %s", req->method, req->path,
                        strerror(-r));

    _cleanup_buf_ hypr_buf in = {0};
    int code = 0;
    size_t boff = 0, bl = 0;
    bool eof = false;
    for (;;) {
        r = vmm_http_parse_response(in.data ? in.data : "", in.len, eof, &code, &boff, &bl);
        if (r == 0)
            break;
        if (r != -EAGAIN)
            return hypr_err(err, HYPR_INTERNAL, -r, "%s %s: malformed HTTP response", req->method,
                            req->path);
        if (in.len > HTTP_MAX_RESPONSE)
            return hypr_err(err, HYPR_INTERNAL, EFBIG, "%s %s: response too large", req->method,
                            req->path);
        buf_reserve(&in, 4096);
        ssize_t n = vmm_read_some(fd, in.data + in.len, 4096, deadline);
        if (n < 0)
            return hypr_err(err, n == -ETIMEDOUT ? HYPR_DEADLINE_EXCEEDED : HYPR_UNAVAILABLE,
                            (int)-n, "%s %s: %s", req->method, req->path, strerror((int)-n));
        if (n == 0)
            eof = true;
        in.len += (size_t)n;
        in.data[in.len] = '\0';
    }
    if (status)
        *status = code;
    log_debug("%s %s %s -> %d", socket_path, req->method, req->path, code);
    if (code < 200 || code > 299) {
        _cleanup_free_ char *msg = error_message(in.data + boff, bl);
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EIO, "%s %s: HTTP %d: %s", req->method,
                        req->path, code, msg);
    }
    if (resp_body)
        *resp_body = xstrndup(in.data + boff, bl);
    return 0;
}

int vmm_api_send_all(const char *socket_path, const vmm_api_request *reqs, size_t n, int timeout_ms,
                     hypr_error *err)
{
    int64_t deadline = time_monotonic_ms() + timeout_ms;
    for (size_t i = 0; i < n; i++) {
        int64_t left = deadline - time_monotonic_ms();
        if (left < 1)
            left = 1;
        int r = vmm_http_request(socket_path, &reqs[i], (int)left, NULL, NULL, err);
        if (r < 0)
            return r;
    }
    return 0;
}
