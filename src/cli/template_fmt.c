/* How the template engine prints: Go's %v of values, a fmt.Sprintf subset for
 * printf, Docker's table headers, and text/tabwriter's column alignment. */
#include "cli/template_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* strconv.FormatFloat(f, 'g', -1, 64) as %v prints it. */
static void print_float(hypr_buf *b, double d)
{
    if (isnan(d)) {
        buf_puts(b, "NaN");
        return;
    }
    if (isinf(d)) {
        buf_puts(b, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[64];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
    int exp = atoi(strchr(tmp, 'e') + 1);
    if (exp < -4 || exp >= 6) { /* shortest 'g': the exponent form from 1e+06 */
        buf_puts(b, tmp);
        return;
    }
    snprintf(tmp, sizeof(tmp), "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, d);
    buf_puts(b, tmp);
}

void tpl_print_value(hypr_buf *b, const json_t *v, bool top)
{
    if (!v || json_is_null(v)) {
        buf_puts(b, top ? "<no value>" : "<nil>");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        buf_append(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        buf_printf(b, "%lld", (long long)json_integer_value(v));
        return;
    case JSON_REAL:
        print_float(b, json_real_value(v));
        return;
    case JSON_TRUE:
    case JSON_FALSE:
        buf_puts(b, json_is_true(v) ? "true" : "false");
        return;
    case JSON_ARRAY:
        buf_puts(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                buf_puts(b, " ");
            tpl_print_value(b, json_array_get(v, i), false);
        }
        buf_puts(b, "]");
        return;
    default: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = xcalloc(n ? n : 1, sizeof(char *));
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) keys[i++] = key;
        qsort(keys, n, sizeof(*keys), cmp_keys);
        buf_puts(b, "map[");
        for (i = 0; i < n; i++) {
            buf_printf(b, "%s%s:", i ? " " : "", keys[i]);
            tpl_print_value(b, json_object_get(v, keys[i]), false);
        }
        buf_puts(b, "]");
        free(keys);
    }
    }
}

/* ---- printf ---------------------------------------------------------------- */

typedef struct spec {
    bool minus, plus, sharp, space, zero;
    int width, prec; /* -1 = none */
} spec;

static size_t runes(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)s[i] & 0xC0) != 0x80;
    return w;
}

static void pad_out(hypr_buf *b, const spec *sp, const char *s, size_t n, bool numeric)
{
    size_t w = runes(s, n);
    size_t fill = sp->width > 0 && (size_t)sp->width > w ? (size_t)sp->width - w : 0;
    if (sp->minus) {
        buf_append(b, s, n);
        for (size_t i = 0; i < fill; i++)
            buf_append(b, " ", 1);
        return;
    }
    if (sp->zero && numeric && n && (s[0] == '-' || s[0] == '+')) {
        buf_append(b, s, 1);
        s++;
        n--;
    }
    for (size_t i = 0; i < fill; i++)
        buf_append(b, sp->zero && numeric ? "0" : " ", 1);
    buf_append(b, s, n);
}

static void bad_verb(hypr_buf *b, char verb, const json_t *v)
{
    const char *tn = !v || json_is_null(v) ? NULL
                     : json_is_string(v)   ? "string"
                     : json_is_integer(v)  ? "int"
                     : json_is_real(v)     ? "float64"
                     : json_is_boolean(v)  ? "bool"
                     : json_is_array(v)    ? "[]interface {}"
                                           : "map[string]interface {}";
    buf_printf(b, "%%!%c(", verb);
    if (!tn) {
        buf_puts(b, "<nil>)");
        return;
    }
    buf_printf(b, "%s=", tn);
    tpl_print_value(b, v, false);
    buf_puts(b, ")");
}

static void quote(hypr_buf *b, const char *s, size_t n)
{
    buf_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            buf_puts(b, "\\\"");
            break;
        case '\\':
            buf_puts(b, "\\\\");
            break;
        case '\n':
            buf_puts(b, "\\n");
            break;
        case '\t':
            buf_puts(b, "\\t");
            break;
        case '\r':
            buf_puts(b, "\\r");
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                buf_printf(b, "\\x%02x", c);
            else
                buf_append(b, &s[i], 1);
        }
    }
    buf_puts(b, "\"");
}

