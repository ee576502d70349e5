/* A subset of Go's text/template for --format: lexer and parser.
 *
 * The grammar follows text/template: text and {{actions}} with trim markers
 * ("{{- " and " -}}"), comments, pipelines of commands joined by "|", field
 * chains on dot or on variables, literals, parenthesised pipelines, variable
 * declarations, and the if / else if / with / range / break / continue / end
 * blocks. Errors read like Go's: "template: :LINE: MESSAGE". */
#include "cli/template_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum tok_kind {
    T_EOF,
    T_TEXT,
    T_LEFT,
    T_RIGHT,
    T_FIELD, /* ".A.B" */
    T_DOT,
    T_VAR, /* "$x.A" */
    T_IDENT,
    T_STRING, /* value decoded */
    T_NUMBER,
    T_CHAR,
    T_PIPE,
    T_LPAREN,
    T_RPAREN,
    T_DECLARE,
    T_ASSIGN,
    T_COMMA,
} tok_kind;

typedef struct tok {
    tok_kind kind;
    size_t pos, len; /* the token's source span */
    bool spaced;     /* whitespace before it (inside an action) */
    char *value;     /* T_TEXT, T_STRING: decoded text; others: the source text */
    size_t vlen;
} tok;

typedef struct parser {
    const char *src;
    size_t len;
    tok *toks;
    size_t ntoks, cap, cur;
    char **vars; /* declared variable names, innermost last */
    size_t nvars;
    int range_depth;
    hypr_error *err;
} parser;

static size_t line_of(const char *src, size_t pos)
{
    size_t line = 1;
    for (size_t i = 0; i < pos && src[i]; i++)
        line += src[i] == '\n';
    return line;
}

static int perr(parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, size_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    return hypr_err(p->err, HYPR_INVALID_ARGUMENT, EINVAL, "template: :%zu: %s",
                    line_of(p->src, pos), msg);
}

static void push_tok(parser *p, tok_kind kind, size_t pos, size_t len, bool spaced, char *value,
                     size_t vlen)
{
    if (p->ntoks == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 32;
        p->toks = xrealloc(p->toks, p->cap * sizeof(*p->toks));
    }
    if (!value) {
        value = xstrndup(p->src + pos, len);
        vlen = len;
    }
    p->toks[p->ntoks++] = (tok){kind, pos, len, spaced, value, vlen};
}

/* ---- lexer ---------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alnum(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* " -}}" at i (whitespace, then the trim marker). */
static bool right_trim_at(const char *s, size_t i, size_t len)
{
    return i + 4 <= len && is_space(s[i]) && s[i + 1] == '-' && s[i + 2] == '}' && s[i + 3] == '}';
}

static size_t skip_chain(const char *s, size_t i, size_t len)
{
    while (i < len && s[i] == '.' && i + 1 < len && is_alnum(s[i + 1]) &&
           !isdigit((unsigned char)s[i + 1])) {
        i++;
        while (i < len && is_alnum(s[i]))
            i++;
    }
    return i;
}

static void put_utf8(hypr_buf *b, uint32_t c)
{
    char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (c >> 18));
        u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    buf_append(b, u, n);
}

