/* .dockerignore parsing and matching (moby's ignorefile + patternmatcher rules),
 * and where the ignore file of a build is found. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <string.h>

#include "builder/builder.h"

typedef struct match_case {
    const char *patterns;
    const char *path;
    bool excluded;
} match_case;

static const match_case cases[] = {
    {"foo", "foo", true},
    {"foo", "foo/bar", true}, /* a parent directory matches */
    {"foo", "foobar", false},
    {"foo", "a/foo", false}, /* patterns are anchored at the context root */
    {"*.go", "main.go", true},
    {"*.go", "cmd/main.go", false}, /* '*' does not cross '/' */
    {"*/*.go", "cmd/main.go", true},
    {"**/*.go", "a/b/c/main.go", true},
    {"**/*.go", "main.go", true},
    {"a/**/b", "a/b", true},
    {"a/**/b", "a/x/y/b", true},
    {"a/**/b", "a/x/y/c", false},
    {"a/**", "a/x/y", true},
    {"**", "anything/at/all", true},
    {"**/node_modules", "web/node_modules/x.js", true},
    {"fo?", "foo", true},
    {"fo?", "fo/", false},
    {"f[a-c]o", "fbo", true},
    {"f[a-c]o", "fdo", false},
    {"f[^a-c]o", "fdo", true},
    {"f\\*o", "f*o", true},
    {"f\\*o", "fxo", false},
    {"/abs/path", "abs/path", true},
    {"./dir/../file", "file", true},
    {"dir/", "dir/x", true},
    {"# comment\nfoo", "# comment", false},
    {"  spaced  ", "spaced", true},
    {"*.md\n!README.md", "README.md", false},
    {"*.md\n!README.md", "CHANGES.md", true},
    {"!README.md\n*.md", "README.md", true}, /* the last pattern wins */
    {"docs\n!docs/keep.md", "docs/keep.md", false},
    {"docs\n!docs/keep.md", "docs/other.md", true},
    {"*\n!src\nsrc/*.tmp", "src/a.c", false},
    {"*\n!src\nsrc/*.tmp", "src/a.tmp", true},
    {"**/*.log\n!important.log", "important.log", false},
    {"**/*.log\n!important.log", "x/important.log", true},
    {"", "anything", false},
    {"\xEF\xBB\xBF"
     "bom",
     "bom", true},
    {"win\r\n", "win", true},
};

static void test_match_cases(void **state)
{
    assert_true(ARRAY_SIZE(cases) >= 20);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_ignore_ builder_ignore *ig = NULL;
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (builder_ignore_parse(cases[i].patterns, strlen(cases[i].patterns), &ig, &err) < 0)
            fail_msg("case %zu: %s", i, err.message);
        bool got = builder_ignore_match(ig, cases[i].path);
        if (got != cases[i].excluded)
            fail_msg("case %zu: \"%s\" on %s: %s, want %s", i, cases[i].patterns, cases[i].path,
                     got ? "excluded" : "kept", cases[i].excluded ? "excluded" : "kept");
    }
}

static void test_parse_counts_and_errors(void **state)
{
    _cleanup_ignore_ builder_ignore *ig = NULL;
    const char *text = "# c\n\na\n  \n!b\n";
    assert_int_equal(builder_ignore_parse(text, strlen(text), &ig, NULL), 0);
    assert_int_equal(builder_ignore_count(ig), 2);
    builder_ignore_free(TAKE_PTR(ig));
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"ok\n!\n", ".dockerignore:2: illegal exclusion pattern"},
        {"a[b\n", ".dockerignore:1: syntax error in pattern \"a[b\""},
        {"x\ny\\", ".dockerignore:2: syntax error in pattern"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_true(builder_ignore_parse(bad[i].text, strlen(bad[i].text), &ig, &err) < 0);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        if (!str_startswith(err.message, bad[i].want))
            fail_msg("\"%s\": %s", bad[i].text, err.message);
    }
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void test_find_and_load(void **state)
{
    char tmpl[] = "/tmp/hypr-test-ignore-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    _cleanup_free_ char *df = path_join(tmpl, "build/app.Dockerfile");
    _cleanup_free_ char *sub = path_join(tmpl, "build");
    assert_int_equal(mkdir_p(sub, 0755), 0);
    write_text(df, "FROM a\n");
    /* none at all: an empty matcher */
    assert_null(builder_ignore_find(tmpl, df));
    _cleanup_ignore_ builder_ignore *ig = NULL;
    assert_int_equal(builder_ignore_load(tmpl, df, &ig, NULL), 0);
    assert_int_equal(builder_ignore_count(ig), 0);
    builder_ignore_free(TAKE_PTR(ig));
    /* the context's */
    _cleanup_free_ char *ctx_ignore = path_join(tmpl, ".dockerignore");
    write_text(ctx_ignore, "ctx\n");
    _cleanup_free_ char *found = builder_ignore_find(tmpl, df);
    assert_string_equal(found, ctx_ignore);
    /* the Dockerfile's own wins */
    _cleanup_free_ char *own = xasprintf("%s.dockerignore", df);
    write_text(own, "own\n!own/keep\n");
    free(found);
    found = builder_ignore_find(tmpl, df);
    assert_string_equal(found, own);
    assert_int_equal(builder_ignore_load(tmpl, df, &ig, NULL), 0);
    assert_true(builder_ignore_match(ig, "own/x"));
    assert_false(builder_ignore_match(ig, "own/keep"));
    assert_false(builder_ignore_match(ig, "ctx"));
    builder_ignore_free(TAKE_PTR(ig));
    /* stdin (-f -) has no file of its own */
    free(found);
    found = builder_ignore_find(tmpl, "-");
    assert_string_equal(found, ctx_ignore);
    /* a bad file names itself */
    write_text(own, "[\n");
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_true(builder_ignore_load(tmpl, df, &ig, &err) < 0);
    assert_non_null(strstr(err.message, own));
    assert_int_equal(rm_rf(tmpl), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_cases),
        cmocka_unit_test(test_parse_counts_and_errors),
        cmocka_unit_test(test_find_and_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
