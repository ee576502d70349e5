/* Image references, parsed and normalised like Docker's: a missing registry is
 * docker.io, a one-part Docker Hub name lives under library/, a missing tag is
 * latest unless a digest pins the image. Every rejection says what is wrong. */
#define LOG_MODULE "image"
#include "image/image.h"

#include <ctype.h>
#include <string.h>

#define MAX_NAME_LEN 255
#define MAX_TAG_LEN  128

void image_ref_clear(image_ref *r)
{
    if (!r)
        return;
    free(r->registry);
    free(r->repository);
    free(r->tag);
    free(r->digest);
    memset(r, 0, sizeof(*r));
}

bool image_digest_valid(const char *d)
{
    if (!d || !str_startswith(d, "sha256:"))
        return false;
    d += strlen("sha256:");
    size_t n = 0;
    for (; d[n]; n++)
        if (!isdigit((unsigned char)d[n]) && !(d[n] >= 'a' && d[n] <= 'f'))
            return false;
    return n == 64;
}

static bool lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)* */
static const char *check_component(const char *s, size_t len)
{
    if (len == 0)
        return "empty path component";
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            return "repository name must be lowercase";
    if (!lower_alnum(s[0]) || !lower_alnum(s[len - 1]))
        return "path components must start and end with a letter or digit";
    for (size_t i = 0; i < len;) {
        if (lower_alnum(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && !lower_alnum(s[j]))
            j++;
        size_t sep = j - i;
        bool ok = (sep == 1 && (s[i] == '.' || s[i] == '_' || s[i] == '-')) ||
                  (sep == 2 && s[i] == '_' && s[i + 1] == '_');
        if (!ok) {
            ok = true;
            for (size_t k = i; k < j; k++)
                ok = ok && s[k] == '-';
        }
        if (!ok)
            return "invalid character in repository name (allowed: a-z 0-9 . _ __ -)";
        i = j;
    }
    return NULL;
}

/* host[:port], host being a DNS name, an IPv4 address or [IPv6]. */
static const char *check_domain(const char *s, size_t len)
{
    size_t host_end = len;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return "unterminated [ in registry address";
        for (const char *p = s + 1; p < close; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return "invalid IPv6 registry address";
        host_end = (size_t)(close - s) + 1;
        if (host_end < len && s[host_end] != ':')
            return "unexpected characters after ] in registry address";
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon)
            host_end = (size_t)(colon - s);
        if (host_end == 0)
            return "empty registry host";
        for (size_t i = 0; i < host_end; i++) {
            char c = s[i];
            if (!isalnum((unsigned char)c) && c != '.' && c != '-')
                return "invalid character in registry host";
        }
        if (s[0] == '-' || s[0] == '.' || s[host_end - 1] == '-' || s[host_end - 1] == '.')
            return "registry host must start and end with a letter or digit";
    }
    if (host_end < len) {
        size_t plen = len - host_end - 1;
        if (plen == 0 || plen > 5)
            return "invalid registry port";
        long port = 0;
        for (size_t i = host_end + 1; i < len; i++) {
            if (!isdigit((unsigned char)s[i]))
                return "registry port must be a number";
            port = port * 10 + (s[i] - '0');
        }
        if (port < 1 || port > 65535)
            return "registry port out of range";
    }
    return NULL;
}

static const char *check_tag(const char *t)
{
    size_t n = strlen(t);
    if (n == 0)
        return "empty tag";
    if (n > MAX_TAG_LEN)
        return "tag longer than 128 characters";
    if (!isalnum((unsigned char)t[0]) && t[0] != '_')
        return "tag must start with a letter, digit or _";
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-')
            return "invalid character in tag (allowed: A-Z a-z 0-9 _ . -)";
    return NULL;
}