/* A quoted string starting at s[i] == '"'; Go's escapes. */
static int lex_quoted(parser *p, size_t *i, bool spaced)
{
    const char *s = p->src;
    size_t start = *i, j = *i + 1;
    _cleanup_buf_ hypr_buf b = {0};
    buf_puts(&b, "");
    for (;;) {
        if (j >= p->len || s[j] == '\n')
            return perr(p, start, "unterminated quoted string");
        char c = s[j++];
        if (c == '"')
            break;
        if (c != '\\') {
            buf_append(&b, &c, 1);
            continue;
        }
        if (j >= p->len)
            return perr(p, start, "unterminated quoted string");
        char e = s[j++];
        static const char from[] = "abfnrtv\\\"'", to[] = "\a\b\f\n\r\t\v\\\"'";
        const char *k = strchr(from, e);
        if (k && e) {
            buf_append(&b, &to[k - from], 1);
            continue;
        }
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (!digits || j + (size_t)digits > p->len)
            return perr(p, start, "invalid syntax");
        uint32_t v = 0;
        for (int d = 0; d < digits; d++, j++) {
            if (!isxdigit((unsigned char)s[j]))
                return perr(p, start, "invalid syntax");
            v = v * 16 +
                (uint32_t)(isdigit((unsigned char)s[j]) ? s[j] - '0' : (tolower(s[j]) - 'a' + 10));
        }
        if (digits == 2) {
            char c8 = (char)v;
            buf_append(&b, &c8, 1);
        } else {
            if (v > 0x10FFFF || (v >= 0xD800 && v < 0xE000))
                return perr(p, start, "invalid syntax");
            put_utf8(&b, v);
        }
    }
    size_t vlen = b.len;
    push_tok(p, T_STRING, start, j - start, spaced, buf_steal(&b), vlen);
    *i = j;
    return 0;
}

/* Inside an action from i; returns the offset after "}}" (and a right trim's spaces). */
static int lex_action(parser *p, size_t i, size_t *end, bool *trim)
{
    const char *s = p->src;
    size_t len = p->len;
    for (;;) {
        bool spaced = false;
        while (i < len && is_space(s[i])) {
            if (right_trim_at(s, i, len)) {
                push_tok(p, T_RIGHT, i + 1, 3, true, NULL, 0);
                *end = i + 4;
                *trim = true;
                return 0;
            }
            i++;
            spaced = true;
        }
        if (i >= len)
            return perr(p, i, "unclosed action");
        char c = s[i];
        size_t st = i;
        if (c == '}' && i + 1 < len && s[i + 1] == '}') {
            push_tok(p, T_RIGHT, i, 2, spaced, NULL, 0);
            *end = i + 2;
            *trim = false;
            return 0;
        }
        if (c == '"') {
            int r = lex_quoted(p, &i, spaced);
            if (r < 0)
                return r;
            continue;
        }
        if (c == '`') {
            const char *q = memchr(s + i + 1, '`', len - i - 1);
            if (!q)
                return perr(p, i, "unterminated raw quoted string");
            size_t n = (size_t)(q - (s + i + 1));
            push_tok(p, T_STRING, i, n + 2, spaced, xstrndup(s + i + 1, n), n);
            i += n + 2;
            continue;
        }
        if (c == '\'') {
            size_t j = i + 1;
            while (j < len && s[j] != '\'' && s[j] != '\n')
                j += s[j] == '\\' && j + 1 < len ? 2 : 1;
            if (j >= len || s[j] != '\'')
                return perr(p, i, "unterminated character constant");
            push_tok(p, T_CHAR, i, j + 1 - i, spaced, NULL, 0);
            i = j + 1;
            continue;
        }
        tok_kind k;
        if (c == '|' || c == '(' || c == ')' || c == ',' || c == '=') {
            k = c == '|'   ? T_PIPE
                : c == '(' ? T_LPAREN
                : c == ')' ? T_RPAREN
                : c == ',' ? T_COMMA
                           : T_ASSIGN;
            i++;
        } else if (c == ':' && i + 1 < len && s[i + 1] == '=') {
            k = T_DECLARE;
            i += 2;
        } else if (c == '$') {
            i++;
            while (i < len && is_alnum(s[i]))
                i++;
            i = skip_chain(s, i, len);
            k = T_VAR;
        } else if (c == '.' && (i + 1 >= len || !isdigit((unsigned char)s[i + 1]))) {
            i = skip_chain(s, i, len);
            k = i == st ? T_DOT : T_FIELD;
            if (i == st)
                i++;
        } else if (isdigit((unsigned char)c) || c == '.' ||
                   ((c == '-' || c == '+') && i + 1 < len &&
                    (isdigit((unsigned char)s[i + 1]) || s[i + 1] == '.'))) {
            i++;
            while (i < len && (is_alnum(s[i]) || s[i] == '.' ||
                               ((s[i] == '-' || s[i] == '+') && tolower(s[i - 1]) == 'e' &&
                                tolower(s[st + 1]) != 'x')))
                i++;
            k = T_NUMBER;
        } else if (is_alnum(c)) {
            while (i < len && is_alnum(s[i]))
                i++;
            k = T_IDENT;
        } else {
            return perr(p, i, "unexpected \"%c\" in command", c);
        }
        push_tok(p, k, st, i - st, spaced, NULL, 0);
    }
}

