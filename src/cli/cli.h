/* hypr CLI: private header shared by the command files.
 *
 * Two layers:
 *  - the option parser and the value parsers (args.c, parse.c), built into
 *    cli_lib with no rpc dependency so the unit test links them alone;
 *  - command groups (cmd_*.c) and their shared helpers (util.c, output.c),
 *    which talk to hyprd through the rpc client. */
#ifndef HYPR_CLI_H
#define HYPR_CLI_H

#include "common/common.h"
#include "volume/volume.h"

#include <jansson.h>

#include <stdio.h>

/* ---- option parser (args.c) ---------------------------------------------- */

typedef enum cli_opt_kind {
    CLI_OPT_END = 0,
    CLI_OPT_BOOL,   /* dest: bool*; "--x", "--x=true|false" */
    CLI_OPT_STRING, /* dest: const char** (points into argv); the last one wins */
    CLI_OPT_LIST,   /* dest: cli_list*; repeatable, every value kept in order */
    CLI_OPT_INT,    /* dest: int64_t*; checked against [min, max] */
} cli_opt_kind;

/* Values of a repeatable option, pointing into argv (not copied). */
typedef struct cli_list {
    const char **items;
    size_t n;
} cli_list;
void cli_list_push(cli_list *l, const char *s);
void cli_list_free(cli_list *l);
static inline void cli_list_freep(cli_list *l)
{
    cli_list_free(l);
}
#define _cleanup_list_ _cleanup_(cli_list_freep)

typedef struct cli_option {
    cli_opt_kind kind;
    char short_name;       /* 0 = none */
    const char *long_name; /* NULL = none */
    const char *metavar;   /* shown in help after the flag: "string", "list", "int" */
    const char *help;
    void *dest;
    int64_t min, max; /* CLI_OPT_INT */
} cli_option;

#define CLI_BOOL(s, l, d, h)                                                                       \
    {                                                                                              \
        CLI_OPT_BOOL, s, l, NULL, h, d, 0, 0                                                       \
    }
#define CLI_STRING(s, l, mv, d, h)                                                                 \
    {                                                                                              \
        CLI_OPT_STRING, s, l, mv, h, d, 0, 0                                                       \
    }
#define CLI_LIST(s, l, mv, d, h)                                                                   \
    {                                                                                              \
        CLI_OPT_LIST, s, l, mv, h, d, 0, 0                                                         \
    }
#define CLI_INT(s, l, mv, d, lo, hi, h)                                                            \
    {                                                                                              \
        CLI_OPT_INT, s, l, mv, h, d, lo, hi                                                        \
    }
#define CLI_OPTIONS_END                                                                            \
    {                                                                                              \
        CLI_OPT_END, 0, NULL, NULL, NULL, NULL, 0, 0                                               \
    }

typedef struct cli_command {
    const char *name;  /* full command path as typed: "hypr run", "hypr volume ls" */
    const char *usage; /* after the name: "[OPTIONS] IMAGE [COMMAND] [ARG...]" */
    const char *description;
    const cli_option *options; /* terminated by CLI_OPTIONS_END; may be NULL */
    int min_args;
    int max_args; /* -1 = unlimited */
    /* Everything from the first positional on is positional ("run IMAGE CMD...",
     * "exec VM CMD..."): the command's own flags belong to the command. A "--"
     * right after that first positional is dropped. */
    bool stop_at_positional;
    int error_exit;    /* exit code for usage errors; 0 means 1 ("run" uses 125, like Docker) */
    const char *notes; /* extra help text after the options table; may be NULL */
} cli_command;

typedef struct cli_parsed {
    char **args; /* positional arguments (array owned, strings point into argv) */
    int nargs;
} cli_parsed;
void cli_parsed_free(cli_parsed *p);
static inline void cli_parsed_freep(cli_parsed *p)
{
    cli_parsed_free(p);
}
#define _cleanup_parsed_ _cleanup_(cli_parsed_freep)

