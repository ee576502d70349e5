/* Workload logs. Each line kestrel sends is kept twice: as plain text in
 * <data-dir>/logs/<id>.log, next to the serial console, and as a record in
 * <id>.log.stdio (stream, time, bytes) that StreamLogs reads, tails and follows. */
#define LOG_MODULE "vm"
#include "api.h"
#include "vm_internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <string.h>

/* A line longer than this is cut into records of this size. */
#define MAX_LINE 16384

/* Record header, little-endian: u8 stream, 3 reserved, u32 length, i64 ms. */
#define REC_HEADER 16

/* One StreamLogs call: first the history, read from the record file as the call
 * drains (never all of it in memory), then, with follow, the live records. */
struct log_follower {
    rpc_call *call;
    vm_runtime *vm; /* live mode: the VM whose followers list holds this */
    log_follower *next;
    daemon_ctx *d;
    char id[HYPR_ID_LEN + 1];
    bool follow;
    /* History mode (fd >= 0): the record file mapped up to map_len. */
    int fd;
    uint8_t *map;
    size_t map_len;
    size_t off;                 /* next record */
    size_t skip;                /* records still to skip for the tail */
    int64_t since_ms, until_ms; /* logs --since / --until; 0 = no bound */
};

/* Whether a record's time is within --since / --until. */
static bool in_window(const log_follower *f, int64_t ts)
{
    return (!f->since_ms || ts >= f->since_ms) && (!f->until_ms || ts < f->until_ms);
}

/* History is sent while the call has less than this queued. */
#define HISTORY_HIGH_WATER (256 * 1024)