static int lex(parser *p)
{
    const char *s = p->src;
    size_t len = p->len, i = 0;
    bool trim_next = false;
    while (i < len) {
        if (trim_next)
            while (i < len && is_space(s[i]))
                i++;
        trim_next = false;
        const char *l = strstr(s + i, "{{");
        size_t text_end = l ? (size_t)(l - s) : len;
        size_t inner = text_end + 2;
        size_t te = text_end;
        if (l && inner + 1 < len && s[inner] == '-' && is_space(s[inner + 1])) {
            while (te > i && is_space(s[te - 1]))
                te--;
            inner += 2;
        }
        if (te > i)
            push_tok(p, T_TEXT, i, te - i, false, NULL, 0);
        if (!l)
            break;
        size_t j = inner;
        while (j < len && is_space(s[j]) && j > text_end + 2)
            j++;
        if ((j + 1 < len && s[j] == '/' && s[j + 1] == '*') ||
            (inner + 1 < len && s[inner] == '/' && s[inner + 1] == '*')) {
            size_t cs = s[inner] == '/' ? inner : j;
            const char *ce = strstr(s + cs + 2, "*/");
            if (!ce)
                return perr(p, text_end, "unclosed comment");
            size_t k = (size_t)(ce - s) + 2;
            if (right_trim_at(s, k, len)) {
                i = k + 4;
                trim_next = true;
            } else if (k + 1 < len && s[k] == '}' && s[k + 1] == '}') {
                i = k + 2;
            } else {
                return perr(p, text_end, "comment ends before closing delimiter");
            }
            continue;
        }
        push_tok(p, T_LEFT, text_end, inner - text_end, false, NULL, 0);
        int r = lex_action(p, inner, &i, &trim_next);
        if (r < 0)
            return r;
    }
    push_tok(p, T_EOF, len, 0, false, NULL, 0);
    return 0;
}

/* ---- parser --------------------------------------------------------------- */

static tok *peek(parser *p)
{
    return &p->toks[p->cur];
}

static tok *next(parser *p)
{
    tok *t = &p->toks[p->cur];
    if (t->kind != T_EOF)
        p->cur++;
    return t;
}

static bool is_keyword(const tok *t, const char *kw)
{
    return t->kind == T_IDENT && !strcmp(t->value, kw);
}

static const char *tok_desc(const tok *t)
{
    switch (t->kind) {
    case T_EOF:
        return "EOF";
    case T_RIGHT:
        return "}}";
    default:
        return t->value;
    }
}

static void split_chain(tpl_arg *a, const char *chain)
{
    const char *q = chain;
    while (*q == '.') {
        q++;
        const char *e = q;
        while (*e && *e != '.')
            e++;
        a->fields = xrealloc(a->fields, (a->nfields + 1) * sizeof(char *));
        a->fields[a->nfields++] = xstrndup(q, (size_t)(e - q));
        q = e;
    }
}

static bool var_defined(parser *p, const char *name)
{
    if (!strcmp(name, "$"))
        return true;
    for (size_t i = p->nvars; i-- > 0;)
        if (!strcmp(p->vars[i], name))
            return true;
    return false;
}

