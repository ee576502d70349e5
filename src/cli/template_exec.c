/* The template evaluator: walks the parsed template against a JSON value
 * (the object a command prints for --format json) and writes the text.
 *
 * Values are jansson references; NULL is Go's "no value" (a missing map key).
 * Work is bounded: steps, bytes produced and output size, since templates are
 * typed by users but also fuzzed. */
#include "cli/template_internal.h"
#include "common/json_cleanup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TPL_MAX_STEPS  200000
#define TPL_MAX_OUTPUT (4u << 20)
#define TPL_MAX_BYTES  (16u << 20) /* strings built by functions, in total */

typedef struct tpl_var {
    const char *name;
    json_t *v;
} tpl_var;

typedef struct exec {
    json_t *root;
    const char *src;
    hypr_buf *out;
    hypr_error *err;
    tpl_var *vars;
    size_t nvars;
    cli_template_header_fn header; /* non-NULL: rendering the table header */
    void *header_ud;
    size_t steps, bytes;
    int loop_ctl; /* 1 break, 2 continue */
} exec;

enum {
    F_AND,
    F_OR,
    F_NOT,
    F_LEN,
    F_INDEX,
    F_PRINT,
    F_PRINTF,
    F_PRINTLN,
    F_EQ,
    F_NE,
    F_LT,
    F_LE,
    F_GT,
    F_GE,
    F_JSON,
    F_SPLIT,
    F_JOIN,
    F_TITLE,
    F_LOWER,
    F_UPPER,
    F_PAD,
    F_TRUNCATE,
};

static const tpl_func funcs[] = {
    [F_AND] = {"and", 1, -1},       [F_OR] = {"or", 1, -1},
    [F_NOT] = {"not", 1, 1},        [F_LEN] = {"len", 1, 1},
    [F_INDEX] = {"index", 1, -1},   [F_PRINT] = {"print", 0, -1},
    [F_PRINTF] = {"printf", 1, -1}, [F_PRINTLN] = {"println", 0, -1},
    [F_EQ] = {"eq", 1, -1},         [F_NE] = {"ne", 2, 2},
    [F_LT] = {"lt", 2, 2},          [F_LE] = {"le", 2, 2},
    [F_GT] = {"gt", 2, 2},          [F_GE] = {"ge", 2, 2},
    [F_JSON] = {"json", 1, 1},      [F_SPLIT] = {"split", 2, 2},
    [F_JOIN] = {"join", 2, 2},      [F_TITLE] = {"title", 1, 1},
    [F_LOWER] = {"lower", 1, 1},    [F_UPPER] = {"upper", 1, 1},
    [F_PAD] = {"pad", 3, 3},        [F_TRUNCATE] = {"truncate", 2, 2},
};

const tpl_func *tpl_func_lookup(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(funcs); i++)
        if (!strcmp(funcs[i].name, name))
            return &funcs[i];
    return NULL;
}

static int xerr(exec *x, size_t pos, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int xerr(exec *x, size_t pos, const char *at, const char *fmt, ...)
{
    if (x->err->message) /* the innermost error wins */
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    size_t line = 1, col = 0;
    for (size_t i = 0; i < pos && x->src[i]; i++) {
        col++;
        if (x->src[i] == '\n') {
            line++;
            col = 0;
        }
    }
    size_t alen = strlen(at);
    if (!alen) /* a limit, not a node's fault */
        return hypr_err(x->err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "template: :%zu:%zu: executing \"\": %s", line, col, msg);
    return hypr_err(x->err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "template: :%zu:%zu: executing \"\" at <%.*s%s>: %s", line, col,
                    (int)(alen > 20 ? 20 : alen), at, alen > 20 ? "..." : "", msg);
}

static int step(exec *x, size_t pos)
{
    if (++x->steps > TPL_MAX_STEPS)
        return xerr(x, pos, "", "template execution takes too many steps");
    if (x->out->len > TPL_MAX_OUTPUT)
        return xerr(x, pos, "", "template output is too large");
    return 0;
}

static int spend(exec *x, size_t pos, size_t n)
{
    x->bytes += n;
    if (x->bytes > TPL_MAX_BYTES || n > TPL_MAX_BYTES)
        return xerr(x, pos, "", "template output is too large");
    return 0;
}

/* Go's type names in messages. */
static const char *type_name(const json_t *v)
{
    if (!v || json_is_null(v))
        return "<nil>";
    switch (json_typeof(v)) {
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "int";
    case JSON_REAL:
        return "float64";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_ARRAY:
        return "[]interface {}";
    default:
        return "map[string]interface {}";
    }
}

static bool truth(const json_t *v)
{
    if (!v)
        return false;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0;
    case JSON_TRUE:
        return true;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    default:
        return false;
    }
}

