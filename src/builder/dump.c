/* Two views of a parsed Dockerfile: BuildKit's Node.Dump() text (the corpus's
 * `result` files) and the `hypr build --check --format json` document. */
#include "builder/internal.h"

#include <ctype.h>
#include <string.h>

size_t builder_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        len = 2, c = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, c = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* Go's strconv.IsPrint, for the ranges a Dockerfile plausibly holds. */
static bool rune_printable(uint32_t c)
{
    if (c < 0xA1)
        return c >= 0x20 && c < 0x7F;
    if (c == 0xAD || (c >= 0x200B && c <= 0x200F) || (c >= 0x2028 && c <= 0x202E) ||
        (c >= 0x2060 && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) ||
        (c >= 0xE000 && c <= 0xF8FF) || c == 0xFFFE || c == 0xFFFF || c >= 0xF0000 ||
        (c >= 0xD800 && c <= 0xDFFF))
        return false;
    return true;
}

/* strconv.Quote. */
static void go_quote(hypr_buf *b, const char *s, size_t n)
{
    buf_append(b, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t l = builder_utf8_decode(u + i, n - i, &c);
        if (l == 0) {
            buf_printf(b, "\\x%02x", u[i]);
            i++;
            continue;
        }
        if (c == '"' || c == '\\') {
            buf_append(b, "\\", 1);
            buf_append(b, s + i, 1);
        } else if (rune_printable(c)) {
            buf_append(b, s + i, l);
        } else {
            switch (c) {
            case '\a':
                buf_puts(b, "\\a");
                break;
            case '\b':
                buf_puts(b, "\\b");
                break;
            case '\f':
                buf_puts(b, "\\f");
                break;
            case '\n':
                buf_puts(b, "\\n");
                break;
            case '\r':
                buf_puts(b, "\\r");
                break;
            case '\t':
                buf_puts(b, "\\t");
                break;
            case '\v':
                buf_puts(b, "\\v");
                break;
            default:
                if (c < 0x80)
                    buf_printf(b, "\\x%02x", c);
                else if (c < 0x10000)
                    buf_printf(b, "\\u%04x", c);
                else
                    buf_printf(b, "\\U%08x", c);
            }
        }
        i += l;
    }
    buf_append(b, "\"", 1);
}

static void dump_instr(hypr_buf *b, const builder_instr *in)
{
    buf_puts(b, in->cmd);
    if (in->flags.n) {
        buf_puts(b, " [");
        for (size_t i = 0; i < in->flags.n; i++) {
            if (i)
                buf_puts(b, " ");
            go_quote(b, in->flags.v[i], in->flags.len[i]);
        }
        buf_puts(b, "]");
    }
    if (in->inner) {
        buf_puts(b, " (");
        dump_instr(b, in->inner);
        buf_puts(b, ")");
        return;
    }
    bool kv = !strcmp(in->cmd, "env") || !strcmp(in->cmd, "label");
    for (size_t i = 0; i < in->args.n; i++) {
        buf_puts(b, " ");
        go_quote(b, in->args.v[i], in->args.len[i]);
        if (kv && i % 2 == 1)
            buf_puts(b, in->legacy_kv ? " \"\"" : " \"=\"");
    }
}

char *builder_dump_instr(const builder_instr *in)
{
    hypr_buf b = {0};
    dump_instr(&b, in);
    return buf_steal(&b);
}

char *builder_dump(const builder_dockerfile *df)
{
    hypr_buf b = {0};
    buf_puts(&b, "");
    for (size_t i = 0; i < df->n_instrs; i++) {
        buf_puts(&b, "(");
        dump_instr(&b, &df->instrs[i]);
        buf_puts(&b, ")\n");
    }
    return buf_steal(&b);
}

/* ---- JSON -------------------------------------------------------------------------- */

void builder_utf8_sanitize(const char *s, size_t n, hypr_buf *out)
{
    buf_puts(out, "");
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t l = builder_utf8_decode((const unsigned char *)s + i, n - i, &c);
        if (l == 0) {
            buf_puts(out, "\xEF\xBF\xBD");
            i++;
        } else {
            buf_append(out, s + i, l);
            i += l;
        }
    }
}

/* A JSON string of s[0..n) that can always be printed. */
static json_t *jstr(const char *s, size_t n)
{
    _cleanup_buf_ hypr_buf b = {0};
    builder_utf8_sanitize(s, n, &b);
    return json_stringn_nocheck(b.data, b.len);
}

static json_t *strv_json(const builder_strv *v)
{
    json_t *a = json_array();
    for (size_t i = 0; i < v->n; i++)
        json_array_append_new(a, jstr(v->v[i], v->len[i]));
    return a;
}

static json_t *str_or_null(const char *s)
{
    return s ? jstr(s, strlen(s)) : json_null();
}

static json_t *instr_json(const builder_instr *in)
{
    char *cmd = xstrdup(in->cmd);
    for (char *c = cmd; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    json_t *heredocs = json_array();
    for (size_t i = 0; i < in->n_heredocs; i++) {
        const builder_heredoc *h = &in->heredocs[i];
        json_array_append_new(heredocs, json_pack("{s:o,s:o,s:b,s:b}", "name", str_or_null(h->name),
                                                  "content", str_or_null(h->content), "expand",
                                                  h->expand, "chomp", h->chomp));
    }
    json_t *o = json_pack("{s:o,s:i,s:i,s:o,s:o,s:b,s:o}", "cmd", str_or_null(cmd), "line",
                          in->line, "end_line", in->end_line, "flags", strv_json(&in->flags),
                          "args", strv_json(&in->args), "json", in->json, "heredocs", heredocs);
    free(cmd);
    return o;
}

json_t *builder_check_json(const builder_dockerfile *df, const builder_stages *st)
{
    json_t *dirs = json_object();
    if (df->syntax)
        json_object_set_new(dirs, "syntax", str_or_null(df->syntax));
    if (df->escape)
        json_object_set_new(dirs, "escape", str_or_null(df->escape));
    if (df->check)
        json_object_set_new(dirs, "check", str_or_null(df->check));
    json_t *before = json_array();
    for (size_t i = 0; i < st->n_before; i++)
        json_array_append_new(before, instr_json(&df->instrs[i]));
    json_t *stages = json_array();
    for (size_t s = 0; s < st->n; s++) {
        const builder_stage *sg = &st->stages[s];
        json_t *instrs = json_array();
        for (size_t i = 0; i < sg->count; i++)
            json_array_append_new(instrs, instr_json(&df->instrs[sg->first + i]));
        json_array_append_new(
            stages, json_pack("{s:o,s:o,s:o,s:i,s:o}", "name", str_or_null(sg->name), "base",
                              str_or_null(sg->base), "platform", str_or_null(sg->platform), "line",
                              sg->line, "instructions", instrs));
    }
    return json_pack("{s:o,s:o,s:o}", "directives", dirs, "instructions_before_first_from", before,
                     "stages", stages);
}