static void var_push(parser *p, const char *name)
{
    p->vars = xrealloc(p->vars, (p->nvars + 1) * sizeof(char *));
    p->vars[p->nvars++] = xstrdup(name);
}

static void vars_pop_to(parser *p, size_t mark)
{
    while (p->nvars > mark)
        free(p->vars[--p->nvars]);
}

static int parse_pipeline(parser *p, tpl_pipe **out, const char *context, tok_kind end, int depth);

static int parse_number(parser *p, const tok *t, tpl_arg *a)
{
    const char *s = t->value;
    if (t->kind == T_CHAR) {
        /* 'a' or an escape: its code point */
        unsigned char c = (unsigned char)s[1];
        json_int_t v = c;
        if (c == '\\') {
            static const char from[] = "abfnrtv\\'\"", to[] = "\a\b\f\n\r\t\v\\'\"";
            const char *k = strchr(from, s[2]);
            if (!k || !s[2] || t->len != 4)
                return perr(p, t->pos, "malformed character constant: %s", s);
            v = (unsigned char)to[k - from];
        } else if (t->len != 3) {
            return perr(p, t->pos, "malformed character constant: %s", s);
        }
        a->number = json_integer(v);
        return 0;
    }
    bool hex = strchr(s, 'x') || strchr(s, 'X');
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (!*end && !errno) {
        a->number = json_integer(v);
        return 0;
    }
    errno = 0;
    double d = strtod(s, &end);
    if (!hex && !*end && !errno && end != s) {
        a->number = json_real(d);
        return 0;
    }
    return perr(p, t->pos, "illegal number syntax: \"%s\"", s);
}

static int parse_operand(parser *p, tpl_arg *a, int depth)
{
    tok *t = next(p);
    a->pos = t->pos;
    a->text = xstrdup(t->value);
    switch (t->kind) {
    case T_FIELD:
        a->kind = TPL_ARG_FIELD;
        split_chain(a, t->value);
        return 0;
    case T_DOT:
        a->kind = TPL_ARG_DOT;
        return 0;
    case T_VAR: {
        a->kind = TPL_ARG_VAR;
        char *dot = strchr(a->text + 1, '.');
        if (dot) {
            split_chain(a, dot);
            *dot = '\0';
        }
        if (!var_defined(p, a->text))
            return perr(p, t->pos, "undefined variable \"%s\"", a->text);
        return 0;
    }
    case T_STRING:
        a->kind = TPL_ARG_STRING;
        free(a->text);
        a->text = xstrndup(t->value, t->vlen);
        return 0;
    case T_NUMBER:
    case T_CHAR:
        a->kind = TPL_ARG_NUMBER;
        return parse_number(p, t, a);
    case T_IDENT:
        if (!strcmp(t->value, "true") || !strcmp(t->value, "false")) {
            a->kind = TPL_ARG_BOOL;
            a->boolean = t->value[0] == 't';
            return 0;
        }
        if (!strcmp(t->value, "nil")) {
            a->kind = TPL_ARG_NIL;
            return 0;
        }
        a->kind = TPL_ARG_FUNC;
        a->fn = tpl_func_lookup(t->value);
        if (!a->fn)
            return perr(p, t->pos, "function \"%s\" not defined", t->value);
        return 0;
    case T_LPAREN: {
        if (depth >= TPL_MAX_DEPTH)
            return perr(p, t->pos, "template nesting too deep");
        a->kind = TPL_ARG_PIPE;
        int r = parse_pipeline(p, &a->pipe, "parenthesized pipeline", T_RPAREN, depth + 1);
        if (r < 0)
            return r;
        if (peek(p)->kind == T_FIELD && !peek(p)->spaced)
            split_chain(a, next(p)->value);
        return 0;
    }
    default:
        return perr(p, t->pos, "unexpected \"%s\" in operand", tok_desc(t));
    }
}

static void cmd_push(tpl_pipe *pp, tpl_cmd c)
{
    pp->cmds = xrealloc(pp->cmds, (pp->ncmds + 1) * sizeof(*pp->cmds));
    pp->cmds[pp->ncmds++] = c;
}