/* The VM's log files, opened once (kept open while the VM runs). */
static int log_fds(vm_runtime *vm)
{
    if (vm->log_fds[0] >= 0 && vm->log_fds[1] >= 0)
        return 0;
    _cleanup_free_ char *log = vm_log_path(vm->d, vm->id);
    _cleanup_free_ char *records = xasprintf("%s.stdio", log);
    const char *paths[2] = {log, records};
    for (int i = 0; i < 2; i++)
        if (vm->log_fds[i] < 0 &&
            (vm->log_fds[i] = open(paths[i], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
            return -errno;
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

static int send_entry(rpc_call *call, int stream, int64_t ts, const uint8_t *data, size_t len)
{
    Hypr__V1__LogEntry e = HYPR__V1__LOG_ENTRY__INIT;
    e.data.data = (uint8_t *)data;
    e.data.len = len;
    e.stream = stream == CTL_LOG_STDERR ? "stderr" : "stdout";
    e.timestamp_ms = ts;
    return rpc_call_send(call, &e.base);
}

static int history_file_open(log_follower *f);
static void history_pump(rpc_call *call);

static void write_record(vm_runtime *vm, int stream, const uint8_t *data, size_t len)
{
    int64_t now = time_now_ms();
    uint8_t header[REC_HEADER] = {(uint8_t)stream};
    put_le(header + 4, len, 4);
    put_le(header + 8, (uint64_t)now, 8);
    int r = log_fds(vm);
    if (r >= 0) {
        /* One write per record: the header and the bytes land together (O_APPEND). */
        _cleanup_free_ uint8_t *rec = xmalloc(REC_HEADER + len);
        memcpy(rec, header, REC_HEADER);
        memcpy(rec + REC_HEADER, data, len);
        r = fd_write_all(vm->log_fds[1], rec, REC_HEADER + len);
        if (r >= 0)
            r = fd_write_all(vm->log_fds[0], data, len);
    }
    if (r < 0)
        log_warn("VM %s: cannot write its log: %s", vm->name, strerror(-r));
    for (log_follower *f = vm->followers; f; f = f->next) {
        if (f->fd >= 0)
            continue; /* catching up from the file: this record is there too */
        /* A reader that falls behind reads from the file until it catches up, so
         * a slow `logs -f` costs neither the workload nor hyprd's memory. */
        if (rpc_call_pending(f->call) >= HISTORY_HIGH_WATER && history_file_open(f) == 0) {
            log_debug("VM %s: a log reader fell behind; it continues from the file", vm->name);
            rpc_call_on_drain(f->call, history_pump);
            continue;
        }
        if (in_window(f, now))
            send_entry(f->call, stream, now, data, len);
        f->off += REC_HEADER + len;
    }
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
        f->follow = false;
        if (f->fd < 0) /* else the file still has records for it; it ends after them */
            rpc_call_finish(f->call, HYPR_OK, NULL);
        f = next;
    }
}

static void history_close(log_follower *f)
{
    if (f->map)
        munmap(f->map, f->map_len);
    f->map = NULL;
    f->map_len = 0;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* Maps the record file as far as it goes now (it grows while the VM runs). */
static int history_map(log_follower *f)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0)
        return -errno;
    size_t len = (size_t)st.st_size;
    if (len == f->map_len)
        return 0;
    if (f->map)
        munmap(f->map, f->map_len);
    f->map = NULL;
    f->map_len = 0;
    if (len == 0)
        return 0;
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    f->map = m;
    f->map_len = len;
    return 0;
}

/* The pages before the next record are done with: out of hyprd's RSS. */
static void history_release(log_follower *f)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t done = f->off / page * page;
    if (f->map && done > 0)
        madvise(f->map, done, MADV_DONTNEED);
}

/* The record file, open and mapped (it may be read from f->off on). */
static int history_file_open(log_follower *f)
{
    _cleanup_free_ char *log = vm_log_path(f->d, f->id);
    _cleanup_free_ char *path = xasprintf("%s.stdio", log);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        return -errno;
    int r = history_map(f);
    if (r < 0)
        history_close(f);
    return r;
}

/* The length of the complete record at off, or 0 (end, or a torn last record of a
 * daemon killed mid-write). */
static size_t record_at(const log_follower *f, size_t off)
{
    if (off + REC_HEADER > f->map_len)
        return 0;
    size_t n = (size_t)get_le(f->map + off + 4, 4);
    return n <= f->map_len - off - REC_HEADER ? REC_HEADER + n : 0;
}

/* History sent: live records from now on (same loop turn: none can be missed), or
 * the end of the call. */
static void history_done(log_follower *f)
{
    history_close(f);
    rpc_call_on_drain(f->call, NULL);
    if (f->vm)
        return; /* caught up: live again (it stayed on the VM's list) */
    vm_runtime *vm = f->follow ? vm_runtime_find(f->d, f->id) : NULL;
    if (!vm) {
        rpc_call_finish(f->call, HYPR_OK, NULL);
        return;
    }
    f->vm = vm;
    f->next = vm->followers;
    vm->followers = f;
}

/* Sends records until the call has enough queued (resumed when it drains) or the
 * file has no more. */
static void history_pump(rpc_call *call)
{
    log_follower *f = rpc_call_get_data(call);
    if (!f || f->fd < 0)
        return;
    for (;;) {
        size_t len = record_at(f, f->off);
        if (!len) {
            /* At the end of what was mapped: the file may have grown meanwhile. */
            size_t before = f->map_len;
            if (history_map(f) < 0 || f->map_len == before || !record_at(f, f->off)) {
                history_done(f);
                return;
            }
            continue;
        }
        const uint8_t *rec = f->map + f->off;
        int64_t ts = (int64_t)get_le(rec + 8, 8);
        if (!in_window(f, ts))
            ; /* outside --since/--until: not counted by the tail either */
        else if (f->skip > 0)
            f->skip--;
        else if (send_entry(call, rec[0], ts, rec + REC_HEADER, len - REC_HEADER) == -ECANCELED)
            return;
        f->off += len;
        if (rpc_call_pending(call) >= HISTORY_HIGH_WATER) {
            history_release(f);
            rpc_call_on_drain(call, history_pump);
            return;
        }
    }
}

/* Opens the record file and counts its records, so a tail starts at the right one. */
static int history_open(log_follower *f, int tail, hypr_error *err)
{
    int r = history_file_open(f);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "read the logs of VM %.12s: %s", f->id,
                        strerror(-r));
    size_t count = 0, page = (size_t)sysconf(_SC_PAGESIZE), released = 0;
    for (size_t off = 0, len; (len = record_at(f, off)); off += len) {
        count += in_window(f, (int64_t)get_le(f->map + off + 8, 8));
        if (off - released >= ((size_t)4 << 20)) { /* counted pages go as we pass */
            madvise(f->map + released, (off - released) / page * page, MADV_DONTNEED);
            released += (off - released) / page * page;
        }
    }
    f->skip = tail >= 0 && (size_t)tail < count ? count - (size_t)tail : 0;
    if (f->map) /* counted: the pages can go until they are sent */
        madvise(f->map, f->map_len, MADV_DONTNEED);
    return 0;
}

