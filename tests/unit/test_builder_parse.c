/* The Dockerfile parser: BuildKit's corpus (every testfiles/ and derived/ case
 * dumps to its `result` byte for byte, every testfiles-negative/ case fails
 * naming a line) and cases of our own for what the dumps do not show: lines,
 * the JSON form flag, heredoc bodies, directives, stages and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <string.h>

#include "builder/builder.h"
#include "buildkit_corpus.h"
#include "common/json_cleanup.h"

static char **corpus_cases(const char *dir, const char *sub)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, sub);
    DIR *d = opendir(path);
    assert_non_null(d);
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            names = strv_append(names, e->d_name);
    closedir(d);
    return names;
}

static void check_dump_dir(const char *dir, const char *sub, size_t min_cases)
{
    _cleanup_strv_ char **names = corpus_cases(dir, sub);
    size_t failed = 0;
    for (size_t i = 0; names && names[i]; i++) {
        _cleanup_free_ char *df_rel = xasprintf("%s/%s/Dockerfile", sub, names[i]);
        _cleanup_free_ char *res_rel = xasprintf("%s/%s/result", sub, names[i]);
        size_t len = 0;
        _cleanup_free_ char *text = buildkit_corpus_read(dir, df_rel, &len);
        _cleanup_free_ char *want = buildkit_corpus_read(dir, res_rel, NULL);
        assert_non_null(text);
        assert_non_null(want);
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_dockerfile_ builder_dockerfile *df = NULL;
        if (builder_parse(text, len, "Dockerfile", &df, &err) < 0) {
            fprintf(stderr, "%s/%s: %s\n", sub, names[i], err.message);
            failed++;
            continue;
        }
        _cleanup_free_ char *got = builder_dump(df);
        if (strcmp(got, want)) {
            fprintf(stderr, "%s/%s: dump differs:\n%s--- want:\n%s", sub, names[i], got, want);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
    assert_true(strv_length(names) >= min_cases);
}

static void test_corpus_testfiles(void **state)
{
    _cleanup_free_ char *dir = buildkit_corpus_dir();
    if (!dir)
        skip();
    check_dump_dir(dir, "testfiles", 33);
}

static void test_corpus_derived(void **state)
{
    _cleanup_free_ char *dir = buildkit_corpus_dir();
    if (!dir)
        skip();
    check_dump_dir(dir, "derived", 3);
}

static void test_corpus_negative(void **state)
{
    _cleanup_free_ char *dir = buildkit_corpus_dir();
    if (!dir)
        skip();
    _cleanup_strv_ char **names = corpus_cases(dir, "testfiles-negative");
    assert_true(strv_length(names) >= 4);
    for (size_t i = 0; names[i]; i++) {
        _cleanup_free_ char *rel = xasprintf("testfiles-negative/%s/Dockerfile", names[i]);
        size_t len = 0;
        _cleanup_free_ char *text = buildkit_corpus_read(dir, rel, &len);
        assert_non_null(text);
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_dockerfile_ builder_dockerfile *df = NULL;
        int r = builder_parse(text, len, "Dockerfile", &df, &err);
        if (r == 0)
            fail_msg("%s: parsed without an error", names[i]);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        if (!str_startswith(err.message, "Dockerfile:"))
            fail_msg("%s: %s does not name a line", names[i], err.message);
    }
}

/* The lines FORMAT.md §3.5 names for two of the negative cases. */
static void test_corpus_negative_lines(void **state)
{
    _cleanup_free_ char *dir = buildkit_corpus_dir();
    if (!dir)
        skip();
    static const struct {
        const char *name, *prefix;
    } cases[] = {{"env_no_value", "Dockerfile:3: "}, {"shykes-nested-json", "Dockerfile:1: "}};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *rel = xasprintf("testfiles-negative/%s/Dockerfile", cases[i].name);
        size_t len = 0;
        _cleanup_free_ char *text = buildkit_corpus_read(dir, rel, &len);
        assert_non_null(text);
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_dockerfile_ builder_dockerfile *df = NULL;
        assert_true(builder_parse(text, len, "Dockerfile", &df, &err) < 0);
        assert_true(str_startswith(err.message, cases[i].prefix));
    }
}

/* ---- our own cases ------------------------------------------------------------------ */

/* Each instruction as "LINE-END[J] DUMP" plus " <<NAME[!expand][-chomp]=CONTENT" per
 * heredoc (content with \n and \t written as such), one per line. */
