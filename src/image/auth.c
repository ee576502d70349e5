/* Registry authentication helpers: WWW-Authenticate challenges and the basic
 * Authorization header. The credentials themselves come from config.json
 * through the creds module. */
#define LOG_MODULE "image"
#include "image/image-private.h"

#include <ctype.h>
#include <string.h>

void auth_challenge_clear(auth_challenge *c)
{
    if (!c)
        return;
    free(c->scheme);
    free(c->realm);
    free(c->service);
    free(c->scope);
    memset(c, 0, sizeof(*c));
}

/* Bearer realm="https://auth/token",service="registry",scope="repository:a:pull"
 * Parameters may be quoted (with \-escapes) or bare tokens. Returns -EINVAL on
 * an unusable header. */
int auth_parse_challenge(const char *h, auth_challenge *out)
{
    memset(out, 0, sizeof(*out));
    if (!h)
        return -EINVAL;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t sl = 0;
    while (h[sl] && !isspace((unsigned char)h[sl]))
        sl++;
    if (sl == 0)
        return -EINVAL;
    out->scheme = xstrndup(h, sl);
    for (char *p = out->scheme; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *p = h + sl;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ',' && !isspace((unsigned char)*p))
            p++;
        size_t klen = (size_t)(p - k);
        while (*p == ' ')
            p++;
        if (*p != '=') {
            /* token68 or junk: skip to the next comma */
            while (*p && *p != ',')
                p++;
            continue;
        }
        p++;
        while (*p == ' ')
            p++;
        hypr_buf v = {0};
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                buf_append(&v, p, 1);
                p++;
            }
            if (*p == '"')
                p++;
        } else {
            const char *vs = p;
            while (*p && *p != ',' && !isspace((unsigned char)*p))
                p++;
            buf_append(&v, vs, (size_t)(p - vs));
        }
        char **slot = NULL;
        if (klen == 5 && !strncasecmp(k, "realm", 5))
            slot = &out->realm;
        else if (klen == 7 && !strncasecmp(k, "service", 7))
            slot = &out->service;
        else if (klen == 5 && !strncasecmp(k, "scope", 5))
            slot = &out->scope;
        if (slot) {
            free(*slot);
            *slot = buf_steal(&v);
        } else {
            buf_free(&v);
        }
    }
    return 0;
}

char *auth_basic_header(const char *user, const char *pass)
{
    _cleanup_free_ char *pair = xasprintf("%s:%s", user, pass);
    _cleanup_free_ char *b64 = base64_encode(pair, strlen(pair));
    return xasprintf("Authorization: Basic %s", b64);
}
