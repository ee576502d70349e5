/* libFuzzer target: the decoders of untrusted text in src/common/util.c that REST paths,
 * query strings and signal names go through: percent_decode (strict and lenient, '+'
 * or not) and signal_parse. Checks what they promise: a strict decode never yields a
 * NUL, a decode is never longer than its input, and a signal is 1..64, named unless
 * given by number or real-time. */
#include "common/common.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned flags[] = {0, PERCENT_PLUS, PERCENT_STRICT,
                                     PERCENT_STRICT | PERCENT_PLUS};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        char *d = percent_decode((const char *)data, size, flags[i]);
        if (flags[i] & PERCENT_STRICT) {
            if (d && (memchr(data, '\0', size) == NULL) && strlen(d) > size)
                __builtin_trap();
        } else if (!d) {
            __builtin_trap(); /* lenient decoding always gives a result */
        }
        if (d && strlen(d) > size)
            __builtin_trap();
        free(d);
    }
    char *s = xstrndup((const char *)data, size);
    int sig = signal_parse(s);
    /* By number, 1..64; by name, one with a name or a real-time one (34..64). */
    bool number = s[0] >= '0' && s[0] <= '9';
    if (sig > 0 && (sig > 64 || (!number && !signal_name(sig) && sig < 34)))
        __builtin_trap();
    free(s);
    return 0;
}
