/* kestrel's hypr diff (diff.c): an overlay upper directory read against its lower one,
 * printed as docker diff does, without kestrel's own init layer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "diff.h"

static char base[128];

static void make(const char *rel, char kind)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    if (kind == 'd') {
        assert_int_equal(mkdir(p, 0755), 0);
    } else if (kind == 'w') { /* an overlay whiteout: a 0/0 character device */
        assert_int_equal(mknod(p, S_IFCHR | 0600, makedev(0, 0)), 0);
    } else if (kind == 'l') {
        assert_int_equal(symlink("/etc", p), 0);
    } else {
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
}

static int open_dir(const char *rel)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* The diff as one string. */
static char *diff(const char *const *hidden)
{
    int up = open_dir("upper"), low = open_dir("lower");
    FILE *out = tmpfile();
    assert_non_null(out);
    assert_int_equal(kestrel_diff(up, low, hidden, fileno(out)), 0);
    long n = ftell(out);
    assert_true(n >= 0);
    n = lseek(fileno(out), 0, SEEK_END);
    char *text = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fileno(out), text, (size_t)n, 0), n);
    fclose(out);
    close(up);
    close(low);
    return text;
}

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/kdiff-XXXXXX");
    assert_non_null(mkdtemp(base));
    static const char *const tree[] = {
        "lower",
        "upper",
        /* the image */
        "lower/etc",
        "lower/etc/passwd",
        "lower/bin",
        "lower/bin/sh",
        "lower/old",
        "lower/var",
        "lower/var/lib",
        "lower/var/lib/gone",
        "lower/opt",
        "lower/opt/keep",
        "lower/data",
        /* what kestrel made while setting up */
        "upper/etc",
        "upper/etc/hosts",
        "upper/etc/resolv.conf",
        "upper/mnt",
        "upper/mnt/vol",
        "upper/data",
        /* what the workload did */
        "upper/bin",
        "upper/bin/sh",
        "upper/old",
        "upper/new",
        "upper/app",
        "upper/app/x",
        "upper/app/sub",
        "upper/var",
        "upper/var/lib",
        "upper/var/lib/gone",
        "upper/ghost",
        "upper/link",
        "upper/opt",
        "upper/opt/added",
    };
    static const char kinds[] = {
        'd', 'd', 'd', 'f', 'd', 'f', 'f', 'd', 'd', 'f', 'd', 'f', 'd', 'd', 'f', 'f', 'd',
        'd', 'd', 'd', 'f', 'w', 'f', 'd', 'f', 'd', 'd', 'd', 'w', 'w', 'l', 'd', 'f',
    };
    _Static_assert(sizeof(tree) / sizeof(tree[0]) == sizeof(kinds), "one kind per path");
    for (size_t i = 0; i < sizeof(kinds); i++)
        make(tree[i], kinds[i]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void test_diff_lists_the_workloads_changes_sorted(void **state)
{
    (void)state;
    static const char *const hidden[] = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                                         "/mnt/vol",   "/data",         NULL};
    char *text = diff(hidden);
    assert_string_equal(text, "A /app\n"
                              "A /app/sub\n"
                              "A /app/x\n"
                              "C /bin\n"
                              "C /bin/sh\n"
                              "A /link\n"
                              "A /new\n"
                              "D /old\n"
                              "C /opt\n"
                              "A /opt/added\n"
                              "C /var\n"
                              "C /var/lib\n"
                              "D /var/lib/gone\n");
    free(text);
}

static void test_without_hidden_paths_the_init_layer_shows(void **state)
{
    (void)state;
    char *text = diff(NULL);
    /* /ghost whites out nothing of the image: no change */
    assert_null(strstr(text, "ghost"));
    assert_non_null(strstr(text, "C /etc\nA /etc/hosts\nA /etc/resolv.conf\n"));
    assert_non_null(strstr(text, "A /mnt\nA /mnt/vol\n"));
    assert_non_null(strstr(text, "C /data\n"));
    free(text);
}

static void test_an_untouched_vm_has_no_diff(void **state)
{
    (void)state;
    static const char *const hidden[] = {"/etc/hosts", "/etc/resolv.conf", NULL};
    char saved[128];
    snprintf(saved, sizeof(saved), "%s", base);
    char fresh[160];
    snprintf(fresh, sizeof(fresh), "%s/fresh", saved);
    assert_int_equal(mkdir(fresh, 0755), 0);
    assert_true((size_t)snprintf(base, sizeof(base), "%.100s", fresh) < sizeof(base));
    make("lower", 'd');
    make("upper", 'd');
    make("lower/etc", 'd');
    make("upper/etc", 'd');
    make("upper/etc/hosts", 'f');
    make("upper/etc/resolv.conf", 'f');
    char *text = diff(hidden);
    assert_string_equal(text, "");
    free(text);
    snprintf(base, sizeof(base), "%s", saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_lists_the_workloads_changes_sorted),
        cmocka_unit_test(test_without_hidden_paths_the_init_layer_shows),
        cmocka_unit_test(test_an_untouched_vm_has_no_diff),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
