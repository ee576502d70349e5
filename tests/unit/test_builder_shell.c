/* The builder's shell-word expander against BuildKit's own tables
 * (shell/envVarTest for ProcessWord, shell/wordsTest for ProcessWords) and
 * cases of our own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "builder/builder.h"
#include "buildkit_corpus.h"

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* envVarTest: "PLATFORM|source|expected" per line, env as in lex_test.go. */
static void test_env_var_table(void **state)
{
    _cleanup_free_ char *dir = buildkit_corpus_dir();
    if (!dir)
        skip();
    _cleanup_free_ char *data = buildkit_corpus_read(dir, "shell/envVarTest", NULL);
    assert_non_null(data);
    char *env[] = {"PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL=", NULL};
    int lineno = 0, checked = 0, failed = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        if (line[0] == '#')
            continue;
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line)
            continue;
        char *bar1 = strchr(line, '|');
        char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
        if (!bar1 || !bar2) {
            fail_msg("envVarTest:%d: not PLATFORM|SOURCE|EXPECTED", lineno);
            continue;
        }
        *bar1 = *bar2 = '\0';
        const char *platform = trim(line), *source = trim(bar1 + 1), *expected = trim(bar2 + 1);
        if (!strcmp(platform, "W"))
            continue;
        hypr_error err = HYPR_ERROR_INIT;
        char *got = NULL;
        int r = builder_shell_word(source, env, NULL, &got, &err);
        bool ok = !strcmp(expected, "error") ? r < 0 : (r == 0 && !strcmp(got, expected));
        if (!ok) {
            fprintf(stderr, "envVarTest:%d: %s -> %s (want %s)\n", lineno, source,
                    r < 0 ? err.message : got, expected);
            failed++;
        }
        if (r < 0) /* every error has a message */
            assert_non_null(err.message);
        checked++;
        free(got);
        hypr_error_clear(&err);
    }
    assert_int_equal(failed, 0);
    assert_true(checked > 200);
}

/* wordsTest: "ENV k=v" lines add to the environment, "input | w1,w2" lines. */
static void test_words_table(void **state)
{
    _cleanup_free_ char *dir = buildkit_corpus_dir();
    if (!dir)
        skip();
    _cleanup_free_ char *data = buildkit_corpus_read(dir, "shell/wordsTest", NULL);
    assert_non_null(data);
    _cleanup_strv_ char **env = NULL;
    int lineno = 0, checked = 0, failed = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        if (line[0] == '#')
            continue;
        if (!strncmp(line, "ENV ", 4)) {
            char *kv = line + 3;
            while (*kv == ' ')
                kv++;
            env = strv_append(env, kv);
            continue;
        }
        char *bar = strchr(line, '|');
        if (!bar || strchr(bar + 1, '|')) {
            fail_msg("wordsTest:%d: not exactly one |", lineno);
            continue;
        }
        *bar = '\0';
        const char *input = trim(line);
        char *exp = bar + 1;
        while (*exp == ' ')
            exp++;
        _cleanup_strv_ char **expected = NULL;
        for (char *w = exp, *comma; w; w = comma) {
            comma = strchr(w, ',');
            if (comma)
                *comma++ = '\0';
            expected = strv_append(expected, w);
        }
        hypr_error err = HYPR_ERROR_INIT;
        _cleanup_strv_ char **got = NULL;
        if (builder_shell_words(input, env, NULL, &got, &err) < 0)
            got = strv_append(NULL, "error");
        bool ok = strv_length(got) == strv_length(expected);
        for (size_t i = 0; ok && expected[i]; i++)
            ok = !strcmp(got[i], expected[i]);
        if (!ok) {
            fprintf(stderr, "wordsTest:%d: %s ->", lineno, input);
            for (size_t i = 0; got[i]; i++)
                fprintf(stderr, " [%s]", got[i]);
            fprintf(stderr, " (want %s)\n", exp);
            failed++;
        }
        checked++;
        hypr_error_clear(&err);
    }
    assert_int_equal(failed, 0);
    assert_true(checked >= 20);
}

typedef struct word_case {
    const char *in;
    const char *out; /* NULL: an error */
} word_case;