static void format_one(hypr_buf *b, const spec *sp, char verb, const json_t *v)
{
    _cleanup_buf_ hypr_buf t = {0};
    buf_puts(&t, "");
    bool numeric = false;
    switch (verb) {
    case 'v':
        if (json_is_real(v) && sp->prec >= 0) {
            buf_printf(&t, "%.*g", sp->prec, json_real_value(v));
            numeric = true;
            break;
        }
        tpl_print_value(&t, v, false);
        numeric = json_is_number(v);
        break;
    case 's':
        if (json_is_string(v) || json_is_array(v) || json_is_object(v)) {
            tpl_print_value(&t, v, false);
            if (sp->prec >= 0) {
                size_t k = 0, r = 0;
                while (k < t.len && r < (size_t)sp->prec) {
                    k++;
                    while (k < t.len && ((unsigned char)t.data[k] & 0xC0) == 0x80)
                        k++;
                    r++;
                }
                t.len = k;
            }
        } else {
            bad_verb(b, verb, v);
            return;
        }
        break;
    case 'q':
        if (!json_is_string(v)) {
            bad_verb(b, verb, v);
            return;
        }
        quote(&t, json_string_value(v), json_string_length(v));
        break;
    case 'd':
    case 'x':
    case 'X':
    case 'o':
    case 'c':
        if (json_is_integer(v)) {
            long long i = (long long)json_integer_value(v);
            if (verb == 'c') {
                char ch = (char)i;
                buf_append(&t, &ch, 1);
                break;
            }
            if (verb != 'd' && i < 0) {
                buf_puts(&t, "-");
                i = -i;
            }
            if (verb == 'd')
                buf_printf(&t, sp->plus ? "%+lld" : sp->space ? "% lld" : "%lld", i);
            else if (verb == 'x')
                buf_printf(&t, "%llx", (unsigned long long)i);
            else if (verb == 'X')
                buf_printf(&t, "%llX", (unsigned long long)i);
            else
                buf_printf(&t, "%llo", (unsigned long long)i);
            numeric = true;
        } else if (json_is_string(v) && (verb == 'x' || verb == 'X')) {
            for (size_t i = 0; i < json_string_length(v); i++)
                buf_printf(&t, verb == 'x' ? "%02x" : "%02X",
                           (unsigned char)json_string_value(v)[i]);
        } else {
            bad_verb(b, verb, v);
            return;
        }
        break;
    case 'f':
    case 'F':
    case 'e':
    case 'g':
        if (!json_is_real(v)) {
            bad_verb(b, verb, v);
            return;
        }
        if (verb == 'g' && sp->prec < 0)
            print_float(&t, json_real_value(v));
        else
            buf_printf(&t,
                       verb == 'e'   ? "%.*e"
                       : verb == 'g' ? "%.*g"
                                     : "%.*f",
                       sp->prec >= 0 ? sp->prec : 6, json_real_value(v));
        numeric = true;
        break;
    case 't':
        if (!json_is_boolean(v)) {
            bad_verb(b, verb, v);
            return;
        }
        buf_puts(&t, json_is_true(v) ? "true" : "false");
        break;
    default:
        bad_verb(b, verb, v);
        return;
    }
    pad_out(b, sp, t.data, t.len, numeric);
}

/* Go's fmt caps widths and precisions at 1e6. */
static int read_num(const char *s, size_t *i)
{
    long long n = 0;
    while (s[*i] >= '0' && s[*i] <= '9') {
        if (n <= 1000000)
            n = n * 10 + (s[*i] - '0');
        (*i)++;
    }
    return n > 1000000 ? -2 : (int)n;
}

void tpl_sprintf(hypr_buf *b, const char *fmt, json_t *const *args, size_t nargs)
{
    size_t argi = 0;
    buf_puts(b, "");
    for (size_t i = 0; fmt[i];) {
        if (fmt[i] != '%') {
            buf_append(b, &fmt[i++], 1);
            continue;
        }
        i++;
        spec sp = {.width = -1, .prec = -1};
        for (;; i++) {
            char c = fmt[i];
            if (c == '-')
                sp.minus = true;
            else if (c == '+')
                sp.plus = true;
            else if (c == '#')
                sp.sharp = true;
            else if (c == ' ')
                sp.space = true;
            else if (c == '0')
                sp.zero = !sp.minus;
            else
                break;
        }
        if (fmt[i] >= '0' && fmt[i] <= '9') {
            sp.width = read_num(fmt, &i);
            if (sp.width == -2) {
                buf_puts(b, "%!(BADWIDTH)");
                sp.width = -1;
            }
        }
        if (fmt[i] == '.') {
            i++;
            sp.prec = read_num(fmt, &i);
            if (sp.prec == -2) {
                buf_puts(b, "%!(BADPREC)");
                sp.prec = -1;
            }
        }
        char verb = fmt[i];
        if (!verb) {
            buf_puts(b, "%!(NOVERB)");
            break;
        }
        i++;
        if (verb == '%') {
            buf_puts(b, "%");
            continue;
        }
        if (argi >= nargs) {
            buf_printf(b, "%%!%c(MISSING)", verb);
            continue;
        }
        format_one(b, &sp, verb, args[argi++]);
    }
    if (argi < nargs) {
        buf_puts(b, "%!(EXTRA ");
        for (size_t k = argi; k < nargs; k++) {
            if (k > argi)
                buf_puts(b, ", ");
            const json_t *v = args[k];
            if (!v || json_is_null(v)) {
                buf_puts(b, "<nil>");
                continue;
            }
            bad_verb(b, 'v', v); /* "%!v(type=value)": keep the "type=value" part */
            size_t open = b->len;
            while (open > 0 && b->data[open - 1] != '(')
                open--;
            memmove(b->data + open - 4, b->data + open, b->len - open);
            b->len -= 4;
            b->len--; /* the ")" */
            b->data[b->len] = '\0';
        }
        buf_puts(b, ")");
    }
}

