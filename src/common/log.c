#include "common.h"

#include <string.h>
#include <time.h>

#define MAX_MODULE_RULES 16

static struct {
    hypr_log_level level;
    size_t n_rules;
    struct {
        char module[32];
        hypr_log_level level;
    } rules[MAX_MODULE_RULES];
} log_config = {.level = HYPR_LOG_INFO};

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

static int parse_level(const char *s, size_t len, hypr_log_level *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
        if (strlen(level_names[i]) == len && strncasecmp(s, level_names[i], len) == 0) {
            *out = (hypr_log_level)i;
            return 0;
        }
    }
    if (len == 7 && strncasecmp(s, "warning", len) == 0) {
        *out = HYPR_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

int hypr_log_init(const char *spec)
{
    log_config.level = HYPR_LOG_INFO;
    log_config.n_rules = 0;
    if (str_empty(spec))
        return 0;
    const char *p = spec;
    int r = 0;
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        hypr_log_level level;
        if (!eq) {
            if (parse_level(p, len, &level) < 0)
                r = -EINVAL;
            else
                log_config.level = level;
        } else {
            size_t mlen = (size_t)(eq - p);
            if (mlen == 0 || mlen >= sizeof(log_config.rules[0].module) ||
                log_config.n_rules >= MAX_MODULE_RULES ||
                parse_level(eq + 1, len - mlen - 1, &level) < 0) {
                r = -EINVAL;
            } else {
                memcpy(log_config.rules[log_config.n_rules].module, p, mlen);
                log_config.rules[log_config.n_rules].module[mlen] = '\0';
                log_config.rules[log_config.n_rules].level = level;
                log_config.n_rules++;
            }
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return r;
}

bool hypr_log_enabled(hypr_log_level level, const char *module)
{
    for (size_t i = 0; i < log_config.n_rules; i++)
        if (strcmp(log_config.rules[i].module, module) == 0)
            return level <= log_config.rules[i].level;
    return level <= log_config.level;
}

void hypr_log_write(hypr_log_level level, const char *module, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    hypr_buf b = {0};
    buf_printf(&b, "%s.%03ldZ %-5s %s: ", stamp, ts.tv_nsec / 1000000, level_names[level], module);
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    buf_puts(&b, msg);
    buf_puts(&b, "\n");
    free(msg);
    /* One write per line so concurrent writers do not interleave. */
    ssize_t n = write(STDERR_FILENO, b.data, b.len);
    (void)n;
    buf_free(&b);
}
