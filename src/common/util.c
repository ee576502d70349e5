#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

static void oom(void)
{
    static const char msg[] = "hypr: out of memory\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)n;
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *xstrdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        oom();
    return d;
}

char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d)
        oom();
    return d;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    char *s;
    if (vasprintf(&s, fmt, ap) < 0)
        oom();
    return s;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

bool str_empty(const char *s)
{
    return !s || !*s;
}

bool str_startswith(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_endswith(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t strv_length(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

bool strv_contains(char *const *v, const char *s)
{
    for (; v && *v; v++)
        if (strcmp(*v, s) == 0)
            return true;
    return false;
}

char **strv_append(char **v, const char *s)
{
    size_t n = strv_length(v);
    v = xrealloc(v, (n + 2) * sizeof(char *));
    v[n] = xstrdup(s);
    v[n + 1] = NULL;
    return v;
}

char **strv_split(const char *s, const char *seps)
{
    char **v = NULL;
    _cleanup_free_ char *w = xstrdup(s ? s : "");
    for (char *save = NULL, *t = strtok_r(w, seps, &save); t; t = strtok_r(NULL, seps, &save))
        v = strv_append(v, t);
    return v;
}

char **strv_copy(char *const *v)
{
    size_t n = strv_length(v);
    char **c = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        c[i] = xstrdup(v[i]);
    return c;
}

void buf_reserve(hypr_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        oom();
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(hypr_buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_puts(hypr_buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_printf(hypr_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    buf_puts(b, s);
    free(s);
}

void buf_consume(hypr_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void buf_free(hypr_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_steal(hypr_buf *b)
{
    if (!b->data)
        buf_reserve(b, 0), b->data[0] = '\0';
    char *d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (str_empty(s))
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || end == s)
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int parse_size_mib(const char *s, int64_t *out_mib)
{
    if (str_empty(s))
        return -EINVAL;
    size_t len = strlen(s);
    int64_t mult_kib = 1024; /* default unit: MiB */
    char last = s[len - 1];
    if (last == 'b' || last == 'B') { /* accept "512mb", "2gb" */
        if (len < 2)
            return -EINVAL;
        len--;
        last = s[len - 1];
    }
    bool has_unit = true;
    switch (last) {
    case 'k':
    case 'K':
        mult_kib = 1;
        break;
    case 'm':
    case 'M':
        mult_kib = 1024;
        break;
    case 'g':
    case 'G':
        mult_kib = 1024 * 1024;
        break;
    default:
        has_unit = false;
    }
    _cleanup_free_ char *num = xstrndup(s, has_unit ? len - 1 : len);
    int64_t v;
    int r = parse_int64(num, 1, INT64_MAX / (1024 * 1024), &v);
    if (r < 0)
        return r;
    int64_t kib = v * mult_kib;
    if (kib % 1024)
        return -EINVAL;
    *out_mib = kib / 1024;
    return 0;
}

void format_size(uint64_t bytes, char *out, size_t outlen)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000 && u + 1 < ARRAY_SIZE(units)) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(out, outlen, "%" PRIu64 "B", bytes);
    else
        snprintf(out, outlen, v < 10 ? "%.2f%s" : v < 100 ? "%.1f%s" : "%.0f%s", v, units[u]);
}

void format_ago(int64_t now, int64_t then, char *out, size_t outlen)
{
    int64_t d = now - then;
    if (then <= 0) {
        snprintf(out, outlen, "never");
        return;
    }
    if (d < 1)
        snprintf(out, outlen, "Less than a second ago");
    else if (d < 60)
        snprintf(out, outlen, "%" PRId64 " seconds ago", d);
    else if (d < 3600)
        snprintf(out, outlen, "%" PRId64 " minute%s ago", d / 60, d / 60 == 1 ? "" : "s");
    else if (d < 86400)
        snprintf(out, outlen, "%" PRId64 " hour%s ago", d / 3600, d / 3600 == 1 ? "" : "s");
    else
        snprintf(out, outlen, "%" PRId64 " day%s ago", d / 86400, d / 86400 == 1 ? "" : "s");
}

int id_generate(char out[HYPR_ID_LEN + 1])
{
    uint8_t raw[HYPR_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[HYPR_ID_LEN] = '\0';
    return 0;
}

bool id_is_valid(const char *s)
{
    if (!s || strlen(s) != HYPR_ID_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool name_is_valid(const char *s)
{
    if (str_empty(s) || strlen(s) > 128 || !is_alnum(s[0]))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!is_alnum(*p) && *p != '_' && *p != '.' && *p != '-')
            return false;
    return true;
}

char *name_generate(void)
{
    static const char *const adjectives[] = {
        "eager", "brave", "calm",  "clever", "bold",  "bright", "swift",  "quiet",
        "merry", "proud", "keen",  "gentle", "happy", "jolly",  "lucky",  "noble",
        "witty", "zesty", "sunny", "steady", "vivid", "wise",   "placid", "nimble",
    };
    static const char *const animals[] = {
        "fox",    "owl",   "otter", "hawk",    "lynx",  "heron", "wren",  "badger",
        "beaver", "crane", "eagle", "falcon",  "gecko", "ibis",  "koala", "lemur",
        "marten", "newt",  "panda", "raven",   "robin", "seal",  "tern",  "wolf",
        "yak",    "zebra", "bison", "kestrel", "puma",  "quail", "stoat", "vole",
    };
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)time_monotonic_ms();
    return xasprintf("%s-%s", adjectives[r % ARRAY_SIZE(adjectives)],
                     animals[(r / ARRAY_SIZE(adjectives)) % ARRAY_SIZE(animals)]);
}

int64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *path_join(const char *a, const char *b)
{
    if (str_empty(a))
        return xstrdup(b);
    if (b[0] == '/')
        b++;
    return xasprintf("%s%s%s", a, str_endswith(a, "/") ? "" : "/", b);
}

int mkdir_p(const char *path, mode_t mode)
{
    _cleanup_free_ char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(p, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int fd_write_all(int fd, const void *data, size_t len)
{
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

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int r = fd_write_all(fd, data, len);
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    if (fsync(fd) < 0 || rename(tmp, path) < 0) {
        r = -errno;
        unlink(tmp);
        return r;
    }
    return 0;
}

int read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    _cleanup_buf_ hypr_buf b = {0};
    for (;;) {
        buf_reserve(&b, 65536);
        ssize_t n = read(fd, b.data + b.len, 65536);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
        b.data[b.len] = '\0';
        if (b.len > max)
            return -EFBIG;
    }
    if (out_len)
        *out_len = b.len;
    *out = buf_steal(&b);
    return 0;
}

int rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return -errno;
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            _cleanup_free_ char *child = path_join(path, de->d_name);
            int k = rm_rf(child);
            if (k < 0 && r == 0)
                r = k;
        }
        closedir(d);
        if (r < 0)
            return r;
        return rmdir(path) < 0 ? -errno : 0;
    }
    return unlink(path) < 0 ? -errno : 0;
}

int proc_start_time(pid_t pid, uint64_t *out)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *stat = NULL;
    int r = read_file(path, 4096, &stat, NULL);
    if (r < 0)
        return r == -ENOENT ? -ESRCH : r;
    /* The command name (field 2) is in parentheses and may hold anything,
     * parentheses and spaces included: the fields that follow start after the last ')'. */
    const char *p = strrchr(stat, ')');
    if (!p)
        return -EBADMSG;
    p++;
    /* Field 3 (state) is the first after it; starttime is field 22. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -EBADMSG;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1)
        return -EBADMSG;
    *out = v;
    return 0;
}

static const char *const signal_names[] = {
    [SIGHUP] = "SIGHUP",       [SIGINT] = "SIGINT",       [SIGQUIT] = "SIGQUIT",
    [SIGILL] = "SIGILL",       [SIGTRAP] = "SIGTRAP",     [SIGABRT] = "SIGABRT",
    [SIGBUS] = "SIGBUS",       [SIGFPE] = "SIGFPE",       [SIGKILL] = "SIGKILL",
    [SIGUSR1] = "SIGUSR1",     [SIGSEGV] = "SIGSEGV",     [SIGUSR2] = "SIGUSR2",
    [SIGPIPE] = "SIGPIPE",     [SIGALRM] = "SIGALRM",     [SIGTERM] = "SIGTERM",
    [SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD",     [SIGCONT] = "SIGCONT",
    [SIGSTOP] = "SIGSTOP",     [SIGTSTP] = "SIGTSTP",     [SIGTTIN] = "SIGTTIN",
    [SIGTTOU] = "SIGTTOU",     [SIGURG] = "SIGURG",       [SIGXCPU] = "SIGXCPU",
    [SIGXFSZ] = "SIGXFSZ",     [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
    [SIGWINCH] = "SIGWINCH",   [SIGIO] = "SIGIO",         [SIGPWR] = "SIGPWR",
    [SIGSYS] = "SIGSYS",
};

/* The guest's kernel numbers real-time signals 34..64 (SIGRTMIN..SIGRTMAX). */
#define GUEST_SIGRTMIN 34
#define GUEST_SIGRTMAX 64

int signal_parse(const char *s)
{
    int64_t n;
    if (str_empty(s))
        return -EINVAL;
    if (s[0] >= '0' && s[0] <= '9')
        return parse_int64(s, 1, GUEST_SIGRTMAX, &n) < 0 ? -EINVAL : (int)n;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signal_names); i++)
        if (signal_names[i] && strcasecmp(s, signal_names[i] + 3) == 0)
            return (int)i;
    bool min = strncasecmp(s, "RTMIN", 5) == 0;
    if (!min && strncasecmp(s, "RTMAX", 5) != 0)
        return -EINVAL;
    n = 0;
    if (s[5] && (s[5] != (min ? '+' : '-') || parse_int64(s + 6, 0, 30, &n) < 0))
        return -EINVAL;
    return min ? GUEST_SIGRTMIN + (int)n : GUEST_SIGRTMAX - (int)n;
}

const char *signal_name(int signo)
{
    return signo > 0 && (size_t)signo < ARRAY_SIZE(signal_names) ? signal_names[signo] : NULL;
}

int hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *percent_decode(const char *s, size_t len, unsigned flags)
{
    _cleanup_free_ char *out = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int hi = c == '%' && i + 2 < len ? hex_digit_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_digit_value(s[i + 2]) : -1;
        if (c == '%' && hi >= 0 && lo >= 0 && (hi | lo || !(flags & PERCENT_STRICT))) {
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '%' && (flags & PERCENT_STRICT)) {
            return NULL;
        } else if (c == '+' && (flags & PERCENT_PLUS)) {
            c = ' ';
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return TAKE_PTR(out);
}