static void var_push(exec *x, const char *name, json_t *v)
{
    x->vars = xrealloc(x->vars, (x->nvars + 1) * sizeof(*x->vars));
    x->vars[x->nvars++] = (tpl_var){name, v};
}

static void vars_pop_to(exec *x, size_t mark)
{
    while (x->nvars > mark)
        json_decref(x->vars[--x->nvars].v);
}

static tpl_var *var_find(exec *x, const char *name)
{
    for (size_t i = x->nvars; i-- > 0;)
        if (!strcmp(x->vars[i].name, name))
            return &x->vars[i];
    return NULL;
}

static json_t *ref(json_t *v)
{
    return v ? json_incref(v) : NULL;
}

/* The string form a string-taking function uses ("%v" for non-strings). */
static char *str_of(const json_t *v, size_t *len)
{
    if (json_is_string(v)) {
        *len = json_string_length(v);
        return xstrndup(json_string_value(v), *len);
    }
    hypr_buf b = {0};
    tpl_print_value(&b, v, true);
    *len = b.len;
    buf_puts(&b, "");
    return buf_steal(&b);
}

static int eval_pipe(exec *x, const tpl_pipe *pp, json_t *dot, bool bind, json_t **out);

static int apply_fields(exec *x, const tpl_arg *a, json_t *base, json_t **out)
{
    json_t *v = ref(base);
    if (a->nfields && x->header) {
        json_decref(v);
        _cleanup_free_ char *h = x->header(a->fields[0], x->header_ud);
        *out = json_string(h ? h : "");
        return 0;
    }
    for (size_t i = 0; i < a->nfields; i++) {
        const char *f = a->fields[i];
        if (json_is_object(v)) {
            json_t *next = json_object_get(v, f);
            if (!next && v == x->root) {
                json_decref(v);
                return xerr(x, a->pos, a->text, "can't evaluate field %s", f);
            }
            json_decref(v);
            v = ref(next);
            continue;
        }
        const char *tn = type_name(v);
        json_decref(v);
        if (!strcmp(tn, "<nil>"))
            return xerr(x, a->pos, a->text, "nil pointer evaluating interface {}.%s", f);
        return xerr(x, a->pos, a->text, "can't evaluate field %s in type %s", f, tn);
    }
    *out = v;
    return 0;
}

static int call_func(exec *x, const tpl_cmd *c, const tpl_arg *args, size_t nargs, json_t *dot,
                     bool has_final, json_t *final, json_t **out);

static int eval_arg(exec *x, const tpl_arg *a, json_t *dot, json_t **out)
{
    int r = step(x, a->pos);
    if (r < 0)
        return r;
    json_t *base = NULL;
    switch (a->kind) {
    case TPL_ARG_FIELD:
        return apply_fields(x, a, dot, out);
    case TPL_ARG_VAR: {
        tpl_var *var = var_find(x, a->text);
        if (!var)
            return xerr(x, a->pos, a->text, "undefined variable: %s", a->text);
        return apply_fields(x, a, var->v, out);
    }
    case TPL_ARG_DOT:
        *out = ref(dot);
        return 0;
    case TPL_ARG_STRING:
        *out = json_string_nocheck(a->text);
        return 0;
    case TPL_ARG_NUMBER:
        *out = json_incref(a->number);
        return 0;
    case TPL_ARG_BOOL:
        *out = json_boolean(a->boolean);
        return 0;
    case TPL_ARG_NIL:
        *out = json_null();
        return 0;
    case TPL_ARG_FUNC: {
        tpl_cmd c = {.pos = a->pos, .src = a->text};
        return call_func(x, &c, NULL, 0, dot, false, NULL, out);
    }
    case TPL_ARG_PIPE:
        r = eval_pipe(x, a->pipe, dot, false, &base);
        if (r < 0)
            return r;
        r = apply_fields(x, a, base, out);
        json_decref(base);
        return r;
    }
    return -EINVAL;
}

