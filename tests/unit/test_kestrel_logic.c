#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "logic.h"

static char tmpdir[64];
static char passwd_path[128], group_path[128];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/kestrel-logic-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(passwd_path, sizeof(passwd_path), "%s/passwd", tmpdir);
    snprintf(group_path, sizeof(group_path), "%s/group", tmpdir);
    write_text(passwd_path, "root:x:0:0:root:/root:/bin/sh\n"
                            "# a comment\n"
                            "broken line\n"
                            "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                            "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                            "app:x:1000:1000::/home/app:/bin/sh\r\n"
                            "nohome:x:1001:1001::\n");
    write_text(group_path, "root:x:0:\n"
                           "daemon:x:1:\n"
                           "www-data:x:33:\n"
                           "audio:x:29:app,www-data\n"
                           "video:x:44:www-data\n"
                           "app:x:1000:\n"
                           "staff:x:50:other,app\n"
                           "bad:x:notanumber:app\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(passwd_path);
    unlink(group_path);
    rmdir(tmpdir);
    return 0;
}

static void test_env_merge(void **state)
{
    (void)state;
    char *image[] = {"PATH=/usr/bin", "LANG=C", "EMPTY=", "noequals", "=novalue", NULL};
    char *user[] = {"LANG=en_US.UTF-8", "NEW=1", "PATH=/opt/bin:/usr/bin", NULL};
    char **env = env_merge(image, user);
    assert_non_null(env);
    assert_int_equal(kstrv_len(env), 4);
    /* overrides keep the base order; new keys are appended */
    assert_string_equal(env[0], "PATH=/opt/bin:/usr/bin");
    assert_string_equal(env[1], "LANG=en_US.UTF-8");
    assert_string_equal(env[2], "EMPTY=");
    assert_string_equal(env[3], "NEW=1");
    assert_string_equal(env_get(env, "EMPTY"), "");
    assert_null(env_get(env, "EMPT"));
    assert_null(env_get(env, "noequals"));
    assert_int_equal(env_default(&env, "HOME", "/root"), 0);
    assert_int_equal(env_default(&env, "PATH", "/bin"), 0);
    assert_string_equal(env_get(env, "HOME"), "/root");
    assert_string_equal(env_get(env, "PATH"), "/opt/bin:/usr/bin");
    kstrv_free(env);

    env = env_merge(NULL, NULL);
    assert_non_null(env);
    assert_null(env[0]);
    kstrv_free(env);
}

static void test_argv_build(void **state)
{
    (void)state;
    char *ep[] = {"/entry.sh", "--flag", NULL};
    char *cmd[] = {"nginx", "-g", "daemon off;", NULL};
    char **argv;
    assert_int_equal(argv_build(ep, cmd, &argv), 0);
    assert_int_equal(kstrv_len(argv), 5);
    assert_string_equal(argv[0], "/entry.sh");
    assert_string_equal(argv[2], "nginx");
    assert_string_equal(argv[4], "daemon off;");
    kstrv_free(argv);
    assert_int_equal(argv_build(NULL, cmd, &argv), 0);
    assert_string_equal(argv[0], "nginx");
    kstrv_free(argv);
    assert_int_equal(argv_build(ep, NULL, &argv), 0);
    assert_int_equal(kstrv_len(argv), 2);
    kstrv_free(argv);
    char *none[] = {NULL};
    assert_int_equal(argv_build(none, NULL, &argv), -EINVAL);
    char *empty[] = {"", NULL};
    assert_int_equal(argv_build(empty, cmd, &argv), -EINVAL);
}

static bool has_group(const kestrel_ids *ids, gid_t g)
{
    for (size_t i = 0; i < ids->ngroups; i++)
        if (ids->groups[i] == g)
            return true;
    return false;
}

