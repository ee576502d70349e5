/* hypr common module: error records, logging, cleanup helpers, strings, ids, paths.
 * Every other module depends on this one; it depends only on libc. */
#ifndef HYPR_COMMON_H
#define HYPR_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#define HYPR_VERSION "0.1.0"

/* ---- error records ------------------------------------------------------ */

/* gRPC status codes: every error that reaches a user carries one. */
typedef enum hypr_status {
    HYPR_OK = 0,
    HYPR_CANCELLED = 1,
    HYPR_UNKNOWN = 2,
    HYPR_INVALID_ARGUMENT = 3,
    HYPR_DEADLINE_EXCEEDED = 4,
    HYPR_NOT_FOUND = 5,
    HYPR_ALREADY_EXISTS = 6,
    HYPR_PERMISSION_DENIED = 7,
    HYPR_RESOURCE_EXHAUSTED = 8,
    HYPR_FAILED_PRECONDITION = 9,
    HYPR_ABORTED = 10,
    HYPR_OUT_OF_RANGE = 11,
    HYPR_UNIMPLEMENTED = 12,
    HYPR_INTERNAL = 13,
    HYPR_UNAVAILABLE = 14,
    HYPR_DATA_LOSS = 15,
    HYPR_UNAUTHENTICATED = 16,
} hypr_status;

/* Filled by fallible functions where a user will read the reason. Callers add
 * context on the way up with hypr_err_prefix(); only the top logs it. */
typedef struct hypr_error {
    hypr_status status;
    int errnum; /* positive errno, 0 if none */
    char *message;
} hypr_error;

#define HYPR_ERROR_INIT                                                                            \
    {                                                                                              \
        HYPR_OK, 0, NULL                                                                           \
    }

/* Records an error and returns -errnum (or -EIO when errnum is 0). err may be NULL.
 * A later call replaces an earlier record. */
int hypr_err(hypr_error *err, hypr_status status, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prepends "context: " to the message; returns -errnum of the record (or -EIO). */
int hypr_err_prefix(hypr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hypr_error_clear(hypr_error *err);
const char *hypr_status_name(hypr_status status);
/* Maps a negative errno to the closest gRPC status (for errors without a record). */
hypr_status hypr_status_from_errno(int negerr);

/* ---- logging ------------------------------------------------------------ */

typedef enum hypr_log_level {
    HYPR_LOG_ERROR = 0,
    HYPR_LOG_WARN,
    HYPR_LOG_INFO,
    HYPR_LOG_DEBUG,
    HYPR_LOG_TRACE,
} hypr_log_level;

/* spec is HYPR_LOG syntax: "info", "debug", "info,rpc=debug,state=trace".
 * Returns -EINVAL on a bad spec (the default level stays info). */
int hypr_log_init(const char *spec);
bool hypr_log_enabled(hypr_log_level level, const char *module);
void hypr_log_write(hypr_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Each .c file may #define LOG_MODULE "name" before including this header. */
#ifndef LOG_MODULE
#define LOG_MODULE "hypr"
#endif
#define hypr_log(level, ...)                                                                       \
    do {                                                                                           \
        if (hypr_log_enabled(level, LOG_MODULE))                                                   \
            hypr_log_write(level, LOG_MODULE, __VA_ARGS__);                                        \
    } while (0)
#define log_error(...) hypr_log(HYPR_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  hypr_log(HYPR_LOG_WARN, __VA_ARGS__)
#define log_info(...)  hypr_log(HYPR_LOG_INFO, __VA_ARGS__)
#define log_debug(...) hypr_log(HYPR_LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) hypr_log(HYPR_LOG_TRACE, __VA_ARGS__)

/* ---- cleanup helpers ---------------------------------------------------- */

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
    free(*(void **)p);
}
static inline void closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
static inline void fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}
void strv_free(char **v);
static inline void strv_freep(char ***v)
{
    strv_free(*v);
}
static inline void hypr_error_clearp(hypr_error *e)
{
    hypr_error_clear(e);
}

#define _cleanup_free_   _cleanup_(freep)
#define _cleanup_close_  _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_strv_   _cleanup_(strv_freep)
#define _cleanup_error_  _cleanup_(hypr_error_clearp)

/* Defines a cleanup function name##p for a pointer type with a NULL-safe destructor. */
#define DEFINE_CLEANUP_FUNC(type, func)                                                            \
    static inline void func##p(type **p)                                                           \
    {                                                                                              \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _tp = (p);                                                                   \
        (p) = NULL;                                                                                \
        _tp;                                                                                       \
    })
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _tfd = (fd);                                                                           \
        (fd) = -1;                                                                                 \
        _tfd;                                                                                      \
    })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- memory and strings ------------------------------------------------- */

/* Allocation failure is not recoverable in hypr: these abort with a message. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

bool str_empty(const char *s);
bool str_startswith(const char *s, const char *prefix);
bool str_endswith(const char *s, const char *suffix);
size_t strv_length(char *const *v);
bool strv_contains(char *const *v, const char *s); /* v may be NULL */
/* Appends a copy of s to a NULL-terminated vector (v may be NULL). */
char **strv_append(char **v, const char *s);
char **strv_copy(char *const *v);
/* The words of s separated by any of seps ("a, b,,c" with ", " -> a b c); NULL when
 * there are none (s may be NULL). */
char **strv_split(const char *s, const char *seps);

