/* libFuzzer target: the mount-spec parsers of src/volume (-v, --mount, --tmpfs) and
 * the check the daemon runs on a VM's set of mounts. The input is one spec per line;
 * each line goes to all three parsers. A parse either fails with an INVALID_ARGUMENT
 * message or gives a spec the set check accepts on its own. */
#include "volume/volume.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = xstrndup((const char *)data, size);
    typedef int (*parse_fn)(const char *, volume_mount_spec *, hypr_error *);
    static const parse_fn parsers[] = {volume_parse_volume_flag, volume_parse_mount_flag,
                                       volume_parse_tmpfs_flag};
    volume_mount_spec *mounts = NULL;
    size_t n = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(parsers); i++) {
            hypr_error err = HYPR_ERROR_INIT;
            volume_mount_spec m;
            if (parsers[i](line, &m, &err) == 0) {
                if (err.message || volume_mounts_check(&m, 1, 1, &err) != 0)
                    __builtin_trap();
                mounts = xrealloc(mounts, (n + 1) * sizeof(*mounts));
                mounts[n++] = m;
            } else if (err.status != HYPR_INVALID_ARGUMENT || !err.message || m.source ||
                       m.target || m.options) {
                __builtin_trap();
            }
            hypr_error_clear(&err);
        }
        uint64_t bytes;
        (void)volume_parse_size(line, &bytes, NULL);
        (void)volume_name_check(line, NULL);
    }
    hypr_error err = HYPR_ERROR_INIT;
    (void)volume_mounts_check(mounts, n, n, &err);
    if (n > 1 && volume_mounts_check(mounts, n, n - 1, &err) == 0)
        __builtin_trap();
    hypr_error_clear(&err);
    volume_mount_specs_free(mounts, n);
    free(text);
    return 0;
}
