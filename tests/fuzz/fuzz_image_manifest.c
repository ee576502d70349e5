/* libFuzzer target: manifest / index / config / manifest.json parsing and
 * platform selection. */
#include <string.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    hypr_error err = HYPR_ERROR_INIT;
    image_manifest m;
    if (image_manifest_parse(NULL, body, size, &m, &err) == 0) {
        image_platform p = {.os = "linux", .arch = "amd64"};
        const image_descriptor *d;
        image_index_select(&m, &p, &d, &err);
        image_manifest_clear(&m);
    }
    hypr_error_clear(&err);
    image_config c;
    if (image_config_parse(body, size, &c, &err) == 0) {
        image_info info = {.name = xstrdup("n"), .config = c};
        char *json = image_info_to_json(&info);
        image_info back;
        if (image_info_from_json(json, &back, NULL) != 0)
            __builtin_trap(); /* what we write we must read */
        image_info_clear(&back);
        free(json);
        image_info_clear(&info);
    }
    hypr_error_clear(&err);
    char *text = xstrndup(body, size);
    image_info info;
    if (image_info_from_json(text, &info, &err) == 0)
        image_info_clear(&info);
    hypr_error_clear(&err);
    free(text);
    return 0;
}
