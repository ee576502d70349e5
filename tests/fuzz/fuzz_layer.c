/* libFuzzer target: layer application (tar/gzip/zstd parsing, paths,
 * whiteouts, links) and, for accepted layers, the squashfs writer. The input
 * is split into two layers at the first "\n--\n" so that whiteouts and
 * links between layers are exercised. Odd-sized inputs go through the diff_id
 * check's reader (decompress + hash, tar parsed from it), whose expected digest
 * never matches, so that path's errors are exercised too. */
#include <string.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    image_layer_src layers[2] = {{.data = data, .len = size, .label = "l0"}};
    size_t n = 1;
    const uint8_t *sep = memmem(data, size, "\n--\n", 4);
    if (sep) {
        layers[0].len = (size_t)(sep - data);
        layers[1] =
            (image_layer_src){.data = sep + 4, .len = size - layers[0].len - 4, .label = "l1"};
        n = 2;
    }
    static const char no_match[] =
        "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    if (size % 2)
        for (size_t i = 0; i < n; i++)
            layers[i].diff_id = no_match;
    image_tree *t = image_tree_new();
    hypr_error err = HYPR_ERROR_INIT;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++)
        r = image_tree_apply_layer(t, &layers[i], (int)i, NULL, &err);
    hypr_error_clear(&err);
    if (r == 0 && image_tree_count(t) < 2000) {
        static char path[64];
        if (!path[0])
            snprintf(path, sizeof(path), "/tmp/fuzz-layer-%d.sqfs", (int)getpid());
        image_tree_write_squashfs(t, layers, n, path, NULL, &err);
        hypr_error_clear(&err);
        unlink(path);
    }
    image_tree_free(t);
    return 0;
}
