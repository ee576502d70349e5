/* Points in time as users type them for filters (`--filter until=24h`): Go's
 * duration syntax, RFC 3339 dates and times, unix timestamps. Docker's CLI and
 * daemon accept these three forms (its timetypes.GetTimestamp), so the same
 * values work here. The input comes from API requests: every length is checked
 * and nothing is read past the string's end. */
#define LOG_MODULE "common"
#include "common/common.h"

#include <string.h>
#include <time.h>

#define NS_PER_S  1000000000LL
#define NS_PER_MS 1000000LL

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The unit at *p (longest match), its length in *len; 0 when none. */
static int64_t duration_unit(const char *p, size_t *len)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {
        {"ns", 1},           {"us", 1000},    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000},                                       /* U+03BC Greek mu */
        {"ms", NS_PER_MS},   {"s", NS_PER_S}, {"m", 60 * NS_PER_S}, {"h", 3600 * NS_PER_S},
    };
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        size_t n = strlen(units[i].name);
        if (strncmp(p, units[i].name, n) == 0) {
            *len = n;
            return units[i].ns;
        }
    }
    return 0;
}

int parse_duration_ns(const char *s, int64_t *out_ns)
{
    if (str_empty(s))
        return -EINVAL;
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out_ns = 0;
        return 0;
    }
    if (!*p)
        return -EINVAL;
    /* Like Go: the magnitude may reach 2^63 when negative. */
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t total = 0;
    while (*p) {
        uint64_t whole = 0;
        bool digits = false, overflow = false;
        for (; is_digit(*p); p++) {
            digits = true;
            if (whole > (UINT64_MAX - 9) / 10)
                overflow = true;
            else
                whole = whole * 10 + (uint64_t)(*p - '0');
        }
        uint64_t frac = 0, scale = 1;
        if (*p == '.') {
            p++;
            for (; is_digit(*p); p++) {
                digits = true;
                /* Digits beyond nanosecond precision of an hour no longer matter. */
                if (scale <= UINT64_MAX / 100) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
            }
        }
        if (!digits)
            return -EINVAL;
        size_t ulen = 0;
        int64_t unit = duration_unit(p, &ulen);
        if (!unit)
            return -EINVAL;
        p += ulen;
        if (overflow || whole > limit / (uint64_t)unit)
            return -ERANGE;
        uint64_t v = whole * (uint64_t)unit;
        if (frac)
            v += (uint64_t)((long double)frac * (long double)unit / (long double)scale);
        if (v > limit || total > limit - v)
            return -ERANGE;
        total += v;
    }
    *out_ns = neg ? (int64_t)(0 - total) : (int64_t)total;
    return 0;
}

/* Exactly n digits at *p into *out; advances *p. */
static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* YYYY-MM-DD[THH[:MM[:SS[.frac]]]][Z|±HH:MM]; no zone = local time. */
static int parse_rfc3339(const char *s, int64_t *out_ms)
{
    const char *p = s;
    int year, mon, day, hour = 0, min = 0, sec = 0;
    if (!take_digits(&p, 4, &year) || *p++ != '-' || !take_digits(&p, 2, &mon) || *p++ != '-' ||
        !take_digits(&p, 2, &day))
        return -EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
        return -EINVAL;
    int64_t frac_ms = 0;
    if (*p == 'T' || *p == 't') {
        p++;
        if (!take_digits(&p, 2, &hour) || hour > 23)
            return -EINVAL;
        if (*p == ':') {
            p++;
            if (!take_digits(&p, 2, &min) || min > 59)
                return -EINVAL;
            if (*p == ':') {
                p++;
                if (!take_digits(&p, 2, &sec) || sec > 59)
                    return -EINVAL;
                if (*p == '.') {
                    p++;
                    int64_t scale = 100;
                    if (!is_digit(*p))
                        return -EINVAL;
                    for (; is_digit(*p); p++, scale /= 10)
                        frac_ms += (*p - '0') * scale;
                }
            }
        }
    }
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec,
                    .tm_isdst = -1};
    time_t t;
    if (*p == 'Z' || *p == 'z') {
        if (p[1])
            return -EINVAL;
        t = timegm(&tm);
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, zh, zm;
        if (!take_digits(&p, 2, &zh) || *p++ != ':' || !take_digits(&p, 2, &zm) || *p || zh > 23 ||
            zm > 59)
            return -EINVAL;
        t = timegm(&tm) - sign * (zh * 3600 + zm * 60);
    } else if (!*p) {
        t = mktime(&tm);
    } else {
        return -EINVAL;
    }
    *out_ms = (int64_t)t * 1000 + frac_ms;
    return 0;
}

/* seconds[.fraction], as Docker's API takes timestamps. */
static int parse_unix(const char *s, int64_t *out_ms)
{
    const char *p = s;
    int64_t secs = 0, frac_ms = 0;
    if (!is_digit(*p))
        return -EINVAL;
    for (; is_digit(*p); p++) {
        if (secs > (INT64_MAX / 1000 - 9) / 10)
            return -ERANGE;
        secs = secs * 10 + (*p - '0');
    }
    if (*p == '.') {
        p++;
        int n = 0;
        int64_t scale = 100;
        for (; is_digit(*p); p++, n++, scale /= 10)
            frac_ms += (*p - '0') * scale;
        if (n == 0 || n > 9)
            return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    *out_ms = secs * 1000 + frac_ms;
    return 0;
}

int parse_time_reference(const char *s, int64_t now_ms, int64_t *out_ms)
{
    if (str_empty(s))
        return -EINVAL;
    int64_t ns;
    /* "0" is the unix epoch, not a zero duration (as in Docker). */
    int r = strcmp(s, "0") ? parse_duration_ns(s, &ns) : -EINVAL;
    if (r == 0) {
        int64_t d_ms = ns / NS_PER_MS;
        if ((d_ms > 0 && now_ms < INT64_MIN + d_ms) || (d_ms < 0 && now_ms > INT64_MAX + d_ms))
            return -ERANGE;
        *out_ms = now_ms - d_ms;
        return 0;
    }
    if (r == -ERANGE)
        return r;
    if (strchr(s, '-'))
        return parse_rfc3339(s, out_ms);
    return parse_unix(s, out_ms);
}
