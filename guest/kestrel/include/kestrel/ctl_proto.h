/* hypr control protocol between hyprd and kestrel (the guest agent).
 *
 * Shared verbatim by both sides: kestrel compiles it with musl-gcc -static, the
 * host's vmm module with its own compiler. Depends only on libc.
 *
 * Transport: one byte stream (vsock, or the virtio-serial port "hypr.ctl"; the
 * host side is always the unix socket <run-dir>/<vm-id>.vsock). Every message is
 * a frame; sessions are multiplexed on the one stream.
 *
 * Frame header, 12 bytes, all integers LITTLE-ENDIAN:
 *   off 0  u8  magic    0x4b ('K')
 *   off 1  u8  version  CTL_PROTO_VERSION (1)
 *   off 2  u8  type     enum ctl_type
 *   off 3  u8  flags    reserved, senders write 0, receivers ignore
 *   off 4  u32 session  0 = the VM itself (HELLO, LOG, METRICS, WORKLOAD_EXIT,
 *                       SHUTDOWN); exec sessions use ids chosen by the host (!= 0)
 *   off 8  u32 length   payload bytes that follow, at most CTL_MAX_PAYLOAD (1 MiB)
 * A bad magic, version or type, or an oversized length, is an error for the whole
 * stream (there is no way to resynchronise): the receiver drops the connection.
 * A well-framed message whose payload does not parse is an error for that
 * session only: the receiver answers ERROR on that session and ends it.
 *
 * Exec sessions: the host picks a new non-zero id and sends EXEC_START, then
 * STDIN / STDIN_EOF / RESIZE / SIGNAL; kestrel answers STDOUT / STDERR and ends
 * the session with exactly one EXIT (the process ran; 126/127 when it could not
 * be executed, with the reason on STDERR) or one ERROR (it never started, or the
 * host sent a malformed frame for it: its processes are killed). Frames for an
 * unknown session are dropped (they race with its end). When the stream drops,
 * kestrel kills every exec session and reconnects (retries every second).
 * Stream errors: kestrel sends ERROR on session 0 and reconnects.
 *
 * Payloads ("str" = u32 length + bytes, no NUL inside; "strv" = u32 count + str*):
 *   HELLO        u32 version, u32 count, count * {u32 phase, u64 ns}      both ways
 *                (kestrel sends it when the channel opens, whenever it reaches a
 *                new boot phase, and in answer to the host's HELLO; the last one
 *                is complete. ns = CLOCK_BOOTTIME of the guest.)
 *   EXEC_START   u32 flags (bit0 tty, bit1 main), u16 rows, u16 cols, str workdir, str user,
 *                strv argv, strv env                                   host->guest
 *   STDIN        raw bytes                                             host->guest
 *   STDIN_EOF    empty                                                 host->guest
 *   STDOUT       raw bytes (the pty output too when tty)               guest->host
 *   STDERR       raw bytes                                             guest->host
 *   RESIZE       u16 rows, u16 cols                                    host->guest
 *   SIGNAL       u32 signo                                             host->guest
 *                (on session 0: to the workload, which goes on running unless the
 *                signal ends it; hypr kill)
 *   EXIT         i32 code (shell style: 128+N for a signal, 126/127)   guest->host
 *   LOG          u8 stream (0 agent, 1 stdout, 2 stderr), bytes; session 0
 *   METRICS      u32 count, count * u64 (enum ctl_metric order; a receiver reads
 *                the fields it knows, missing ones are 0)             guest->host
 *   WORKLOAD_EXIT i32 code, u8 will_restart, u32 restarts so far       guest->host
 *   SHUTDOWN     empty or u32 signo: graceful stop, the signal (default: the
 *                manifest's stop_signal, else SIGTERM) to the workload  host->guest
 *   ERROR        u32 errno (positive), bytes message (UTF-8, no NUL)   both ways
 */
#ifndef KESTREL_CTL_PROTO_H
#define KESTREL_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_MAGIC         0x4b
#define CTL_PROTO_VERSION 1
#define CTL_HEADER_SIZE   12
#define CTL_MAX_PAYLOAD   (1u << 20)
/* vsock address of the host side (kestrel connects to it). */
#define CTL_VSOCK_CID  2
#define CTL_VSOCK_PORT 1024
/* virtio-serial port name when there is no vsock. */
#define CTL_SERIAL_NAME "hypr.ctl"

