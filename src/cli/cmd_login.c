/* hypr login / hypr logout: registry credentials in the Docker client's
 * config.json ($DOCKER_CONFIG/config.json or ~/.docker/config.json), which
 * hyprd reads when it pulls. Like docker login, the daemon checks the
 * credentials against the registry first (the Login RPC, with its own registry
 * settings); only then are they saved here. Logout needs no daemon. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"
#include "creds/creds.h"

#include <string.h>
#include <termios.h>

/* Reads one line from f without its line ending; NULL at EOF with nothing read. */
static char *read_line(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

/* Prompts on stderr and reads a line from the terminal (echo off for secrets). */
static char *prompt(const char *label, bool secret)
{
    fprintf(stderr, "%s: ", label);
    fflush(stderr);
    struct termios old, quiet;
    bool restore = false;
    if (secret && tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        restore = tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
    }
    char *line = read_line(stdin);
    if (restore)
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
    return line;
}

static void wipe(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
}

int cmd_login(cli_ctx *ctx, int argc, char **argv)
{
    const char *username = NULL, *password = NULL;
    bool password_stdin = false;
    const cli_option opts[] = {
        CLI_STRING('p', "password", "string", &password, "Password"),
        CLI_BOOL(0, "password-stdin", &password_stdin, "Take the password from stdin"),
        CLI_STRING('u', "username", "string", &username, "Username"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] [SERVER]",
        .description = "Log in to a registry.\n"
                       "If no server is specified, the default is Docker Hub.",
        .options = opts,
        .min_args = 0,
        .max_args = 1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (password && password_stdin)
        return cli_usage_error(&cmd, "--password and --password-stdin are mutually exclusive");
    if (password_stdin && str_empty(username))
        return cli_usage_error(&cmd, "Must provide --username with --password-stdin");
    if (password)
        fprintf(stderr, "WARNING! Using --password via the CLI is insecure. Use "
                        "--password-stdin.\n");
    const char *server = p.nargs ? p.args[0] : NULL;
    _cleanup_free_ char *key = creds_key(server);

    _cleanup_free_ char *user = username ? xstrdup(username) : NULL;
    _cleanup_free_ char *pass = password ? xstrdup(password) : NULL;
    if (password_stdin) {
        pass = read_line(stdin);
        if (!pass)
            pass = xstrdup("");
    }
    bool tty = isatty(STDIN_FILENO);
    if ((str_empty(user) || !pass) && !tty)
        return cli_fail(ctx, 1, "Cannot perform an interactive login from a non TTY device");
    if (str_empty(user)) {
        free(user);
        user = prompt("Username", false);
        if (str_empty(user))
            return cli_fail(ctx, 1, "Username is required");
    }
    if (!pass)
        pass = prompt("Password", true);
    if (str_empty(pass)) {
        wipe(pass);
        return cli_fail(ctx, 1, "Password is required");
    }

    if (!cli_connect(ctx)) {
        wipe(pass);
        return 1;
    }
    Hypr__V1__LoginRequest req = HYPR__V1__LOGIN_REQUEST__INIT;
    req.registry = strcmp(key, CREDS_DOCKER_HUB_KEY) ? key : "";
    req.username = user;
    req.password = pass;
    _cleanup_pb_ Hypr__V1__LoginResponse *resp = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = cli_unary_err(ctx, RPC_METHOD("Login"), &req, &hypr__v1__login_response__descriptor,
                          &resp, &err);
    if (r < 0) {
        wipe(pass);
        return cli_fail_with(ctx, 1, &err);
    }
    /* No identity token to keep: the registries hyprd talks to hand out none. */
    _cleanup_free_ char *path = NULL;
    r = creds_store(NULL, key, user, pass, &path, &err);
    wipe(pass);
    if (r < 0) {
        hypr_err_prefix(&err, "saving credentials");
        return cli_fail_with(ctx, 1, &err);
    }
    fprintf(stderr,
            "WARNING! Your password will be stored unencrypted in %s.\n"
            "Configure a credential helper to remove this warning. See\n"
            "https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n\n",
            path);
    printf("%s\n", str_empty(resp->status) ? "Login Succeeded" : resp->status);
    return 0;
}

int cmd_logout(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[SERVER]",
        .description = "Log out from a registry.\n"
                       "If no server is specified, the default is Docker Hub.",
        .min_args = 0,
        .max_args = 1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    _cleanup_free_ char *key = creds_key(p.nargs ? p.args[0] : NULL);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = creds_erase(NULL, key, &err);
    if (r == -ENOENT) {
        printf("Not logged in to %s\n", key);
        return 0;
    }
    if (r < 0)
        return cli_fail_with(ctx, 1, &err);
    printf("Removing login credentials for %s\n", key);
    return 0;
}