static void free_vals(json_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i]);
    free(v);
}

static int compare(exec *x, const tpl_cmd *c, const char *fn, json_t *a, json_t *b, int *cmp)
{
    if (!a || !b)
        return xerr(x, c->pos, c->src, "error calling %s: invalid type for comparison", fn);
    if (json_is_number(a) && json_is_number(b)) {
        double da = json_number_value(a), db = json_number_value(b);
        if (json_is_integer(a) && json_is_integer(b)) {
            json_int_t ia = json_integer_value(a), ib = json_integer_value(b);
            *cmp = (ia > ib) - (ia < ib);
        } else {
            *cmp = (da > db) - (da < db);
        }
        return 0;
    }
    if (json_is_string(a) && json_is_string(b)) {
        *cmp = strcmp(json_string_value(a), json_string_value(b));
        return 0;
    }
    if (json_is_boolean(a) && json_is_boolean(b) && (!strcmp(fn, "eq") || !strcmp(fn, "ne"))) {
        *cmp = json_is_true(a) != json_is_true(b);
        return 0;
    }
    if (json_is_null(a) && json_is_null(b) && (!strcmp(fn, "eq") || !strcmp(fn, "ne"))) {
        *cmp = 0;
        return 0;
    }
    return xerr(x, c->pos, c->src, "error calling %s: incompatible types for comparison", fn);
}

static int int_arg(exec *x, const tpl_cmd *c, const char *fn, json_t *v, json_int_t *out)
{
    if (!json_is_integer(v))
        return xerr(x, c->pos, c->src, "wrong type for value; expected int; got %s", type_name(v));
    (void)fn;
    *out = json_integer_value(v);
    return 0;
}

static json_t *string_result(hypr_buf *b)
{
    size_t n = b->len;
    buf_puts(b, "");
    json_t *s = json_stringn_nocheck(b->data, n);
    buf_free(b);
    return s;
}

/* Docker's json func: compact, no HTML escaping. */
static json_t *json_func(json_t *v)
{
    if (!v)
        return json_string("null");
    _cleanup_free_ char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return json_string_nocheck(s ? s : "null");
}

static int index_func(exec *x, const tpl_cmd *c, json_t **v, size_t n, json_t **out)
{
    json_t *cur = ref(v[0]);
    for (size_t i = 1; i < n; i++) {
        json_t *next = NULL;
        if (json_is_object(cur)) {
            if (!json_is_string(v[i])) {
                json_decref(cur);
                return xerr(x, c->pos, c->src,
                            "error calling index: value has type %s; should be string",
                            type_name(v[i]));
            }
            next = ref(json_object_get(cur, json_string_value(v[i])));
        } else if (json_is_array(cur) || json_is_string(cur)) {
            if (!json_is_integer(v[i])) {
                json_decref(cur);
                return xerr(x, c->pos, c->src,
                            "error calling index: cannot index slice/array with type %s",
                            type_name(v[i]));
            }
            json_int_t k = json_integer_value(v[i]);
            size_t len = json_is_array(cur) ? json_array_size(cur) : json_string_length(cur);
            if (k < 0 || (size_t)k >= len) {
                json_decref(cur);
                return xerr(x, c->pos, c->src, "error calling index: index out of range: %lld",
                            (long long)k);
            }
            next = json_is_array(cur) ? ref(json_array_get(cur, (size_t)k))
                                      : json_integer((unsigned char)json_string_value(cur)[k]);
        } else if (!cur || json_is_null(cur)) {
            return xerr(x, c->pos, c->src, "error calling index: index of untyped nil");
        } else {
            const char *tn = type_name(cur);
            json_decref(cur);
            return xerr(x, c->pos, c->src, "error calling index: can't index item of type %s", tn);
        }
        json_decref(cur);
        cur = next;
    }
    *out = cur;
    return 0;
}

