/* libFuzzer target: the compose loader on one document in memory (YAML parse,
 * interpolation, extends, normalisation), then both printers. A document that loads
 * must print as YAML that loads back to the same model: the output of `compose
 * config` is a compose file. Failures are INVALID_ARGUMENT with a message. */
#include "compose/compose.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *env[] = {"HOME=/home/fuzz", "FOO=foo", "EMPTY=", "PORT=8080", NULL};
    compose_options o = {.environ = env, .cwd = "/nonexistent-hypr-fuzz", .project_name = "fz"};
    compose_project *p = NULL;
    hypr_error err = HYPR_ERROR_INIT;
    if (compose_load_buffer((const char *)data, size, "compose.yaml", &o, &p, &err) < 0) {
        if (err.status != HYPR_INVALID_ARGUMENT || !err.message || p)
            __builtin_trap();
        hypr_error_clear(&err);
        return 0;
    }
    char *json = compose_to_json(p), *yaml = compose_to_yaml(p);
    char *s = compose_list_services(p), *v = compose_list_volumes(p), *i = compose_list_images(p);
    compose_project *q = NULL;
    if (compose_load_buffer(yaml, strlen(yaml), "compose.yaml", &o, &q, &err) < 0) {
        fprintf(stderr, "the YAML output does not load: %s\n%s\n", err.message, yaml);
        __builtin_trap();
    }
    if (!json_equal(p->model, q->model)) {
        char *again = compose_to_json(q);
        fprintf(stderr, "the YAML output loads to another model:\n%s\n---\n%s\n", json, again);
        __builtin_trap();
    }
    compose_project_free(q);
    free(json);
    free(yaml);
    free(s);
    free(v);
    free(i);
    compose_project_free(p);
    return 0;
}
