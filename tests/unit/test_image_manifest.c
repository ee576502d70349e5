/* Manifests, indexes, platform selection, configs, manifest.json round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "image/image.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static const char oci_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" IMAGE_MT_OCI_MANIFEST "\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1
    "\",\"size\":123},"
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D2
    "\",\"size\":10},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":"
    "\"" D3 "\",\"size\":20}]}";

static void test_manifest_oci_and_docker_by_content_type(void **state)
{
    (void)state;
    image_manifest m;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(image_manifest_parse(NULL, oci_manifest, strlen(oci_manifest), &m, &err), 0);
    assert_int_equal(m.kind, IMAGE_MEDIA_OCI_MANIFEST);
    assert_string_equal(m.config.digest, D1);
    assert_int_equal(m.config.size, 123);
    assert_int_equal(m.n_layers, 2);
    assert_string_equal(m.layers[1].digest, D3);
    assert_int_equal(m.layers[1].size, 20);
    image_manifest_clear(&m);

    /* Docker schema 2 decided by Content-Type when mediaType is absent. */
    const char docker[] =
        "{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}";
    assert_int_equal(image_manifest_parse(IMAGE_MT_DOCKER_MANIFEST "; charset=utf-8", docker,
                                          strlen(docker), &m, &err),
                     0);
    assert_int_equal(m.kind, IMAGE_MEDIA_DOCKER_MANIFEST);
    assert_int_equal(m.n_layers, 0);
    image_manifest_clear(&m);
}

static void expect_fail(const char *json, const char *why)
{
    image_manifest m;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_true(image_manifest_parse(NULL, json, strlen(json), &m, &err) < 0);
    if (!err.message || !strstr(err.message, why))
        fail_msg("\"%s\" not in \"%s\"", why, err.message ? err.message : "(null)");
}

static void test_malformed_manifest_names_the_field(void **state)
{
    (void)state;
    expect_fail("not json", "invalid JSON");
    expect_fail("[1]", "not a JSON object");
    expect_fail("{\"schemaVersion\":1}", "schemaVersion");
    expect_fail("{\"schemaVersion\":2,\"layers\":[]}", "config");
    expect_fail("{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:12\",\"size\":1},"
                "\"layers\":[]}",
                "digest");
    expect_fail("{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\",\"size\":-1},"
                "\"layers\":[]}",
                "size");
    expect_fail("{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\",\"size\":1},"
                "\"layers\":[{\"digest\":1}]}",
                "layers[0]");
    expect_fail("{\"schemaVersion\":2,\"mediaType\":\"" IMAGE_MT_OCI_INDEX "\"}", "manifests");
    expect_fail("{\"schemaVersion\":2,\"mediaType\":\"text/plain\"}", "unsupported media type");
}