static char *describe(const builder_dockerfile *df)
{
    hypr_buf b = {0};
    buf_puts(&b, "");
    for (size_t i = 0; i < df->n_instrs; i++) {
        const builder_instr *in = &df->instrs[i];
        _cleanup_free_ char *d = builder_dump_instr(in);
        buf_printf(&b, "%d-%d%s %s", in->line, in->end_line, in->json ? "J" : "", d);
        for (size_t h = 0; h < in->n_heredocs; h++) {
            const builder_heredoc *hd = &in->heredocs[h];
            buf_printf(&b, " <<%s%s%s=", hd->name, hd->expand ? "" : "!", hd->chomp ? "-" : "");
            for (const char *c = hd->content; *c; c++)
                buf_puts(&b, *c == '\n' ? "\\n" : *c == '\t' ? "\\t" : (char[]){*c, 0});
        }
        buf_puts(&b, "\n");
    }
    return buf_steal(&b);
}

typedef struct parse_case {
    const char *text;
    const char *want; /* describe() output */
} parse_case;

static const parse_case parse_cases[] = {
    /* lines and continuations */
    {"FROM a\nRUN x\n", "1-1 from \"a\"\n2-2 run \"x\"\n"},
    {"\n\nFROM a\n\n", "3-3 from \"a\"\n"},
    {"FROM a\nRUN a \\\n  b \\\n  c\n", "1-1 from \"a\"\n2-4 run \"a   b   c\"\n"},
    {"FROM a\nRUN a \\\n# comment\n\n  b\nCMD c\n",
     "1-1 from \"a\"\n2-5 run \"a   b\"\n6-6 cmd \"c\"\n"},
    {"FROM a\nRUN a \\\n\n\nCMD b\n", "1-1 from \"a\"\n2-5 run \"a CMD b\"\n"},
    {"FROM a\nRUN a\\\\\nCMD b\n", "1-1 from \"a\"\n2-2 run \"a\\\\\\\\\"\n3-3 cmd \"b\"\n"},
    {"FROM a\r\nRUN b\r\n", "1-1 from \"a\"\n2-2 run \"b\"\n"},
    {"\xEF\xBB\xBF"
     "FROM a\n",
     "1-1 from \"a\"\n"},
    {"   FROM a\n\tRUN  b  \n", "1-1 from \"a\"\n2-2 run \"b\"\n"},
    {"FROM a\nRUN x \\", "1-1 from \"a\"\n2-2 run \"x\"\n"},
    {"FROM a\nRUN x \\  \t\n y\n", "1-1 from \"a\"\n2-3 run \"x  y\"\n"},
    {"FROM a\n  # indented comment\nRUN b\n", "1-1 from \"a\"\n3-3 run \"b\"\n"},
    /* directives */
    {"# escape=`\nFROM a\nRUN a `\n b\n", "2-2 from \"a\"\n3-4 run \"a  b\"\n"},
    {"# escape=`\nFROM a\nRUN a \\\nCMD b\n",
     "2-2 from \"a\"\n3-3 run \"a \\\\\"\n4-4 cmd \"b\"\n"},
    {"# comment\n# escape=`\nFROM a\nRUN a `\n", "3-3 from \"a\"\n4-4 run \"a `\"\n"},
    {"# syntax=docker/dockerfile:1\n#escape=\\\nFROM a\n", "3-3 from \"a\"\n"},
    /* JSON and shell forms */
    {"FROM a\nCMD [\"a\", \"b\"]\n", "1-1 from \"a\"\n2-2J cmd \"a\" \"b\"\n"},
    {"FROM a\nCMD [\"a\", 'b']\n", "1-1 from \"a\"\n2-2 cmd \"[\\\"a\\\", 'b']\"\n"},
    {"FROM a\nENTRYPOINT []\n", "1-1 from \"a\"\n2-2J entrypoint\n"},
    {"FROM a\nCOPY [\"a b\", \"/c\"]\n", "1-1 from \"a\"\n2-2J copy \"a b\" \"/c\"\n"},
    {"FROM a\nVOLUME /a /b\n", "1-1 from \"a\"\n2-2 volume \"/a\" \"/b\"\n"},
    {"FROM a\nSHELL [\"/bin/sh\", \"-c\"]\n", "1-1 from \"a\"\n2-2J shell \"/bin/sh\" \"-c\"\n"},
    /* Go decodes invalid UTF-8 in JSON strings as U+FFFD: still the exec form */
    {"FROM a\nCMD [\"a\xff\"]\n", "1-1 from \"a\"\n2-2J cmd \"a\xEF\xBF\xBD\"\n"},
    {"FROM a\nRUN [\"echo\"] x\n", "1-1 from \"a\"\n2-2 run \"[\\\"echo\\\"] x\"\n"},
    {"FROM a\nHEALTHCHECK NONE\n", "1-1 from \"a\"\n2-2 healthcheck \"NONE\"\n"},
    {"FROM a\nHEALTHCHECK --retries=2 CMD [\"x\"]\n",
     "1-1 from \"a\"\n2-2J healthcheck [\"--retries=2\"] \"CMD\" \"x\"\n"},
    /* flags */
    {"FROM --platform=linux/amd64 a AS b\n",
     "1-1 from [\"--platform=linux/amd64\"] \"a\" \"AS\" \"b\"\n"},
    {"FROM a\nCOPY --chown=\"1 2\" --link x y\n",
     "1-1 from \"a\"\n2-2 copy [\"--chown=1 2\" \"--link\"] \"x\" \"y\"\n"},
    {"FROM a\nRUN --mount=type=cache,target=/c --network=none make\n",
     "1-1 from \"a\"\n2-2 run [\"--mount=type=cache,target=/c\" \"--network=none\"] \"make\"\n"},
    {"FROM a\nCOPY --a\\ b=c x y\n", "1-1 from \"a\"\n2-2 copy [\"--a b=c\"] \"x\" \"y\"\n"},
    /* ENV, LABEL, ARG */
    {"FROM a\nENV A=1 B=\"2 3\"\n",
     "1-1 from \"a\"\n2-2 env \"A\" \"1\" \"=\" \"B\" \"\\\"2 3\\\"\" \"=\"\n"},
    {"FROM a\nLABEL k  v  w\n", "1-1 from \"a\"\n2-2 label \"k\" \"v  w\" \"\"\n"},
    {"ARG V=1\nFROM a:$V\nARG X Y=\"a b\"\n",
     "1-1 arg \"V=1\"\n2-2 from \"a:$V\"\n3-3 arg \"X\" \"Y=\\\"a b\\\"\"\n"},
    {"FROM a\nMAINTAINER Me <me@x>\nUSER 1:1\nWORKDIR /w\nSTOPSIGNAL SIGTERM\nEXPOSE 80 443/udp\n",
     "1-1 from \"a\"\n2-2 maintainer \"Me <me@x>\"\n3-3 user \"1:1\"\n4-4 workdir \"/w\"\n5-5 "
     "stopsignal \"SIGTERM\"\n6-6 expose \"80\" \"443/udp\"\n"},
    /* ONBUILD */
    {"FROM a\nONBUILD RUN [\"x\"]\n", "1-1 from \"a\"\n2-2 onbuild (run \"x\")\n"},
    {"FROM a\nONBUILD COPY --from=b x y\n",
     "1-1 from \"a\"\n2-2 onbuild (copy [\"--from=b\"] \"x\" \"y\")\n"},
    /* heredocs */
    {"FROM a\nRUN <<EOF\necho $X\nEOF\n", "1-1 from \"a\"\n2-4 run \"<<EOF\" <<EOF=echo $X\\n\n"},
    {"FROM a\nRUN <<'EOF'\necho $X\nEOF\n",
     "1-1 from \"a\"\n2-4 run \"<<'EOF'\" <<EOF!=echo $X\\n\n"},
    {"FROM a\nRUN <<\"EOF\"\nx\nEOF\n", "1-1 from \"a\"\n2-4 run \"<<\\\"EOF\\\"\" <<EOF!=x\\n\n"},
    {"FROM a\nRUN <<-EOF\n\tx\n\tEOF\nCMD y\n",
     "1-1 from \"a\"\n2-4 run \"<<-EOF\" <<EOF-=\\tx\\n\n5-5 cmd \"y\"\n"},
    {"FROM a\nCOPY <<A <<B /d/\na1\nA\nb1\nb2\nB\n",
     "1-1 from \"a\"\n2-7 copy \"<<A\" \"<<B\" \"/d/\" <<A=a1\\n <<B=b1\\nb2\\n\n"},
    {"FROM a\nRUN <<E\nE\n", "1-1 from \"a\"\n2-3 run \"<<E\" <<E=\n"},
    {"FROM a\nRUN cat <<E \\\n  && ls\nbody\nE\n",
     "1-1 from \"a\"\n2-5 run \"cat <<E   && ls\" <<E=body\\n\n"},
    {"FROM a\nRUN [\"<<E\"]\nCMD x\n", "1-1 from \"a\"\n2-2J run \"<<E\"\n3-3 cmd \"x\"\n"},
    {"FROM a\nONBUILD RUN <<E\nx\nE\n", "1-1 from \"a\"\n2-4 onbuild (run \"<<E\") <<E=x\\n\n"},
    {"FROM a\nENV X <<E\nCMD y\n", "1-1 from \"a\"\n2-2 env \"X\" \"<<E\" \"\"\n3-3 cmd \"y\"\n"},
    {"FROM a\nRUN <<E\r\nwin\r\nE\r\n", "1-1 from \"a\"\n2-4 run \"<<E\" <<E=win\r\\n\n"},
    /* unknown instructions are kept by the parser (builder_stages_build refuses them) */
    {"FROM a\nFOO bar\n", "1-1 from \"a\"\n2-2 foo \"\"\n"},
};

