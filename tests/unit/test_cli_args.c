#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "cli/cli.h"

/* A "run"-like command table shared by the parser tests. */
typedef struct run_opts {
    bool detach, interactive, tty, rm;
    const char *name, *memory;
    int64_t timeout;
    cli_list env, publish;
} run_opts;

static void run_opts_free(run_opts *o)
{
    cli_list_free(&o->env);
    cli_list_free(&o->publish);
}

static cli_command make_cmd(run_opts *o, bool stop)
{
    static cli_option opts[9];
    cli_option tmp[] = {
        CLI_BOOL('d', "detach", &o->detach, "Run in background"),
        CLI_BOOL('i', "interactive", &o->interactive, "Keep stdin open"),
        CLI_BOOL('t', "tty", &o->tty, "Allocate a terminal"),
        CLI_BOOL(0, "rm", &o->rm, "Remove when stopped"),
        CLI_STRING('n', "name", "string", &o->name, "Name"),
        CLI_STRING('m', "memory", "bytes", &o->memory, "Memory"),
        CLI_LIST('e', "env", "list", &o->env, "Env"),
        CLI_LIST('p', "publish", "list", &o->publish, "Ports"),
        CLI_OPTIONS_END,
    };
    memcpy(opts, tmp, sizeof(tmp));
    cli_command c = {
        .name = "hypr run",
        .usage = "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        .description = "Create and run a new VM from an image",
        .options = opts,
        .min_args = 1,
        .max_args = -1,
        .stop_at_positional = stop,
        .error_exit = 125,
    };
    return c;
}

/* Parses a NULL-terminated word list; returns cli_parse's result. */
static int parse_words(const cli_command *c, const char **words, cli_parsed *p, char **error)
{
    int argc = 0;
    while (words[argc])
        argc++;
    return cli_parse(c, argc, (char **)words, p, error);
}

static void test_long_short_equals(void **state)
{
    (void)state;
    run_opts o = {0};
    cli_command c = make_cmd(&o, true);
    const char *w[] = {"run", "--name=web", "-m", "512m", "--detach", "busybox", NULL};
    _cleanup_parsed_ cli_parsed p = {0};
    _cleanup_free_ char *error = NULL;
    assert_int_equal(parse_words(&c, w, &p, &error), 0);
    assert_string_equal(o.name, "web");
    assert_string_equal(o.memory, "512m");
    assert_true(o.detach);
    assert_int_equal(p.nargs, 1);
    assert_string_equal(p.args[0], "busybox");
    run_opts_free(&o);

    run_opts o2 = {0};
    c = make_cmd(&o2, true);
    const char *w2[] = {"run", "-nweb", "-m=1g", "--name", "db", "img", NULL};
    _cleanup_parsed_ cli_parsed p2 = {0};
    assert_int_equal(parse_words(&c, w2, &p2, &error), 0);
    assert_string_equal(o2.name, "db"); /* the last one wins */
    assert_string_equal(o2.memory, "1g");
    run_opts_free(&o2);
}

static void test_combined_and_repeatable(void **state)
{
    (void)state;
    run_opts o = {0};
    cli_command c = make_cmd(&o, true);
    const char *w[] = {"run",        "-dit", "-e",    "A=1",       "--env=B=2",
                       "-eC=3",      "-p",   "80:80", "--publish", "127.0.0.1:53:53/udp",
                       "--rm=false", "img",  NULL};
    _cleanup_parsed_ cli_parsed p = {0};
    _cleanup_free_ char *error = NULL;
    assert_int_equal(parse_words(&c, w, &p, &error), 0);
    assert_true(o.detach && o.interactive && o.tty);
    assert_false(o.rm);
    assert_int_equal(o.env.n, 3);
    assert_string_equal(o.env.items[0], "A=1");
    assert_string_equal(o.env.items[1], "B=2");
    assert_string_equal(o.env.items[2], "C=3");
    assert_int_equal(o.publish.n, 2);
    assert_string_equal(o.publish.items[1], "127.0.0.1:53:53/udp");
    run_opts_free(&o);

    /* A value-taking flag at the end of a combined group takes the next word. */
    run_opts o2 = {0};
    c = make_cmd(&o2, true);
    const char *w2[] = {"run", "-dn", "x", "img", NULL};
    _cleanup_parsed_ cli_parsed p2 = {0};
    assert_int_equal(parse_words(&c, w2, &p2, &error), 0);
    assert_true(o2.detach);
    assert_string_equal(o2.name, "x");
    run_opts_free(&o2);
}