static json_t *case_func(int f, const char *s, size_t n)
{
    hypr_buf b = {0};
    buf_reserve(&b, n + 1);
    bool word_start = true;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (f == F_LOWER && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        else if ((f == F_UPPER || (f == F_TITLE && word_start)) && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        /* strings.Title: a letter, digit, underscore or non-ASCII byte continues a word */
        word_start = !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                       (ch >= '0' && ch <= '9') || ch == '_' || (unsigned char)ch >= 0x80);
        buf_append(&b, &ch, 1);
    }
    return string_result(&b);
}

static int builtin(exec *x, const tpl_cmd *c, int f, json_t **v, size_t n, json_t **out)
{
    size_t len = 0;
    switch (f) {
    case F_NOT:
        *out = json_boolean(!truth(v[0]));
        return 0;
    case F_LEN:
        if (json_is_string(v[0]))
            *out = json_integer((json_int_t)json_string_length(v[0]));
        else if (json_is_array(v[0]))
            *out = json_integer((json_int_t)json_array_size(v[0]));
        else if (json_is_object(v[0]))
            *out = json_integer((json_int_t)json_object_size(v[0]));
        else
            return xerr(x, c->pos, c->src, "error calling len: len of type %s", type_name(v[0]));
        return 0;
    case F_INDEX:
        return index_func(x, c, v, n, out);
    case F_PRINT:
    case F_PRINTLN: {
        hypr_buf b = {0};
        for (size_t i = 0; i < n; i++) {
            bool space = f == F_PRINTLN
                             ? i > 0
                             : i > 0 && !json_is_string(v[i]) && !json_is_string(v[i - 1]);
            if (space)
                buf_append(&b, " ", 1);
            tpl_print_value(&b, v[i], false);
            if (spend(x, c->pos, b.len) < 0) {
                buf_free(&b);
                return -EINVAL;
            }
        }
        if (f == F_PRINTLN)
            buf_append(&b, "\n", 1);
        *out = string_result(&b);
        return 0;
    }
    case F_PRINTF: {
        if (!json_is_string(v[0]))
            return xerr(x, c->pos, c->src, "wrong type for value; expected string; got %s",
                        type_name(v[0]));
        hypr_buf b = {0};
        tpl_sprintf(&b, json_string_value(v[0]), v + 1, n - 1);
        if (spend(x, c->pos, b.len) < 0) {
            buf_free(&b);
            return -EINVAL;
        }
        *out = string_result(&b);
        return 0;
    }
    case F_EQ:
    case F_NE:
    case F_LT:
    case F_LE:
    case F_GT:
    case F_GE: {
        if (f == F_EQ && n < 2)
            return xerr(x, c->pos, c->src, "error calling eq: missing argument for comparison");
        bool res = false;
        for (size_t i = 1; i < n && !res; i++) {
            int cmp = 0;
            if (compare(x, c, funcs[f].name, v[0], v[i], &cmp) < 0)
                return -EINVAL;
            res = f == F_EQ   ? cmp == 0
                  : f == F_NE ? cmp != 0
                  : f == F_LT ? cmp < 0
                  : f == F_LE ? cmp <= 0
                  : f == F_GT ? cmp > 0
                              : cmp >= 0;
        }
        *out = json_boolean(res);
        return 0;
    }
    case F_JSON:
        *out = json_func(v[0]);
        return spend(x, c->pos, json_string_length(*out));
    case F_SPLIT: {
        _cleanup_free_ char *s = str_of(v[0], &len);
        size_t slen;
        _cleanup_free_ char *sep = str_of(v[1], &slen);
        json_t *a = json_array();
        *out = a;
        if (spend(x, c->pos, len * 8) < 0)
            return -EINVAL;
        if (!slen) { /* strings.Split with "": one element per UTF-8 sequence */
            for (size_t i = 0; i < len;) {
                size_t k = 1;
                while (i + k < len && ((unsigned char)s[i + k] & 0xC0) == 0x80 && k < 4)
                    k++;
                json_array_append_new(a, json_stringn_nocheck(s + i, k));
                i += k;
            }
            return 0;
        }
        const char *p = s, *end = s + len;
        for (;;) {
            const char *q = memmem(p, (size_t)(end - p), sep, slen);
            if (!q) {
                json_array_append_new(a, json_stringn_nocheck(p, (size_t)(end - p)));
                return 0;
            }
            json_array_append_new(a, json_stringn_nocheck(p, (size_t)(q - p)));
            p = q + slen;
        }
    }
    case F_JOIN: {
        if (!json_is_array(v[0]))
            return xerr(x, c->pos, c->src, "wrong type for value; expected []string; got %s",
                        type_name(v[0]));
        size_t slen;
        _cleanup_free_ char *sep = str_of(v[1], &slen);
        hypr_buf b = {0};
        buf_puts(&b, "");
        for (size_t i = 0; i < json_array_size(v[0]); i++) {
            if (i)
                buf_append(&b, sep, slen);
            json_t *e = json_array_get(v[0], i);
            if (json_is_string(e))
                buf_append(&b, json_string_value(e), json_string_length(e));
            else
                tpl_print_value(&b, e, false);
            if (spend(x, c->pos, b.len) < 0) {
                buf_free(&b);
                return -EINVAL;
            }
        }
        *out = string_result(&b);
        return 0;
    }
    case F_TITLE:
    case F_LOWER:
    case F_UPPER: {
        _cleanup_free_ char *s = str_of(v[0], &len);
        *out = case_func(f, s, len);
        return spend(x, c->pos, len);
    }
    case F_PAD: {
        json_int_t pre, suf;
        if (int_arg(x, c, "pad", v[1], &pre) < 0 || int_arg(x, c, "pad", v[2], &suf) < 0)
            return -EINVAL;
        _cleanup_free_ char *s = str_of(v[0], &len);
        if (!len) {
            *out = json_string("");
            return 0;
        }
        if (pre < 0 || suf < 0)
            return xerr(x, c->pos, c->src, "error calling pad: strings: negative Repeat count");
        if (pre > (json_int_t)TPL_MAX_BYTES || suf > (json_int_t)TPL_MAX_BYTES ||
            spend(x, c->pos, len + (size_t)pre + (size_t)suf) < 0)
            return xerr(x, c->pos, c->src, "template output is too large");
        hypr_buf b = {0};
        buf_reserve(&b, len + (size_t)(pre + suf) + 1);
        for (json_int_t i = 0; i < pre; i++)
            buf_append(&b, " ", 1);
        buf_append(&b, s, len);
        for (json_int_t i = 0; i < suf; i++)
            buf_append(&b, " ", 1);
        *out = string_result(&b);
        return 0;
    }
    case F_TRUNCATE: {
        json_int_t k;
        if (int_arg(x, c, "truncate", v[1], &k) < 0)
            return -EINVAL;
        _cleanup_free_ char *s = str_of(v[0], &len);
        if ((json_int_t)len < k) {
            *out = json_stringn_nocheck(s, len);
            return 0;
        }
        if (k < 0)
            return xerr(x, c->pos, c->src,
                        "error calling truncate: runtime error: slice bounds out of range [:%lld]",
                        (long long)k);
        *out = json_stringn_nocheck(s, (size_t)k);
        return 0;
    }
    }
    return -EINVAL;
}

