/* kestrel's pure decisions (see logic.h). */
#include "logic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

void kstrv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t kstrv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

/* ---- environment ---- */

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : 0;
}

static int env_set(char ***env, size_t *n, const char *kv)
{
    size_t kl = key_len(kv);
    if (kl == 0)
        return 0; /* no '=' or empty key: dropped */
    char *c = dup_str(kv);
    if (!c)
        return -ENOMEM;
    for (size_t i = 0; i < *n; i++) {
        if (strncmp((*env)[i], kv, kl + 1) == 0) {
            free((*env)[i]);
            (*env)[i] = c;
            return 0;
        }
    }
    char **nv = realloc(*env, (*n + 2) * sizeof(char *));
    if (!nv) {
        free(c);
        return -ENOMEM;
    }
    nv[(*n)++] = c;
    nv[*n] = NULL;
    *env = nv;
    return 0;
}

char **env_merge(char *const *base, char *const *overrides)
{
    size_t n = 0;
    char **env = calloc(1, sizeof(char *));
    if (!env)
        return NULL;
    for (size_t i = 0; base && base[i]; i++)
        if (env_set(&env, &n, base[i]) < 0)
            goto oom;
    for (size_t i = 0; overrides && overrides[i]; i++)
        if (env_set(&env, &n, overrides[i]) < 0)
            goto oom;
    return env;
oom:
    kstrv_free(env);
    return NULL;
}

const char *env_get(char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
            return env[i] + kl + 1;
    return NULL;
}

int env_default(char ***env, const char *key, const char *value)
{
    if (env_get(*env, key))
        return 0;
    size_t kl = strlen(key), vl = strlen(value);
    char *kv = malloc(kl + vl + 2);
    if (!kv)
        return -ENOMEM;
    memcpy(kv, key, kl);
    kv[kl] = '=';
    memcpy(kv + kl + 1, value, vl + 1);
    size_t n = kstrv_len(*env);
    int r = env_set(env, &n, kv);
    free(kv);
    return r;
}

/* ---- argv ---- */

int argv_build(char *const *entrypoint, char *const *cmd, char ***out)
{
    size_t ne = kstrv_len(entrypoint), nc = kstrv_len(cmd);
    if (ne + nc == 0)
        return -EINVAL;
    char **v = calloc(ne + nc + 1, sizeof(char *));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < ne + nc; i++) {
        v[i] = dup_str(i < ne ? entrypoint[i] : cmd[i - ne]);
        if (!v[i]) {
            kstrv_free(v);
            return -ENOMEM;
        }
    }
    if (v[0][0] == 0) {
        kstrv_free(v);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* ---- users and groups ---- */

void kestrel_ids_free(kestrel_ids *ids)
{
    free(ids->groups);
    free(ids->home);
    free(ids->name);
    memset(ids, 0, sizeof(*ids));
}

static bool parse_id(const char *s, size_t n, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 0xfffffffeUL) /* (uid_t)-1 means "unchanged" to setuid */
        return false;
    *out = v;
    return true;
}

/* Splits a colon-separated line into at most max fields (pointers into line). */
static size_t split_fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        char *c = strchr(p, ':');
        if (!c)
            break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

static void chomp(char *s, ssize_t *len)
{
    while (*len > 0 && (s[*len - 1] == '\n' || s[*len - 1] == '\r'))
        s[--*len] = 0;
}

typedef struct pw_match {
    bool found;
    unsigned long uid, gid;
    char *name;
    char *home;
} pw_match;

/* by_name: match name; else match uid. */
static int passwd_find(const char *path, const char *name, size_t name_len, unsigned long uid,
                       pw_match *m)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int r = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        chomp(line, &len);
        char *fl[7];
        if (line[0] == '#' || split_fields(line, fl, 7) < 4)
            continue;
        unsigned long u, g;
        if (!parse_id(fl[2], strlen(fl[2]), &u) || !parse_id(fl[3], strlen(fl[3]), &g))
            continue;
        bool hit =
            name ? (strlen(fl[0]) == name_len && memcmp(fl[0], name, name_len) == 0) : u == uid;
        if (!hit)
            continue;
        m->found = true;
        m->uid = u;
        m->gid = g;
        m->name = dup_str(fl[0]);
        m->home = dup_str(fl[5] && fl[5][0] ? fl[5] : "/");
        if (!m->name || !m->home)
            r = -ENOMEM;
        break;
    }
    free(line);
    fclose(f);
    return r;
}

static int group_find(const char *path, const char *name, size_t name_len, unsigned long *gid)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -ENOENT;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int r = -ENOENT;
    while ((len = getline(&line, &cap, f)) >= 0) {
        chomp(line, &len);
        char *fl[4];
        if (line[0] == '#' || split_fields(line, fl, 4) < 3)
            continue;
        unsigned long g;
        if (strlen(fl[0]) == name_len && memcmp(fl[0], name, name_len) == 0 &&
            parse_id(fl[2], strlen(fl[2]), &g)) {
            *gid = g;
            r = 0;
            break;
        }
    }
    free(line);
    fclose(f);
    return r;
}

