/* Image references: Docker Hub shorthand, hosts with ports, tags, digests, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "image/image.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void check(const char *in, const char *registry, const char *repo, const char *tag,
                  const char *digest)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    image_ref r;
    int rc = image_ref_parse(in, &r, &err);
    if (rc < 0)
        fail_msg("%s: %s", in, err.message);
    assert_string_equal(r.registry, registry);
    assert_string_equal(r.repository, repo);
    if (tag)
        assert_string_equal(r.tag, tag);
    else
        assert_null(r.tag);
    if (digest)
        assert_string_equal(r.digest, digest);
    else
        assert_null(r.digest);
    image_ref_clear(&r);
}

static void test_valid_references_normalised(void **state)
{
    (void)state;
    check("nginx", "docker.io", "library/nginx", "latest", NULL);
    check("nginx:1.25", "docker.io", "library/nginx", "1.25", NULL);
    check("user/repo", "docker.io", "user/repo", "latest", NULL);
    check("docker.io/nginx", "docker.io", "library/nginx", "latest", NULL);
    check("index.docker.io/library/nginx:x", "docker.io", "library/nginx", "x", NULL);
    check("localhost:5000/app:1", "localhost:5000", "app", "1", NULL);
    check("localhost/app", "localhost", "app", "latest", NULL);
    check("127.0.0.1:5000/a/b/c:v1.2-rc_3", "127.0.0.1:5000", "a/b/c", "v1.2-rc_3", NULL);
    check("ghcr.io/org/img", "ghcr.io", "org/img", "latest", NULL);
    check("[::1]:5000/app:1", "[::1]:5000", "app", "1", NULL);
    check("nginx@" DIGEST, "docker.io", "library/nginx", NULL, DIGEST);
    check("nginx:1@" DIGEST, "docker.io", "library/nginx", "1", DIGEST);
    check("Registry.Example.COM:443/a__b/c-d.e:T", "Registry.Example.COM:443", "a__b/c-d.e", "T",
          NULL);
    check("liAux/arm64/v8", "liAux", "arm64/v8", "latest", NULL); /* uppercase: a host */
}

static void check_invalid(const char *in, const char *why)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    image_ref r;
    assert_int_equal(image_ref_parse(in, &r, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_non_null(err.message);
    if (!strstr(err.message, why))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", in, err.message, why);
}

static void test_invalid_references_say_why(void **state)
{
    (void)state;
    check_invalid("", "no image reference");
    check_invalid("Nginx", "lowercase");
    check_invalid("user/Repo", "lowercase");
    check_invalid("nginx:", "empty tag");
    check_invalid("nginx:-x", "tag must start");
    check_invalid("nginx:a+b", "invalid character in tag");
    check_invalid("nginx@sha256:abc", "64 lowercase hex");
    check_invalid("nginx@md5:abc", "unsupported digest");
    check_invalid("a//b", "empty path component");
    check_invalid("a/-b", "start and end");
    check_invalid("a/b..c", "invalid character");
    check_invalid("host:99999/a", "port out of range");
    check_invalid("host:abc/a", "port must be a number");
    check_invalid("ho_st:5000/a", "invalid character in registry host");
    check_invalid("nginx latest", "whitespace");
    check_invalid(":tag", "missing repository");
    check_invalid("localhost:5000/", "missing repository");
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    check_invalid(longname, "longer than 255");
}

static void test_name_string_endpoint_and_store_dir(void **state)
{
    (void)state;
    image_ref r;
    assert_int_equal(image_ref_parse("busybox", &r, NULL), 0);
    _cleanup_free_ char *name = image_ref_name(&r);
    _cleanup_free_ char *full = image_ref_string(&r);
    assert_string_equal(name, "docker.io/library/busybox");
    assert_string_equal(full, "docker.io/library/busybox:latest");
    assert_string_equal(image_ref_endpoint_host(&r), "registry-1.docker.io");
    image_ref_clear(&r);
    assert_int_equal(image_ref_parse("localhost:5000/x@" DIGEST, &r, NULL), 0);
    _cleanup_free_ char *full2 = image_ref_string(&r);
    assert_string_equal(full2, "localhost:5000/x@" DIGEST);
    assert_string_equal(image_ref_endpoint_host(&r), "localhost:5000");
    image_ref_clear(&r);
    assert_true(image_digest_valid(DIGEST));
    assert_false(image_digest_valid("sha256:ABCDEF"));
    _cleanup_free_ char *dn = image_store_dir_name("docker.io/library/busybox", "latest", NULL);
    assert_string_equal(dn, "docker.io_library_busybox_latest");
    _cleanup_free_ char *dn2 = image_store_dir_name("localhost:5000/a", NULL, DIGEST);
    assert_string_equal(dn2, "localhost_5000_a_0123456789ab");
}

static void test_registry_check_accepts_host_port_and_refuses_junk(void **state)
{
    (void)state;
    static const char *const good[] = {"localhost",      "localhost:5000", "reg.example",
                                       "127.0.0.1:5000", "[::1]:5000",     "my-registry"};
    for (size_t i = 0; i < ARRAY_SIZE(good); i++)
        assert_int_equal(image_registry_check(good[i], NULL), 0);
    static const char *const bad[] = {"",           "a b",     "-x",   "x.",  "host:", "host:0",
                                      "host:99999", "host:5x", "[::1", "h/x", "h\x01"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_int_equal(image_registry_check(bad[i], &err), -EINVAL);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        assert_non_null(strstr(err.message, "invalid registry"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_references_normalised),
        cmocka_unit_test(test_invalid_references_say_why),
        cmocka_unit_test(test_name_string_endpoint_and_store_dir),
        cmocka_unit_test(test_registry_check_accepts_host_port_and_refuses_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
