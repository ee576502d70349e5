/* hypr runtime manifest: parser and encoder (format in kestrel/manifest.h). */
#include "kestrel/manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAX_LIST 65536u

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static void strv_clear(manifest_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

int manifest_strv_push(manifest_strv *v, const char *s)
{
    if (!s)
        return -EINVAL;
    if (v->n >= MANIFEST_MAX_LIST)
        return -E2BIG;
    char *c = dup_str(s);
    if (!c)
        return -ENOMEM;
    char **nv = realloc(v->v, (v->n + 2) * sizeof(char *));
    if (!nv) {
        free(c);
        return -ENOMEM;
    }
    nv[v->n++] = c;
    nv[v->n] = NULL;
    v->v = nv;
    return 0;
}

static void volume_clear(manifest_volume *vol)
{
    free(vol->source);
    free(vol->target);
    free(vol->fstype);
    free(vol->options);
}

int manifest_add_volume(kestrel_manifest *m, const char *source, const char *target,
                        const char *fstype, const char *options)
{
    if (!source || !target || !fstype || !options)
        return -EINVAL;
    if (m->n_volumes >= MANIFEST_MAX_LIST)
        return -E2BIG;
    manifest_volume *nv = realloc(m->volumes, (m->n_volumes + 1) * sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    m->volumes = nv;
    manifest_volume *vol = &nv[m->n_volumes];
    vol->source = dup_str(source);
    vol->target = dup_str(target);
    vol->fstype = dup_str(fstype);
    vol->options = dup_str(options);
    if (!vol->source || !vol->target || !vol->fstype || !vol->options) {
        volume_clear(vol);
        return -ENOMEM;
    }
    m->n_volumes++;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int manifest_mac_parse(const char *s, uint8_t out[6])
{
    if (!s || strlen(s) != 17)
        return -EINVAL;
    for (int i = 0; i < 6; i++, s += 3) {
        int hi = hexval(s[0]), lo = hexval(s[1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[2] != ':'))
            return -EINVAL;
        if (out)
            out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool manifest_volume_fstype_ok(const char *fstype)
{
    static const char *const ok[] = {"virtiofs", "9p", "tmpfs", "bind", "ext4"};
    for (size_t i = 0; fstype && i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(fstype, ok[i]) == 0)
            return true;
    return false;
}

int manifest_add_netif(kestrel_manifest *m, const char *mac, const char *ip)
{
    if (!ip || manifest_mac_parse(mac, NULL) < 0)
        return -EINVAL;
    if (m->n_netifs >= MANIFEST_MAX_LIST)
        return -E2BIG;
    manifest_netif *nn = realloc(m->netifs, (m->n_netifs + 1) * sizeof(*nn));
    if (!nn)
        return -ENOMEM;
    m->netifs = nn;
    manifest_netif *n = &nn[m->n_netifs];
    n->mac = dup_str(mac);
    n->ip = dup_str(ip);
    if (!n->mac || !n->ip) {
        free(n->mac);
        free(n->ip);
        return -ENOMEM;
    }
    m->n_netifs++;
    return 0;
}

void manifest_init(kestrel_manifest *m)
{
    memset(m, 0, sizeof(*m));
    m->version = MANIFEST_VERSION;
    m->stop_timeout_s = 10;
    m->metrics_interval_ms = 5000;
}

void manifest_free(kestrel_manifest *m)
{
    free(m->hostname);
    free(m->workdir);
    free(m->user);
    free(m->ip);
    free(m->gateway);
    free(m->interface);
    free(m->mac);
    free(m->rootfs);
    free(m->rootfs_type);
    free(m->upper);
    strv_clear(&m->entrypoint);
    strv_clear(&m->cmd);
    strv_clear(&m->image_env);
    strv_clear(&m->env);
    strv_clear(&m->dns);
    strv_clear(&m->hosts);
    strv_clear(&m->modules);
    for (size_t i = 0; i < m->n_volumes; i++)
        volume_clear(&m->volumes[i]);
    free(m->volumes);
    for (size_t i = 0; i < m->n_netifs; i++) {
        free(m->netifs[i].mac);
        free(m->netifs[i].ip);
    }
    free(m->netifs);
    manifest_init(m);
}

int restart_policy_parse(const char *s, restart_policy *policy, uint32_t *max)
{
    *max = 0;
    if (strcmp(s, "no") == 0 || strcmp(s, "") == 0) {
        *policy = RESTART_NO;
    } else if (strcmp(s, "always") == 0) {
        *policy = RESTART_ALWAYS;
    } else if (strcmp(s, "unless-stopped") == 0) {
        *policy = RESTART_UNLESS_STOPPED;
    } else if (strncmp(s, "on-failure", 10) == 0) {
        *policy = RESTART_ON_FAILURE;
        if (s[10] == 0)
            return 0;
        if (s[10] != ':' || s[11] == 0)
            return -EINVAL;
        uint64_t v = 0;
        for (const char *p = s + 11; *p; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > UINT32_MAX)
                return -ERANGE;
        }
        *max = (uint32_t)v;
    } else {
        return -EINVAL;
    }
    return 0;
}

void restart_policy_format(restart_policy policy, uint32_t max, char *buf, size_t len)
{
    switch (policy) {
    case RESTART_ALWAYS:
        snprintf(buf, len, "always");
        break;
    case RESTART_UNLESS_STOPPED:
        snprintf(buf, len, "unless-stopped");
        break;
    case RESTART_ON_FAILURE:
        if (max)
            snprintf(buf, len, "on-failure:%u", (unsigned)max);
        else
            snprintf(buf, len, "on-failure");
        break;
    default:
        snprintf(buf, len, "no");
        break;
    }
}

/* ---- parsing ---- */

typedef struct tokens {
    char **t;
    size_t n;
    size_t cap;
} tokens;

static void tokens_clear(tokens *tk)
{
    for (size_t i = 0; i < tk->n; i++)
        free(tk->t[i]);
    free(tk->t);
    memset(tk, 0, sizeof(*tk));
}

static int tokens_push(tokens *tk, char *s)
{
    if (tk->n == tk->cap) {
        size_t cap = tk->cap ? tk->cap * 2 : 8;
        char **nt = realloc(tk->t, cap * sizeof(char *));
        if (!nt)
            return -ENOMEM;
        tk->t = nt;
        tk->cap = cap;
    }
    tk->t[tk->n++] = s;
    return 0;
}

/* Decodes one token starting at line[*pos]; the result is never longer than its
 * source, so one allocation of the remaining length is always enough. */
static int parse_token(const char *line, size_t len, size_t *pos, char **out, const char **why)
{
    size_t i = *pos;
    char *s = malloc(len - i + 1);
    size_t o = 0;
    if (!s)
        return -ENOMEM;
    if (line[i] != '"') {
        for (; i < len && line[i] != ' '; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
                *why = "bad character in unquoted value";
                goto bad;
            }
            s[o++] = (char)c;
        }
    } else {
        for (i++;; i++) {
            if (i >= len) {
                *why = "unterminated string";
                goto bad;
            }
            unsigned char c = (unsigned char)line[i];
            if (c == '"') {
                i++;
                break;
            }
            if (c < 0x20 || c == 0x7f) {
                *why = "control character in string";
                goto bad;
            }
            if (c != '\\') {
                s[o++] = (char)c;
                continue;
            }
            if (++i >= len) {
                *why = "unterminated escape";
                goto bad;
            }
            c = (unsigned char)line[i];
            int v;
            switch (c) {
            case '\\':
            case '"':
            case '\'':
            case '?':
                v = c;
                break;
            case 'n':
                v = '\n';
                break;
            case 't':
                v = '\t';
                break;
            case 'r':
                v = '\r';
                break;
            case 'a':
                v = '\a';
                break;
            case 'b':
                v = '\b';
                break;
            case 'f':
                v = '\f';
                break;
            case 'v':
                v = '\v';
                break;
            case 'e':
                v = 0x1b;
                break;
            case 'x': {
                int h1 = i + 1 < len ? hexval(line[i + 1]) : -1;
                if (h1 < 0) {
                    *why = "bad \\x escape";
                    goto bad;
                }
                v = h1;
                i++;
                int h2 = i + 1 < len ? hexval(line[i + 1]) : -1;
                if (h2 >= 0) {
                    v = v * 16 + h2;
                    i++;
                }
                break;
            }
            default:
                if (c < '0' || c > '7') {
                    *why = "unknown escape";
                    goto bad;
                }
                v = c - '0';
                for (int k = 0; k < 2 && i + 1 < len && line[i + 1] >= '0' && line[i + 1] <= '7';
                     k++)
                    v = v * 8 + (line[++i] - '0');
                if (v > 0xff) {
                    *why = "octal escape out of range";
                    goto bad;
                }
                break;
            }
            if (v == 0) {
                *why = "NUL byte in string";
                goto bad;
            }
            s[o++] = (char)v;
        }
        if (i < len && line[i] != ' ') {
            *why = "garbage after string";
            goto bad;
        }
    }
    s[o] = 0;
    *pos = i;
    *out = s;
    return 0;
bad:
    free(s);
    return -EINVAL;
}

static int tokenize(const char *line, size_t len, tokens *tk, const char **why)
{
    size_t i = 0;
    while (i < len) {
        if (line[i] == ' ') {
            *why = "extra space";
            return -EINVAL;
        }
        char *s;
        int r = parse_token(line, len, &i, &s, why);
        if (r < 0)
            return r;
        if ((r = tokens_push(tk, s)) < 0) {
            free(s);
            return r;
        }
        if (i < len) {
            i++; /* the single separating space */
            if (i == len) {
                *why = "trailing space";
                return -EINVAL;
            }
        }
    }
    return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return -ERANGE;
    }
    *out = (uint32_t)v;
    return 0;
}

static int set_str(char **field, char *value)
{
    free(*field);
    *field = value;
    return 0;
}

enum key_kind { K_STR, K_MAC, K_LIST, K_U32, K_RESTART, K_MODE, K_VOLUME, K_NETIF };

struct key_def {
    const char *name;
    unsigned char kind;
    unsigned char nargs; /* 0 = 1 */
    size_t off;
};

#define F(field) offsetof(kestrel_manifest, field)
static const struct key_def keys[] = {
    {"hostname", K_STR, 0, F(hostname)},
    {"workdir", K_STR, 0, F(workdir)},
    {"user", K_STR, 0, F(user)},
    {"ip", K_STR, 0, F(ip)},
    {"gateway", K_STR, 0, F(gateway)},
    {"interface", K_STR, 0, F(interface)},
    {"mac", K_MAC, 0, F(mac)},
    {"rootfs", K_STR, 0, F(rootfs)},
    {"rootfs_type", K_STR, 0, F(rootfs_type)},
    {"upper", K_STR, 0, F(upper)},
    {"entrypoint", K_LIST, 0, F(entrypoint)},
    {"cmd", K_LIST, 0, F(cmd)},
    {"image_env", K_LIST, 0, F(image_env)},
    {"env", K_LIST, 0, F(env)},
    {"dns", K_LIST, 0, F(dns)},
    {"host", K_LIST, 0, F(hosts)},
    {"module", K_LIST, 0, F(modules)},
    {"stop_timeout", K_U32, 0, F(stop_timeout_s)},
    {"stop_signal", K_U32, 0, F(stop_signal)},
    {"attach", K_U32, 0, F(attach)},
    {"metrics_interval_ms", K_U32, 0, F(metrics_interval_ms)},
    {"readonly_root", K_U32, 0, F(readonly_root)},
    {"restart", K_RESTART, 0, 0},
    {"mode", K_MODE, 0, 0},
    {"volume", K_VOLUME, 4, 0},
    {"netif", K_NETIF, 2, 0},
};
#undef F

static int apply_line(kestrel_manifest *m, tokens *tk, const char **why)
{
    const struct key_def *def = NULL;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(keys[i].name, tk->t[0]) == 0)
            def = &keys[i];
    if (!def)
        return 0; /* unknown key: a newer host; ignore */
    if (tk->n - 1 != (def->nargs ? def->nargs : 1u)) {
        *why = def->nargs ? "wrong number of values" : "expected exactly one value";
        return -EINVAL;
    }
    char *val = tk->t[1];
    void *field = (char *)m + def->off;
    int r = 0;
    if ((def->kind == K_MAC || def->kind == K_NETIF) && manifest_mac_parse(val, NULL) < 0) {
        *why = "bad MAC address";
        return -EINVAL;
    }
    switch (def->kind) {
    case K_STR:
    case K_MAC:
        tk->t[1] = NULL;
        return set_str(field, val);
    case K_LIST:
        r = manifest_strv_push(field, val);
        break;
    case K_U32:
        if (parse_u32(val, field) < 0) {
            *why = "not an unsigned 32-bit number";
            return -EINVAL;
        }
        break;
    case K_RESTART:
        if (restart_policy_parse(val, &m->restart, &m->restart_max) < 0) {
            *why = "bad restart policy";
            return -EINVAL;
        }
        break;
    case K_MODE:
        if (strcmp(val, "run") == 0)
            m->mode = MANIFEST_MODE_RUN;
        else if (strcmp(val, "build") == 0)
            m->mode = MANIFEST_MODE_BUILD;
        else {
            *why = "bad mode";
            return -EINVAL;
        }
        break;
    case K_VOLUME:
        r = manifest_add_volume(m, val, tk->t[2], tk->t[3], tk->t[4]);
        if (r == 0 && tk->t[2][0] != '/') {
            *why = "volume target must be absolute";
            return -EINVAL;
        }
        if (r == 0 && !manifest_volume_fstype_ok(tk->t[3])) {
            *why = "volume fstype must be one of virtiofs, 9p, tmpfs, bind, ext4";
            return -EINVAL;
        }
        break;
    case K_NETIF:
        r = manifest_add_netif(m, val, tk->t[2]);
        break;
    }
    if (r == -E2BIG) {
        *why = "list too long";
        return -EINVAL;
    }
    return r;
}

static int fail(char *errbuf, size_t errlen, size_t lineno, const char *why, int r)
{
    if (errbuf && errlen) {
        if (lineno)
            snprintf(errbuf, errlen, "manifest line %zu: %s", lineno, why);
        else
            snprintf(errbuf, errlen, "manifest: %s", why);
    }
    return r;
}

int manifest_parse(const char *data, size_t len, kestrel_manifest *m, char *errbuf, size_t errlen)
{
    manifest_init(m);
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (len > MANIFEST_MAX_SIZE)
        return fail(errbuf, errlen, 0, "too large", -EFBIG);
    if (len && memchr(data, 0, len))
        return fail(errbuf, errlen, 0, "NUL byte in manifest", -EINVAL);

    bool have_version = false;
    size_t lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        pos += llen + (nl ? 1 : 0);
        lineno++;
        if (llen && line[llen - 1] == '\r')
            llen--;
        if (llen == 0 || line[0] == '#')
            continue;

        tokens tk = {0};
        const char *why = "malformed line";
        int r = tokenize(line, llen, &tk, &why);
        if (r == 0 && !have_version) {
            uint32_t v;
            if (tk.n != 2 || strcmp(tk.t[0], "hypr-manifest") != 0 || parse_u32(tk.t[1], &v) < 0) {
                why = "first line must be \"hypr-manifest VERSION\"";
                r = -EINVAL;
            } else if (v == 0 || v > MANIFEST_VERSION) {
                why = "unsupported manifest version";
                r = -EPROTONOSUPPORT;
            } else {
                m->version = v;
                have_version = true;
            }
        } else if (r == 0) {
            r = apply_line(m, &tk, &why);
        }
        tokens_clear(&tk);
        if (r < 0) {
            manifest_free(m);
            return fail(errbuf, errlen, lineno, r == -ENOMEM ? "out of memory" : why, r);
        }
    }
    if (!have_version) {
        manifest_free(m);
        return fail(errbuf, errlen, 0, "missing \"hypr-manifest VERSION\" line", -EINVAL);
    }
    if (m->mode == MANIFEST_MODE_RUN && m->entrypoint.n == 0 && m->cmd.n == 0) {
        manifest_free(m);
        return fail(errbuf, errlen, 0, "no entrypoint or cmd", -EINVAL);
    }
    return 0;
}

