/* The compose loader on real files: the 39 compose files of docker/awesome-compose
 * and compose-go's full example against its golden model. The corpus lives outside
 * the repository (../shared/testdata/compose, or $HYPR_SHARED_DIR/testdata/compose);
 * without it these tests say why and skip. */
#include "compose_test_util.h"

#include <dirent.h>

static char *corpus_dir(const char *sub)
{
    const char *shared = getenv("HYPR_SHARED_DIR");
    char *d = shared ? xasprintf("%s/testdata/compose/%s", shared, sub)
                     : xasprintf("%s/../shared/testdata/compose/%s", HYPR_SOURCE_ROOT, sub);
    struct stat st;
    if (stat(d, &st) < 0 || !S_ISDIR(st.st_mode)) {
        print_message("corpus %s not found (set HYPR_SHARED_DIR): skipped\n", d);
        free(d);
        return NULL;
    }
    char *real = realpath(d, NULL);
    free(d);
    return real;
}

static char *compose_file_in(const char *dir)
{
    static const char *const names[] = {"compose.yaml", "compose.yml", "docker-compose.yaml",
                                        "docker-compose.yml"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        char *p = path_join(dir, names[i]);
        if (access(p, R_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

static int load_dir(const char *dir, const char *file, char **environ_, compose_project **p,
                    hypr_error *err)
{
    char *files[] = {(char *)file, NULL};
    compose_options o = {.files = files, .environ = environ_, .cwd = dir};
    return compose_load(&o, p, err);
}

/* What the compose-spec says a few of these files mean. */
static const struct {
    const char *dir, *path, *json;
} awesome_facts[] = {
    {"wordpress-mysql", "services/db/image", "\"mariadb:10.6.4-focal\""},
    {"wordpress-mysql", "services/db/command",
     "[\"--default-authentication-plugin=mysql_native_password\"]"},
    {"wordpress-mysql", "services/db/expose", "[\"3306\",\"33060\"]"},
    {"wordpress-mysql", "services/wordpress/ports/0",
     "{\"mode\":\"ingress\",\"target\":80,\"published\":\"80\",\"protocol\":\"tcp\"}"},
    {"wordpress-mysql", "volumes/db_data/name", "\"wordpress-mysql_db_data\""},
    {"wordpress-mysql", "networks/default/name", "\"wordpress-mysql_default\""},
    {"react-express-mysql", "services/backend/depends_on/db",
     "{\"condition\":\"service_started\",\"required\":true}"},
    {"react-express-mysql", "services/backend/build/target", "\"development\""},
    {"react-express-mysql", "services/backend/build/args", "{\"NODE_ENV\":\"development\"}"},
    {"react-express-mysql", "services/backend/volumes/0/read_only", "true"},
    {"react-express-mysql", "services/frontend/volumes/1",
     "{\"type\":\"volume\",\"target\":\"/code/node_modules\",\"volume\":{}}"},
    {"react-express-mysql", "services/db/networks", "{\"private\":null}"},
    /* .env interpolation */
    {"postgresql-pgadmin", "services/postgres/environment",
     "{\"POSTGRES_USER\":\"yourUser\",\"POSTGRES_PASSWORD\":\"changeit\",\"POSTGRES_DB\":"
     "\"postgres\"}"},
    {"pihole-cloudflared-DoH", "services/pihole/environment/TZ", "\"Etc/UTC\""},
    {"pihole-cloudflared-DoH", "services/pihole/environment/ServerIPv6", "\"\""},
    {"pihole-cloudflared-DoH", "services/pihole/ports/2/protocol", "\"udp\""},
    {"pihole-cloudflared-DoH", "services/cloudflared/networks/dns-net",
     "{\"ipv4_address\":\"172.20.0.2\"}"},
    {"pihole-cloudflared-DoH", "services/pihole/volumes/0/source", "\"/etc/pihole\""},
    {"elasticsearch-logstash-kibana", "services/elasticsearch/image", "\"elasticsearch:7.16.1\""},
};

static void check_model(const char *name, json_t *m)
{
    json_t *svcs = json_object_get(m, "services");
    if (!json_object_size(svcs))
        fail_msg("%s: no services", name);
    const char *k;
    json_t *s;
    json_object_foreach(svcs, k, s)
    {
        json_t *bctx = at(s, "build/context");
        if (!json_is_string(json_object_get(s, "image")) && !json_is_string(bctx))
            fail_msg("%s: service %s has neither image nor build context", name, k);
        const char *ctx = json_string_value(bctx);
        if (ctx && ctx[0] != '/' && !strstr(ctx, "://"))
            fail_msg("%s: service %s: build context %s is not absolute", name, k, ctx);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(s, "ports"), i,
                           v) if (!json_is_integer(json_object_get(v, "target")))
            fail_msg("%s: %s: port target not a number", name, k);
        json_array_foreach(json_object_get(s, "volumes"), i, v)
        {
            const char *type = json_string_value(json_object_get(v, "type"));
            const char *src = json_string_value(json_object_get(v, "source"));
            if (!strcmp(type, "bind") && (!src || src[0] != '/'))
                fail_msg("%s: %s: bind source not absolute", name, k);
        }
    }
}

static void test_awesome(void **state)
{
    _cleanup_free_ char *root = corpus_dir("awesome");
    if (!root)
        skip();
    DIR *d = opendir(root);
    assert_non_null(d);
    size_t loaded = 0;
    char *env[] = {"HOME=/home/tester", NULL};
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *dir = path_join(root, e->d_name);
        _cleanup_free_ char *file = compose_file_in(dir);
        if (!file)
            continue;
        _cleanup_compose_project_ compose_project *p = NULL;
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (load_dir(dir, file, env, &p, &err) < 0)
            fail_msg("%s: %s", e->d_name, err.message);
        _cleanup_free_ char *want = compose_normalize_project_name(e->d_name);
        assert_string_equal(p->name, want);
        check_model(e->d_name, p->model);
        /* what config --format yaml prints loads back to the same model */
        _cleanup_free_ char *yaml = compose_to_yaml(p);
        _cleanup_compose_project_ compose_project *q = NULL;
        compose_options o = {.environ = env, .cwd = dir, .project_name = p->name};
        if (compose_load_buffer(yaml, strlen(yaml), file, &o, &q, &err) < 0)
            fail_msg("%s: the YAML output does not load: %s\n%s", e->d_name, err.message, yaml);
        if (!json_equal(json_object_get(q->model, "services"),
                        json_object_get(p->model, "services")))
            fail_msg("%s: the YAML output loads to another model", e->d_name);
        for (size_t i = 0; i < ARRAY_SIZE(awesome_facts); i++)
            if (!strcmp(awesome_facts[i].dir, e->d_name))
                assert_json_at(p->model, awesome_facts[i].path, awesome_facts[i].json);
        loaded++;
    }
    closedir(d);
    assert_int_equal(loaded, 39);
}

/* ---- compose-go's full example ------------------------------------------------------ */

/* Fields of expected.json not compared, and why:
 *  - x-bar, x-foo, x-nested (top level): hypr drops x- extensions from the model.
 *  - services.foo.container_name, services.foo.network_mode: removed in
 *    full-example.hypr.yml (they contradict deploy.replicas and networks).
 *  - services.bar.command/entrypoint: null in the golden (Go's nil slices); hypr
 *    leaves a field it was not given out.
 * Keys hypr adds that the golden lacks (it is loaded with SkipNormalization) are not
 * errors: name on networks/volumes/secrets/configs, networks.default and
 * services.*.networks.default, bind.create_host_path of short-syntax binds, and
 * the services db and redis and the network/volume full-example.hypr.yml adds. */
static const char *const not_compared[] = {
    "/x-bar",
    "/x-foo",
    "/x-nested",
    "/services/foo/container_name",
    "/services/foo/network_mode",
    "/services/bar/command",
    "/services/bar/entrypoint",
};

static size_t compared;

static void substitute(json_t *v, const char *workdir, const char *home)
{
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            if (json_is_string(x)) {
                _cleanup_buf_ hypr_buf b = {0};
                const char *s = json_string_value(x);
                buf_puts(&b, "");
                while (*s) {
                    if (str_startswith(s, "__WORKDIR__"))
                        buf_puts(&b, workdir), s += 11;
                    else if (str_startswith(s, "__HOME__"))
                        buf_puts(&b, home), s += 8;
                    else
                        buf_append(&b, s++, 1);
                }
                json_object_set_new(v, k, json_string(b.data));
            } else {
                substitute(x, workdir, home);
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (json_is_string(x)) {
                _cleanup_json_ json_t *wrap = json_pack("{s:O}", "v", x);
                substitute(wrap, workdir, home);
                json_array_set(v, i, json_object_get(wrap, "v"));
            } else {
                substitute(x, workdir, home);
            }
        }
    }
}

static void compare(const json_t *want, const json_t *got, const char *path)
{
    for (size_t i = 0; i < ARRAY_SIZE(not_compared); i++)
        if (!strcmp(path, not_compared[i]))
            return;
    if (json_is_object(want)) {
        if (!json_is_object(got))
            fail_msg("%s: not a mapping in the model", path);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)want, k, v)
        {
            _cleanup_free_ char *p = xasprintf("%s/%s", path, k);
            compare(v, json_object_get(got, k), p);
        }
        return;
    }
    if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(got) != json_array_size(want))
            fail_msg("%s: list of %zu in the golden, %zu in the model", path, json_array_size(want),
                     json_array_size(got));
        size_t i;
        json_t *v;
        json_array_foreach(want, i, v)
        {
            _cleanup_free_ char *p = xasprintf("%s/%zu", path, i);
            compare(v, json_array_get(got, i), p);
        }
        return;
    }
    bool same = got && json_equal(want, got);
    /* 0.001 from a string and from a float may differ in the last bit */
    if (!same && json_is_number(want) && json_is_number(got))
        same = json_number_value(want) - json_number_value(got) < 1e-12 &&
               json_number_value(got) - json_number_value(want) < 1e-12;
    if (!same) {
        char *w = json_dumps(want, JSON_ENCODE_ANY),
             *g = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
        fail_msg("%s: golden %s, model %s", path, w, g ? g : "(absent)");
    }
    compared++;
}

