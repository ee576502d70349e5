/* hypr builder module: the Dockerfile parser (BuildKit's syntax and parse tree,
 * see ../shared/testdata/buildkit/FORMAT.md), its shell-word expander, the
 * stage split that `hypr build --check` prints, and .dockerignore matching.
 * Pure C on top of common and jansson: no daemon knowledge, so the CLI checks a
 * Dockerfile offline and the daemon re-parses what it is sent with the same code.
 * Parse errors are INVALID_ARGUMENT with a message "FILE:LINE: reason". */
#ifndef HYPR_BUILDER_H
#define HYPR_BUILDER_H

#include <jansson.h>

#include "common/common.h"

/* Bigger Dockerfiles are refused before parsing (BuildKit has no limit; 16 MiB
 * is far beyond any real one and bounds the work on untrusted input). */
#define BUILDER_DOCKERFILE_MAX (16u * 1024 * 1024)

/* A vector of byte strings: JSON exec-form arguments may hold NUL ("\u0000"), so
 * each string carries its length; v[i] is also NUL-terminated and v[n] is NULL. */
typedef struct builder_strv {
    char **v;
    size_t *len;
    size_t n;
} builder_strv;

typedef struct builder_heredoc {
    char *name;    /* delimiter with quotes removed */
    char *content; /* body lines verbatim, with their newlines ("" when empty) */
    bool expand;   /* false when any part of the delimiter was quoted */
    bool chomp;    /* <<- : leading tabs are stripped when the step runs */
    unsigned fd;   /* 3<<EOF: 3; 0 when not given */
} builder_heredoc;

typedef struct builder_instr {
    char *cmd;      /* the keyword lower-cased ("run"), as BuildKit's Node.Value */
    char *original; /* the instruction text after continuations were joined */
    int line;       /* first physical line, 1-based */
    int end_line;   /* last physical line consumed (continuation or heredoc end) */
    builder_strv flags;
    builder_strv args;           /* FORMAT.md §3.3; ENV/LABEL: flat k1, v1, k2, v2, ... */
    bool json;                   /* arguments written in exec (JSON) form */
    bool legacy_kv;              /* ENV/LABEL written as "KEY VALUE" (dump separator "") */
    struct builder_instr *inner; /* ONBUILD: the nested instruction; else NULL */
    builder_heredoc *heredocs;
    size_t n_heredocs;
} builder_instr;

typedef struct builder_dockerfile {
    char *filename;                /* as given to builder_parse, used in messages */
    char *syntax, *escape, *check; /* parser directives present, else NULL */
    char escape_token;             /* '\\' or '`' */
    builder_instr *instrs;
    size_t n_instrs;
} builder_dockerfile;

/* Parses a Dockerfile held in data[0..len) into its flat instruction list, as
 * BuildKit's parser.Parse: directives, continuations, comments, heredocs,
 * builder flags and per-instruction arguments. No FROM or flag validation here
 * (builder_stages does that). filename only labels errors. */
int builder_parse(const char *data, size_t len, const char *filename, builder_dockerfile **out,
                  hypr_error *err);
void builder_dockerfile_free(builder_dockerfile *df);
DEFINE_CLEANUP_FUNC(builder_dockerfile, builder_dockerfile_free)
#define _cleanup_dockerfile_ _cleanup_(builder_dockerfile_freep)

/* BuildKit's Node.Dump() of every instruction, one line each, each ending in
 * "\n": the format of the corpus's `result` files. Caller frees. */
char *builder_dump(const builder_dockerfile *df);
/* One instruction's dump line without the newline. Caller frees. */
char *builder_dump_instr(const builder_instr *in);

/* ---- stages ------------------------------------------------------------------- */

typedef struct builder_stage {
    char *name;           /* lower-cased AS name, NULL without */
    const char *base;     /* FROM's image word (points into the FROM instruction) */
    const char *platform; /* --platform= value or NULL (points into the flags) */
    int line;
    size_t first; /* index of its FROM in df->instrs */
    size_t count; /* instructions in the stage, FROM included */
} builder_stage;

typedef struct builder_stages {
    size_t n_before; /* ARGs before the first FROM: df->instrs[0 .. n_before) */
    builder_stage *stages;
    size_t n;
} builder_stages;

