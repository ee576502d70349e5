/* Workload logs. Each line kestrel sends is kept twice: as plain text in
 * <data-dir>/logs/<id>.log, next to the serial console, and as a record in
 * <id>.log.stdio (stream, time, bytes) that StreamLogs reads, tails and follows. */
#define LOG_MODULE "vm"
#include "vm.h"

#include <fcntl.h>
#include <string.h>

/* A line longer than this is cut into records of this size. */
#define MAX_LINE 16384

/* Record header, little-endian: u8 stream, 3 reserved, u32 length, i64 ms. */
#define REC_HEADER 16

struct log_follower {
    rpc_call *call;
    vm_runtime *vm;
    log_follower *next;
};

char *vm_log_path(daemon_ctx *d, const char *id)
{
    return xasprintf("%s/logs/%s.log", d->data_dir, id);
}

static int append_all(const char *path, const void *data, size_t len)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void send_entry(rpc_call *call, int stream, int64_t ts, const uint8_t *data, size_t len)
{
    Hypr__V1__LogEntry e = HYPR__V1__LOG_ENTRY__INIT;
    e.data.data = (uint8_t *)data;
    e.data.len = len;
    e.stream = stream == CTL_LOG_STDERR ? "stderr" : "stdout";
    e.timestamp_ms = ts;
    rpc_call_send(call, &e.base);
}

static void write_record(vm_runtime *vm, int stream, const uint8_t *data, size_t len)
{
    _cleanup_free_ char *log = vm_log_path(vm->d, vm->id);
    _cleanup_free_ char *records = xasprintf("%s.stdio", log);
    int64_t now = time_now_ms();
    _cleanup_free_ uint8_t *rec = xmalloc(REC_HEADER + len);
    memset(rec, 0, REC_HEADER);
    rec[0] = (uint8_t)stream;
    put_le(rec + 4, len, 4);
    put_le(rec + 8, (uint64_t)now, 8);
    memcpy(rec + REC_HEADER, data, len);
    if (append_all(records, rec, REC_HEADER + len) < 0 || append_all(log, data, len) < 0)
        log_warn("VM %s: cannot write its log: %s", vm->name, strerror(errno));
    for (log_follower *f = vm->followers; f; f = f->next)
        send_entry(f->call, stream, now, data, len);
}

void vm_log_append(vm_runtime *vm, int stream, const uint8_t *data, size_t len)
{
    hypr_buf *part = &vm->partial[stream];
    while (len > 0) {
        const uint8_t *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) + 1 : len;
        if (part->len + take > MAX_LINE)
            take = MAX_LINE - part->len;
        buf_append(part, data, take);
        data += take;
        len -= take;
        if (part->data[part->len - 1] == '\n' || part->len >= MAX_LINE) {
            write_record(vm, stream, (uint8_t *)part->data, part->len);
            part->len = 0;
        }
    }
}

void vm_log_flush(vm_runtime *vm)
{
    for (int s = CTL_LOG_STDOUT; s <= CTL_LOG_STDERR; s++) {
        if (vm->partial[s].len > 0) {
            write_record(vm, s, (uint8_t *)vm->partial[s].data, vm->partial[s].len);
            vm->partial[s].len = 0;
        }
    }
}

void vm_log_end_followers(vm_runtime *vm)
{
    log_follower *f = vm->followers;
    vm->followers = NULL;
    while (f) {
        log_follower *next = f->next;
        f->vm = NULL;
        rpc_call_finish(f->call, HYPR_OK, NULL);
        f = next;
    }
}

/* Sends the last `tail` records (all when tail < 0) of a VM's log. */
static int send_history(rpc_call *call, daemon_ctx *d, const char *id, int tail, hypr_error *err)
{
    _cleanup_free_ char *log = vm_log_path(d, id);
    _cleanup_free_ char *path = xasprintf("%s.stdio", log);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_file(path, (size_t)1 << 30, &data, &len);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "read %s: %s", path, strerror(-r));
    /* Count the records, so a tail can start at the right one. */
    size_t count = 0;
    for (size_t off = 0; off + REC_HEADER <= len;) {
        size_t n = (size_t)get_le((uint8_t *)data + off + 4, 4);
        if (n > len - off - REC_HEADER)
            break; /* a torn last record (daemon killed mid-write) */
        off += REC_HEADER + n;
        count++;
    }
    size_t skip = tail >= 0 && (size_t)tail < count ? count - (size_t)tail : 0;
    size_t i = 0;
    for (size_t off = 0; i < count; i++) {
        const uint8_t *rec = (uint8_t *)data + off;
        size_t n = (size_t)get_le(rec + 4, 4);
        if (i >= skip)
            send_entry(call, rec[0], (int64_t)get_le(rec + 8, 8), rec + REC_HEADER, n);
        off += REC_HEADER + n;
    }
    return 0;
}

void api_stream_logs(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__StreamLogsRequest *req = (Hypr__V1__StreamLogsRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm rec = {0};
    int r = store_vm_find(d->db, req->id, &rec, &err);
    if (r >= 0)
        r = send_history(call, d, rec.id, req->tail, &err);
    bool follow = req->follow;
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r < 0) {
        store_vm_clear(&rec);
        api_fail(call, &err);
        return;
    }
    vm_runtime *vm = follow ? vm_runtime_find(d, rec.id) : NULL;
    store_vm_clear(&rec);
    if (!vm) {
        rpc_call_finish(call, HYPR_OK, NULL);
        return;
    }
    log_follower *f = xcalloc(1, sizeof(*f));
    f->call = call;
    f->vm = vm;
    f->next = vm->followers;
    vm->followers = f;
    rpc_call_set_data(call, f);
}

void api_stream_logs_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    log_follower *f = rpc_call_get_data(call);
    if (!f)
        return;
    if (f->vm) {
        for (log_follower **p = &f->vm->followers; *p; p = &(*p)->next) {
            if (*p == f) {
                *p = f->next;
                break;
            }
        }
    }
    free(f);
}
