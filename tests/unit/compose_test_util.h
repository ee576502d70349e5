/* Helpers of the compose loader tests: a scratch project directory, loading a
 * document with a fixed environment, reading the model by a '/'-separated path
 * ("services/web/ports/0/target"). */
#ifndef HYPR_TEST_COMPOSE_UTIL_H
#define HYPR_TEST_COMPOSE_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json_cleanup.h"
#include "compose/compose.h"

static char test_dir[] = "/tmp/hypr-compose-test-XXXXXX";

static char *test_env[] = {"HOME=/home/tester",     "FOO=foo", "EMPTY=", "PORT=8080",
                           "COMPOSE_PROJECT_NAME=", NULL};

static inline void write_text(const char *name, const char *text)
{
    _cleanup_free_ char *p = path_join(test_dir, name);
    assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
}

static inline int load_in(const char *yaml, const compose_options *extra, compose_project **p,
                          hypr_error *err)
{
    compose_options o = extra ? *extra : (compose_options){0};
    if (!o.environ)
        o.environ = test_env;
    o.cwd = test_dir;
    return compose_load_buffer(yaml, strlen(yaml), "compose.yaml", &o, p, err);
}

static inline json_t *at(json_t *v, const char *path)
{
    _cleanup_strv_ char **keys = strv_split(path, "/");
    for (char **k = keys; k && *k && v; k++) {
        if (json_is_array(v)) {
            char *end;
            long i = strtol(*k, &end, 10);
            v = *end ? NULL : json_array_get(v, (size_t)i);
        } else {
            v = json_object_get(v, *k);
        }
    }
    return v;
}

/* Loads yaml, which must succeed; returns the model (owned by *p). */
static inline json_t *load_ok(const char *yaml, compose_project **p)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (load_in(yaml, NULL, p, &err) < 0)
        fail_msg("load failed: %s\n---\n%s", err.message, yaml);
    return (*p)->model;
}

static inline void assert_json_at(json_t *model, const char *path, const char *expected)
{
    json_error_t jerr;
    _cleanup_json_ json_t *want = json_loads(expected, JSON_DECODE_ANY, &jerr);
    if (!want)
        fail_msg("bad JSON in the test: %s", expected);
    json_t *got = at(model, path);
    if (!got || !json_equal(got, want)) {
        char *g = got ? json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
        fail_msg("%s: want %s, got %s", path, expected, g ? g : "(absent)");
    }
}

#endif