static int parse_command(parser *p, tpl_pipe *pp, tok_kind end, int depth)
{
    tpl_cmd c = {.pos = peek(p)->pos};
    for (;;) {
        tok *t = peek(p);
        if (t->kind == end || t->kind == T_PIPE)
            break;
        if (t->kind == T_RIGHT || t->kind == T_RPAREN || t->kind == T_EOF) {
            c.src = xstrdup("");
            cmd_push(pp, c);
            if (t->kind == T_EOF)
                return perr(p, t->pos, "unclosed action");
            return perr(p, t->pos, "unexpected \"%s\" in command", tok_desc(t));
        }
        if (c.nargs && !t->spaced && t->kind != T_LPAREN && p->toks[p->cur - 1].kind != T_LPAREN) {
            c.src = xstrdup("");
            cmd_push(pp, c);
            return perr(p, t->pos, "unexpected \"%s\" in operand", tok_desc(t));
        }
        c.args = xrealloc(c.args, (c.nargs + 1) * sizeof(*c.args));
        c.args[c.nargs] = (tpl_arg){0};
        int r = parse_operand(p, &c.args[c.nargs++], depth);
        if (r < 0) {
            c.src = xstrdup("");
            cmd_push(pp, c);
            return r;
        }
    }
    size_t endpos = p->toks[p->cur - 1].pos + p->toks[p->cur - 1].len;
    c.src = xstrndup(p->src + c.pos, endpos > c.pos ? endpos - c.pos : 0);
    cmd_push(pp, c);
    if (!c.nargs)
        return perr(p, c.pos, "missing value for command");
    return 0;
}

static int parse_pipeline(parser *p, tpl_pipe **out, const char *context, tok_kind end, int depth)
{
    tpl_pipe *pp = xcalloc(1, sizeof(*pp));
    *out = pp;
    pp->pos = peek(p)->pos;
    /* $x := / $x = / $k, $v := */
    tok *t0 = peek(p), *t1 = &p->toks[p->cur + (t0->kind != T_EOF)];
    if (t0->kind == T_VAR && !strchr(t0->value + 1, '.')) {
        if (t1->kind == T_DECLARE || t1->kind == T_ASSIGN) {
            pp->vars[pp->nvars++] = xstrdup(t0->value);
            pp->declare = t1->kind == T_DECLARE;
            p->cur += 2;
        } else if (t1->kind == T_COMMA && p->toks[p->cur + 2].kind == T_VAR &&
                   p->toks[p->cur + 3].kind == T_DECLARE) {
            if (strcmp(context, "range"))
                return perr(p, t1->pos, "too many declarations in %s", context);
            pp->vars[pp->nvars++] = xstrdup(t0->value);
            pp->vars[pp->nvars++] = xstrdup(p->toks[p->cur + 2].value);
            pp->declare = true;
            p->cur += 4;
        }
        if (pp->nvars && !pp->declare && !var_defined(p, pp->vars[0]))
            return perr(p, t0->pos, "undefined variable \"%s\"", pp->vars[0]);
    }
    for (;;) {
        if (peek(p)->kind == end) {
            if (!pp->ncmds)
                return perr(p, peek(p)->pos, "missing value for %s", context);
            next(p);
            break;
        }
        int r = parse_command(p, pp, end, depth);
        if (r < 0)
            return r;
        if (peek(p)->kind == T_PIPE) {
            next(p);
            if (peek(p)->kind == end)
                return perr(p, peek(p)->pos, "missing command after |");
        }
    }
    if (pp->declare)
        for (size_t i = 0; i < pp->nvars; i++)
            var_push(p, pp->vars[i]);
    return 0;
}

typedef enum list_end { END_EOF, END_END, END_ELSE } list_end;