static void test_stop_at_positional(void **state)
{
    (void)state;
    run_opts o = {0};
    cli_command c = make_cmd(&o, true);
    const char *w[] = {"run", "-d", "busybox", "ls", "-la", "--name", "x", NULL};
    _cleanup_parsed_ cli_parsed p = {0};
    _cleanup_free_ char *error = NULL;
    assert_int_equal(parse_words(&c, w, &p, &error), 0);
    assert_null(o.name);
    assert_int_equal(p.nargs, 5);
    assert_string_equal(p.args[1], "ls");
    assert_string_equal(p.args[2], "-la");
    assert_string_equal(p.args[4], "x");
    run_opts_free(&o);

    /* "exec VM -- CMD": the "--" right after the first positional is dropped. */
    run_opts o2 = {0};
    c = make_cmd(&o2, true);
    const char *w2[] = {"exec", "vm1", "--", "ls", "--", "-l", NULL};
    _cleanup_parsed_ cli_parsed p2 = {0};
    assert_int_equal(parse_words(&c, w2, &p2, &error), 0);
    assert_int_equal(p2.nargs, 4);
    assert_string_equal(p2.args[0], "vm1");
    assert_string_equal(p2.args[1], "ls");
    assert_string_equal(p2.args[2], "--");
    run_opts_free(&o2);

    /* Without stop mode flags may follow positionals (interspersed). */
    run_opts o3 = {0};
    c = make_cmd(&o3, false);
    const char *w3[] = {"rm", "a", "-d", "b", "--", "-c", NULL};
    _cleanup_parsed_ cli_parsed p3 = {0};
    assert_int_equal(parse_words(&c, w3, &p3, &error), 0);
    assert_true(o3.detach);
    assert_int_equal(p3.nargs, 3);
    assert_string_equal(p3.args[2], "-c");
    run_opts_free(&o3);
}

static void expect_error(bool stop, const char **w, const char *message)
{
    run_opts o = {0};
    cli_command c = make_cmd(&o, stop);
    _cleanup_parsed_ cli_parsed p = {0};
    _cleanup_free_ char *error = NULL;
    assert_int_equal(parse_words(&c, w, &p, &error), -EINVAL);
    assert_non_null(error);
    assert_string_equal(error, message);
    run_opts_free(&o);
}

static void test_bad_flags_and_missing_arguments_refused(void **state)
{
    (void)state;
    const char *w1[] = {"run", "--foo", "img", NULL};
    expect_error(true, w1, "unknown flag: --foo");
    const char *w2[] = {"run", "-x", "img", NULL};
    expect_error(true, w2, "unknown shorthand flag: 'x' in -x");
    const char *w3[] = {"run", "img", "-n", NULL}; /* stop mode: -n belongs to the CMD */
    run_opts o = {0};
    cli_command c = make_cmd(&o, true);
    _cleanup_parsed_ cli_parsed p = {0};
    _cleanup_free_ char *error = NULL;
    assert_int_equal(parse_words(&c, w3, &p, &error), 0);
    run_opts_free(&o);
    const char *w4[] = {"run", "-n", NULL};
    expect_error(true, w4, "flag needs an argument: 'n' in -n");
    const char *w5[] = {"run", "--name", NULL};
    expect_error(true, w5, "flag needs an argument: --name");
    const char *w6[] = {"run", NULL};
    expect_error(true, w6, "\"hypr run\" requires at least 1 argument.");
    const char *w7[] = {"run", "--rm=maybe", "img", NULL};
    expect_error(true, w7, "invalid argument \"maybe\" for \"--rm\" flag: expected true or false");
    const char *w8[] = {"run", "-dx", "img", NULL};
    expect_error(true, w8, "unknown shorthand flag: 'x' in -dx");
}