static int call_func(exec *x, const tpl_cmd *c, const tpl_arg *args, size_t nargs, json_t *dot,
                     bool has_final, json_t *final, json_t **out)
{
    const tpl_func *fn = args ? args[0].fn : tpl_func_lookup(c->src);
    if (args) {
        args++;
        nargs--;
    }
    int f = (int)(fn - funcs);
    size_t n = nargs + has_final;
    if ((int)n < fn->min_args || (fn->max_args >= 0 && (int)n > fn->max_args)) {
        if (fn->min_args == fn->max_args)
            return xerr(x, c->pos, fn->name, "wrong number of args for %s: want %d got %zu",
                        fn->name, fn->min_args, n);
        return xerr(x, c->pos, fn->name, "wrong number of args for %s: want at least %d got %zu",
                    fn->name, fn->min_args, n);
    }
    /* and / or stop at the first value that decides */
    if (f == F_AND || f == F_OR) {
        json_t *v = NULL;
        for (size_t i = 0; i < n; i++) {
            json_decref(v);
            v = NULL;
            if (i < nargs) {
                if (eval_arg(x, &args[i], dot, &v) < 0)
                    return -EINVAL;
            } else {
                v = ref(final);
            }
            if (truth(v) == (f == F_OR))
                break;
        }
        *out = v;
        return 0;
    }
    json_t **v = xcalloc(n ? n : 1, sizeof(json_t *));
    for (size_t i = 0; i < nargs; i++)
        if (eval_arg(x, &args[i], dot, &v[i]) < 0) {
            free_vals(v, n);
            return -EINVAL;
        }
    if (has_final)
        v[n - 1] = ref(final);
    int r;
    /* Docker's header functions leave the column name intact. */
    if (x->header && (f == F_JSON || f == F_SPLIT || f == F_JOIN || f == F_TITLE || f == F_LOWER ||
                      f == F_UPPER || f == F_TRUNCATE || f == F_INDEX)) {
        *out = ref(v[0]);
        r = 0;
    } else {
        r = builtin(x, c, f, v, n, out);
    }
    free_vals(v, n);
    return r;
}

