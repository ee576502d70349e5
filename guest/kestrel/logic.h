/* kestrel's pure decisions, kept free of PID 1 side effects so the host's unit
 * tests can call them: environment merging, argv building, user/group
 * resolution from given passwd/group files, restart policy and backoff,
 * exec-failure exit codes. Depends only on libc and kestrel/manifest.h. */
#ifndef KESTREL_LOGIC_H
#define KESTREL_LOGIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kestrel/manifest.h"

#define KESTREL_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void kstrv_free(char **v);
size_t kstrv_len(char *const *v);

/* New NULL-terminated "K=V" vector: base, then each overrides entry replaces the
 * entry with the same key in place (or is appended). Entries without '=' or
 * with an empty key are dropped. Either input may be NULL. NULL on ENOMEM. */
char **env_merge(char *const *base, char *const *overrides);
/* Value of key in env, or NULL. */
const char *env_get(char *const *env, const char *key);
/* Adds KEY=value when key is absent (0), or leaves env alone; -ENOMEM. */
int env_default(char ***env, const char *key, const char *value);

/* entrypoint followed by cmd; -EINVAL when both are empty, -ENOMEM. */
int argv_build(char *const *entrypoint, char *const *cmd, char ***out);

typedef struct kestrel_ids {
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* supplementary groups incl. gid; free with kestrel_ids_free */
    size_t ngroups;
    char *home; /* from passwd, "/" when unknown (root: "/root") */
    char *name; /* user name or NULL */
} kestrel_ids;
void kestrel_ids_free(kestrel_ids *ids);
/* spec: "" (root), "uid", "name", "uid:gid", "name:group", "uid:group"...
 * Names are looked up in passwd_path / group_path (missing files = empty).
 * Numeric ids need no entry (gid defaults to the passwd entry's, else 0).
 * -ENOENT when a name is unknown, -EINVAL on a malformed spec, -ENOMEM. */
int user_resolve(const char *spec, const char *passwd_path, const char *group_path,
                 kestrel_ids *out);

/* Restart decision after the workload exited with code (shell style).
 * restarts = how many restarts already happened. */
bool restart_should(restart_policy policy, uint32_t max, int code, uint32_t restarts,
                    bool stop_requested);
/* Exponential backoff before restart number n (0-based count of quick
 * consecutive failures): 100 ms * 2^n, capped at KESTREL_BACKOFF_MAX_MS. */
#define KESTREL_BACKOFF_MAX_MS   30000u
#define KESTREL_BACKOFF_RESET_MS 10000u /* a run this long resets the backoff */
uint32_t restart_backoff_ms(uint32_t n);

/* Shell-style exit code for a wait status: code, or 128 + signal. */
int exit_code_from_status(int status);
/* Exit code for an execve() failure: 127 for not found, 126 otherwise. */
int exec_failure_code(int err);
/* execve() file like execvpe() but searching the given PATH (NULL: default).
 * Returns only on failure, with the errno the shell would report. */
int exec_search(const char *file, char *const argv[], char *const envp[], const char *path);

#endif