static void test_help_and_counts(void **state)
{
    (void)state;
    run_opts o = {0};
    cli_command c = make_cmd(&o, true);
    _cleanup_free_ char *error = NULL;
    const char *w[] = {"run", "--help", NULL};
    _cleanup_parsed_ cli_parsed p = {0};
    assert_int_equal(parse_words(&c, w, &p, &error), CLI_PARSE_HELP);
    const char *w2[] = {"run", "-h", NULL};
    _cleanup_parsed_ cli_parsed p2 = {0};
    assert_int_equal(parse_words(&c, w2, &p2, &error), CLI_PARSE_HELP);
    /* After the image, --help belongs to the command. */
    const char *w3[] = {"run", "img", "--help", NULL};
    _cleanup_parsed_ cli_parsed p3 = {0};
    assert_int_equal(parse_words(&c, w3, &p3, &error), 0);
    assert_int_equal(p3.nargs, 2);

    int64_t t = 10;
    cli_option opts[] = {CLI_INT('t', "time", "int", &t, 0, 3600, "Seconds"), CLI_OPTIONS_END};
    cli_command logs = {.name = "hypr logs",
                        .usage = "VM",
                        .description = "d",
                        .options = opts,
                        .min_args = 1,
                        .max_args = 1};
    const char *w4[] = {"logs", "a", "b", NULL};
    _cleanup_parsed_ cli_parsed p4 = {0};
    assert_int_equal(parse_words(&logs, w4, &p4, &error), -EINVAL);
    assert_string_equal(error, "\"hypr logs\" requires exactly 1 argument.");
    free(error);
    error = NULL;
    const char *w5[] = {"logs", "-t", "5", "a", NULL};
    _cleanup_parsed_ cli_parsed p5 = {0};
    assert_int_equal(parse_words(&logs, w5, &p5, &error), 0);
    assert_int_equal(t, 5);
    const char *w6[] = {"logs", "-t", "abc", "a", NULL};
    _cleanup_parsed_ cli_parsed p6 = {0};
    assert_int_equal(parse_words(&logs, w6, &p6, &error), -EINVAL);
    assert_string_equal(error,
                        "invalid argument \"abc\" for \"-t, --time\" flag: expected an integer "
                        "from 0 to 3600");
    free(error);
    error = NULL;
    cli_command ps = {.name = "hypr ps", .description = "d", .max_args = 0};
    const char *w7[] = {"ps", "x", NULL};
    _cleanup_parsed_ cli_parsed p7 = {0};
    assert_int_equal(parse_words(&ps, w7, &p7, &error), -EINVAL);
    assert_string_equal(error, "\"hypr ps\" accepts no arguments.");
    run_opts_free(&o);
}