/* A first component names a registry when it looks like a host. */
static bool looks_like_domain(const char *s, size_t len)
{
    if (len == 9 && memcmp(s, "localhost", 9) == 0)
        return true;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '.' || s[i] == ':' || s[i] == '[' || (s[i] >= 'A' && s[i] <= 'Z'))
            return true;
    return false;
}

static int fail(hypr_error *err, const char *ref, const char *why)
{
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid reference \"%s\": %s", ref, why);
}

int image_ref_parse(const char *s, image_ref *out, hypr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (str_empty(s))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no image reference given");
    size_t total = strlen(s);
    if (total > MAX_NAME_LEN + 1 + MAX_TAG_LEN + 1 + 71 + 64)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid reference: too long");
    for (size_t i = 0; i < total; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return fail(err, s, "contains whitespace or non-ASCII characters");

    _cleanup_free_ char *work = xstrdup(s);
    char *at = strchr(work, '@');
    if (at) {
        *at = '\0';
        if (!image_digest_valid(at + 1))
            return fail(err, s,
                        str_startswith(at + 1, "sha256:")
                            ? "digest must be sha256: followed by 64 lowercase hex digits"
                            : "unsupported digest (only sha256:<64 hex> is accepted)");
        out->digest = xstrdup(at + 1);
    }
    char *slash = strrchr(work, '/');
    char *colon = strrchr(slash ? slash : work, ':');
    if (colon) {
        *colon = '\0';
        const char *why = check_tag(colon + 1);
        if (why) {
            image_ref_clear(out);
            return fail(err, s, why);
        }
        out->tag = xstrdup(colon + 1);
    }
    if (work[0] == '\0') {
        image_ref_clear(out);
        return fail(err, s, "missing repository name");
    }

    /* Split off the registry. */
    const char *name = work;
    char *first_slash = strchr(work, '/');
    if (first_slash && looks_like_domain(work, (size_t)(first_slash - work))) {
        size_t dlen = (size_t)(first_slash - work);
        const char *why = check_domain(work, dlen);
        if (why) {
            image_ref_clear(out);
            return fail(err, s, why);
        }
        /* Kept as written: an uppercase letter is what makes "Host/x" a registry,
         * so lowercasing it would change what the normalised string means. */
        out->registry = xstrndup(work, dlen);
        name = first_slash + 1;
    } else {
        out->registry = xstrdup("docker.io");
    }
    if (!strcmp(out->registry, "index.docker.io") ||
        !strcmp(out->registry, "registry-1.docker.io")) {
        free(out->registry);
        out->registry = xstrdup("docker.io");
    }

    /* Validate the path components. */
    size_t nlen = strlen(name);
    if (nlen == 0) {
        image_ref_clear(out);
        return fail(err, s, "missing repository name");
    }
    for (const char *p = name;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *why = check_component(p, len);
        if (why) {
            image_ref_clear(out);
            return fail(err, s, why);
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (!strcmp(out->registry, "docker.io") && !strchr(name, '/'))
        out->repository = xasprintf("library/%s", name);
    else
        out->repository = xstrdup(name);
    if (strlen(out->registry) + 1 + strlen(out->repository) > MAX_NAME_LEN) {
        image_ref_clear(out);
        return fail(err, s, "repository name longer than 255 characters");
    }
    if (!out->tag && !out->digest)
        out->tag = xstrdup("latest");
    return 0;
}

int image_registry_check(const char *host, hypr_error *err)
{
    const char *why = str_empty(host) ? "empty registry host" : check_domain(host, strlen(host));
    if (why)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid registry \"%s\": %s",
                        host ? host : "", why);
    return 0;
}

char *image_ref_name(const image_ref *r)
{
    return xasprintf("%s/%s", r->registry, r->repository);
}

char *image_ref_string(const image_ref *r)
{
    return xasprintf("%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
                     r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "");
}

const char *image_ref_endpoint_host(const image_ref *r)
{
    return strcmp(r->registry, "docker.io") == 0 ? "registry-1.docker.io" : r->registry;
}
