/* kestrel's volume pre-population (populate.c): the copy of an image directory
 * into an empty volume, and the emptiness rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "populate.h"

#define MTIME 1000000000 /* 2001-09-09, far from "now" */

static char base[64];

static void path_of(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", base, rel);
}

static void write_text(const char *rel, const char *text, mode_t mode)
{
    char p[256];
    path_of(p, sizeof(p), rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(p, mode), 0);
}

static void set_mtime(const char *rel, long sec)
{
    char p[256];
    path_of(p, sizeof(p), rel);
    struct timespec ts[2] = {{sec - 5, 0}, {sec, 123456789}};
    assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void mkdir_rel(const char *rel, mode_t mode)
{
    char p[256];
    path_of(p, sizeof(p), rel);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static int open_dir(const char *rel)
{
    char p[256];
    path_of(p, sizeof(p), rel);
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static struct stat lstat_rel(const char *rel)
{
    char p[256];
    struct stat st;
    path_of(p, sizeof(p), rel);
    if (lstat(p, &st) < 0)
        fail_msg("lstat %s: %s", p, strerror(errno));
    return st;
}

static char *read_text(const char *rel)
{
    static char buf[256];
    char p[256];
    path_of(p, sizeof(p), rel);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = 0;
    return buf;
}

/* The image's directory: what Docker would copy into a fresh volume. */
static void make_source(void)
{
    char p[256], q[256];
    mkdir_rel("src", 0755);
    write_text("src/a.conf", "hello\n", 0640);
    mkdir_rel("src/sub", 0750);
    write_text("src/sub/tool", "#!/bin/sh\n", 04755);
    mkdir_rel("src/sub/empty", 01777);
    path_of(p, sizeof(p), "src/link");
    assert_int_equal(symlink("a.conf", p), 0);
    path_of(p, sizeof(p), "src/dangling");
    assert_int_equal(symlink("/nonexistent/elsewhere", p), 0);
    path_of(p, sizeof(p), "src/fifo");
    assert_int_equal(mkfifo(p, 0620), 0);
    path_of(p, sizeof(p), "src/a.conf");
    path_of(q, sizeof(q), "src/hardlink");
    assert_int_equal(link(p, q), 0);
    if (geteuid() == 0) {
        path_of(p, sizeof(p), "src/null");
        assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
        path_of(p, sizeof(p), "src/a.conf");
        assert_int_equal(chown(p, 1234, 5678), 0);
        path_of(p, sizeof(p), "src/link");
        assert_int_equal(lchown(p, 4321, 8765), 0);
        path_of(p, sizeof(p), "src/sub/tool");
        assert_int_equal(chown(p, 0, 50), 0);
        assert_int_equal(chmod(p, 04755), 0); /* chown dropped the setuid bit */
        path_of(p, sizeof(p), "src");
        assert_int_equal(chown(p, 33, 33), 0);
    }
    set_mtime("src/a.conf", MTIME);
    set_mtime("src/link", MTIME + 1);
    set_mtime("src/sub/tool", MTIME + 2);
    set_mtime("src/sub/empty", MTIME + 3);
    set_mtime("src/sub", MTIME + 4);
    set_mtime("src/fifo", MTIME + 5);
    set_mtime("src", MTIME + 6);
}

static int setup(void **state)
{
    (void)state;
    strcpy(base, "/tmp/kestrel-copy-XXXXXX");
    if (!mkdtemp(base))
        return -1;
    make_source();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static void assert_same_meta(const char *a, const char *b)
{
    struct stat sa = lstat_rel(a), sb = lstat_rel(b);
    if (sa.st_mode != sb.st_mode)
        fail_msg("%s: mode %o, want %o", b, sb.st_mode, sa.st_mode);
    assert_int_equal(sb.st_uid, sa.st_uid);
    assert_int_equal(sb.st_gid, sa.st_gid);
    assert_int_equal(sb.st_mtim.tv_sec, sa.st_mtim.tv_sec);
    assert_int_equal(sb.st_mtim.tv_nsec, sa.st_mtim.tv_nsec);
}

static void check_copy(const char *dst)
{
    char a[128], b[128];
    static const char *const names[] = {
        "a.conf", "sub", "sub/tool", "sub/empty", "link", "dangling", "fifo", "hardlink", "",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(a, sizeof(a), "src/%s", names[i]);
        snprintf(b, sizeof(b), "%s/%s", dst, names[i]);
        assert_same_meta(a, b);
    }
    snprintf(b, sizeof(b), "%s/a.conf", dst);
    assert_int_equal(lstat_rel(b).st_mode, S_IFREG | 0640);
    assert_int_equal(lstat_rel(b).st_mtim.tv_sec, MTIME);
    assert_string_equal(read_text(b), "hello\n");
    snprintf(b, sizeof(b), "%s/sub/tool", dst);
    assert_int_equal(lstat_rel(b).st_mode, S_IFREG | 04755);
    assert_string_equal(read_text(b), "#!/bin/sh\n");
    snprintf(b, sizeof(b), "%s/sub/empty", dst);
    assert_int_equal(lstat_rel(b).st_mode, S_IFDIR | 01777);
    snprintf(b, sizeof(b), "%s/sub", dst);
    assert_int_equal(lstat_rel(b).st_mode, S_IFDIR | 0750);
    assert_int_equal(lstat_rel(b).st_mtim.tv_sec, MTIME + 4);

    char p[256], target[128];
    snprintf(b, sizeof(b), "%s/link", dst);
    path_of(p, sizeof(p), b);
    ssize_t n = readlink(p, target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = 0;
    assert_string_equal(target, "a.conf");
    assert_true(S_ISLNK(lstat_rel(b).st_mode));
    snprintf(b, sizeof(b), "%s/dangling", dst);
    path_of(p, sizeof(p), b);
    n = readlink(p, target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = 0;
    assert_string_equal(target, "/nonexistent/elsewhere");
    snprintf(b, sizeof(b), "%s/fifo", dst);
    assert_true(S_ISFIFO(lstat_rel(b).st_mode));
    /* a hard link becomes its own file with the same content */
    snprintf(b, sizeof(b), "%s/hardlink", dst);
    assert_string_equal(read_text(b), "hello\n");
    if (geteuid() == 0) {
        snprintf(b, sizeof(b), "%s/null", dst);
        struct stat st = lstat_rel(b);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(st.st_rdev, makedev(1, 3));
        snprintf(b, sizeof(b), "%s/a.conf", dst);
        assert_int_equal(lstat_rel(b).st_uid, 1234);
        assert_int_equal(lstat_rel(b).st_gid, 5678);
        snprintf(b, sizeof(b), "%s/link", dst);
        assert_int_equal(lstat_rel(b).st_uid, 4321);
        assert_int_equal(lstat_rel(b).st_gid, 8765);
        assert_int_equal(lstat_rel(dst).st_uid, 33); /* the top takes the image dir's owner */
    }
}

static void test_copy_tree(void **state)
{
    (void)state;
    mkdir_rel("dst", 0700);
    int s = open_dir("src"), d = open_dir("dst");
    assert_int_equal(populate_dir_is_empty(d), 1);
    assert_int_equal(populate_dir_is_empty(s), 0);
    char why[256];
    assert_int_equal(populate_copy_tree(s, d, why, sizeof(why)), 0);
    assert_string_equal(why, "");
    assert_int_equal(populate_dir_is_empty(d), 0);
    check_copy("dst");
    /* a second copy collides with what is there: the message names the path */
    int r = populate_copy_tree(s, d, why, sizeof(why));
    assert_int_equal(r, -EEXIST);
    assert_non_null(strstr(why, "File exists"));
    assert_true(strstr(why, "a.conf") || strstr(why, "sub") || strstr(why, "link") ||
                strstr(why, "fifo") || strstr(why, "dangling") || strstr(why, "null") ||
                strstr(why, "hardlink"));
    close(s);
    close(d);
}

static void test_error_names_nested_path(void **state)
{
    (void)state;
    mkdir_rel("dst2", 0755);
    mkdir_rel("dst2/sub", 0755);
    mkdir_rel("dst2/sub/empty", 0755); /* collides only two levels down */
    int s = open_dir("src/sub"), d = open_dir("dst2/sub");
    char why[256];
    assert_int_equal(populate_dir_is_empty(d), 0);
    int r = populate_copy_tree(s, d, why, sizeof(why));
    assert_int_equal(r, -EEXIST);
    assert_string_equal(why, "mkdir empty: File exists");
    close(s);
    close(d);
}

static void test_empty_rule(void **state)
{
    (void)state;
    mkdir_rel("vol", 0755);
    int d = open_dir("vol");
    assert_int_equal(populate_dir_is_empty(d), 1);
    mkdir_rel("vol/lost+found", 0700); /* what mkfs.ext4 leaves */
    assert_int_equal(populate_dir_is_empty(d), 1);
    write_text("vol/lost+found/#12", "x", 0600);
    assert_int_equal(populate_dir_is_empty(d), 0);
    close(d);
    mkdir_rel("vol2", 0755);
    write_text("vol2/.hidden", "", 0600);
    d = open_dir("vol2");
    assert_int_equal(populate_dir_is_empty(d), 0);
    close(d);
}

/* kestrel's technique: the fd opened before the mount still sees the image's
 * directory under it, and the copy goes into the new mount. */
static void test_copy_from_under_a_mount(void **state)
{
    (void)state;
    char target[256];
    path_of(target, sizeof(target), "src");
    int under = open_dir("src");
    if (mount("tmpfs", target, "tmpfs", 0, "mode=0700") < 0) {
        close(under);
        skip(); /* not root, or no mount rights in this sandbox */
    }
    int top = open_dir("src");
    assert_int_equal(populate_dir_is_empty(top), 1);
    assert_int_equal(populate_dir_is_empty(under), 0);
    char why[256];
    int r = populate_copy_tree(under, top, why, sizeof(why));
    if (r < 0)
        fail_msg("copy: %s", why);
    struct stat st;
    assert_int_equal(fstatat(top, "a.conf", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode, S_IFREG | 0640);
    assert_int_equal(st.st_mtim.tv_sec, MTIME);
    assert_int_equal(fstatat(top, "sub/tool", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode, S_IFREG | 04755);
    struct stat ut, tt;
    assert_int_equal(fstat(under, &ut), 0);
    assert_int_equal(fstat(top, &tt), 0);
    assert_int_equal(tt.st_mode, ut.st_mode);
    assert_int_equal(tt.st_mtim.tv_sec, ut.st_mtim.tv_sec);
    close(top);
    close(under);
    assert_int_equal(umount2(target, MNT_DETACH), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_tree),
        cmocka_unit_test(test_error_names_nested_path),
        cmocka_unit_test(test_empty_rule),
        cmocka_unit_test(test_copy_from_under_a_mount),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