enum ctl_type {
    CTL_HELLO = 1,
    CTL_EXEC_START = 2,
    CTL_STDIN = 3,
    CTL_STDIN_EOF = 4,
    CTL_STDOUT = 5,
    CTL_STDERR = 6,
    CTL_RESIZE = 7,
    CTL_SIGNAL = 8,
    CTL_EXIT = 9,
    CTL_LOG = 10,
    CTL_METRICS = 11,
    CTL_WORKLOAD_EXIT = 12,
    CTL_SHUTDOWN = 13,
    CTL_ERROR = 14,
    CTL_TYPE_MAX = CTL_ERROR,
};

/* Boot phases reported in HELLO. */
enum ctl_phase {
    CTL_PHASE_AGENT_START = 1,   /* kestrel's first instruction */
    CTL_PHASE_MOUNTS_DONE = 2,   /* /proc /sys /dev ... */
    CTL_PHASE_MODULES_DONE = 3,  /* kernel modules loaded */
    CTL_PHASE_CHANNEL_OPEN = 4,  /* control channel connected */
    CTL_PHASE_ROOTFS_READY = 5,  /* squashfs + overlay mounted, root switched */
    CTL_PHASE_NETWORK_READY = 6, /* interface configured */
    CTL_PHASE_WORKLOAD_START = 7,
    CTL_PHASE_MAX = CTL_PHASE_WORKLOAD_START,
};

enum ctl_log_stream {
    CTL_LOG_AGENT = 0,
    CTL_LOG_STDOUT = 1,
    CTL_LOG_STDERR = 2,
};

/* METRICS fields, in wire order. New fields are only ever appended. */
enum ctl_metric {
    CTL_M_TIME_NS = 0, /* CLOCK_BOOTTIME when sampled */
    CTL_M_CPU_USER,    /* ticks (USER_HZ) summed over CPUs, incl. nice */
    CTL_M_CPU_SYSTEM,  /* incl. irq + softirq */
    CTL_M_CPU_IDLE,
    CTL_M_CPU_IOWAIT,
    CTL_M_CPU_STEAL,
    CTL_M_NCPU,
    CTL_M_MEM_TOTAL, /* bytes */
    CTL_M_MEM_AVAILABLE,
    CTL_M_DISK_TOTAL, /* bytes of / (the overlay's upper layer) */
    CTL_M_DISK_USED,
    CTL_M_NET_RX_BYTES, /* all interfaces but lo */
    CTL_M_NET_TX_BYTES,
    CTL_M_NET_RX_PACKETS,
    CTL_M_NET_TX_PACKETS,
    CTL_M_COUNT,
};

#define CTL_EXEC_TTY 0x1u
/* The session is the workload itself (manifest attach): argv, env, user and workdir are
 * the workload's, and its end is the workload's. */
#define CTL_EXEC_MAIN 0x2u

typedef struct ctl_frame {
    uint8_t type;
    uint8_t flags;
    uint32_t session;
    uint32_t len;
    const uint8_t *payload; /* valid until the next feed/next call on the decoder */
} ctl_frame;

/* Incremental decoder: feed any split of the byte stream, pull whole frames. */
typedef struct ctl_decoder {
    uint8_t *buf;
    size_t len; /* bytes held */
    size_t off; /* bytes of buf already handed out */
    size_t cap;
    int err; /* sticky stream error (negative errno), 0 if fine */
} ctl_decoder;

void ctl_decoder_init(ctl_decoder *d);
void ctl_decoder_free(ctl_decoder *d);
/* Drops buffered bytes and the sticky error (after the stream was re-opened). */
void ctl_decoder_reset(ctl_decoder *d);
/* Appends bytes. 0, -ENOMEM, or the sticky stream error. */
int ctl_decoder_feed(ctl_decoder *d, const void *data, size_t len);
/* 1 and *out filled when a whole frame is available, 0 when more bytes are needed,
 * negative (sticky) on a stream error: -EPROTO bad magic, -EPROTONOSUPPORT bad
 * version, -EBADMSG unknown type, -EMSGSIZE payload above CTL_MAX_PAYLOAD. */
