/* hypr build: sends the build options, then the context directory as a tar
 * stream (from `tar -C PATH -cf - .`, so the daemon gets ownership, modes and
 * links exactly as tar records them), and prints the build's events. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include "builder/builder.h"
#include "common/json_cleanup.h"

#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

enum { CONTEXT_CHUNK = 256 * 1024 };

/* The Dockerfile path relative to the context, as BuildOptions wants it.
 * -f is relative to the cwd (like Docker) and must lie inside the context. */
static int dockerfile_in_context(const char *context, const char *file, char **out, hypr_error *err)
{
    _cleanup_free_ char *ctx_real = realpath(context, NULL);
    if (!ctx_real)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, errno,
                        "unable to prepare context: path \"%s\" not found", context);
    _cleanup_free_ char *candidate = file ? xstrdup(file) : path_join(context, "Dockerfile");
    _cleanup_free_ char *real = realpath(candidate, NULL);
    if (!real)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, errno, "cannot locate Dockerfile %s: %s",
                        candidate, strerror(errno));
    size_t n = strlen(ctx_real);
    if (strncmp(real, ctx_real, n) || (real[n] != '/' && strcmp(ctx_real, "/")))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "the Dockerfile (%s) must be inside the build context (%s)", candidate,
                        context);
    *out = xstrdup(real + n + (real[n] == '/'));
    return 0;
}

/* Streams the context; returns 0, or <0 with err set (the call's own error
 * when the daemon ended it early, which the caller reads from the stream). */
