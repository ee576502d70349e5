/* hypr cp: files between the host and a VM, as docker cp copies them.
 *
 * A tar stream carries them over an exec session: tar runs in the VM (the image must
 * have sh and tar; kestrel has no built-in copy yet) and on the host. The naming is
 * Docker's: a file or directory copied onto an existing directory goes inside it,
 * otherwise it takes the destination's name; SRC/. copies a directory's contents;
 * "-" is a tar stream on stdin or stdout. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* "VM:PATH" -> vm, path (allocated); false for a host path. A path with a '/' before
 * the ':' is a host path, as docker cp decides. */
static bool split_vm_path(const char *arg, char **vm, char **path)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg)))
        return false;
    *vm = xstrndup(arg, (size_t)(colon - arg));
    *path = xstrdup(colon + 1);
    return true;
}

/* dirname and basename of a path, without touching it. "dir/." keeps "." as the base. */
static void split_path(const char *path, char **dir, char **base)
{
    _cleanup_free_ char *a = xstrdup(path), *b = xstrdup(path);
    size_t n = strlen(b);
    while (n > 1 && b[n - 1] == '/') /* "dir/" is "dir" */
        b[--n] = '\0';
    *dir = xstrdup(dirname(a));
    *base = xstrdup(basename(b));
}

/* Spawns tar on the host with its stdin or stdout on fd and its stderr in errfd (shown
 * only when the host side is what failed); returns the pid or -errno. */
static pid_t host_tar(char *const *argv, int fd, bool fd_is_stdin, int errfd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid < 0 ? -errno : pid;
    dup2(fd, fd_is_stdin ? STDIN_FILENO : STDOUT_FILENO);
    if (errfd >= 0)
        dup2(errfd, STDERR_FILENO);
    execvp("tar", argv);
    fprintf(stderr, "hypr cp: tar: %s\n", strerror(errno));
    _exit(127);
}

/* What host tar wrote on stderr, to ours. */
static void show_host_errors(int errfd)
{
    char buf[4096];
    ssize_t n;
    lseek(errfd, 0, SEEK_SET);
    while ((n = read(errfd, buf, sizeof(buf))) > 0)
        fd_write_all(STDERR_FILENO, buf, (size_t)n);
}

static int host_wait(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Exit code of the VM side when the source is not there. */
#define CP_NOT_FOUND 3

/* The exec failed to run tar at all, or tar failed: the message a user can act on. */
static int vm_side_failed(cli_ctx *ctx, const char *vm, const char *path, int code)
{
    if (code == CP_NOT_FOUND)
        return cli_fail(ctx, 1, "Could not find the file %s in VM %s", path, vm);
    if (code == 126 || code == 127)
        return cli_fail(ctx, 1,
                        "hypr cp needs sh and tar in VM %s's image (kestrel has no built-in copy "
                        "yet)",
                        vm);
    return cli_fail(ctx, 1, "copying in VM %s failed (tar exited with %d; see above)", vm, code);
}

/* VM:SRC -> DEST (a host path, or "-" for a tar stream on stdout). */
static int copy_from_vm(cli_ctx *ctx, const char *vm, const char *src, const char *dest,
                        bool archive, bool follow)
{
    _cleanup_free_ char *sdir = NULL, *sbase = NULL;
    split_path(src, &sdir, &sbase);
    /* Docker's "Could not find the file" rather than tar's complaints. */
    static const char script[] = "cd \"$1\" 2>/dev/null && [ -e \"$2\" ] || exit 3; "
                                 "exec tar \"$3\" - \"$2\"";
    char *vm_argv[] = {"sh", "-c", (char *)script, "sh", sdir, sbase, follow ? "-chf" : "-cf"};
    int code = 0;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (strcmp(dest, "-") == 0) {
        if (cli_exec_pipe(ctx, vm, vm_argv, ARRAY_SIZE(vm_argv), -1, STDOUT_FILENO, &code, &err) <
            0)
            return cli_fail_with(ctx, 1, &err);
        return code ? vm_side_failed(ctx, vm, src, code) : 0;
    }
    /* Docker's rule: onto an existing directory the copy goes inside, else it is DEST. */
    struct stat st;
    bool into = stat(dest, &st) == 0 && S_ISDIR(st.st_mode);
    bool contents = strcmp(sbase, ".") == 0;
    _cleanup_free_ char *ddir = NULL, *dbase = NULL;
    split_path(dest, &ddir, &dbase);
    const char *parent = into ? dest : ddir;
    _cleanup_free_ char *tmp = path_join(parent, ".hypr-cp.XXXXXX");
    if (!mkdtemp(tmp))
        return cli_fail(ctx, 1, "cannot write in %s: %s", parent, strerror(errno));
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        rmdir(tmp);
        return cli_fail(ctx, 1, "pipe: %s", strerror(errno));
    }
    char *host_argv[] = {"tar", "-xf", "-", archive ? "--same-owner" : "--no-same-owner",
                         "-C",  tmp,   NULL};
    _cleanup_close_ int errfd = memfd_create("hypr-cp-tar", MFD_CLOEXEC);
    pid_t pid = host_tar(host_argv, p[0], true, errfd);
    close(p[0]);
    int r =
        pid < 0 ? pid : cli_exec_pipe(ctx, vm, vm_argv, ARRAY_SIZE(vm_argv), -1, p[1], &code, &err);
    close(p[1]);
    int hostcode = pid > 0 ? host_wait(pid) : 127;
    int rc = 0;
    if (r < 0)
        rc = cli_fail_with(ctx, 1, &err);
    else if (code)
        rc = vm_side_failed(ctx, vm, src, code);
    else if (hostcode) {
        show_host_errors(errfd);
        rc = cli_fail(ctx, 1, "extracting into %s failed (tar exited with %d)", parent, hostcode);
    }
    if (rc == 0) {
        /* The copy is tmp/SBASE (tmp itself for SRC/.): it becomes its final name. */
        _cleanup_free_ char *got = contents ? xstrdup(tmp) : path_join(tmp, sbase);
        _cleanup_free_ char *final = into && !contents ? path_join(dest, sbase) : xstrdup(dest);
        if (into && contents)
            rc = cli_fail(ctx, 1,
                          "copying the contents of %s onto the existing %s is not "
                          "supported yet: name a new directory",
                          src, dest);
        else if (rename(got, final) < 0)
            rc = cli_fail(ctx, 1, "cannot create %s: %s", final, strerror(errno));
    }
    rm_rf(tmp);
    return rc;
}