/* logs --console: the console file (the serial console, with the workload's lines
 * where they came), its last tail lines, as "console" entries; then the call ends. */
static void send_console(rpc_call *call, daemon_ctx *d, const char *id, int tail)
{
    enum { MAX = 8 << 20, CHUNK = 64 << 10 };
    _cleanup_free_ char *path = vm_log_path(d, id);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        rpc_call_finish(call, HYPR_OK, NULL); /* never booted: no console */
        return;
    }
    /* At most the last MAX bytes: a tail is all a console is read for. */
    off_t from = st.st_size > MAX ? st.st_size - MAX : 0;
    size_t len = (size_t)(st.st_size - from);
    _cleanup_free_ char *buf = xmalloc(len + 1);
    ssize_t n = pread(fd, buf, len, from);
    len = n > 0 ? (size_t)n : 0;
    size_t start = 0;
    if (tail >= 0) { /* back from the end over tail lines (the final newline ends the last) */
        size_t i = len, seen = 0;
        if (i > 0 && buf[i - 1] == '\n')
            i--;
        while (i > 0 && !(buf[i - 1] == '\n' && ++seen == (size_t)tail))
            i--;
        start = tail == 0 ? len : i;
    }
    for (size_t off = start; off < len; off += CHUNK) {
        Hypr__V1__LogEntry e = HYPR__V1__LOG_ENTRY__INIT;
        e.data.data = (uint8_t *)buf + off;
        e.data.len = len - off < CHUNK ? len - off : CHUNK;
        e.stream = "console";
        if (rpc_call_send(call, &e.base) == -ECANCELED)
            return;
    }
    rpc_call_finish(call, HYPR_OK, NULL);
}

void api_stream_logs(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__StreamLogsRequest *req = (Hypr__V1__StreamLogsRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_vm_ store_vm rec = {0};
    if (store_vm_find(d->db, req->id, &rec, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    if (req->console) {
        if (req->follow || req->since_ms || req->until_ms) {
            rpc_call_finish(call, HYPR_INVALID_ARGUMENT,
                            "--console takes neither --follow nor --since/--until (the console "
                            "has no times)");
            return;
        }
        send_console(call, d, rec.id, req->tail);
        return;
    }
    log_follower *f = xcalloc(1, sizeof(*f));
    f->call = call;
    f->d = d;
    f->fd = -1;
    /* Following past --until would only ever wait: the history is all there is. */
    f->follow = req->follow && (!req->until_ms || req->until_ms > time_now_ms());
    f->since_ms = req->since_ms > 0 ? req->since_ms : 0;
    f->until_ms = req->until_ms > 0 ? req->until_ms : 0;
    memcpy(f->id, rec.id, sizeof(f->id));
    if (history_open(f, req->tail, &err) < 0) {
        history_close(f);
        free(f);
        api_fail(call, &err);
        return;
    }
    rpc_call_set_data(call, f);
    if (f->fd < 0)
        history_done(f);
    else
        history_pump(call);
}

void api_stream_logs_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    log_follower *f = rpc_call_get_data(call);
    if (!f)
        return;
    history_close(f);
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