/* ---- encoding ---- */

typedef struct sbuf {
    char *d;
    size_t len;
    size_t cap;
    int err;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (n > SIZE_MAX - b->len - 1) {
        b->err = -ENOMEM;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *nd = realloc(b->d, cap);
        if (!nd) {
            b->err = -ENOMEM;
            return;
        }
        b->d = nd;
        b->cap = cap;
    }
    memcpy(b->d + b->len, s, n);
    b->len += n;
    b->d[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_quoted(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[4];
        if (*p == '"' || *p == '\\') {
            e[0] = '\\';
            e[1] = (char)*p;
            sb_add(b, e, 2);
        } else if (*p == '\n') {
            sb_add(b, "\\n", 2);
        } else if (*p == '\t') {
            sb_add(b, "\\t", 2);
        } else if (*p == '\r') {
            sb_add(b, "\\r", 2);
        } else if (*p < 0x20 || *p > 0x7e) {
            e[0] = '\\';
            e[1] = 'x';
            e[2] = hex[*p >> 4];
            e[3] = hex[*p & 15];
            sb_add(b, e, 4);
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}

/* " " + quoted s; a NULL s makes the encoding fail with -EINVAL. */
static void sb_tok(sbuf *b, const char *s)
{
    if (!s) {
        if (!b->err)
            b->err = -EINVAL;
        return;
    }
    sb_add(b, " ", 1);
    sb_quoted(b, s);
}

static void sb_kv(sbuf *b, const char *key, const char *value)
{
    if (!value)
        return;
    sb_puts(b, key);
    sb_add(b, " ", 1);
    sb_quoted(b, value);
    sb_add(b, "\n", 1);
}

static void sb_list(sbuf *b, const char *key, const manifest_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        sb_kv(b, key, v->v[i]);
}

static void sb_u32(sbuf *b, const char *key, uint32_t v)
{
    char num[16];
    snprintf(num, sizeof(num), "%u", (unsigned)v);
    sb_puts(b, key);
    sb_add(b, " ", 1);
    sb_puts(b, num);
    sb_add(b, "\n", 1);
}

int manifest_encode(const kestrel_manifest *m, char **out, size_t *out_len)
{
    sbuf b = {0};
    char pol[32];
    if (m->mac && manifest_mac_parse(m->mac, NULL) < 0)
        return -EINVAL;
    sb_puts(&b, "hypr-manifest 1\n");
    if (m->mode == MANIFEST_MODE_BUILD)
        sb_puts(&b, "mode build\n");
    sb_kv(&b, "hostname", m->hostname);
    sb_list(&b, "entrypoint", &m->entrypoint);
    sb_list(&b, "cmd", &m->cmd);
    sb_list(&b, "image_env", &m->image_env);
    sb_list(&b, "env", &m->env);
    sb_kv(&b, "workdir", m->workdir);
    sb_kv(&b, "user", m->user);
    restart_policy_format(m->restart, m->restart_max, pol, sizeof(pol));
    sb_kv(&b, "restart", pol);
    sb_u32(&b, "stop_timeout", m->stop_timeout_s);
    if (m->stop_signal)
        sb_u32(&b, "stop_signal", m->stop_signal);
    if (m->attach)
        sb_u32(&b, "attach", m->attach);
    sb_u32(&b, "metrics_interval_ms", m->metrics_interval_ms);
    if (m->readonly_root)
        sb_u32(&b, "readonly_root", m->readonly_root);
    sb_kv(&b, "interface", m->interface);
    sb_kv(&b, "mac", m->mac);
    sb_kv(&b, "ip", m->ip);
    sb_kv(&b, "gateway", m->gateway);
    sb_list(&b, "dns", &m->dns);
    sb_list(&b, "host", &m->hosts);
    for (size_t i = 0; i < m->n_netifs; i++) {
        const manifest_netif *n = &m->netifs[i];
        if (manifest_mac_parse(n->mac, NULL) < 0)
            b.err = -EINVAL;
        sb_puts(&b, "netif");
        sb_tok(&b, n->mac);
        sb_tok(&b, n->ip);
        sb_add(&b, "\n", 1);
    }
    for (size_t i = 0; i < m->n_volumes; i++) {
        const manifest_volume *v = &m->volumes[i];
        sb_puts(&b, "volume");
        sb_tok(&b, v->source);
        sb_tok(&b, v->target);
        sb_tok(&b, v->fstype);
        sb_tok(&b, v->options);
        sb_add(&b, "\n", 1);
    }
    sb_kv(&b, "rootfs", m->rootfs);
    sb_kv(&b, "rootfs_type", m->rootfs_type);
    sb_kv(&b, "upper", m->upper);
    sb_list(&b, "module", &m->modules);
    if (b.err) {
        free(b.d);
        return b.err;
    }
    *out = b.d;
    *out_len = b.len;
    return 0;
}