#define CLI_PARSE_HELP 1
/* Parses argv[1..argc) (argv[0] is the command's own name) into the option
 * destinations and out. Prints nothing. Returns 0, CLI_PARSE_HELP when -h/--help
 * was given, or -EINVAL with *error set to a Docker-style message ("unknown flag:
 * --foo", "flag needs an argument: 'n' in -n", "\"hypr rm\" requires at least 1
 * argument.") that the caller frees. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_parsed *out, char **error);
/* The usual wrapper: parses; prints help (stdout) or the error + usage hint
 * (stderr). Returns true when the command should run; otherwise *exit_code is
 * what the command returns (0 after help). */
bool cli_parse_or_exit(const cli_command *cmd, int argc, char **argv, cli_parsed *out,
                       int *exit_code);
void cli_print_help(const cli_command *cmd, FILE *f);
/* "-p, --publish" or "--format" for messages. Caller frees. */
char *cli_option_display(const cli_command *cmd, const char *long_name);
/* Prints `invalid argument "VALUE" for "-p, --publish" flag: REASON` and the
 * "See 'hypr run --help'." hint; returns the command's usage-error exit code. */
int cli_invalid_value(const cli_command *cmd, const char *long_name, const char *value,
                      const char *reason);
/* Prints a free-form usage error plus the hint; returns the usage-error exit code. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cli_error_exit(const cli_command *cmd);

/* ---- value parsers (parse.c) --------------------------------------------- */

typedef struct cli_port {
    char *host_ip; /* NULL = daemon default (127.0.0.1) */
    uint32_t host_port;
    uint32_t guest_port;
    char protocol[4]; /* "tcp" or "udp" */
} cli_port;
void cli_port_free(cli_port *p);
/* [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]; HOST_IP may be [v6]. */
int cli_parse_port(const char *spec, cli_port *out, hypr_error *err);

/* K=V, or K alone = take V from the CLI's environment (like Docker). Returns 1
 * with *key and *value set (caller frees), 0 when K alone is not in the environment
 * (skip it), <0 on a malformed entry. */
int cli_parse_env(const char *spec, char **key, char **value, hypr_error *err);
/* K=V or K (empty value). Returns 0 / <0. */
int cli_parse_label(const char *spec, char **key, char **value, hypr_error *err);
/* An --env-file's lines as env specs ("K=V" or "K"); blank and # lines skipped. */
int cli_read_env_file(const char *path, char ***out, hypr_error *err);

/* -v SRC:DST[:OPTS] (a SRC starting with "./" or "../" is made absolute against
 * the cwd, as Docker does), --mount K=V,... or --tmpfs DST[:OPTS]: src/volume's parsers. */
typedef enum { CLI_MOUNT_VOLUME, CLI_MOUNT_MOUNT, CLI_MOUNT_TMPFS } cli_mount_flag;
int cli_parse_mount(cli_mount_flag flag, const char *spec, volume_mount_spec *out, hypr_error *err);

/* "512m", "2g", "512" (MiB), "1024k" -> MiB (at least 1). */
int cli_parse_memory(const char *s, uint64_t *out_mib, hypr_error *err);
/* A whole number of vCPUs, 1..256. */
int cli_parse_cpus(const char *s, uint32_t *out, hypr_error *err);

typedef struct cli_restart {
    char name[16]; /* "no", "always", "unless-stopped", "on-failure" */
    uint32_t max_retries;
} cli_restart;
int cli_parse_restart(const char *s, cli_restart *out, hypr_error *err);

/* "all" -> -1, or a count >= 0. */
int cli_parse_tail(const char *s, int32_t *out, hypr_error *err);

/* -H / HYPR_HOST: a socket path, unix:///path, unix:/path, tcp://HOST:PORT, HOST:PORT.
 * *target is what rpc_client_connect takes; *display is the canonical URL for
 * messages ("unix:///run/hypr/hypr.sock"). Both freed by the caller. */
int cli_parse_host(const char *host, char **target, char **display, hypr_error *err);

/* --format: "table" (NULL or ""), "json", or a Go template ("{{.ID}}", "table {{.ID}}\t..."),
 * which must parse. Returns a CLI_FORMAT_* or <0 ("template parsing error: ..."). */
#define CLI_FORMAT_TABLE    0
#define CLI_FORMAT_JSON     1
#define CLI_FORMAT_TEMPLATE 2
int cli_parse_format(const char *s, hypr_error *err);

