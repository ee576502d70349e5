/* Test helpers for JSON a server answered: parse it, read a value by dotted path,
 * check text contains a piece. Header-only: each test binary takes what it uses. */
#ifndef HYPR_TEST_JSON_ASSERTS_H
#define HYPR_TEST_JSON_ASSERTS_H

#include "common/common.h"
#include "common/json_cleanup.h"

#include <jansson.h>
#include <string.h>

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!strstr(h_, n_))                                                                       \
            fail_msg("\"%s\" does not contain \"%s\"", h_, n_);                                    \
    } while (0)

static inline json_t *json_path(json_t *o, const char *path)
{
    _cleanup_strv_ char **keys = strv_split(path, ".");
    for (char **k = keys; *k; k++)
        o = json_object_get(o, *k);
    return o;
}

static inline json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("bad JSON in the test: %s: %s", text, jerr.text);
    return j;
}

static inline const char *str(json_t *o, const char *path)
{
    json_t *v = json_path(o, path);
    if (!json_is_string(v))
        fail_msg("%s is not a string", path);
    return json_string_value(v);
}

static inline json_int_t num(json_t *o, const char *path)
{
    json_t *v = json_path(o, path);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", path);
    return json_integer_value(v);
}

#endif