static const char oci_index[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" IMAGE_MT_OCI_INDEX "\",\"manifests\":["
    "{\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":"
    "\"amd64\"}},"
    "{\"digest\":\"" D2 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":"
    "\"arm64\"}},"
    "{\"digest\":\"" D3 "\",\"size\":1,\"platform\":{\"os\":\"unknown\",\"architecture\":"
    "\"unknown\"}}]}";

static void test_index_selects_the_platform_entry(void **state)
{
    (void)state;
    image_manifest idx;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(image_manifest_parse(NULL, oci_index, strlen(oci_index), &idx, &err), 0);
    assert_int_equal(idx.kind, IMAGE_MEDIA_OCI_INDEX);
    assert_int_equal(idx.n_manifests, 3);
    const image_descriptor *d;
    image_platform p;
    assert_int_equal(image_platform_parse("linux/arm64/v8", &p, &err), 0);
    assert_int_equal(image_index_select(&idx, &p, &d, &err), 0);
    assert_string_equal(d->digest, D2); /* no variant in the index = v8 for arm64 */
    image_platform_clear(&p);
    assert_int_equal(image_platform_parse("amd64", &p, &err), 0);
    assert_string_equal(p.os, "linux");
    assert_int_equal(image_index_select(&idx, &p, &d, &err), 0);
    assert_string_equal(d->digest, D1);
    image_platform_clear(&p);
    assert_int_equal(image_platform_parse("linux/s390x", &p, &err), 0);
    assert_int_equal(image_index_select(&idx, &p, &d, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    assert_non_null(strstr(err.message, "linux/s390x"));
    assert_non_null(strstr(err.message, "linux/amd64, linux/arm64"));
    assert_null(strstr(err.message, "unknown"));
    image_platform_clear(&p);
    assert_true(image_platform_parse("linux/amd64/v1/x", &p, &err) < 0);
    assert_true(image_platform_parse("Linux/AMD64", &p, &err) < 0);
    image_platform host;
    image_platform_host(&host);
    assert_string_equal(host.os, "linux");
    assert_non_null(host.arch);
    image_platform_clear(&host);
    image_manifest_clear(&idx);
}

static const char config[] =
    "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\","
    "\"created\":\"2024-01-02T03:04:05.123456789+01:00\","
    "\"config\":{\"User\":\"1000:1000\",\"Env\":[\"PATH=/bin\",\"A=b c\"],"
    "\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":[\"echo hi\"],\"WorkingDir\":\"/app\","
    "\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{}},\"Volumes\":{\"/data\":{}},"
    "\"Labels\":{\"org.x\":\"y\"}},"
    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\"]},"
    "\"history\":[{\"created\":\"2024-01-01T00:00:00Z\",\"created_by\":\"ADD x\"},"
    "{\"created_by\":\"ENV A=b\",\"empty_layer\":true}]}";

static void test_config_and_info(void **state)
{
    (void)state;
    image_config c;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(image_config_parse(config, strlen(config), &c, &err), 0);
    assert_string_equal(c.user, "1000:1000");
    assert_string_equal(c.workdir, "/app");
    assert_string_equal(c.env[1], "A=b c");
    assert_string_equal(c.entrypoint[0], "/bin/sh");
    assert_string_equal(c.cmd[0], "echo hi");
    assert_int_equal(strv_length(c.exposed_ports), 2);
    assert_string_equal(c.volumes[0], "/data");
    assert_string_equal(c.labels[0], "org.x");
    assert_string_equal(c.labels[1], "y");
    assert_string_equal(c.platform.arch, "arm64");
    assert_string_equal(c.platform.variant, "v8");
    assert_int_equal(c.created, 1704161045); /* 02:04:05 UTC */
    assert_int_equal(c.n_history, 2);
    assert_true(c.history[1].empty_layer);
    assert_string_equal(c.diff_ids[0], D1);

    image_info info = {.name = xstrdup("docker.io/library/x"),
                       .tag = xstrdup("1"),
                       .digest = xstrdup(D2),
                       .config_digest = xstrdup(D1),
                       .config = c,
                       .size = 4096};
    info.layer_digests = strv_append(NULL, D3);
    _cleanup_free_ char *json = image_info_to_json(&info);
    image_info back;
    assert_int_equal(image_info_from_json(json, &back, &err), 0);
    assert_string_equal(back.name, "docker.io/library/x");
    assert_string_equal(back.config_digest, D1);
    assert_int_equal(back.size, 4096);
    assert_string_equal(back.config.user, "1000:1000");
    assert_string_equal(back.config.env[0], "PATH=/bin");
    assert_string_equal(back.config.labels[1], "y");
    assert_string_equal(back.config.platform.variant, "v8");
    assert_int_equal(back.config.n_history, 2);
    assert_int_equal(back.config.history[0].created, 1704067200);
    assert_string_equal(back.layer_digests[0], D3);
    image_info_clear(&back);
    image_info_clear(&info);

    expect_fail("x", "invalid JSON");
    const char bad_env[] = "{\"config\":{\"Env\":\"x\"}}";
    assert_true(image_config_parse(bad_env, strlen(bad_env), &c, &err) < 0);
    assert_non_null(strstr(err.message, "Env"));
    const char bad_item[] = "{\"config\":{\"Env\":[1]}}";
    assert_true(image_config_parse(bad_item, strlen(bad_item), &c, &err) < 0);
    assert_true(image_info_from_json("", &back, &err) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_oci_and_docker_by_content_type),
        cmocka_unit_test(test_malformed_manifest_names_the_field),
        cmocka_unit_test(test_index_selects_the_platform_entry),
        cmocka_unit_test(test_config_and_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