/* Docker's units.HumanDuration: "Less than a second", "About a minute", "3 hours"... */
void cli_human_duration(int64_t seconds, char *out, size_t outlen);
/* RFC 3339 UTC timestamp ("2024-05-01T10:00:00Z"); 0 -> "0001-01-01T00:00:00Z". */
void cli_rfc3339(int64_t unix_seconds, char *out, size_t outlen);
/* Image name for tables: "docker.io/library/nginx" -> "nginx". Returns a pointer into name. */
const char *cli_short_image_name(const char *name);
/* Splits "name:tag" (the colon after the last slash); "name" -> tag "latest" when
 * default_latest, else "". Digest references ("name@sha256:..") keep the digest in *tag. */
void cli_split_reference(const char *ref, char **name, char **tag, bool default_latest);
/* Compose project name from a directory basename: lowercased, only [a-z0-9_-]. */
char *cli_project_name(const char *dir);

/* ---- --format templates (template.c, template_exec.c, template_fmt.c) ----
 * A subset of Go's text/template with Docker's functions (json, split, join,
 * title, lower, upper, pad, truncate, println) and the builtins (and, or, not,
 * len, index, print, printf, eq, ne, lt, le, gt, ge), evaluated against the
 * JSON object a command prints for --format json. */

typedef struct cli_template cli_template;
/* True when a --format value is a template (it has "{{"). */
bool cli_format_is_template(const char *format);
/* Parses src as it is (no "table" prefix handling). Errors read like Go's:
 * "template: :1: unclosed action". */
int cli_template_parse(const char *src, cli_template **out, hypr_error *err);
/* A --format value the way Docker takes it: a "table" prefix is noted and
 * dropped, surrounding spaces trimmed, a typed two-character \t or \n made the
 * character; errors are "template parsing error: template: :1: ...". */
int cli_template_parse_format(const char *format, cli_template **out, hypr_error *err);
/* The part of a --format value cli_template_parse_format parses. Caller frees. */
char *cli_template_prepare(const char *format, bool *table);
bool cli_template_is_table(const cli_template *t);
const char *cli_template_source(const cli_template *t);
/* Appends the template's text for dot to out. A field the top-level object
 * lacks is an error ("template: :1:2: executing \"\" at <.Foo>: can't evaluate
 * field Foo"); a missing key deeper prints "<no value>". On error nothing is
 * appended. */
int cli_template_exec(const cli_template *t, json_t *dot, hypr_buf *out, hypr_error *err);
/* The header row: every field chain prints header(first field) (caller frees
 * what it returns); json/split/join/title/lower/upper/truncate/index return
 * their argument, like Docker's HeaderFunctions. On error out keeps what was
 * printed before it (Docker prints a failed header as far as it got). */
typedef char *(*cli_template_header_fn)(const char *field, void *userdata);
int cli_template_exec_header(const cli_template *t, cli_template_header_fn header, void *userdata,
                             hypr_buf *out, hypr_error *err);
/* A field's column name: overrides is {field, header, ..., NULL} (may be NULL);
 * otherwise CamelCase split and upper-cased ("CreatedAt" -> "CREATED AT"). */
char *cli_template_header_name(const char *field, const char *const *overrides);
/* Aligns tab-separated text like Go's text/tabwriter with Docker's settings
 * (minwidth 10, padding 3). */
void cli_tabwriter(const char *text, size_t len, hypr_buf *out);
void cli_template_free(cli_template *t);
DEFINE_CLEANUP_FUNC(cli_template, cli_template_free)
#define _cleanup_template_ _cleanup_(cli_template_freep)

/* --detach-keys, parsed: the byte sequence that detaches a terminal from its workload. */
typedef struct cli_detach_keys {
    uint8_t key[16];
    size_t n;
} cli_detach_keys;
/* Docker's syntax ("ctrl-p,ctrl-q", "a,ctrl-@"); NULL or "" = Ctrl-P Ctrl-Q. */
int cli_parse_detach_keys(const char *spec, cli_detach_keys *out, hypr_error *err);
/* The detach keys in input: the bytes to send (*len), true once the whole sequence was
 * typed. Bytes that begin it are held in *matched (across reads: start at 0); a byte
 * that breaks it sends them on, so buf needs room for *len + sizeof(k->key) bytes. */
bool cli_detach_match(const cli_detach_keys *k, size_t *matched, uint8_t *buf, size_t *len);

#endif