static int eval_cmd(exec *x, const tpl_cmd *c, json_t *dot, bool has_final, json_t *final,
                    json_t **out)
{
    if (c->args[0].kind == TPL_ARG_FUNC)
        return call_func(x, c, c->args, c->nargs, dot, has_final, final, out);
    if (c->nargs > 1 || has_final)
        return xerr(x, c->args[0].pos, c->args[0].text, "can't give argument to non-function %s",
                    c->args[0].text);
    if (c->args[0].kind == TPL_ARG_NIL)
        return xerr(x, c->pos, "nil", "nil is not a command");
    return eval_arg(x, &c->args[0], dot, out);
}

/* bind: declare/assign the pipeline's variable (not for range, whose
 * variables take the elements). */
static int eval_pipe(exec *x, const tpl_pipe *pp, json_t *dot, bool bind, json_t **out)
{
    json_t *v = NULL;
    for (size_t i = 0; i < pp->ncmds; i++) {
        json_t *nv = NULL;
        int r = eval_cmd(x, &pp->cmds[i], dot, i > 0, v, &nv);
        json_decref(v);
        if (r < 0)
            return r;
        v = nv;
    }
    if (bind && pp->nvars) {
        if (pp->declare) {
            var_push(x, pp->vars[0], ref(v));
        } else {
            tpl_var *var = var_find(x, pp->vars[0]);
            if (!var) {
                json_decref(v);
                return xerr(x, pp->pos, pp->vars[0], "undefined variable: %s", pp->vars[0]);
            }
            json_decref(var->v);
            var->v = ref(v);
        }
    }
    *out = v;
    return 0;
}

static int exec_list(exec *x, const tpl_list *l, json_t *dot);

