/* Internals shared by the compose module's files; not a public header. */
#ifndef HYPR_COMPOSE_INTERNAL_H
#define HYPR_COMPOSE_INTERNAL_H

#include "common/json_cleanup.h"
#include "compose/compose.h"

/* Where a parsed node came from, for messages. Parsed trees are never mutated
 * (merging and normalising build new ones), so a node pointer stays a key. */
typedef struct cz_src {
    const json_t *node;
    const char *file; /* owned by cz_ctx.names */
    int line;         /* 1-based */
    char *raw;        /* the scalar's text when it was a plain number, else NULL */
} cz_src;

typedef struct cz_ctx {
    cz_src *srcs;
    size_t nsrcs, capsrcs;
    char **names;    /* file names (base names) messages use */
    json_t *keep;    /* parsed roots, held so node pointers stay unique */
    json_t *env;     /* interpolation environment: object name -> string */
    char *workdir;   /* absolute project directory */
    char *project;   /* project name (normalised) */
    char **profiles; /* active profiles */
    bool check_files;
    size_t nodes;     /* converted so far (bounds alias expansion) */
    const char *text; /* the document being converted (yaml.c) */
    size_t text_len;
    hypr_error *err;
} cz_ctx;

void cz_ctx_free(cz_ctx *c);

/* Records an error about node at path ("services.web.ports[0]"); node may be any
 * node of the parsed trees or NULL. Returns -EINVAL. */
int cz_errf(cz_ctx *c, const json_t *node, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The source line of node, 0 when unknown; its original plain text, or NULL. */
int cz_line(const cz_ctx *c, const json_t *node);
const char *cz_raw(const cz_ctx *c, const json_t *node);

/* ---- interp.c ---- */
/* Expands $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}, ${VAR:+r},
 * ${VAR+r} and $$ in s from env (an object of strings). *msg on failure. */
int cz_interpolate(const char *s, const json_t *env, char **out, char **msg);

/* ---- env.c ---- */
/* Parses dotenv text into out (object); ${VAR} in values is looked up in out, then
 * in lookup (may be NULL). On error *msg and *line (1-based). */
int cz_dotenv_parse(const char *data, size_t len, const json_t *lookup, json_t *out, char **msg,
                    int *line);
/* Reads and parses path; -ENOENT when it does not exist (err not filled). */
int cz_dotenv_load(const char *path, const json_t *lookup, json_t *out, hypr_error *err);
/* NAME=VALUE strings into an object. */
json_t *cz_env_from_strv(char **envp);

/* ---- yaml.c ---- */
/* Parses one YAML document into a JSON tree, interpolating every scalar value
 * (not keys) from c->env; plain scalars get YAML 1.2 core-schema types. */
int cz_yaml_load(cz_ctx *c, const char *data, size_t len, const char *file, json_t **out);
/* The top-level name: of a document, read before interpolation needs it. NULL if none. */
char *cz_yaml_peek_name(cz_ctx *c, const char *data, size_t len);
char *cz_emit_yaml(const json_t *v);

/* ---- merge.c ---- */
/* A new tree: over merged into base with Compose's override rules. */
json_t *cz_merge_project(const json_t *base, const json_t *over);
json_t *cz_merge_service(const json_t *base, const json_t *over);
/* Resolves `extends` in every service of the raw model (in place on a fresh copy). */
int cz_resolve_extends(cz_ctx *c, json_t *model, const char *file_dir);
/* doc with its `include` files merged under it (recursively, each one's extends
 * resolved and its services' relative paths made relative to its directory). */
int cz_resolve_includes(cz_ctx *c, const json_t *doc, const char *dir, int depth, json_t **out);
/* A list of "K=V" / "K" (or a map) as a map; NULL on any other shape. */
json_t *cz_as_map(const json_t *v);

/* ---- normalize.c / service.c ---- */
int cz_normalize(cz_ctx *c, const json_t *raw, json_t **out);
int cz_normalize_service(cz_ctx *c, const char *name, const json_t *svc, json_t **out);
/* helpers shared by both */
char *cz_abs_path(const cz_ctx *c, const char *p);
char *cz_scalar_text(const json_t *v); /* a scalar as text; NULL for objects/arrays */
int cz_duration(cz_ctx *c, const json_t *v, const char *path, json_t **out);
bool cz_is_true(const json_t *v, bool *out);

#endif
