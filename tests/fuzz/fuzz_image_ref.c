/* libFuzzer target: image reference and platform parsing. */
#include <string.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = xstrndup((const char *)data, size);
    hypr_error err = HYPR_ERROR_INIT;
    image_ref r;
    if (image_ref_parse(s, &r, &err) == 0) {
        char *name = image_ref_name(&r);
        char *full = image_ref_string(&r);
        /* A normalised reference parses to itself. */
        image_ref again;
        if (image_ref_parse(full, &again, NULL) != 0 || strcmp(again.registry, r.registry) ||
            strcmp(again.repository, r.repository))
            __builtin_trap();
        image_ref_clear(&again);
        free(name);
        free(full);
        image_ref_clear(&r);
    }
    hypr_error_clear(&err);
    image_platform p;
    if (image_platform_parse(s, &p, &err) == 0) {
        free(image_platform_string(&p));
        image_platform_clear(&p);
    }
    hypr_error_clear(&err);
    free(s);
    return 0;
}