static int send_context(rpc_stream *s, const char *context, hypr_error *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    char *argv[] = {(char *)"tar", (char *)"-C", (char *)context, (char *)"-cf", (char *)"-",
                    (char *)".",   NULL};
    pid_t pid;
    int r = posix_spawnp(&pid, "tar", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    _cleanup_close_ int rfd = p[0];
    if (r != 0)
        return hypr_err(err, HYPR_INTERNAL, r, "cannot run tar: %s", strerror(r));
    _cleanup_free_ uint8_t *buf = xmalloc(CONTEXT_CHUNK);
    int ret = 0;
    uint64_t total = 0;
    for (;;) {
        /* Fill whole chunks: fewer, larger messages. */
        size_t len = 0;
        while (len < CONTEXT_CHUNK) {
            ssize_t n = read(rfd, buf + len, CONTEXT_CHUNK - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                ret =
                    hypr_err(err, HYPR_INTERNAL, errno, "reading tar output: %s", strerror(errno));
                break;
            }
            if (n == 0)
                break;
            len += (size_t)n;
        }
        if (ret < 0 || len == 0)
            break;
        Hypr__V1__BuildImageRequest req = HYPR__V1__BUILD_IMAGE_REQUEST__INIT;
        req.msg_case = HYPR__V1__BUILD_IMAGE_REQUEST__MSG_CONTEXT_CHUNK;
        req.context_chunk.data = buf;
        req.context_chunk.len = len;
        ret = rpc_stream_send(s, &req.base, err);
        if (ret < 0)
            break;
        total += len;
    }
    /* Closing our end stops a tar still writing when we bailed out. */
    close(TAKE_FD(rfd));
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (ret < 0)
        return ret;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return hypr_err(err, HYPR_INTERNAL, EIO, "tar failed to archive the build context %s",
                        context);
    log_debug("sent %" PRIu64 " bytes of build context", total);
    return 0;
}

/* The Dockerfile text for --check: FILE ("-" = stdin), else CONTEXT/Dockerfile. */
static int read_dockerfile(const char *context, const char *file, char **name, char **data,
                           size_t *len, hypr_error *err)
{
    if (file && !strcmp(file, "-")) {
        _cleanup_buf_ hypr_buf b = {0};
        char chunk[65536];
        for (;;) {
            ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return hypr_err(err, HYPR_INVALID_ARGUMENT, errno,
                                "reading the Dockerfile "
                                "from stdin: %s",
                                strerror(errno));
            if (n == 0)
                break;
            if (b.len + (size_t)n > BUILDER_DOCKERFILE_MAX)
                return hypr_err(err, HYPR_INVALID_ARGUMENT, EFBIG,
                                "the Dockerfile on stdin is larger than %u bytes",
                                BUILDER_DOCKERFILE_MAX);
            buf_append(&b, chunk, (size_t)n);
        }
        *len = b.len;
        *data = buf_steal(&b);
        *name = xstrdup("Dockerfile");
        return 0;
    }
    _cleanup_free_ char *path = file ? xstrdup(file) : path_join(context, "Dockerfile");
    int r = read_file(path, BUILDER_DOCKERFILE_MAX, data, len);
    if (r < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, -r, "cannot read Dockerfile %s: %s", path,
                        strerror(-r));
    *name = TAKE_PTR(path);
    return 0;
}

/* hypr build --check: parse and validate offline; print the JSON document or a
 * summary with BuildKit-style warnings. A parse error is "FILE:LINE: message" on
 * stderr and exit 1. */
static int build_check(cli_ctx *ctx, const char *context, const char *file, const char *format)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_free_ char *name = NULL, *data = NULL;
    size_t len = 0;
    if (read_dockerfile(context, file, &name, &data, &len, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    _cleanup_dockerfile_ builder_dockerfile *df = NULL;
    builder_stages st = {0};
    if (builder_parse(data, len, name, &df, &err) < 0 || builder_stages_build(df, &st, &err) < 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    size_t n_errors;
    _cleanup_strv_ char **problems = builder_lint(df, &n_errors);
    /* Flag and HEALTHCHECK-type problems fail a build, not the parse: reported,
     * the document still printed (BuildKit's parser accepts them too). */
    for (size_t i = 0; problems[i]; i++)
        fprintf(stderr, "%s: %s\n", i < n_errors ? "build error" : "warning", problems[i]);
    int ret = 0;
    if (format) {
        _cleanup_json_ json_t *doc = builder_check_json(df, &st);
        _cleanup_free_ char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
            ret = cli_fail(ctx, 1, "cannot print the JSON document");
        else
            printf("%s\n", text);
    } else {
        size_t n_instrs = df->n_instrs;
        printf("%s: %zu stage%s, %zu instruction%s; ", name, st.n, st.n == 1 ? "" : "s", n_instrs,
               n_instrs == 1 ? "" : "s");
        size_t n_problems = strv_length(problems);
        if (!n_problems)
            printf("no problems found\n");
        else
            printf("%zu error%s, %zu warning%s (on stderr)\n", n_errors, n_errors == 1 ? "" : "s",
                   n_problems - n_errors, n_problems - n_errors == 1 ? "" : "s");
    }
    builder_stages_clear(&st);
    return ret;
}

int cmd_build(cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_list_ cli_list tags = {0};
    _cleanup_list_ cli_list build_args = {0};
    const char *file = NULL, *target = NULL, *platform = NULL, *format = NULL;
    bool no_cache = false, quiet = false, check = false;
    const cli_option opts[] = {
        CLI_LIST(0, "build-arg", "list", &build_args, "Set build-time variables (K=V)"),
        CLI_BOOL(0, "check", &check,
                 "Parse and check the Dockerfile only (no daemon, nothing built)"),
        CLI_STRING('f', "file", "string", &file,
                   "Name of the Dockerfile (default: PATH/Dockerfile)"),
        CLI_STRING(0, "format", "string", &format,
                   "With --check: \"json\" prints the parsed Dockerfile as JSON"),
        CLI_BOOL(0, "no-cache", &no_cache, "Do not use cache when building the image"),
        CLI_STRING(0, "platform", "string", &platform, "Set platform for the build"),
        CLI_BOOL('q', "quiet", &quiet, "Suppress the build output and print image ID on success"),
        CLI_LIST('t', "tag", "list", &tags, "Name and optionally a tag in the \"name:tag\" format"),
        CLI_STRING(0, "target", "string", &target, "Set the target build stage to build"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] PATH",
        .description = "Build an image from a Dockerfile",
        .options = opts,
        .min_args = 0,
        .max_args = 1,
        .notes = "PATH is a local directory; it is sent to the daemon as a tar stream.\n"
                 "RUN steps execute inside an isolated build VM.\n"
                 "With --check (PATH optional, default \".\"; -f - reads stdin) nothing is sent:\n"
                 "the Dockerfile is parsed and checked locally, see docs/build.md.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (format && !check)
        return cli_usage_error(&cmd, "--format is only valid with --check");
    if (format && strcmp(format, "json"))
        return cli_invalid_value(&cmd, "format", format, "the only format of --check is \"json\"");
    if (check)
        return build_check(ctx, p.nargs ? p.args[0] : ".", file, format);
    if (p.nargs != 1) {
        /* PATH is optional for --check only: the same argument-count error as ever. */
        cli_command strict = cmd;
        strict.min_args = 1;
        _cleanup_parsed_ cli_parsed again = {0};
        if (!cli_parse_or_exit(&strict, argc, argv, &again, &ec))
            return ec;
    }
    const char *context = p.args[0];
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    struct stat st;
    if (stat(context, &st) < 0 || !S_ISDIR(st.st_mode))
        return cli_fail(
            ctx, 1, "unable to prepare context: path \"%s\" not found or not a directory", context);
    _cleanup_free_ char *dockerfile = NULL;
    if (dockerfile_in_context(context, file, &dockerfile, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    for (size_t i = 0; i < tags.n; i++)
        if (str_empty(tags.items[i]) || strchr(tags.items[i], ' '))
            return cli_invalid_value(&cmd, "tag", tags.items[i], "invalid reference format");
    _cleanup_map_ cli_map args = {0};
    for (size_t i = 0; i < build_args.n; i++) {
        _cleanup_free_ char *k = NULL, *v = NULL;
        int r = cli_parse_env(build_args.items[i], &k, &v, &err);
        if (r < 0)
            return cli_invalid_value(&cmd, "build-arg", build_args.items[i], err.message);
        if (r > 0)
            cli_map_set(&args, &hypr__v1__build_options__build_args_entry__descriptor, k, v);
    }
    if (!cli_connect(ctx))
        return 1;

    Hypr__V1__BuildOptions bo = HYPR__V1__BUILD_OPTIONS__INIT;
    bo.dockerfile = dockerfile;
    bo.tags = (char **)tags.items;
    bo.n_tags = tags.n;
    bo.build_args = (Hypr__V1__BuildOptions__BuildArgsEntry **)args.entries;
    bo.n_build_args = args.n;
    if (target)
        bo.target = (char *)target;
    bo.no_cache = no_cache;
    if (platform)
        bo.platform = (char *)platform;
    Hypr__V1__BuildImageRequest req = HYPR__V1__BUILD_IMAGE_REQUEST__INIT;
    req.msg_case = HYPR__V1__BUILD_IMAGE_REQUEST__MSG_OPTIONS;
    req.options = &bo;

    _cleanup_stream_ rpc_stream *s = NULL;
    int r = rpc_client_open(ctx->client, RPC_METHOD("BuildImage"), 0, &s, &err);
    if (r < 0)
        return cli_fail_with(ctx, 1, &err);
    if (!quiet)
        fprintf(stderr, "Sending build context to hypr daemon\n");
    r = rpc_stream_send(s, &req.base, &err);
    if (r >= 0)
        r = send_context(s, context, &err);
    if (r >= 0)
        r = rpc_stream_close_send(s, &err);
    /* Even when sending failed, the daemon's own error (if it ended the call)
     * is the one worth showing: read the stream to its end. */
    _cleanup_error_ hypr_error send_err = HYPR_ERROR_INIT;
    if (r < 0) {
        send_err = err;
        err = (hypr_error)HYPR_ERROR_INIT;
    }
    _cleanup_free_ char *image_id = NULL, *last_step = NULL;
    bool failed = false;
    for (;;) {
        _cleanup_pb_ Hypr__V1__BuildEvent *ev = NULL;
        int k = rpc_stream_recv(s, &hypr__v1__build_event__descriptor, (ProtobufCMessage **)&ev, -1,
                                &err);
        if (k == 0)
            break;
        if (k < 0) {
            if (send_err.message && err.status == HYPR_OK)
                return cli_fail_with(ctx, 1, &send_err);
            return cli_fail_with(ctx, 1, &err);
        }
        if (!quiet && !str_empty(ev->step) && (!last_step || strcmp(last_step, ev->step))) {
            free(last_step);
            last_step = xstrdup(ev->step);
            printf("%s\n", ev->step);
            if (ev->cached)
                printf(" ---> Using cache\n");
        }
        if (!quiet && ev->output.len) {
            fflush(stdout);
            if (fd_write_all(STDOUT_FILENO, ev->output.data, ev->output.len) < 0)
                return 1;
        }
        /* The first step error is the cause; the build goes on reporting to its end. */
        if (!str_empty(ev->error) && !failed) {
            cli_fail(ctx, 1, "%s", ev->error);
            failed = true;
        }
        if (!str_empty(ev->image_id)) {
            free(image_id);
            image_id = xstrdup(ev->image_id);
        }
    }
    if (failed) /* the daemon's step error says more than our failed send */
        return 1;
    if (send_err.message)
        return cli_fail_with(ctx, 1, &send_err);
    if (!image_id)
        return cli_fail(ctx, 1, "the build ended without an image ID");
    _cleanup_free_ char *id = short_id(image_id, true);
    if (quiet) {
        printf("sha256:%s\n", str_startswith(image_id, "sha256:") ? image_id + 7 : image_id);
        return 0;
    }
    printf("Successfully built %s\n", id);
    for (size_t i = 0; i < tags.n; i++) {
        const char *slash = strrchr(tags.items[i], '/');
        bool tagged = strchr(slash ? slash : tags.items[i], ':') != NULL;
        printf("Successfully tagged %s%s\n", tags.items[i], tagged ? "" : ":latest");
    }
    return 0;
}