static void test_parse_cases(void **state)
{
    assert_true(ARRAY_SIZE(parse_cases) >= 40);
    for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
        const parse_case *c = &parse_cases[i];
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_dockerfile_ builder_dockerfile *df = NULL;
        if (builder_parse(c->text, strlen(c->text), "Dockerfile", &df, &err) < 0)
            fail_msg("case %zu: %s", i, err.message);
        _cleanup_free_ char *got = describe(df);
        if (strcmp(got, c->want))
            fail_msg("case %zu:\n%s--- want:\n%s", i, got, c->want);
    }
}

static void test_directives(void **state)
{
    const char *text = "# syntax = docker/dockerfile:1  \n# ESCAPE=`\n# check=skip=all\nFROM a\n";
    _cleanup_dockerfile_ builder_dockerfile *df = NULL;
    assert_int_equal(builder_parse(text, strlen(text), "Dockerfile", &df, NULL), 0);
    assert_string_equal(df->syntax, "docker/dockerfile:1");
    assert_string_equal(df->escape, "`");
    assert_string_equal(df->check, "skip=all");
    assert_int_equal(df->escape_token, '`');
    builder_dockerfile_free(TAKE_PTR(df));
    text = "FROM a\n# escape=`\n";
    assert_int_equal(builder_parse(text, strlen(text), "Dockerfile", &df, NULL), 0);
    assert_null(df->escape);
    assert_int_equal(df->escape_token, '\\');
}