static int add_group(kestrel_ids *ids, gid_t g)
{
    for (size_t i = 0; i < ids->ngroups; i++)
        if (ids->groups[i] == g)
            return 0;
    if (ids->ngroups >= 65536)
        return 0;
    gid_t *ng = realloc(ids->groups, (ids->ngroups + 1) * sizeof(gid_t));
    if (!ng)
        return -ENOMEM;
    ng[ids->ngroups++] = g;
    ids->groups = ng;
    return 0;
}

/* Every group whose member list names user. */
static int supplementary_groups(const char *path, const char *user, kestrel_ids *ids)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int r = 0;
    while (r == 0 && (len = getline(&line, &cap, f)) >= 0) {
        chomp(line, &len);
        char *fl[4];
        unsigned long g;
        if (line[0] == '#' || split_fields(line, fl, 4) < 4 || !parse_id(fl[2], strlen(fl[2]), &g))
            continue;
        for (char *m = fl[3]; m && *m;) {
            char *comma = strchr(m, ',');
            size_t ml = comma ? (size_t)(comma - m) : strlen(m);
            if (ml == strlen(user) && memcmp(m, user, ml) == 0) {
                r = add_group(ids, (gid_t)g);
                break;
            }
            m = comma ? comma + 1 : NULL;
        }
    }
    free(line);
    fclose(f);
    return r;
}

int user_resolve(const char *spec, const char *passwd_path, const char *group_path,
                 kestrel_ids *out)
{
    memset(out, 0, sizeof(*out));
    const char *colon = strchr(spec, ':');
    size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *gspec = colon ? colon + 1 : NULL;
    if (gspec && (*gspec == 0 || strchr(gspec, ':')))
        return -EINVAL;

    pw_match pw = {0};
    unsigned long uid = 0;
    int r;
    if (ulen == 0) {
        r = passwd_find(passwd_path, NULL, 0, 0, &pw);
    } else if (parse_id(spec, ulen, &uid)) {
        r = passwd_find(passwd_path, NULL, 0, uid, &pw);
    } else {
        r = passwd_find(passwd_path, spec, ulen, 0, &pw);
        if (r == 0 && !pw.found)
            r = -ENOENT;
        uid = pw.uid;
    }
    if (r < 0)
        goto fail;

    unsigned long gid = pw.found ? pw.gid : 0;
    if (gspec && !parse_id(gspec, strlen(gspec), &gid)) {
        r = group_find(group_path, gspec, strlen(gspec), &gid);
        if (r < 0)
            goto fail;
    }
    out->uid = (uid_t)uid;
    out->gid = (gid_t)gid;
    out->name = pw.name;
    pw.name = NULL;
    if (pw.home) {
        out->home = pw.home;
        pw.home = NULL;
    } else {
        out->home = dup_str(uid == 0 ? "/root" : "/");
        if (!out->home) {
            r = -ENOMEM;
            goto fail;
        }
    }
    r = add_group(out, out->gid);
    if (r == 0 && out->name)
        r = supplementary_groups(group_path, out->name, out);
    if (r < 0)
        goto fail;
    return 0;
fail:
    free(pw.name);
    free(pw.home);
    kestrel_ids_free(out);
    return r;
}

/* ---- restart policy ---- */

bool restart_should(restart_policy policy, uint32_t max, int code, uint32_t restarts,
                    bool stop_requested)
{
    if (stop_requested)
        return false;
    switch (policy) {
    case RESTART_ALWAYS:
    case RESTART_UNLESS_STOPPED:
        /* Inside the VM both mean the same; they differ only in what hyprd does
         * after a daemon restart. */
        return true;
    case RESTART_ON_FAILURE:
        return code != 0 && (max == 0 || restarts < max);
    default:
        return false;
    }
}

uint32_t restart_backoff_ms(uint32_t n)
{
    if (n >= 9) /* 100 * 2^9 = 51200 > cap */
        return KESTREL_BACKOFF_MAX_MS;
    uint32_t ms = 100u << n;
    return ms > KESTREL_BACKOFF_MAX_MS ? KESTREL_BACKOFF_MAX_MS : ms;
}

/* ---- exec ---- */

int exit_code_from_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

int exec_failure_code(int err)
{
    return err == ENOENT || err == ENOTDIR ? 127 : 126;
}

int exec_search(const char *file, char *const argv[], char *const envp[], const char *path)
{
    if (!file || !*file)
        return ENOENT;
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return errno;
    }
    if (!path)
        path = KESTREL_DEFAULT_PATH;
    size_t fl = strlen(file);
    int saved = ENOENT;
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t dl = end ? (size_t)(end - p) : strlen(p);
        char *full = malloc(dl + fl + 2);
        if (!full)
            return ENOMEM;
        size_t o = 0;
        if (dl == 0) {
            full[o++] = '.'; /* an empty PATH element means the current directory */
        } else {
            memcpy(full, p, dl);
            o = dl;
        }
        full[o++] = '/';
        memcpy(full + o, file, fl + 1);
        execve(full, argv, envp);
        int e = errno;
        free(full);
        if (e == EACCES)
            saved = EACCES; /* keep looking, report "permission denied" if nothing else */
        else if (e != ENOENT && e != ENOTDIR)
            return e;
        if (!end)
            break;
        p = end;
    }
    return saved;
}
