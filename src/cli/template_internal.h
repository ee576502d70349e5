/* The template engine's private types, shared by the parser (template.c), the
 * evaluator (template_exec.c) and the formatting helpers (template_fmt.c). */
#ifndef HYPR_CLI_TEMPLATE_INTERNAL_H
#define HYPR_CLI_TEMPLATE_INTERNAL_H

#include "cli/cli.h"

#include <jansson.h>

/* Untrusted input: nesting of blocks and parentheses is bounded. */
#define TPL_MAX_DEPTH 64

typedef enum tpl_arg_kind {
    TPL_ARG_FIELD,  /* .A.B (on dot) */
    TPL_ARG_VAR,    /* $x.A.B */
    TPL_ARG_DOT,    /* . */
    TPL_ARG_STRING, /* "..." or `...` */
    TPL_ARG_NUMBER, /* 42, -1, 0x1f, 1.5, 'a' */
    TPL_ARG_BOOL,
    TPL_ARG_NIL,
    TPL_ARG_FUNC, /* an identifier naming a function */
    TPL_ARG_PIPE, /* ( pipeline ) with optional .A.B after it */
} tpl_arg_kind;

typedef struct tpl_pipe tpl_pipe;
typedef struct tpl_func tpl_func;

typedef struct tpl_arg {
    tpl_arg_kind kind;
    size_t pos;    /* byte offset in the source, for error positions */
    char *text;    /* string value, variable name ("$x"), function name, or the source */
    char **fields; /* field chain after the operand */
    size_t nfields;
    json_t *number; /* TPL_ARG_NUMBER */
    bool boolean;
    tpl_pipe *pipe;
    const tpl_func *fn;
} tpl_arg;

typedef struct tpl_cmd {
    tpl_arg *args;
    size_t nargs;
    size_t pos;
    char *src; /* the command as written, for "at <...>" in errors */
} tpl_cmd;

struct tpl_pipe {
    char *vars[2];
    size_t nvars;
    bool declare; /* := (else =) */
    tpl_cmd *cmds;
    size_t ncmds;
    size_t pos;
};

typedef enum tpl_node_kind {
    TPL_TEXT,
    TPL_ACTION,
    TPL_IF,
    TPL_WITH,
    TPL_RANGE,
    TPL_BREAK,
    TPL_CONTINUE,
} tpl_node_kind;

typedef struct tpl_node tpl_node;
typedef struct tpl_list {
    tpl_node **nodes;
    size_t n;
} tpl_list;

struct tpl_node {
    tpl_node_kind kind;
    size_t pos;
    char *text; /* TPL_TEXT */
    size_t len;
    tpl_pipe *pipe;
    tpl_list list, else_list;
};

struct cli_template {
    char *src;
    bool table;
    tpl_list root;
};

/* A function: name and arity bounds (max -1 = variadic). The evaluator decides
 * how arguments are evaluated; the parser only needs to know the name exists. */
struct tpl_func {
    const char *name;
    int min_args, max_args;
};
const tpl_func *tpl_func_lookup(const char *name);

/* Go's %v of a value; NULL is a missing value ("<no value>" at top level). */
void tpl_print_value(hypr_buf *b, const json_t *v, bool top);
/* fmt.Sprintf for the verbs the engine supports; returns <0 only on output limits. */
void tpl_sprintf(hypr_buf *b, const char *fmt, json_t *const *args, size_t nargs);

#endif
