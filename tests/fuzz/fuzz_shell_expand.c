/* libFuzzer target: the builder's shell-word expander. The first line of the
 * input is the environment ("K=V" words separated by ';'), the second selects
 * the options (escape token, raw quotes/escapes, skip-unset), the rest is the
 * word, expanded both as one word and as words. */
#include "builder/builder.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = xstrndup((const char *)data, size);
    char *opts_line = strchr(text, '\n');
    char *word = "";
    if (opts_line) {
        *opts_line++ = '\0';
        char *w = strchr(opts_line, '\n');
        if (w) {
            *w++ = '\0';
            word = w;
        }
    } else {
        opts_line = "";
    }
    char **env = strv_split(text, ";");
    unsigned o = (unsigned char)opts_line[0];
    builder_shell_opts opts = {
        .escape = (o & 1) ? '`' : '\\',
        .raw_quotes = o & 2,
        .raw_escapes = o & 4,
        .skip_unset = o & 8,
    };
    hypr_error err = HYPR_ERROR_INIT;
    char *out = NULL;
    int r1 = builder_shell_word(word, env, &opts, &out, &err);
    if (r1 < 0 && (err.status != HYPR_INVALID_ARGUMENT || !err.message || out))
        __builtin_trap();
    hypr_error_clear(&err);
    char **words = NULL;
    int r2 = builder_shell_words(word, env, &opts, &words, &err);
    /* the same lexer runs both ways: they fail together */
    if ((r1 < 0) != (r2 < 0))
        __builtin_trap();
    if (r2 == 0)
        for (size_t i = 0; words[i]; i++)
            if (!words[i][0])
                __builtin_trap();
    hypr_error_clear(&err);
    strv_free(words);
    free(out);
    strv_free(env);
    free(text);
    return 0;
}