/* Splits the instructions into stages and validates what BuildKit's frontend
 * refuses before building: an instruction other than ARG before the first FROM,
 * a file without FROM, FROM's arguments, stage names (syntax, duplicates),
 * unknown or repeated builder flags of each instruction, unknown instructions,
 * and --from naming a later stage or the current one by index. */
int builder_stages_build(const builder_dockerfile *df, builder_stages *out, hypr_error *err);
void builder_stages_clear(builder_stages *s);

/* What BuildKit's frontend reports about instructions the parser accepts but a
 * build cannot run as written: unknown or repeated builder flags, a HEALTHCHECK
 * type other than CMD/NONE (errors for a build), and lint warnings (MAINTAINER
 * is deprecated, FROM ... "as" casing, a JSON-form CMD/ENTRYPOINT that reads like
 * shell). Each message is "FILE:LINE: text"; the vector is NULL-terminated and
 * its first *n_errors entries are the errors. Caller frees (strv_free). */
char **builder_lint(const builder_dockerfile *df, size_t *n_errors);
/* builder_stages_build plus the errors of builder_lint: what a build requires. */
int builder_validate(const builder_dockerfile *df, builder_stages *out, hypr_error *err);

/* The `hypr build --check --format json` document (FORMAT.md §2). */
json_t *builder_check_json(const builder_dockerfile *df, const builder_stages *st);

/* ---- shell words ---------------------------------------------------------------- */

typedef struct builder_shell_opts {
    char escape;      /* escape token: '\\' (0 means '\\') or '`' */
    bool raw_quotes;  /* keep quote characters in the result */
    bool raw_escapes; /* keep escape tokens in the result */
    bool skip_unset;  /* leave $X / ${X...} of unset variables as written */
} builder_shell_opts;

/* BuildKit's shell.Lex ProcessWord: expands $V, ${V}, ${V:-d}, ${V-d}, ${V:+a},
 * ${V+a}, ${V:?e}, ${V?e}, ${V#p}, ${V##p}, ${V%s}, ${V%%s}, ${V/a/b}, ${V//a/b},
 * removes quotes and escapes. env is a NULL-terminated "K=V" vector (later entries
 * win; may be NULL). *out: caller frees. Errors are INVALID_ARGUMENT. */
int builder_shell_word(const char *word, char *const *env, const builder_shell_opts *opts,
                       char **out, hypr_error *err);
/* ProcessWords: the same, split into words on unquoted blanks (including blanks
 * an unquoted expansion produces). *out is NULL-terminated, possibly empty. */
int builder_shell_words(const char *word, char *const *env, const builder_shell_opts *opts,
                        char ***out, hypr_error *err);

/* ---- .dockerignore ---------------------------------------------------------------- */

typedef struct builder_ignore builder_ignore;

/* Reads .dockerignore text as moby's ignorefile.ReadAll + patternmatcher.New:
 * '#' lines are comments, blanks trimmed, patterns cleaned (filepath.Clean,
 * leading '/' dropped), '!' marks an exception. A malformed pattern (an
 * unterminated '[', a lone '!') is an error naming its line. */
int builder_ignore_parse(const char *data, size_t len, builder_ignore **out, hypr_error *err);
void builder_ignore_free(builder_ignore *ig);
DEFINE_CLEANUP_FUNC(builder_ignore, builder_ignore_free)
#define _cleanup_ignore_ _cleanup_(builder_ignore_freep)
/* Whether path (relative to the context, '/'-separated) is excluded: the last
 * pattern matching it or one of its parent directories decides (moby's
 * MatchesOrParentMatches). Patterns are Go filepath.Match globs plus "**". */
bool builder_ignore_match(const builder_ignore *ig, const char *path);
size_t builder_ignore_count(const builder_ignore *ig);
/* The ignore file that applies: "<dockerfile>.dockerignore" when it exists
 * (dockerfile as given, relative to the cwd), else "<context>/.dockerignore" when
 * it exists, else NULL. dockerfile may be NULL. Caller frees. */
char *builder_ignore_find(const char *context, const char *dockerfile);
/* Finds and parses it; *out is an empty matcher when there is no file. */
int builder_ignore_load(const char *context, const char *dockerfile, builder_ignore **out,
                        hypr_error *err);

#endif
