/* libFuzzer target: the Dockerfile parser on arbitrary bytes, then everything
 * `hypr build --check` does with a parse: the dump, the stage split, lint and
 * the JSON document. A parse either fails with an INVALID_ARGUMENT message
 * naming the file, or gives instructions whose lines are in order. */
#include "builder/builder.h"
#include "common/json_cleanup.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hypr_error err = HYPR_ERROR_INIT;
    builder_dockerfile *df = NULL;
    if (builder_parse((const char *)data, size, "Dockerfile", &df, &err) < 0) {
        if (err.status != HYPR_INVALID_ARGUMENT || !err.message ||
            strncmp(err.message, "Dockerfile", 10) || df)
            __builtin_trap();
        hypr_error_clear(&err);
        return 0;
    }
    int prev_end = 0;
    for (size_t i = 0; i < df->n_instrs; i++) {
        const builder_instr *in = &df->instrs[i];
        if (in->line <= prev_end || in->end_line < in->line)
            __builtin_trap();
        prev_end = in->end_line;
    }
    free(builder_dump(df));
    size_t n_errors;
    strv_free(builder_lint(df, &n_errors));
    builder_stages st = {0};
    if (builder_stages_build(df, &st, &err) == 0) {
        json_t *j = builder_check_json(df, &st);
        char *s = json_dumps(j, JSON_COMPACT);
        if (!s)
            __builtin_trap();
        free(s);
        json_decref(j);
        builder_stages_clear(&st);
    } else if (!err.message) {
        __builtin_trap();
    }
    hypr_error_clear(&err);
    builder_dockerfile_free(df);
    return 0;
}