static void test_ports(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    cli_port p;
    assert_int_equal(cli_parse_port("8080:80", &p, &err), 0);
    assert_null(p.host_ip);
    assert_int_equal(p.host_port, 8080);
    assert_int_equal(p.guest_port, 80);
    assert_string_equal(p.protocol, "tcp");
    assert_int_equal(cli_parse_port("127.0.0.1:5353:53/udp", &p, &err), 0);
    assert_string_equal(p.host_ip, "127.0.0.1");
    assert_int_equal(p.host_port, 5353);
    assert_int_equal(p.guest_port, 53);
    assert_string_equal(p.protocol, "udp");
    cli_port_free(&p);
    assert_int_equal(cli_parse_port("[::1]:8443:443/tcp", &p, &err), 0);
    assert_string_equal(p.host_ip, "::1");
    assert_int_equal(p.host_port, 8443);
    cli_port_free(&p);

    static const char *const bad[] = {
        "0:80", "70000:80",     "abc:80",  "80:abc", "80:0", "80:80/sctp", "1.2.3:80:80",
        "::80", "8000-8010:80", "a:b:c:d", "",       ":80",  "0",          "abc",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_true(cli_parse_port(bad[i], &p, &err) < 0);
        assert_non_null(err.message);
    }
    /* No host port: hyprd picks a free one (-p 80, -p 53/udp, -p 127.0.0.1::80). */
    assert_int_equal(cli_parse_port("80", &p, &err), 0);
    assert_int_equal(p.host_port, 0);
    assert_int_equal(p.guest_port, 80);
    assert_string_equal(p.protocol, "tcp");
    assert_int_equal(cli_parse_port("53/udp", &p, &err), 0);
    assert_int_equal(p.guest_port, 53);
    assert_string_equal(p.protocol, "udp");
    assert_int_equal(cli_parse_port("127.0.0.1::80", &p, &err), 0);
    assert_string_equal(p.host_ip, "127.0.0.1");
    assert_int_equal(p.host_port, 0);
    cli_port_free(&p);
    assert_true(cli_parse_port(":80", &p, &err) < 0);
    assert_non_null(strstr(err.message, "host port is empty"));
    assert_true(cli_parse_port("70000:80", &p, &err) < 0);
    assert_string_equal(err.message, "invalid host port 70000: must be between 1 and 65535");
    assert_true(cli_parse_port("80:abc", &p, &err) < 0);
    assert_string_equal(err.message, "invalid guest port \"abc\": not a number");
}

static void test_env_and_labels(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    char *k = NULL, *v = NULL;
    assert_int_equal(cli_parse_env("A=b=c", &k, &v, &err), 1);
    assert_string_equal(k, "A");
    assert_string_equal(v, "b=c");
    free(k);
    free(v);
    assert_int_equal(cli_parse_env("EMPTY=", &k, &v, &err), 1);
    assert_string_equal(v, "");
    free(k);
    free(v);
    setenv("HYPR_TEST_FROM_ENV", "yes", 1);
    assert_int_equal(cli_parse_env("HYPR_TEST_FROM_ENV", &k, &v, &err), 1);
    assert_string_equal(v, "yes");
    free(k);
    free(v);
    unsetenv("HYPR_TEST_UNSET");
    assert_int_equal(cli_parse_env("HYPR_TEST_UNSET", &k, &v, &err), 0);
    assert_true(cli_parse_env("=x", &k, &v, &err) < 0);
    assert_true(cli_parse_env("A B=x", &k, &v, &err) < 0);

    assert_int_equal(cli_parse_label("com.example=1", &k, &v, &err), 0);
    assert_string_equal(k, "com.example");
    assert_string_equal(v, "1");
    free(k);
    free(v);
    assert_int_equal(cli_parse_label("flag", &k, &v, &err), 0);
    assert_string_equal(v, "");
    free(k);
    free(v);
    assert_true(cli_parse_label("=v", &k, &v, &err) < 0);

    char path[] = "/tmp/hypr-envfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *content = "# comment\n\nA=1\n  B=two words\r\nHOME\n";
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    _cleanup_strv_ char **lines = NULL;
    assert_int_equal(cli_read_env_file(path, &lines, &err), 0);
    assert_int_equal(strv_length(lines), 3);
    assert_string_equal(lines[0], "A=1");
    assert_string_equal(lines[1], "B=two words");
    assert_string_equal(lines[2], "HOME");
    unlink(path);
    _cleanup_strv_ char **none = NULL;
    assert_true(cli_read_env_file("/nonexistent/env", &none, &err) < 0);
}