typedef struct error_case {
    const char *text;
    int level;        /* 0 parse, 1 stages, 2 validate */
    const char *want; /* the message starts with it */
} error_case;

static const error_case error_cases[] = {
    {"", 0, "Dockerfile:1: file with no instructions"},
    {"# only\n\n# comments\n", 0, "Dockerfile:3: file with no instructions"},
    {"FROM a\nENV PATH\n", 0, "Dockerfile:2: ENV must have two arguments"},
    {"FROM a\nLABEL a=b c\n", 0, "Dockerfile:2: Syntax error - can't find = in \"c\""},
    {"FROM a\n\nCMD [\"a\", 1]\n", 0, "Dockerfile:3: dockerfile parse error"},
    {"FROM a\nRUN <<EOF\nno end\n", 0, "Dockerfile:2: unterminated heredoc"},
    {"FROM a\nCOPY <<A <<B /x\nA\n", 0, "Dockerfile:2: unterminated heredoc"},
    {"# escape=x\nFROM a\n", 0, "Dockerfile:1: invalid escape token 'x'"},
    {"# escape=`\n# escape=`\nFROM a\n", 0, "Dockerfile:2: only one escape parser directive"},
    {"FROM a\n\\\n", 0, "Dockerfile:2: a line continuation with no instruction"},
    {"FROM a\nONBUILD ONBUILD RUN x\n", 0, "Dockerfile:2: Chaining ONBUILD"},
    {"FROM a\nRUN a\0b\n", 0, "Dockerfile:2: a NUL byte"},
    {"CMD x\nFROM a\n", 1, "Dockerfile:1: no build stage in current context"},
    {"ARG A\n", 1, "Dockerfile:1: no FROM instruction"},
    {"FROM a\nFROBNICATE x\n", 1, "Dockerfile:2: unknown instruction: FROBNICATE"},
    {"FROM\n", 1, "Dockerfile:1: FROM requires either one or three arguments"},
    {"FROM a AS\n", 1, "Dockerfile:1: FROM requires either one or three arguments"},
    {"FROM a AS 1x\n", 1, "Dockerfile:1: invalid name for build stage: \"1x\""},
    {"FROM a AS x\nFROM b AS X\n", 1, "Dockerfile:2: duplicate stage name \"x\""},
    {"FROM a AS x\nCOPY --from=x a b\n", 1, "Dockerfile:2: circular dependency"},
    {"FROM a\nCOPY --from=0 a b\n", 1, "Dockerfile:2: invalid from flag value 0"},
    {"FROM a AS x\nCOPY --from=y a b\nFROM b AS y\nCOPY --from=x a b\n", 1,
     "Dockerfile:1: circular dependency"},
    {"FROM a\nONBUILD FROM b\n", 1, "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"},
    {"FROM a\nCOPY --user=me a b\n", 2, "Dockerfile:2: unknown flag: --user"},
    {"FROM a\nCOPY --from=x --from=y a b\n", 2, "Dockerfile:2: duplicate flag specified: --from"},
    {"FROM a\nCOPY --chown a b\n", 2, "Dockerfile:2: missing a value on flag: --chown"},
    {"FROM a\n\nHEALTHCHECK CONNECT x\n", 2, "Dockerfile:3: Unknown type \"CONNECT\""},
    {"FROM --platorm=x a\n", 2, "Dockerfile:1: unknown flag: --platorm"},
};