static void list_push(tpl_list *l, tpl_node *n)
{
    l->nodes = xrealloc(l->nodes, (l->n + 1) * sizeof(*l->nodes));
    l->nodes[l->n++] = n;
}

static int parse_list(parser *p, tpl_list *out, int depth, list_end *why, size_t *why_pos);

static int expect_right(parser *p, const char *what)
{
    tok *t = next(p);
    if (t->kind != T_RIGHT)
        return perr(p, t->pos, "unexpected \"%s\" in %s", tok_desc(t), what);
    return 0;
}

static int parse_control(parser *p, tpl_node *n, const char *kw, int depth)
{
    if (depth >= TPL_MAX_DEPTH)
        return perr(p, n->pos, "template nesting too deep");
    size_t mark = p->nvars;
    int r = parse_pipeline(p, &n->pipe, kw, T_RIGHT, depth);
    if (r < 0)
        return r;
    if (n->kind == TPL_RANGE)
        p->range_depth++;
    list_end why;
    size_t why_pos;
    r = parse_list(p, &n->list, depth + 1, &why, &why_pos);
    if (n->kind == TPL_RANGE)
        p->range_depth--;
    if (r < 0)
        return r;
    if (why == END_EOF)
        return perr(p, why_pos, "unexpected EOF");
    if (why == END_ELSE) {
        vars_pop_to(p, mark + (n->pipe->declare && n->kind != TPL_RANGE ? n->pipe->nvars : 0));
        tok *t = peek(p);
        if ((n->kind == TPL_IF && is_keyword(t, "if")) ||
            (n->kind == TPL_WITH && is_keyword(t, "with"))) {
            next(p);
            tpl_node *e = xcalloc(1, sizeof(*e));
            e->kind = n->kind;
            e->pos = t->pos;
            list_push(&n->else_list, e);
            r = parse_control(p, e, kw, depth + 1);
            vars_pop_to(p, mark);
            return r;
        }
        r = expect_right(p, "else");
        if (r < 0)
            return r;
        r = parse_list(p, &n->else_list, depth + 1, &why, &why_pos);
        if (r < 0)
            return r;
        if (why == END_EOF)
            return perr(p, why_pos, "unexpected EOF");
        if (why == END_ELSE)
            return perr(p, why_pos, "expected end; found {{else}}");
    }
    vars_pop_to(p, mark);
    return 0;
}

static int parse_list(parser *p, tpl_list *out, int depth, list_end *why, size_t *why_pos)
{
    for (;;) {
        tok *t = next(p);
        if (t->kind == T_EOF) {
            *why = END_EOF;
            *why_pos = t->pos;
            return 0;
        }
        tpl_node *n = xcalloc(1, sizeof(*n));
        list_push(out, n);
        n->pos = t->pos;
        if (t->kind == T_TEXT) {
            n->kind = TPL_TEXT;
            n->text = xstrndup(t->value, t->vlen);
            n->len = t->vlen;
            continue;
        }
        /* T_LEFT: a keyword or a pipeline */
        tok *k = peek(p);
        n->pos = k->pos;
        if (is_keyword(k, "end") || is_keyword(k, "else")) {
            out->n--;
            free(n);
            next(p);
            *why_pos = k->pos;
            *why = k->value[1] == 'n' ? END_END : END_ELSE;
            if (*why == END_END) {
                int r = expect_right(p, "end");
                if (r < 0)
                    return r;
            }
            if (depth == 0)
                return perr(p, k->pos, "unexpected {{%s}}", k->value);
            return 0;
        }
        if (is_keyword(k, "if") || is_keyword(k, "with") || is_keyword(k, "range")) {
            next(p);
            n->kind = k->value[0] == 'i' ? TPL_IF : k->value[0] == 'w' ? TPL_WITH : TPL_RANGE;
            int r = parse_control(p, n, k->value, depth);
            if (r < 0)
                return r;
            continue;
        }
        if (is_keyword(k, "break") || is_keyword(k, "continue")) {
            next(p);
            if (!p->range_depth)
                return perr(p, k->pos, "{{%s}} outside {{range}}", k->value);
            n->kind = k->value[0] == 'b' ? TPL_BREAK : TPL_CONTINUE;
            int r = expect_right(p, k->value);
            if (r < 0)
                return r;
            continue;
        }
        if (is_keyword(k, "define") || is_keyword(k, "template") || is_keyword(k, "block"))
            return perr(p, k->pos, "{{%s}} is not supported", k->value);
        n->kind = TPL_ACTION;
        int r = parse_pipeline(p, &n->pipe, "command", T_RIGHT, depth);
        if (r < 0)
            return r;
    }
}