/* SRC (a host path, or "-" for a tar stream on stdin) -> VM:DEST. */
static int copy_to_vm(cli_ctx *ctx, const char *src, const char *vm, const char *dest, bool archive,
                      bool follow)
{
    /* In the VM: onto an existing directory the tar goes inside; otherwise into a
     * directory made next to DEST, whose one entry is then renamed DEST. */
    static const char script[] =
        "set -e; d=\"$1\"; own=\"$2\"; "
        "if [ -d \"$d\" ]; then exec tar -x $own -f - -C \"$d\"; fi; "
        "t=$(mktemp -d \"$(dirname \"$d\")/.hypr-cp.XXXXXX\"); "
        "tar -x $own -f - -C \"$t\"; set -- \"$t\"/* \"$t\"/.[!.]*; "
        "for e; do [ -e \"$e\" ] && { mv \"$e\" \"$d\"; break; }; done; rmdir \"$t\"";
    char *vm_argv[] = {"sh", "-c", (char *)script, "sh", (char *)dest, archive ? "" : "-o"};
    int code = 0;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (strcmp(src, "-") == 0) {
        if (cli_exec_pipe(ctx, vm, vm_argv, ARRAY_SIZE(vm_argv), STDIN_FILENO, STDOUT_FILENO, &code,
                          &err) < 0)
            return cli_fail_with(ctx, 1, &err);
        return code ? vm_side_failed(ctx, vm, dest, code) : 0;
    }
    struct stat st;
    if ((follow ? stat(src, &st) : lstat(src, &st)) < 0)
        return cli_fail(ctx, 1, "could not find the file %s on the host: %s", src, strerror(errno));
    _cleanup_free_ char *sdir = NULL, *sbase = NULL;
    split_path(src, &sdir, &sbase);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return cli_fail(ctx, 1, "pipe: %s", strerror(errno));
    char *host_argv[] = {"tar", follow ? "-chf" : "-cf", "-", "-C", sdir, sbase, NULL};
    _cleanup_close_ int errfd = memfd_create("hypr-cp-tar", MFD_CLOEXEC);
    pid_t pid = host_tar(host_argv, p[1], false, errfd);
    close(p[1]);
    int r = pid < 0 ? pid
                    : cli_exec_pipe(ctx, vm, vm_argv, ARRAY_SIZE(vm_argv), p[0], STDOUT_FILENO,
                                    &code, &err);
    close(p[0]);
    int hostcode = pid > 0 ? host_wait(pid) : 127;
    if (r < 0)
        return cli_fail_with(ctx, 1, &err);
    if (code)
        return vm_side_failed(ctx, vm, dest, code);
    if (hostcode) {
        show_host_errors(errfd);
        return cli_fail(ctx, 1, "reading %s failed (tar exited with %d)", src, hostcode);
    }
    return 0;
}

int cmd_cp(cli_ctx *ctx, int argc, char **argv)
{
    bool archive = false, follow = false;
    const cli_option opts[] = {
        CLI_BOOL('a', "archive", &archive, "Archive mode (copy all uid/gid information)"),
        CLI_BOOL('L', "follow-link", &follow, "Always follow symbol link in SRC_PATH"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] VM:SRC_PATH DEST_PATH|-\n\thypr cp [OPTIONS] SRC_PATH|- VM:DEST_PATH",
        .description = "Copy files/folders between a VM and the local filesystem",
        .options = opts,
        .min_args = 2,
        .max_args = 2,
        .notes = "Use '-' as the source to read a tar archive from stdin and extract it to a "
                 "directory\ndestination in a VM, or as the destination to write a tar archive "
                 "of the VM's\nsource to stdout. SRC_PATH/. copies a directory's contents. The "
                 "VM must be running,\nand its image must have sh and tar.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    _cleanup_free_ char *svm = NULL, *spath = NULL, *dvm = NULL, *dpath = NULL;
    bool from = split_vm_path(p.args[0], &svm, &spath);
    bool to = split_vm_path(p.args[1], &dvm, &dpath);
    if (from && to)
        return cli_usage_error(&cmd, "copying between VMs is not supported");
    if (!from && !to)
        return cli_usage_error(&cmd, "must specify at least one VM source (VM:PATH)");
    if ((from && str_empty(spath)) || (to && str_empty(dpath)))
        return cli_usage_error(&cmd, "the path in the VM is empty");
    if (!cli_connect(ctx))
        return 1;
    return from ? copy_from_vm(ctx, svm, spath, p.args[1], archive, follow)
                : copy_to_vm(ctx, p.args[0], dvm, dpath, archive, follow);
}