static void test_error_cases(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++) {
        const error_case *c = &error_cases[i];
        size_t len = strlen(c->text);
        if (strstr(c->want, "NUL"))
            len = strlen(c->text) + 3; /* "b\n" after the NUL */
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_dockerfile_ builder_dockerfile *df = NULL;
        int r = builder_parse(c->text, len, "Dockerfile", &df, &err);
        if (c->level == 0) {
            if (r == 0)
                fail_msg("case %zu parsed", i);
        } else {
            if (r < 0)
                fail_msg("case %zu: parse: %s", i, err.message);
            builder_stages st = {0};
            r = c->level == 1 ? builder_stages_build(df, &st, &err)
                              : builder_validate(df, &st, &err);
            builder_stages_clear(&st);
            if (r == 0)
                fail_msg("case %zu passed level %d", i, c->level);
            if (c->level == 2) {
                /* builder_stages_build alone accepts what only a build refuses */
                hypr_error e2 = HYPR_ERROR_INIT;
                assert_int_equal(builder_stages_build(df, &st, &e2), 0);
                builder_stages_clear(&st);
            }
        }
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        if (!str_startswith(err.message, c->want))
            fail_msg("case %zu: \"%s\", want \"%s...\"", i, err.message, c->want);
    }
}

static void test_stages_json(void **state)
{
    const char *text = "# syntax=docker/dockerfile:1\n"
                       "ARG GO=1.22\n"
                       "FROM --platform=linux/amd64 golang:${GO} AS Builder\n"
                       "COPY --from=builder --chown=1:1 \\\n  /out/app /usr/local/bin/app\n"
                       "RUN <<EOF\necho hi\nEOF\n"
                       "FROM scratch\n"
                       "COPY --from=builder /a /b\n";
    _cleanup_dockerfile_ builder_dockerfile *df = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(builder_parse(text, strlen(text), "Dockerfile", &df, &err), 0);
    builder_stages st = {0};
    /* the builder copying from itself is a cycle */
    assert_true(builder_stages_build(df, &st, &err) < 0);
    assert_non_null(strstr(err.message, "circular dependency detected on stage: builder"));
    builder_dockerfile_free(TAKE_PTR(df));
    text = "# syntax=docker/dockerfile:1\n"
           "ARG GO=1.22\n"
           "FROM --platform=linux/amd64 golang:${GO} AS Builder\n"
           "RUN <<-EOF\n\techo hi\nEOF\n"
           "FROM scratch\n"
           "COPY --from=builder --chown=1:1 \\\n  /out/app /usr/local/bin/app\n";
    assert_int_equal(builder_parse(text, strlen(text), "Dockerfile", &df, &err), 0);
    assert_int_equal(builder_validate(df, &st, &err), 0);
    assert_int_equal(st.n_before, 1);
    assert_int_equal(st.n, 2);
    assert_string_equal(st.stages[0].name, "builder");
    assert_string_equal(st.stages[0].base, "golang:${GO}");
    assert_string_equal(st.stages[0].platform, "linux/amd64");
    assert_int_equal(st.stages[0].line, 3);
    assert_null(st.stages[1].name);
    assert_null(st.stages[1].platform);
    _cleanup_json_ json_t *j = builder_check_json(df, &st);
    _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    const char *want =
        "{\"directives\":{\"syntax\":\"docker/dockerfile:1\"},"
        "\"instructions_before_first_from\":[{\"args\":[\"GO=1.22\"],\"cmd\":\"ARG\","
        "\"end_line\":2,\"flags\":[],\"heredocs\":[],\"json\":false,\"line\":2}],"
        "\"stages\":[{\"base\":\"golang:${GO}\",\"instructions\":["
        "{\"args\":[\"golang:${GO}\",\"AS\",\"Builder\"],\"cmd\":\"FROM\",\"end_line\":3,"
        "\"flags\":[\"--platform=linux/amd64\"],\"heredocs\":[],\"json\":false,\"line\":3},"
        "{\"args\":[\"<<-EOF\"],\"cmd\":\"RUN\",\"end_line\":6,\"flags\":[],\"heredocs\":["
        "{\"chomp\":true,\"content\":\"\\techo hi\\n\",\"expand\":true,\"name\":\"EOF\"}],"
        "\"json\":false,\"line\":4}],"
        "\"line\":3,\"name\":\"builder\",\"platform\":\"linux/amd64\"},"
        "{\"base\":\"scratch\",\"instructions\":["
        "{\"args\":[\"scratch\"],\"cmd\":\"FROM\",\"end_line\":7,\"flags\":[],\"heredocs\":[],"
        "\"json\":false,\"line\":7},"
        "{\"args\":[\"/out/app\",\"/usr/local/bin/app\"],\"cmd\":\"COPY\",\"end_line\":9,"
        "\"flags\":[\"--from=builder\",\"--chown=1:1\"],\"heredocs\":[],\"json\":false,"
        "\"line\":8}],\"line\":7,\"name\":null,\"platform\":null}]}";
    assert_string_equal(s, want);
    builder_stages_clear(&st);
}