/* ---- lifetime ------------------------------------------------------------- */

static void pipe_free(tpl_pipe *pp);

static void arg_free(tpl_arg *a)
{
    free(a->text);
    for (size_t i = 0; i < a->nfields; i++)
        free(a->fields[i]);
    free(a->fields);
    json_decref(a->number);
    pipe_free(a->pipe);
}

static void pipe_free(tpl_pipe *pp)
{
    if (!pp)
        return;
    for (size_t i = 0; i < pp->nvars; i++)
        free(pp->vars[i]);
    for (size_t i = 0; i < pp->ncmds; i++) {
        for (size_t j = 0; j < pp->cmds[i].nargs; j++)
            arg_free(&pp->cmds[i].args[j]);
        free(pp->cmds[i].args);
        free(pp->cmds[i].src);
    }
    free(pp->cmds);
    free(pp);
}

static void list_free(tpl_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        tpl_node *n = l->nodes[i];
        free(n->text);
        pipe_free(n->pipe);
        list_free(&n->list);
        list_free(&n->else_list);
        free(n);
    }
    free(l->nodes);
}

void cli_template_free(cli_template *t)
{
    if (!t)
        return;
    list_free(&t->root);
    free(t->src);
    free(t);
}

const char *cli_template_source(const cli_template *t)
{
    return t->src;
}

bool cli_template_is_table(const cli_template *t)
{
    return t->table;
}

bool cli_format_is_template(const char *format)
{
    return format && strstr(format, "{{") != NULL;
}

char *cli_template_prepare(const char *format, bool *table)
{
    *table = str_startswith(format, "table");
    const char *s = *table ? format + 5 : format;
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        n--;
    /* Docker turns a typed two-character \t or \n into the character. */
    hypr_buf b = {0};
    buf_puts(&b, "");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && (s[i + 1] == 't' || s[i + 1] == 'n')) {
            buf_puts(&b, s[i + 1] == 't' ? "\t" : "\n");
            i++;
        } else {
            buf_append(&b, &s[i], 1);
        }
    }
    return buf_steal(&b);
}

int cli_template_parse(const char *src, cli_template **out, hypr_error *err)
{
    parser p = {.src = src, .len = strlen(src), .err = err};
    cli_template *t = xcalloc(1, sizeof(*t));
    t->src = xstrdup(src);
    int r = lex(&p);
    if (r >= 0) {
        list_end why;
        size_t pos;
        r = parse_list(&p, &t->root, 0, &why, &pos);
    }
    for (size_t i = 0; i < p.ntoks; i++)
        free(p.toks[i].value);
    free(p.toks);
    vars_pop_to(&p, 0);
    free(p.vars);
    if (r < 0) {
        cli_template_free(t);
        return r;
    }
    *out = t;
    return 0;
}

int cli_template_parse_format(const char *format, cli_template **out, hypr_error *err)
{
    bool table;
    _cleanup_free_ char *src = cli_template_prepare(format, &table);
    cli_template *t = NULL;
    int r = cli_template_parse(src, &t, err);
    if (r < 0) {
        _cleanup_free_ char *m = err->message;
        err->message = xasprintf("template parsing error: %s", m ? m : "invalid template");
        return r;
    }
    t->table = table;
    *out = t;
    return 0;
}