static void test_volumes(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_mount_spec_ volume_mount_spec v = {0};
    assert_int_equal(cli_parse_mount(CLI_MOUNT_VOLUME, "data:/var/lib/data", &v, &err), 0);
    assert_int_equal(v.type, VOLUME_MOUNT_VOLUME);
    assert_string_equal(v.source, "data");
    assert_string_equal(v.target, "/var/lib/data");
    assert_false(v.read_only);
    volume_mount_spec_clear(&v);
    assert_int_equal(
        cli_parse_mount(CLI_MOUNT_VOLUME, "/srv/www:/usr/share/nginx/html:ro", &v, &err), 0);
    assert_int_equal(v.type, VOLUME_MOUNT_BIND);
    assert_string_equal(v.source, "/srv/www");
    assert_true(v.read_only);
    volume_mount_spec_clear(&v);
    assert_int_equal(cli_parse_mount(CLI_MOUNT_VOLUME, "/data", &v, &err), 0);
    assert_null(v.source); /* anonymous */
    volume_mount_spec_clear(&v);
    /* ./ and ../ are the caller's directory, as Docker resolves them */
    _cleanup_free_ char *cwd = getcwd(NULL, 0);
    assert_int_equal(cli_parse_mount(CLI_MOUNT_VOLUME, "./site:/www", &v, &err), 0);
    assert_int_equal(v.type, VOLUME_MOUNT_BIND);
    assert_true(str_startswith(v.source, cwd));
    assert_true(str_endswith(v.source, "/site"));
    volume_mount_spec_clear(&v);
    assert_int_equal(cli_parse_mount(CLI_MOUNT_MOUNT, "type=tmpfs,dst=/t,tmpfs-size=1m", &v, &err),
                     0);
    assert_int_equal(v.type, VOLUME_MOUNT_TMPFS);
    assert_int_equal(v.tmpfs_size, 1 << 20);
    volume_mount_spec_clear(&v);
    assert_int_equal(cli_parse_mount(CLI_MOUNT_TMPFS, "/run/x:size=64m,mode=700", &v, &err), 0);
    assert_int_equal(v.tmpfs_mode, 0700);
    volume_mount_spec_clear(&v);
    static const char *const bad[] = {"foo/bar:/x", "a:b",         "a:/b:rx", "a:/b:ro:x",
                                      ":/b",        "bad name:/b", "/a::ro",  "v:/"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_true(cli_parse_mount(CLI_MOUNT_VOLUME, bad[i], &v, &err) < 0);
        volume_mount_spec_clear(&v);
    }
}

static void test_sizes_cpus_restart(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    uint64_t mib;
    assert_int_equal(cli_parse_memory("512m", &mib, &err), 0);
    assert_int_equal(mib, 512);
    assert_int_equal(cli_parse_memory("2g", &mib, &err), 0);
    assert_int_equal(mib, 2048);
    assert_int_equal(cli_parse_memory("512", &mib, &err), 0);
    assert_int_equal(mib, 512);
    assert_int_equal(cli_parse_memory("1G", &mib, &err), 0);
    assert_int_equal(mib, 1024);
    assert_int_equal(cli_parse_memory("2048k", &mib, &err), 0);
    assert_int_equal(mib, 2);
    static const char *const badmem[] = {"", "abc", "0", "-1", "512x", "1.5g", "100k"};
    for (size_t i = 0; i < ARRAY_SIZE(badmem); i++)
        assert_true(cli_parse_memory(badmem[i], &mib, &err) < 0);

    uint32_t cpus;
    assert_int_equal(cli_parse_cpus("2", &cpus, &err), 0);
    assert_int_equal(cpus, 2);
    assert_true(cli_parse_cpus("0", &cpus, &err) < 0);
    assert_true(cli_parse_cpus("1.5", &cpus, &err) < 0);
    assert_true(cli_parse_cpus("999", &cpus, &err) < 0);

    cli_restart r;
    assert_int_equal(cli_parse_restart("no", &r, &err), 0);
    assert_string_equal(r.name, "no");
    assert_int_equal(cli_parse_restart("always", &r, &err), 0);
    assert_int_equal(cli_parse_restart("unless-stopped", &r, &err), 0);
    assert_string_equal(r.name, "unless-stopped");
    assert_int_equal(cli_parse_restart("on-failure", &r, &err), 0);
    assert_int_equal(r.max_retries, 0);
    assert_int_equal(cli_parse_restart("on-failure:3", &r, &err), 0);
    assert_string_equal(r.name, "on-failure");
    assert_int_equal(r.max_retries, 3);
    static const char *const badr[] = {"sometimes", "always:3", "on-failure:x", "on-failure:-1",
                                       "",          "on",       "never"};
    for (size_t i = 0; i < ARRAY_SIZE(badr); i++)
        assert_true(cli_parse_restart(badr[i], &r, &err) < 0);

    int32_t tail;
    assert_int_equal(cli_parse_tail("all", &tail, &err), 0);
    assert_int_equal(tail, -1);
    assert_int_equal(cli_parse_tail("20", &tail, &err), 0);
    assert_int_equal(tail, 20);
    assert_true(cli_parse_tail("-3", &tail, &err) < 0);
}

