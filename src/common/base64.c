/* Standard base64 with padding (RFC 4648): registry credentials, proto3 JSON bytes. */
#include "common/common.h"

#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    char *o = out;
    for (size_t i = 0; i < len; i += 3) {
        size_t left = len - i;
        uint32_t v = (uint32_t)in[i] << 16;
        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        *o++ = b64_alphabet[(v >> 18) & 63];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = left > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = left > 2 ? b64_alphabet[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

/* Strict decoding: whole quanta, '=' only as the last one or two characters.
 * NULL on anything else. The result is NUL-terminated; *out_len excludes it. */
char *base64_decode(const char *s, size_t max, size_t *out_len)
{
    size_t len = strlen(s);
    if (len == 0 || len % 4 != 0 || len > max)
        return NULL;
    size_t pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
    _cleanup_free_ unsigned char *out = xmalloc(len / 4 * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = last && k >= 4 - pad ? 0 : b64_value(s[i + k]);
            if (d < 0)
                return NULL;
            v = v << 6 | (uint32_t)d;
        }
        out[n++] = (unsigned char)(v >> 16);
        if (!last || pad < 2)
            out[n++] = (unsigned char)(v >> 8);
        if (!last || pad < 1)
            out[n++] = (unsigned char)v;
    }
    out[n] = '\0';
    *out_len = n;
    return (char *)TAKE_PTR(out);
}