static void test_user_resolve(void **state)
{
    (void)state;
    kestrel_ids ids;

    assert_int_equal(user_resolve("", passwd_path, group_path, &ids), 0);
    assert_int_equal(ids.uid, 0);
    assert_int_equal(ids.gid, 0);
    assert_string_equal(ids.home, "/root");
    kestrel_ids_free(&ids);

    assert_int_equal(user_resolve("www-data", passwd_path, group_path, &ids), 0);
    assert_int_equal(ids.uid, 33);
    assert_int_equal(ids.gid, 33);
    assert_string_equal(ids.home, "/var/www");
    assert_string_equal(ids.name, "www-data");
    assert_int_equal(ids.ngroups, 3);
    assert_true(has_group(&ids, 33) && has_group(&ids, 29) && has_group(&ids, 44));
    kestrel_ids_free(&ids);

    /* CRLF line, supplementary groups; "bad" has a broken gid and is skipped */
    assert_int_equal(user_resolve("app", passwd_path, group_path, &ids), 0);
    assert_int_equal(ids.uid, 1000);
    assert_string_equal(ids.home, "/home/app");
    assert_int_equal(ids.ngroups, 3);
    assert_true(has_group(&ids, 1000) && has_group(&ids, 29) && has_group(&ids, 50));
    kestrel_ids_free(&ids);

    /* numeric uid with a passwd entry: its gid and home */
    assert_int_equal(user_resolve("1000", passwd_path, group_path, &ids), 0);
    assert_int_equal(ids.gid, 1000);
    assert_string_equal(ids.name, "app");
    kestrel_ids_free(&ids);

    /* numeric uid without one: gid 0, home / */
    assert_int_equal(user_resolve("4242", passwd_path, group_path, &ids), 0);
    assert_int_equal(ids.uid, 4242);
    assert_int_equal(ids.gid, 0);
    assert_string_equal(ids.home, "/");
    assert_null(ids.name);
    kestrel_ids_free(&ids);

    assert_int_equal(user_resolve("4242:4343", passwd_path, group_path, &ids), 0);
    assert_int_equal(ids.gid, 4343);
    kestrel_ids_free(&ids);

    assert_int_equal(user_resolve("app:video", passwd_path, group_path, &ids), 0);
    assert_int_equal(ids.uid, 1000);
    assert_int_equal(ids.gid, 44);
    kestrel_ids_free(&ids);

    assert_int_equal(user_resolve("nohome", passwd_path, group_path, &ids), 0);
    assert_string_equal(ids.home, "/");
    kestrel_ids_free(&ids);

    assert_int_equal(user_resolve("ghost", passwd_path, group_path, &ids), -ENOENT);
    assert_int_equal(user_resolve("app:ghosts", passwd_path, group_path, &ids), -ENOENT);
    assert_int_equal(user_resolve("app:", passwd_path, group_path, &ids), -EINVAL);
    assert_int_equal(user_resolve("a:b:c", passwd_path, group_path, &ids), -EINVAL);
    assert_int_equal(user_resolve("ro", passwd_path, group_path, &ids), -ENOENT); /* no prefix */
    /* an id that would mean "unchanged" to setuid is not a number here */
    assert_int_equal(user_resolve("4294967295", passwd_path, group_path, &ids), -ENOENT);

    /* images without /etc/passwd: numbers still work, names do not */
    assert_int_equal(user_resolve("0", "/nonexistent/passwd", "/nonexistent/group", &ids), 0);
    assert_string_equal(ids.home, "/root");
    kestrel_ids_free(&ids);
    assert_int_equal(user_resolve("root", "/nonexistent/passwd", "/nonexistent/group", &ids),
                     -ENOENT);
}

static void test_restart_policy(void **state)
{
    (void)state;
    assert_false(restart_should(RESTART_NO, 0, 1, 0, false));
    assert_true(restart_should(RESTART_ALWAYS, 0, 0, 100, false));
    assert_false(restart_should(RESTART_ALWAYS, 0, 1, 0, true));
    assert_true(restart_should(RESTART_UNLESS_STOPPED, 0, 0, 0, false));
    assert_false(restart_should(RESTART_UNLESS_STOPPED, 0, 0, 0, true));
    assert_false(restart_should(RESTART_ON_FAILURE, 0, 0, 0, false));
    assert_true(restart_should(RESTART_ON_FAILURE, 0, 137, 1000, false));
    assert_true(restart_should(RESTART_ON_FAILURE, 3, 1, 2, false));
    assert_false(restart_should(RESTART_ON_FAILURE, 3, 1, 3, false));
    assert_false(restart_should(RESTART_ON_FAILURE, 3, 1, 0, true));

    assert_int_equal(restart_backoff_ms(0), 100);
    assert_int_equal(restart_backoff_ms(1), 200);
    assert_int_equal(restart_backoff_ms(8), 25600);
    assert_int_equal(restart_backoff_ms(9), KESTREL_BACKOFF_MAX_MS);
    assert_int_equal(restart_backoff_ms(31), KESTREL_BACKOFF_MAX_MS);
    assert_int_equal(restart_backoff_ms(UINT32_MAX), KESTREL_BACKOFF_MAX_MS);
}

static int run_child_exec(const char *file, const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {(char *)file, NULL};
        char *envp[] = {NULL};
        int e = exec_search(file, argv, envp, path);
        _exit(exec_failure_code(e));
    }
    int status;
    waitpid(pid, &status, 0);
    return exit_code_from_status(status);
}

static void test_exec_codes(void **state)
{
    (void)state;
    assert_int_equal(exec_failure_code(ENOENT), 127);
    assert_int_equal(exec_failure_code(ENOTDIR), 127);
    assert_int_equal(exec_failure_code(EACCES), 126);
    assert_int_equal(exec_failure_code(ENOEXEC), 126);
    assert_int_equal(exit_code_from_status(3 << 8), 3);
    assert_int_equal(exit_code_from_status(9), 128 + 9); /* killed by SIGKILL */

    char noexec[160];
    snprintf(noexec, sizeof(noexec), "%s/notexec", tmpdir);
    write_text(noexec, "#!/bin/sh\nexit 0\n");
    chmod(noexec, 0644);

    assert_int_equal(run_child_exec("true", "/nonexistent:/usr/bin:/bin"), 0);
    assert_int_equal(run_child_exec("false", NULL), 1);
    assert_int_equal(run_child_exec("no-such-command-kestrel", "/usr/bin:/bin"), 127);
    assert_int_equal(run_child_exec("/no/such/file", NULL), 127);
    assert_int_equal(run_child_exec(noexec, NULL), 126);
    assert_int_equal(run_child_exec("notexec", tmpdir), 126); /* found but not executable */
    assert_int_equal(run_child_exec("", NULL), 127);
    unlink(noexec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_merge),    cmocka_unit_test(test_argv_build),
        cmocka_unit_test(test_user_resolve), cmocka_unit_test(test_restart_policy),
        cmocka_unit_test(test_exec_codes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