static void test_hosts_and_helpers(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    struct {
        const char *in, *target, *display;
    } ok[] = {
        {"/run/hypr/hypr.sock", "/run/hypr/hypr.sock", "unix:///run/hypr/hypr.sock"},
        {"unix:///tmp/x.sock", "/tmp/x.sock", "unix:///tmp/x.sock"},
        {"unix:/tmp/x.sock", "/tmp/x.sock", "unix:///tmp/x.sock"},
        {"tcp://127.0.0.1:41000", "tcp://127.0.0.1:41000", "tcp://127.0.0.1:41000"},
        {"127.0.0.1:41000", "tcp://127.0.0.1:41000", "tcp://127.0.0.1:41000"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        _cleanup_free_ char *t = NULL, *d = NULL;
        assert_int_equal(cli_parse_host(ok[i].in, &t, &d, &err), 0);
        assert_string_equal(t, ok[i].target);
        assert_string_equal(d, ok[i].display);
    }
    char *t, *d;
    assert_true(cli_parse_host("ssh://x", &t, &d, &err) < 0);
    assert_true(cli_parse_host("tcp://x", &t, &d, &err) < 0);
    assert_true(cli_parse_host("", &t, &d, &err) < 0);

    assert_int_equal(cli_parse_format(NULL, &err), 0);
    assert_int_equal(cli_parse_format("table", &err), 0);
    assert_int_equal(cli_parse_format("json", &err), 1);
    assert_int_equal(cli_parse_format("{{.ID}}", &err), CLI_FORMAT_TEMPLATE);
    assert_int_equal(cli_parse_format("table {{.ID}}\\t{{.Names}}", &err), CLI_FORMAT_TEMPLATE);
    assert_true(cli_parse_format("yaml", &err) < 0);
    hypr_error_clear(&err);
    assert_true(cli_parse_format("{{.ID", &err) < 0);
    assert_string_equal(err.message, "template parsing error: template: :1: unclosed action");
    hypr_error_clear(&err);

    char buf[64];
    cli_human_duration(0, buf, sizeof(buf));
    assert_string_equal(buf, "Less than a second");
    cli_human_duration(45, buf, sizeof(buf));
    assert_string_equal(buf, "45 seconds");
    cli_human_duration(90, buf, sizeof(buf));
    assert_string_equal(buf, "About a minute");
    cli_human_duration(180, buf, sizeof(buf));
    assert_string_equal(buf, "3 minutes");
    cli_human_duration(3600, buf, sizeof(buf));
    assert_string_equal(buf, "About an hour");
    cli_human_duration(5 * 3600, buf, sizeof(buf));
    assert_string_equal(buf, "5 hours");
    cli_human_duration(3 * 86400, buf, sizeof(buf));
    assert_string_equal(buf, "3 days");
    cli_rfc3339(0, buf, sizeof(buf));
    assert_string_equal(buf, "0001-01-01T00:00:00Z");
    cli_rfc3339(1700000000, buf, sizeof(buf));
    assert_string_equal(buf, "2023-11-14T22:13:20Z");

    assert_string_equal(cli_short_image_name("docker.io/library/nginx"), "nginx");
    assert_string_equal(cli_short_image_name("docker.io/user/app"), "user/app");
    assert_string_equal(cli_short_image_name("localhost:5000/app"), "localhost:5000/app");
    char *n, *tag;
    cli_split_reference("localhost:5000/app", &n, &tag, true);
    assert_string_equal(n, "localhost:5000/app");
    assert_string_equal(tag, "latest");
    free(n);
    free(tag);
    cli_split_reference("nginx:1.25", &n, &tag, true);
    assert_string_equal(n, "nginx");
    assert_string_equal(tag, "1.25");
    free(n);
    free(tag);
    _cleanup_free_ char *p1 = cli_project_name("/home/me/My App");
    assert_string_equal(p1, "myapp");
    _cleanup_free_ char *p2 = cli_project_name("/");
    assert_string_equal(p2, "default");
}

/* Feeds text through the matcher; what it would send lands in sent. */
static bool feed(const cli_detach_keys *k, size_t *matched, const char *text, char *sent)
{
    uint8_t buf[64];
    size_t len = strlen(text);
    memcpy(buf, text, len);
    bool d = cli_detach_match(k, matched, buf, &len);
    memcpy(sent, buf, len);
    sent[len] = '\0';
    return d;
}

static void test_detach_keys(void **state)
{
    (void)state;
    cli_detach_keys k;
    hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(cli_parse_detach_keys(NULL, &k, &err), 0);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.key[0], 0x10);
    assert_int_equal(k.key[1], 0x11);
    assert_int_equal(
        cli_parse_detach_keys("ctrl-a,X,ctrl-@,ctrl-[,ctrl-\\,ctrl-_,CTRL-Z", &k, &err), 0);
    const uint8_t want[] = {1, 'X', 0, 27, 28, 31, 26};
    assert_int_equal(k.n, sizeof(want));
    assert_memory_equal(k.key, want, sizeof(want));
    const char *bad[] = {"ctrl-", "ctrl-1", "ab", "a,,b", "a,", "ctrl-aa", "shift-a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cli_parse_detach_keys(bad[i], &k, &err), -EINVAL);
        assert_non_null(strstr(err.message, "invalid detach keys"));
        hypr_error_clear(&err);
    }

    char sent[80];
    size_t m = 0;
    assert_int_equal(cli_parse_detach_keys("x,y,z", &k, &err), 0);
    assert_false(feed(&k, &m, "abc", sent));
    assert_string_equal(sent, "abc");
    assert_false(feed(&k, &m, "axy", sent)); /* x y held: they may be the keys */
    assert_string_equal(sent, "a");
    assert_int_equal(m, 2);
    assert_false(feed(&k, &m, "q", sent)); /* not: they go out before q */
    assert_string_equal(sent, "xyq");
    assert_false(feed(&k, &m, "xx", sent)); /* the second x starts again */
    assert_string_equal(sent, "x");
    assert_true(feed(&k, &m, "yz-after", sent)); /* across reads; what follows is dropped */
    assert_string_equal(sent, "");
    m = 0;
    assert_true(feed(&k, &m, "12xyz", sent));
    assert_string_equal(sent, "12");
    assert_int_equal(cli_parse_detach_keys("", &k, &err), 0); /* Docker's default */
    m = 0;
    assert_false(feed(&k, &m,
                      "\x10"
                      "a\x10",
                      sent));
    assert_string_equal(sent, "\x10"
                              "a");
    assert_true(feed(&k, &m, "\x11", sent));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_short_equals),
        cmocka_unit_test(test_combined_and_repeatable),
        cmocka_unit_test(test_stop_at_positional),
        cmocka_unit_test(test_bad_flags_and_missing_arguments_refused),
        cmocka_unit_test(test_help_and_counts),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_env_and_labels),
        cmocka_unit_test(test_volumes),
        cmocka_unit_test(test_sizes_cpus_restart),
        cmocka_unit_test(test_hosts_and_helpers),
        cmocka_unit_test(test_detach_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