int ctl_decoder_next(ctl_decoder *d, ctl_frame *out);
/* Checks a header (at least CTL_HEADER_SIZE bytes): 0 or the errors above. */
int ctl_header_check(const uint8_t *hdr, uint32_t *payload_len);
const char *ctl_type_name(unsigned type);

/* ---- encoding: appends one whole frame to a growable output buffer ---- */

typedef struct ctl_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} ctl_buf;

void ctl_buf_free(ctl_buf *b);
/* Drops the first n bytes (after they were written out). */
void ctl_buf_consume(ctl_buf *b, size_t n);

/* Each returns 0, -ENOMEM, -EMSGSIZE (payload too big), -EINVAL (bad argument). */
int ctl_encode_raw(ctl_buf *b, uint8_t type, uint32_t session, const void *payload, size_t len);

typedef struct ctl_phase_ts {
    uint32_t phase;
    uint64_t ns;
} ctl_phase_ts;
int ctl_encode_hello(ctl_buf *b, const ctl_phase_ts *ts, size_t n);

typedef struct ctl_exec_start {
    bool tty;
    bool main; /* CTL_EXEC_MAIN */
    uint16_t rows, cols;
    char *workdir; /* "" = the workload's */
    char *user;    /* "" = the workload's */
    char **argv;   /* NULL-terminated, at least one entry */
    size_t argc;
    char **env; /* NULL-terminated, "K=V" added to the workload's */
    size_t envc;
} ctl_exec_start;
int ctl_encode_exec_start(ctl_buf *b, uint32_t session, const ctl_exec_start *e);
int ctl_encode_data(ctl_buf *b, uint8_t type, uint32_t session, const void *data, size_t len);
int ctl_encode_resize(ctl_buf *b, uint32_t session, uint16_t rows, uint16_t cols);
int ctl_encode_signal(ctl_buf *b, uint32_t session, uint32_t signo);
int ctl_encode_exit(ctl_buf *b, uint32_t session, int32_t code);
int ctl_encode_log(ctl_buf *b, uint8_t stream, const void *data, size_t len);
int ctl_encode_metrics(ctl_buf *b, const uint64_t *values, size_t n);
int ctl_encode_workload_exit(ctl_buf *b, int32_t code, bool will_restart, uint32_t restarts);
int ctl_encode_error(ctl_buf *b, uint32_t session, uint32_t errnum, const char *msg);

/* ---- payload parsers: strict bounds, -EBADMSG on any malformed payload ---- */

typedef struct ctl_hello {
    uint32_t version;
    size_t n;
    ctl_phase_ts ts[CTL_PHASE_MAX]; /* entries beyond CTL_PHASE_MAX are skipped */
} ctl_hello;
int ctl_parse_hello(const uint8_t *p, size_t len, ctl_hello *out);
/* Allocates into *out (free with ctl_exec_start_free); -ENOMEM or -EBADMSG. */
int ctl_parse_exec_start(const uint8_t *p, size_t len, ctl_exec_start *out);
void ctl_exec_start_free(ctl_exec_start *e);
int ctl_parse_resize(const uint8_t *p, size_t len, uint16_t *rows, uint16_t *cols);
int ctl_parse_signal(const uint8_t *p, size_t len, uint32_t *signo);
int ctl_parse_exit(const uint8_t *p, size_t len, int32_t *code);
int ctl_parse_log(const uint8_t *p, size_t len, uint8_t *stream, const uint8_t **data,
                  size_t *dlen);
/* Fills values[0..CTL_M_COUNT) (unknown extra fields skipped, missing ones 0). */
int ctl_parse_metrics(const uint8_t *p, size_t len, uint64_t values[CTL_M_COUNT]);
int ctl_parse_workload_exit(const uint8_t *p, size_t len, int32_t *code, bool *will_restart,
                            uint32_t *restarts);
/* msg: a NUL-terminated copy (caller frees); -ENOMEM or -EBADMSG. */
int ctl_parse_error(const uint8_t *p, size_t len, uint32_t *errnum, char **msg);
/* Empty payloads (STDIN_EOF, SHUTDOWN): -EBADMSG when len != 0. */
int ctl_parse_empty(const uint8_t *p, size_t len);

#endif
