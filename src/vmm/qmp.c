/* A small QMP client: one connection per command, newline-delimited JSON. */
#define LOG_MODULE "vmm"

#include <string.h>

#include "vmm/vmm-private.h"

#define QMP_MAX_LINE (1u << 20)

typedef struct qmp_conn {
    int fd;
    hypr_buf in;
    int64_t deadline;
    const char *path;
} qmp_conn;

/* Reads the next JSON message; *msg = NULL on EOF. */
static int qmp_read_message(qmp_conn *c, json_t **msg, hypr_error *err)
{
    *msg = NULL;
    for (;;) {
        char *nl = c->in.len ? memchr(c->in.data, '\n', c->in.len) : NULL;
        if (nl) {
            size_t l = (size_t)(nl - c->in.data);
            json_error_t jerr;
            json_t *j = json_loadb(c->in.data, l, 0, &jerr);
            buf_consume(&c->in, l + 1);
            if (!j)
                return hypr_err(err, HYPR_INTERNAL, EBADMSG, "qmp %s: bad JSON: %s", c->path,
                                jerr.text);
            *msg = j;
            return 0;
        }
        if (c->in.len > QMP_MAX_LINE)
            return hypr_err(err, HYPR_INTERNAL, EFBIG, "qmp %s: message too long", c->path);
        buf_reserve(&c->in, 4096);
        ssize_t n = vmm_read_some(c->fd, c->in.data + c->in.len, 4096, c->deadline);
        if (n < 0)
            return hypr_err(err, n == -ETIMEDOUT ? HYPR_DEADLINE_EXCEEDED : HYPR_UNAVAILABLE,
                            (int)-n, "qmp %s: %s", c->path, strerror((int)-n));
        if (n == 0)
            return 0;
        c->in.len += (size_t)n;
        c->in.data[c->in.len] = '\0';
    }
}

/* Sends {"execute": command} and waits for its answer, skipping events. */
static int qmp_command(qmp_conn *c, const char *command, bool eof_ok, json_t **ret, hypr_error *err)
{
    _cleanup_json_ json_t *req = json_pack("{s:s}", "execute", command);
    _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
    if (!text)
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "qmp: out of memory");
    _cleanup_buf_ hypr_buf line = {0};
    buf_puts(&line, text);
    buf_puts(&line, "\n");
    int r = vmm_write_all(c->fd, line.data, line.len, c->deadline);
    if (r < 0)
        return hypr_err(err, HYPR_UNAVAILABLE, -r, "qmp %s: %s: %s", c->path, command,
                        strerror(-r));
    for (;;) {
        _cleanup_json_ json_t *msg = NULL;
        r = qmp_read_message(c, &msg, err);
        if (r < 0)
            return r;
        if (!msg) {
            /* qemu may close the socket as it quits, before answering. */
            if (eof_ok)
                return 0;
            return hypr_err(err, HYPR_UNAVAILABLE, ECONNRESET, "qmp %s: %s: connection closed",
                            c->path, command);
        }
        if (json_object_get(msg, "event"))
            continue;
        json_t *e = json_object_get(msg, "error");
        if (e) {
            const char *desc = json_string_value(json_object_get(e, "desc"));
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EIO, "qmp %s: %s: %s", c->path, command,
                            desc ? desc : "error");
        }
        json_t *rv = json_object_get(msg, "return");
        if (!rv)
            continue;
        if (ret)
            *ret = json_incref(rv);
        return 0;
    }
}

int qmp_execute(const char *socket_path, const char *command, int timeout_ms, json_t **ret,
                hypr_error *err)
{
    if (ret)
        *ret = NULL;
    qmp_conn c = {.fd = -1, .deadline = time_monotonic_ms() + timeout_ms, .path = socket_path};
    c.fd = vmm_unix_connect(socket_path, timeout_ms, err);
    if (c.fd < 0)
        return c.fd;
    _cleanup_json_ json_t *greeting = NULL;
    int r = qmp_read_message(&c, &greeting, err);
    if (r >= 0 && (!greeting || !json_object_get(greeting, "QMP")))
        r = hypr_err(err, HYPR_UNAVAILABLE, EPROTO, "qmp %s: no greeting", socket_path);
    if (r >= 0)
        r = qmp_command(&c, "qmp_capabilities", false, NULL, err);
    if (r >= 0)
        r = qmp_command(&c, command, strcmp(command, "quit") == 0, ret, err);
    buf_free(&c.in);
    close(c.fd);
    return r;
}