static int exec_range_item(exec *x, const tpl_node *n, json_t *key, json_t *val)
{
    int r = step(x, n->pos); /* an empty body still costs a step: {{range 1000000000}} */
    if (r < 0)
        return r;
    size_t mark = x->nvars;
    if (n->pipe->nvars == 1)
        var_push(x, n->pipe->vars[0], ref(val));
    else if (n->pipe->nvars == 2) {
        var_push(x, n->pipe->vars[0], ref(key));
        var_push(x, n->pipe->vars[1], ref(val));
    }
    r = exec_list(x, &n->list, val);
    vars_pop_to(x, mark);
    return r;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int exec_range(exec *x, const tpl_node *n, json_t *v, json_t *dot)
{
    size_t count = 0;
    int r = 0;
    if (json_is_array(v)) {
        count = json_array_size(v);
        for (size_t i = 0; i < count && r >= 0; i++) {
            json_t *k = json_integer((json_int_t)i);
            r = exec_range_item(x, n, k, json_array_get(v, i));
            json_decref(k);
            if (x->loop_ctl == 1) {
                x->loop_ctl = 0;
                break;
            }
            x->loop_ctl = 0;
        }
    } else if (json_is_object(v)) {
        count = json_object_size(v);
        const char **keys = xcalloc(count ? count : 1, sizeof(char *));
        size_t i = 0;
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) keys[i++] = key;
        qsort(keys, count, sizeof(*keys), cmp_keys);
        for (i = 0; i < count && r >= 0; i++) {
            json_t *k = json_string(keys[i]);
            r = exec_range_item(x, n, k, json_object_get(v, keys[i]));
            json_decref(k);
            if (x->loop_ctl == 1) {
                x->loop_ctl = 0;
                break;
            }
            x->loop_ctl = 0;
        }
        free(keys);
    } else if (json_is_integer(v) && json_integer_value(v) >= 0) {
        json_int_t max = json_integer_value(v);
        count = (size_t)max;
        for (json_int_t i = 0; i < max && r >= 0; i++) {
            json_t *k = json_integer(i);
            r = exec_range_item(x, n, k, k);
            json_decref(k);
            if (x->loop_ctl == 1) {
                x->loop_ctl = 0;
                break;
            }
            x->loop_ctl = 0;
        }
    } else if (v && !json_is_null(v)) {
        _cleanup_buf_ hypr_buf b = {0};
        tpl_print_value(&b, v, true);
        buf_puts(&b, "");
        return xerr(x, n->pipe->pos, n->pipe->cmds[0].src, "range can't iterate over %.40s",
                    b.data);
    }
    if (r >= 0 && !count)
        r = exec_list(x, &n->else_list, dot);
    return r;
}

static int exec_node(exec *x, const tpl_node *n, json_t *dot)
{
    int r = step(x, n->pos);
    if (r < 0)
        return r;
    if (n->kind == TPL_TEXT) {
        buf_append(x->out, n->text, n->len);
        return 0;
    }
    if (n->kind == TPL_BREAK || n->kind == TPL_CONTINUE) {
        x->loop_ctl = n->kind == TPL_BREAK ? 1 : 2;
        return 0;
    }
    size_t mark = x->nvars;
    json_t *v = NULL;
    r = eval_pipe(x, n->pipe, dot, n->kind != TPL_RANGE, &v);
    if (r < 0)
        return r;
    if (n->kind == TPL_ACTION) {
        if (!n->pipe->nvars)
            tpl_print_value(x->out, v, true);
        json_decref(v);
        /* a declaration lives until the end of the enclosing block */
        return 0;
    }
    if (n->kind == TPL_RANGE)
        r = exec_range(x, n, v, dot);
    else if (truth(v))
        r = exec_list(x, &n->list, n->kind == TPL_WITH ? v : dot);
    else
        r = exec_list(x, &n->else_list, dot);
    json_decref(v);
    vars_pop_to(x, mark);
    return r;
}

static int exec_list(exec *x, const tpl_list *l, json_t *dot)
{
    size_t mark = x->nvars;
    int r = 0;
    for (size_t i = 0; i < l->n && r >= 0 && !x->loop_ctl; i++)
        r = exec_node(x, l->nodes[i], dot);
    vars_pop_to(x, mark);
    return r;
}

static int run(const cli_template *t, json_t *dot, cli_template_header_fn header, void *ud,
               hypr_buf *out, hypr_error *err)
{
    exec x = {
        .root = dot, .src = t->src, .out = out, .err = err, .header = header, .header_ud = ud};
    var_push(&x, "$", ref(dot));
    size_t start = out->len;
    int r = exec_list(&x, &t->root, dot);
    vars_pop_to(&x, 0);
    free(x.vars);
    if (r < 0 && !header) /* a header keeps what it printed, as Docker's does */
        out->len = start;
    buf_reserve(out, 1);
    out->data[out->len] = '\0';
    return r;
}

int cli_template_exec(const cli_template *t, json_t *dot, hypr_buf *out, hypr_error *err)
{
    return run(t, dot, NULL, NULL, out, err);
}

int cli_template_exec_header(const cli_template *t, cli_template_header_fn header, void *ud,
                             hypr_buf *out, hypr_error *err)
{
    _cleanup_json_ json_t *dot = json_object();
    return run(t, dot, header, ud, out, err);
}
