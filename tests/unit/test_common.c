#include <signal.h>
#include <sys/wait.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

static void test_error_prefix(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = hypr_err(&err, HYPR_NOT_FOUND, ENOENT, "no such VM %s", "web");
    assert_int_equal(r, -ENOENT);
    r = hypr_err_prefix(&err, "start %s", "web");
    assert_int_equal(r, -ENOENT);
    assert_string_equal(err.message, "start web: no such VM web");
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    assert_int_equal(hypr_err(NULL, HYPR_INTERNAL, 0, "x"), -EIO);
}

static void test_log_spec(void **state)
{
    (void)state;
    assert_int_equal(hypr_log_init("info,rpc=debug"), 0);
    assert_true(hypr_log_enabled(HYPR_LOG_DEBUG, "rpc"));
    assert_false(hypr_log_enabled(HYPR_LOG_DEBUG, "state"));
    assert_true(hypr_log_enabled(HYPR_LOG_INFO, "state"));
    assert_int_equal(hypr_log_init("loud"), -EINVAL);
    assert_int_equal(hypr_log_init("error"), 0);
    assert_false(hypr_log_enabled(HYPR_LOG_WARN, "net"));
    hypr_log_init(NULL);
}

static void test_ids_and_names(void **state)
{
    (void)state;
    char a[HYPR_ID_LEN + 1], b[HYPR_ID_LEN + 1];
    assert_int_equal(id_generate(a), 0);
    assert_int_equal(id_generate(b), 0);
    assert_true(id_is_valid(a));
    assert_string_not_equal(a, b);
    assert_false(id_is_valid("abc"));
    assert_true(name_is_valid("web-1.prod_x"));
    assert_false(name_is_valid("-web"));
    assert_false(name_is_valid("we b"));
    assert_false(name_is_valid(""));
    _cleanup_free_ char *n = name_generate();
    assert_true(name_is_valid(n));
    assert_non_null(strchr(n, '-'));
}