static void test_json_strings_with_nul(void **state)
{
    const char *text = "FROM a\nCMD [\"a\\u0000b\", \"\\u2603\"]\n";
    _cleanup_dockerfile_ builder_dockerfile *df = NULL;
    assert_int_equal(builder_parse(text, strlen(text), "Dockerfile", &df, NULL), 0);
    const builder_instr *cmd = &df->instrs[1];
    assert_true(cmd->json);
    assert_int_equal(cmd->args.len[0], 3);
    assert_memory_equal(cmd->args.v[0], "a\0b", 3);
    _cleanup_free_ char *d = builder_dump_instr(cmd);
    assert_string_equal(d, "cmd \"a\\x00b\" \"☃\"");
    builder_stages st = {0};
    assert_int_equal(builder_stages_build(df, &st, NULL), 0);
    _cleanup_json_ json_t *j = builder_check_json(df, &st);
    json_t *args = json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(j, "stages"), 0), "instructions"), 1),
        "args");
    assert_int_equal(json_string_length(json_array_get(args, 0)), 3);
    builder_stages_clear(&st);
}

static void test_lint_warnings(void **state)
{
    const char *text = "FROM a as Build\nMAINTAINER me\nCMD echo hi\nENTRYPOINT [\"a b\"]\n";
    _cleanup_dockerfile_ builder_dockerfile *df = NULL;
    assert_int_equal(builder_parse(text, strlen(text), "df", &df, NULL), 0);
    size_t n_errors = 99;
    _cleanup_strv_ char **msgs = builder_lint(df, &n_errors);
    assert_int_equal(n_errors, 0);
    assert_int_equal(strv_length(msgs), 5);
    assert_true(str_startswith(msgs[0], "df:1: FromAsCasing"));
    assert_true(str_startswith(msgs[1], "df:1: StageNameCasing"));
    assert_true(str_startswith(msgs[2], "df:2: MaintainerDeprecated"));
    assert_true(str_startswith(msgs[3], "df:3: JSONArgsRecommended"));
    assert_true(str_startswith(msgs[4], "df:4: JSON-form ENTRYPOINT"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_testfiles),      cmocka_unit_test(test_corpus_derived),
        cmocka_unit_test(test_corpus_negative),       cmocka_unit_test(test_corpus_negative_lines),
        cmocka_unit_test(test_parse_cases),           cmocka_unit_test(test_directives),
        cmocka_unit_test(test_error_cases),           cmocka_unit_test(test_stages_json),
        cmocka_unit_test(test_json_strings_with_nul), cmocka_unit_test(test_lint_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