static void test_own_word_cases(void **state)
{
    char *env[] = {"V=value",     "E=",      "P=/usr/local/bin/app", "F=archive.tar.gz", "S=a  b",
                   "V2=override", "V2=last", "PATHS=a/b/a/b",        "K=한국어",         NULL};
    static const word_case cases[] = {
        {"$V", "value"},
        {"${V}x", "valuex"},
        {"${E-def}", ""},
        {"${E:-def}", "def"},
        {"${U-def}", "def"},
        {"${V:+alt}", "alt"},
        {"${E+alt}", "alt"},
        {"${E:+alt}", ""},
        {"${U+alt}", ""},
        {"${V?boom}", "value"},
        {"${U?boom}", NULL},
        {"${E:?}", NULL},
        {"${P#*/}", "usr/local/bin/app"},
        {"${P##*/}", "app"},
        {"${F%.*}", "archive.tar"},
        {"${F%%.*}", "archive"},
        {"${F#nomatch}", "archive.tar.gz"},
        {"${F%.gz}", "archive.tar"},
        {"${K%?}", "한국"},
        {"${K#?}", "국어"},
        {"${K%%?*}", ""},
        {"${K/국/-}", "한-어"},
        {"${F%a*}", "archive.t"},
        {"${F%%a*}", ""},
        {"${F#*a}", "rchive.tar.gz"},
        {"${F##*a}", "r.gz"},
        {"${F#arch?ve.}", "tar.gz"},
        {"${PATHS/a/X}", "X/b/a/b"},
        {"${PATHS//a/X}", "X/b/X/b"},
        {"${PATHS//\\//-}", "a-b-a-b"},
        {"${V:#x}", NULL},
        {"${V:%x}", NULL},
        {"${V2}", "last"},
        {"'$V'", "$V"},
        {"\"$V\"", "value"},
        {"\\$V", "$V"},
        {"${S}", "a  b"},
        {"$", "$"},
        {"a$", "a$"},
        {"${V", NULL},
        {"${U:-${E:-${U2:-deep}}}", "deep"},
        {"${V:-${E:-x}}", "value"},
        {"x${P##*\\}", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        hypr_error err = HYPR_ERROR_INIT;
        char *got = NULL;
        int r = builder_shell_word(cases[i].in, env, NULL, &got, &err);
        if (cases[i].out) {
            if (r < 0)
                fail_msg("%s: %s", cases[i].in, err.message);
            if (strcmp(got, cases[i].out))
                fail_msg("%s -> \"%s\", want \"%s\"", cases[i].in, got, cases[i].out);
        } else {
            if (r == 0)
                fail_msg("%s -> \"%s\", want an error", cases[i].in, got);
            assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
            assert_non_null(strstr(err.message, cases[i].in));
        }
        free(got);
        hypr_error_clear(&err);
    }
}

static void test_options(void **state)
{
    char *env[] = {"V=v", NULL};
    char *got = NULL;
    /* skip_unset keeps what is not set, as the heredoc lexer needs */
    builder_shell_opts keep = {.skip_unset = true};
    assert_int_equal(builder_shell_word("$U ${U} ${U:-x} $V", env, &keep, &got, NULL), 0);
    assert_string_equal(got, "$U ${U} ${U:-x} v");
    free(got);
    builder_shell_opts raw = {.raw_quotes = true, .raw_escapes = true};
    assert_int_equal(builder_shell_word("'a b' \"c\\\"d\" e\\ f", env, &raw, &got, NULL), 0);
    assert_string_equal(got, "'a b' \"c\\\"d\" e\\ f");
    free(got);
    /* the escape token of `# escape=` */
    builder_shell_opts tick = {.escape = '`'};
    assert_int_equal(builder_shell_word("a`$V c:\\dir", env, &tick, &got, NULL), 0);
    assert_string_equal(got, "a$V c:\\dir");
    free(got);
    char **words = NULL;
    assert_int_equal(builder_shell_words("  ", env, NULL, &words, NULL), 0);
    assert_null(words[0]);
    strv_free(words);
    assert_int_equal(builder_shell_words("\"\" x", env, NULL, &words, NULL), 0);
    assert_int_equal(strv_length(words), 1);
    assert_string_equal(words[0], "x");
    strv_free(words);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_var_table),
        cmocka_unit_test(test_words_table),
        cmocka_unit_test(test_own_word_cases),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