static void test_int_and_size_parsing_and_size_format(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(parse_int64("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(parse_int64("4x", 0, 100, &v), -EINVAL);
    assert_int_equal(parse_int64("101", 0, 100, &v), -ERANGE);
    assert_int_equal(parse_size_mib("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(parse_size_mib("2g", &v), 0);
    assert_int_equal(v, 2048);
    assert_int_equal(parse_size_mib("1024k", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(parse_size_mib("512MB", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(parse_size_mib("1000k", &v), -EINVAL);
    assert_int_equal(parse_size_mib("-5", &v), -ERANGE);
    assert_int_equal(parse_size_mib("m", &v), -EINVAL);
    char out[32];
    format_size(1500000, out, sizeof(out));
    assert_string_equal(out, "1.50MB");
    format_size(12, out, sizeof(out));
    assert_string_equal(out, "12B");
}

static void test_buf_and_strv(void **state)
{
    (void)state;
    _cleanup_buf_ hypr_buf b = {0};
    buf_printf(&b, "%d-%s", 7, "x");
    buf_puts(&b, "yz");
    assert_string_equal(b.data, "7-xyz");
    buf_consume(&b, 2);
    assert_string_equal(b.data, "xyz");
    _cleanup_strv_ char **v = NULL;
    v = strv_append(v, "a");
    v = strv_append(v, "b");
    assert_int_equal(strv_length(v), 2);
    _cleanup_strv_ char **c = strv_copy(v);
    assert_string_equal(c[1], "b");
    _cleanup_strv_ char **w = strv_split(" a, b,,c ", ", ");
    assert_int_equal(strv_length(w), 3);
    assert_string_equal(w[0], "a");
    assert_string_equal(w[2], "c");
    assert_null(strv_split(" , ", ", "));
    assert_null(strv_split(NULL, ", "));
}

static void test_mkdir_p_atomic_write_read_limit_and_rm_rf(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/hypr-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    _cleanup_free_ char *deep = path_join(tmpl, "a/b/c");
    assert_int_equal(mkdir_p(deep, 0755), 0);
    _cleanup_free_ char *f = path_join(deep, "f.txt");
    assert_int_equal(write_file_atomic(f, "hello", 5, 0644), 0);
    _cleanup_free_ char *data = NULL;
    size_t len;
    assert_int_equal(read_file(f, 1024, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    _cleanup_free_ char *small = NULL;
    assert_int_equal(read_file(f, 2, &small, &len), -EFBIG);
    assert_int_equal(rm_rf(tmpl), 0);
    assert_int_equal(access(tmpl, F_OK), -1);
    assert_int_equal(rm_rf(tmpl), 0);
}

static void test_fd_write_all(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fd_write_all(fds[1], "abc", 3), 0);
    assert_int_equal(fd_write_all(fds[1], "", 0), 0);
    close(fds[1]);
    char got[8] = {0};
    assert_int_equal(read(fds[0], got, sizeof(got)), 3);
    assert_string_equal(got, "abc");
    assert_int_equal(fd_write_all(fds[0], "x", 1), -EBADF); /* the read end */
    close(fds[0]);
}

/* A pid and its start time name one process: a child's start time is stable and
 * later than ours, and a reaped child's pid has none. */
static void test_proc_start_time(void **state)
{
    (void)state;
    uint64_t self = 0, again = 0, child_start = 0;
    assert_int_equal(proc_start_time(getpid(), &self), 0);
    assert_int_equal(proc_start_time(getpid(), &again), 0);
    assert_true(self > 0);
    assert_true(self == again);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pause();
        _exit(0);
    }
    assert_int_equal(proc_start_time(pid, &child_start), 0);
    assert_true(child_start >= self);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(proc_start_time(pid, &child_start), -ESRCH);
}

/* Go's duration syntax, as `until=24h` takes it. */
static void test_duration_parsing(void **state)
{
    (void)state;
    int64_t ns;
    assert_int_equal(parse_duration_ns("24h", &ns), 0);
    assert_true(ns == 24LL * 3600 * 1000000000);
    assert_int_equal(parse_duration_ns("1h30m", &ns), 0);
    assert_true(ns == 90LL * 60 * 1000000000);
    assert_int_equal(parse_duration_ns("1.5s", &ns), 0);
    assert_true(ns == 1500000000);
    assert_int_equal(parse_duration_ns(".5ms", &ns), 0);
    assert_true(ns == 500000);
    assert_int_equal(parse_duration_ns("300us", &ns), 0);
    assert_true(ns == 300000);
    assert_int_equal(parse_duration_ns("2\xc2\xb5s", &ns), 0);
    assert_true(ns == 2000);
    assert_int_equal(parse_duration_ns("-2m", &ns), 0);
    assert_true(ns == -120LL * 1000000000);
    assert_int_equal(parse_duration_ns("0", &ns), 0);
    assert_true(ns == 0);
    assert_int_equal(parse_duration_ns("2562047h", &ns), 0); /* ~292 years fits */
    assert_int_equal(parse_duration_ns("2562048h", &ns), -ERANGE);
    assert_int_equal(parse_duration_ns("99999999999999999999999h", &ns), -ERANGE);
    const char *bad[] = {"", "h", "24", "abc", "1x", "1.h1", ".s", "1h 2m", "--1h", "5d", "+"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(parse_duration_ns(bad[i], &ns), -EINVAL);
}

/* until=: a duration back from now, an RFC 3339 time, or unix seconds. */
static void test_time_reference_parsing(void **state)
{
    (void)state;
    const int64_t now = 1700000000000; /* 2023-11-14T22:13:20Z */
    int64_t t;
    assert_int_equal(parse_time_reference("24h", now, &t), 0);
    assert_true(t == now - 86400000);
    assert_int_equal(parse_time_reference("90m", now, &t), 0);
    assert_true(t == now - 5400000);
    assert_int_equal(parse_time_reference("2023-11-14T22:13:20Z", now, &t), 0);
    assert_true(t == now);
    assert_int_equal(parse_time_reference("2023-11-15T00:13:20.25+02:00", now, &t), 0);
    assert_true(t == now + 250);
    assert_int_equal(parse_time_reference("2024-02-29T00:00:00Z", now, &t), 0);
    assert_true(t == 1709164800000);
    assert_int_equal(parse_time_reference("1700000000", now, &t), 0);
    assert_true(t == now);
    assert_int_equal(parse_time_reference("1700000000.5", now, &t), 0);
    assert_true(t == now + 500);
    assert_int_equal(parse_time_reference("0", now, &t), 0); /* the epoch, not "now" */
    assert_true(t == 0);
    /* Without a zone: local time, whatever TZ says. */
    setenv("TZ", "UTC", 1);
    tzset();
    assert_int_equal(parse_time_reference("2023-11-14", now, &t), 0);
    assert_true(t == 1699920000000);
    assert_int_equal(parse_time_reference("2023-11-14T22:13", now, &t), 0);
    assert_true(t == now - 20000);
    assert_int_equal(parse_time_reference("2023-11-14T22:13:20", now, &t), 0);
    assert_true(t == now);
    const char *bad[] = {"",
                         "abc",
                         "24x",
                         "2023-13-01",
                         "2023-02-30",
                         "2023-11-14T25:00Z",
                         "2023-11-14T22:13:20.Z",
                         "2023-11-14Zjunk",
                         "2023-11-14T22:13:20+0200",
                         "1700000000.",
                         "1700000000.1234567890",
                         "17e9",
                         "-"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(parse_time_reference(bad[i], now, &t), -EINVAL);
    assert_int_equal(parse_time_reference("99999999999999999999", now, &t), -ERANGE);
}

static void test_signal_parse_and_name(void **state)
{
    (void)state;
    struct {
        const char *in;
        int want;
    } cases[] = {
        {"KILL", SIGKILL},
        {"SIGKILL", SIGKILL},
        {"sigterm", SIGTERM},
        {"usr1", SIGUSR1},
        {"9", 9},
        {"64", 64},
        {"SIGRTMIN", 34},
        {"RTMIN+3", 37},
        {"SIGRTMAX-2", 62},
        {"RTMAX", 64},
        {"", -EINVAL},
        {"0", -EINVAL},
        {"65", -EINVAL},
        {"SIG", -EINVAL},
        {"NOPE", -EINVAL},
        {"RTMIN-1", -EINVAL},
        {"RTMIN+31", -EINVAL},
        {"9x", -EINVAL},
        {"SIGSIGKILL", -EINVAL},
        {"-9", -EINVAL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        assert_int_equal(signal_parse(cases[i].in), cases[i].want);
    assert_string_equal(signal_name(SIGTERM), "SIGTERM");
    assert_string_equal(signal_name(SIGQUIT), "SIGQUIT");
    assert_null(signal_name(40));
    assert_null(signal_name(0));
}

static void test_percent_decode(void **state)
{
    (void)state;
    struct {
        const char *in;
        unsigned flags;
        const char *out; /* NULL: refused */
    } cases[] = {
        {"a%2Fb%20c", 0, "a/b c"},
        {"a+b", 0, "a+b"},
        {"a+b%2b", PERCENT_PLUS, "a b+"},
        {"100%", 0, "100%"}, /* kept literally when lenient */
        {"%zz%4", 0, "%zz%4"},
        {"100%", PERCENT_STRICT, NULL},
        {"%4", PERCENT_STRICT, NULL},
        {"%00", PERCENT_STRICT, NULL}, /* no NUL inside a path or a parameter */
        {"%e2%82%ac", PERCENT_STRICT, "\xe2\x82\xac"},
        {"", PERCENT_STRICT, ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *d = percent_decode(cases[i].in, strlen(cases[i].in), cases[i].flags);
        if (!cases[i].out)
            assert_null(d);
        else
            assert_string_equal(d, cases[i].out);
    }
    /* Only len bytes are read: the escape cut by the length is not an escape. */
    _cleanup_free_ char *cut = percent_decode("ab%41", 4, 0);
    assert_string_equal(cut, "ab%4");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_prefix),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_signal_parse_and_name),
        cmocka_unit_test(test_log_spec),
        cmocka_unit_test(test_ids_and_names),
        cmocka_unit_test(test_int_and_size_parsing_and_size_format),
        cmocka_unit_test(test_buf_and_strv),
        cmocka_unit_test(test_mkdir_p_atomic_write_read_limit_and_rm_rf),
        cmocka_unit_test(test_fd_write_all),
        cmocka_unit_test(test_proc_start_time),
        cmocka_unit_test(test_duration_parsing),
        cmocka_unit_test(test_time_reference_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