/* ---- headers and tables ------------------------------------------------------ */

char *cli_template_header_name(const char *field, const char *const *overrides)
{
    for (size_t i = 0; overrides && overrides[i]; i += 2)
        if (!strcmp(overrides[i], field))
            return xstrdup(overrides[i + 1]);
    /* "CreatedAt" -> "CREATED AT", "ID" -> "ID", "IPAddress" -> "IP ADDRESS" */
    hypr_buf b = {0};
    buf_puts(&b, "");
    for (size_t i = 0; field[i]; i++) {
        char c = field[i];
        bool upper = c >= 'A' && c <= 'Z';
        bool prev_lower = i > 0 && ((field[i - 1] >= 'a' && field[i - 1] <= 'z') ||
                                    (field[i - 1] >= '0' && field[i - 1] <= '9'));
        bool next_lower = field[i + 1] >= 'a' && field[i + 1] <= 'z';
        bool prev_upper = i > 0 && field[i - 1] >= 'A' && field[i - 1] <= 'Z';
        if (upper && (prev_lower || (prev_upper && next_lower)))
            buf_puts(&b, " ");
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        buf_append(&b, &c, 1);
    }
    return buf_steal(&b);
}

/* text/tabwriter (minwidth 10, tabwidth 1, padding 3, ' ', no flags), as
 * Docker's table formats use it: a column block is a run of consecutive lines
 * that have a tab-terminated cell in that column. */
typedef struct tw_line {
    const char **cells;
    size_t *lens;
    size_t n; /* the last cell is the text after the last tab */
} tw_line;

typedef struct tw {
    tw_line *lines;
    size_t nlines;
    size_t *widths;
    size_t nwidths;
    hypr_buf *out;
} tw;

static void tw_write_lines(tw *w, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        const tw_line *l = &w->lines[i];
        for (size_t j = 0; j < l->n; j++) {
            buf_append(w->out, l->cells[j], l->lens[j]);
            if (j < w->nwidths)
                for (size_t k = runes(l->cells[j], l->lens[j]); k < w->widths[j]; k++)
                    buf_append(w->out, " ", 1);
        }
        if (i + 1 < w->nlines)
            buf_append(w->out, "\n", 1);
    }
}

static size_t tw_format(tw *w, size_t line0, size_t line1)
{
    size_t column = w->nwidths;
    for (size_t this = line0; this < line1; this ++) {
        if (column + 1 >= w->lines[this].n)
            continue;
        tw_write_lines(w, line0, this);
        line0 = this;
        size_t width = 10;
        for (; this < line1; this ++) {
            const tw_line *l = &w->lines[this];
            if (column + 1 >= l->n)
                break;
            size_t cw = runes(l->cells[column], l->lens[column]) + 3;
            if (cw > width)
                width = cw;
        }
        w->widths[w->nwidths++] = width;
        tw_format(w, line0, this);
        w->nwidths--;
        line0 = this;
    }
    tw_write_lines(w, line0, line1);
    return line1;
}

void cli_tabwriter(const char *text, size_t len, hypr_buf *out)
{
    tw w = {.out = out};
    size_t maxcells = 1;
    for (size_t i = 0; i <= len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        tw_line l = {0};
        size_t s = i;
        for (size_t k = i; k <= end; k++) {
            if (k == end || text[k] == '\t') {
                l.cells = xrealloc(l.cells, (l.n + 1) * sizeof(char *));
                l.lens = xrealloc(l.lens, (l.n + 1) * sizeof(size_t));
                l.cells[l.n] = text + s;
                l.lens[l.n++] = k - s;
                s = k + 1;
            }
        }
        if (l.n > maxcells)
            maxcells = l.n;
        w.lines = xrealloc(w.lines, (w.nlines + 1) * sizeof(*w.lines));
        w.lines[w.nlines++] = l;
        i = end + 1;
    }
    w.widths = xcalloc(maxcells, sizeof(size_t));
    buf_puts(out, "");
    tw_format(&w, 0, w.nlines);
    for (size_t i = 0; i < w.nlines; i++) {
        free(w.lines[i].cells);
        free(w.lines[i].lens);
    }
    free(w.lines);
    free(w.widths);
}
