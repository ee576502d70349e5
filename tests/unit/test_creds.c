/* Registry credentials in config.json: base64, auths keys, store / lookup / erase. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>

#include "creds/creds.h"

static void test_base64(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
        {"hypr:s3cret", "aHlwcjpzM2NyZXQ="},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *b = base64_encode(cases[i].in, strlen(cases[i].in));
        assert_string_equal(b, cases[i].out);
    }
    static const unsigned char bin[] = {0xfb, 0xff, 0x00, 0x3e};
    _cleanup_free_ char *b = base64_encode(bin, sizeof(bin));
    assert_string_equal(b, "+/8APg==");
}

static void test_key(void **state)
{
    (void)state;
    static const struct {
        const char *in, *key;
    } cases[] = {
        {NULL, CREDS_DOCKER_HUB_KEY},
        {"", CREDS_DOCKER_HUB_KEY},
        {"docker.io", CREDS_DOCKER_HUB_KEY},
        {"index.docker.io", CREDS_DOCKER_HUB_KEY},
        {"https://index.docker.io/v1/", CREDS_DOCKER_HUB_KEY},
        {"registry-1.docker.io", CREDS_DOCKER_HUB_KEY},
        {"localhost:5000", "localhost:5000"},
        {"http://Reg.Example:5000/x/y", "reg.example:5000"},
        {"[::1]:5000", "[::1]:5000"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *k = creds_key(cases[i].in);
        assert_string_equal(k, cases[i].key);
    }
}

static char *config_text(const char *dir)
{
    _cleanup_free_ char *path = path_join(dir, "config.json");
    char *text = NULL;
    return read_file(path, 1 << 20, &text, NULL) < 0 ? NULL : text;
}

static void write_config(const char *dir, const char *text)
{
    _cleanup_free_ char *path = path_join(dir, "config.json");
    assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
}

static void test_store_lookup_erase(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/hypr-creds-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    _cleanup_free_ char *dir = path_join(tmpl, "docker");
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    char *user = NULL, *pass = NULL;
    assert_int_equal(creds_lookup(dir, "reg.example:5000", &user, &pass), -ENOENT);

    /* The file and its directory are created; the entry is base64 "auth". */
    _cleanup_free_ char *path = NULL;
    assert_int_equal(creds_store(dir, "reg.example:5000", "hypr", "s3:cret", &path, &err), 0);
    _cleanup_free_ char *want_path = path_join(dir, "config.json");
    assert_string_equal(path, want_path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    _cleanup_free_ char *text = config_text(dir);
    assert_non_null(strstr(text, "\"reg.example:5000\""));
    assert_non_null(strstr(text, "aHlwcjpzMzpjcmV0")); /* base64("hypr:s3:cret") */

    /* Any key naming the same registry matches; the password may hold ':'. */
    assert_int_equal(creds_lookup(dir, "http://reg.example:5000/v2/", &user, &pass), 0);
    assert_string_equal(user, "hypr");
    assert_string_equal(pass, "s3:cret");
    free(user);
    free(pass);
    assert_int_equal(creds_lookup(dir, "other.example", &user, &pass), -ENOENT);

    /* Other keys are kept; an equivalent old entry is replaced. */
    write_config(dir, "{\"psFormat\": \"table\", \"auths\": {"
                      "\"http://reg.example:5000\": {\"auth\": \"eDp5\"},"
                      "\"index.docker.io\": {\"username\": \"u\", \"password\": \"p\"}}}");
    assert_int_equal(creds_lookup(dir, "docker.io", &user, &pass), 0);
    assert_string_equal(user, "u");
    assert_string_equal(pass, "p");
    free(user);
    free(pass);
    assert_int_equal(creds_store(dir, "reg.example:5000", "a", "b", NULL, &err), 0);
    free(text);
    text = config_text(dir);
    assert_non_null(strstr(text, "\"psFormat\": \"table\""));
    assert_null(strstr(text, "http://reg.example:5000"));
    assert_null(strstr(text, "eDp5"));
    assert_int_equal(creds_lookup(dir, "reg.example:5000", &user, &pass), 0);
    assert_string_equal(user, "a");
    assert_string_equal(pass, "b");
    free(user);
    free(pass);

    /* Erase removes that registry only. */
    assert_int_equal(creds_erase(dir, "reg.example:5000", &err), 0);
    assert_int_equal(creds_erase(dir, "reg.example:5000", &err), -ENOENT);
    assert_int_equal(creds_lookup(dir, "reg.example:5000", &user, &pass), -ENOENT);
    assert_int_equal(creds_lookup(dir, "registry-1.docker.io", &user, &pass), 0);
    free(user);
    free(pass);

    /* Entries that are not base64 of user:password are skipped. */
    write_config(dir, "{\"auths\": {\"a.example\": {\"auth\": \"bm9jb2xvbg==\"},"
                      "\"b.example\": {\"auth\": \"@@@@\"},"
                      "\"c.example\": {\"auth\": \"YQ=b\"}}}");
    assert_int_equal(creds_lookup(dir, "a.example", &user, &pass), -ENOENT);
    assert_int_equal(creds_lookup(dir, "b.example", &user, &pass), -ENOENT);
    assert_int_equal(creds_lookup(dir, "c.example", &user, &pass), -ENOENT);

    /* A file that is not a JSON object is refused, not overwritten. */
    write_config(dir, "[1, 2]");
    assert_true(creds_store(dir, "reg.example:5000", "a", "b", NULL, &err) < 0);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, "not a JSON object"));
    free(text);
    text = config_text(dir);
    assert_string_equal(text, "[1, 2]");
    assert_int_equal(creds_lookup(dir, "reg.example:5000", &user, &pass), -ENOENT);

    assert_int_equal(rm_rf(tmpl), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_store_lookup_erase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