/* Growable byte buffer; always NUL-terminated for convenience. */
typedef struct hypr_buf {
    char *data;
    size_t len;
    size_t cap;
} hypr_buf;
void buf_reserve(hypr_buf *b, size_t extra);
void buf_append(hypr_buf *b, const void *data, size_t len);
void buf_puts(hypr_buf *b, const char *s);
void buf_printf(hypr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void buf_consume(hypr_buf *b, size_t n);
void buf_free(hypr_buf *b);
char *buf_steal(hypr_buf *b);
static inline void buf_freep(hypr_buf *b)
{
    buf_free(b);
}
#define _cleanup_buf_ _cleanup_(buf_freep)

/* Parses a whole decimal string into [min,max]; -EINVAL / -ERANGE otherwise. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* "512", "512m", "2g", "1024k" -> MiB. */
int parse_size_mib(const char *s, int64_t *out_mib);
/* "1.5 GB"-style human size for tables. */
void format_size(uint64_t bytes, char *out, size_t outlen);
/* "3 minutes ago"-style for tables; now/then in seconds since the epoch. */
void format_ago(int64_t now, int64_t then, char *out, size_t outlen);

/* ---- ids and names ------------------------------------------------------ */

#define HYPR_ID_LEN       64
#define HYPR_SHORT_ID_LEN 12
/* 64 lowercase hex characters from the kernel's random source. out: 65 bytes. */
int id_generate(char out[HYPR_ID_LEN + 1]);
bool id_is_valid(const char *s);
/* Names: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 characters. */
bool name_is_valid(const char *s);
/* "eager-fox"-style name; caller frees. */
char *name_generate(void);

/* ---- time --------------------------------------------------------------- */

int64_t time_now_ms(void);       /* CLOCK_REALTIME, milliseconds */
int64_t time_monotonic_ms(void); /* CLOCK_MONOTONIC, milliseconds */

/* Go's time.ParseDuration syntax ("24h", "1h30m", "1.5s", "300ms", "-2m"; units ns,
 * us/µs, ms, s, m, h; "0" alone needs none): nanoseconds. -EINVAL for bad syntax,
 * -ERANGE beyond what int64 nanoseconds hold (about 292 years). (timeparse.c) */
int parse_duration_ns(const char *s, int64_t *out_ns);
/* A point in time as Docker's `until`/`since` filters take it: a duration back from
 * now_ms ("24h" is now minus 24 hours), an RFC 3339 date or time ("2024-01-02",
 * "2024-01-02T15:04", "2024-01-02T15:04:05.5Z", "...+02:00"; without a zone, local
 * time), or unix seconds ("1700000000", "1700000000.5"). *out_ms: unix milliseconds.
 * -EINVAL / -ERANGE. (timeparse.c) */
int parse_time_reference(const char *s, int64_t now_ms, int64_t *out_ms);

/* ---- files and paths ---------------------------------------------------- */

char *path_join(const char *a, const char *b);
/* mkdir -p with the given mode for created directories. */
int mkdir_p(const char *path, mode_t mode);
/* write(2) until all of data is written, retrying on EINTR; -errno on failure. */
int fd_write_all(int fd, const void *data, size_t len);
/* Writes data to path through a temp file + fsync + rename. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Reads a whole file (at most max bytes, else -EFBIG). */
int read_file(const char *path, size_t max, char **out, size_t *out_len);
/* rm -rf; a missing path is not an error. */
int rm_rf(const char *path);

/* ---- processes ------------------------------------------------------------ */

/* When process pid started (field 22 of /proc/<pid>/stat, clock ticks since boot):
 * with the pid it names one process for good, as a pid alone does not. -ESRCH
 * when there is no such process, -EBADMSG for an unreadable stat line. */
int proc_start_time(pid_t pid, uint64_t *out);

/* Unlinks node n (with prev/next members) from the intrusive doubly-linked list whose
 * first node is head (an lvalue). */
#define DLIST_REMOVE(head, n)                                                                      \
    do {                                                                                           \
        if ((n)->prev)                                                                             \
            (n)->prev->next = (n)->next;                                                           \
        else                                                                                       \
            (head) = (n)->next;                                                                    \
        if ((n)->next)                                                                             \
            (n)->next->prev = (n)->prev;                                                           \
        (n)->prev = (n)->next = NULL;                                                              \
    } while (0)

/* A signal as Docker takes it: a number (1..64), or a name with or without "SIG",
 * in any case ("KILL", "sigterm", "SIGRTMIN+3"). The number, or -EINVAL. */
int signal_parse(const char *s);
/* "SIGTERM" for 15; NULL for a number without a name (the real-time ones). */
const char *signal_name(int signo);

/* The value of a hexadecimal digit (either case), or -1. */
int hex_digit_value(char c);

/* Decodes %XX escapes in s[0..len). PERCENT_STRICT: a malformed escape or %00 makes it
 * fail (NULL); otherwise it is kept literally. PERCENT_PLUS: '+' is a space (query
 * strings). NUL-terminated; caller frees. */
#define PERCENT_STRICT 1u
#define PERCENT_PLUS   2u
char *percent_decode(const char *s, size_t len, unsigned flags);

/* Standard base64 with padding (RFC 4648). Caller frees. */
char *base64_encode(const void *data, size_t len);
/* Strict decoding: whole quanta, '=' only as the last one or two characters; NULL on
 * anything else or beyond max input characters. NUL-terminated; *out_len excludes it. */
char *base64_decode(const char *s, size_t max, size_t *out_len);

#endif