static void golden(const char *sub, const char *file, char **env)
{
    _cleanup_free_ char *dir = corpus_dir(sub);
    if (!dir)
        skip();
    _cleanup_free_ char *path = path_join(dir, file), *gpath = path_join(dir, "expected.json");
    _cleanup_compose_project_ compose_project *p = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (load_dir(dir, path, env, &p, &err) < 0)
        fail_msg("%s: %s", file, err.message);
    json_error_t jerr;
    _cleanup_json_ json_t *want = json_load_file(gpath, 0, &jerr);
    if (!want)
        fail_msg("%s: %s", gpath, jerr.text);
    substitute(want, dir, "/home/tester");
    compared = 0;
    compare(want, p->model, "");
    print_message("%s: %zu golden values compared\n", file, compared);
}

static void test_full_example(void **state)
{
    char *env[] = {"HOME=/home/tester", "BAR=this is a secret", "QUX=qux_from_environment", NULL};
    golden("compose-go/full-example", "full-example.hypr.yml", env);
    assert_true(compared > 300);
    /* the original file is inconsistent, and the loader says where */
    _cleanup_free_ char *dir = corpus_dir("compose-go/full-example");
    _cleanup_free_ char *orig = path_join(dir, "full-example.yml");
    _cleanup_compose_project_ compose_project *p = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_not_equal(load_dir(dir, orig, env, &p, &err), 0);
    assert_non_null(strstr(err.message, "undefined network other-other-network"));
}

static void test_with_version(void **state)
{
    char *env[] = {"HOME=/home/tester", NULL};
    golden("compose-go/with-version", "compose-test-with-version.yaml", env);
    assert_true(compared > 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_awesome),
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_with_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
