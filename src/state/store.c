/* Opening the database, error mapping, transactions, settings and counts. */
#define LOG_MODULE "state"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "state/store-private.h"

#define BUSY_TIMEOUT_MS 5000

static hypr_status status_from_sqlite(int rc, int *errnum)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        *errnum = EBUSY;
        return HYPR_UNAVAILABLE;
    case SQLITE_FULL:
        *errnum = ENOSPC;
        return HYPR_RESOURCE_EXHAUSTED;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        *errnum = EACCES;
        return HYPR_PERMISSION_DENIED;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        *errnum = EBADMSG;
        return HYPR_DATA_LOSS;
    case SQLITE_CANTOPEN:
        *errnum = ENOENT;
        return HYPR_UNAVAILABLE;
    case SQLITE_CONSTRAINT:
        *errnum = EINVAL;
        return HYPR_FAILED_PRECONDITION;
    case SQLITE_NOMEM:
        *errnum = ENOMEM;
        return HYPR_RESOURCE_EXHAUSTED;
    default:
        *errnum = EIO;
        return HYPR_INTERNAL;
    }
}

int store_db_error(store *s, int rc, hypr_error *err, const char *fmt, ...)
{
    int errnum;
    hypr_status status = status_from_sqlite(rc, &errnum);
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *op = xvasprintf(fmt, ap);
    va_end(ap);
    /* errmsg belongs to the connection and may describe an older call; only trust it
     * when it reports the same result code. */
    const char *msg =
        s && s->db && sqlite3_errcode(s->db) == rc ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    return hypr_err(err, status, errnum, "%s: %s", op, msg);
}

int store_prepare(store *s, const char *sql, sqlite3_stmt **out, hypr_error *err, const char *fmt,
                  ...)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, out, NULL);
    if (rc == SQLITE_OK)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *op = xvasprintf(fmt, ap);
    va_end(ap);
    return store_db_error(s, rc, err, "%s", op);
}

int store_exec(store *s, const char *sql, hypr_error *err, const char *op)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_db_error(s, rc, err, "%s", op);
    return 0;
}

/* ---- transactions -------------------------------------------------------- */

/* Prefixes err with the caller's context when BEGIN or COMMIT failed. */
__attribute__((format(printf, 3, 0))) static int tx_context(hypr_error *err, int r, const char *fmt,
                                                            va_list ap)
{
    _cleanup_free_ char *ctx = xvasprintf(fmt, ap);
    hypr_err_prefix(err, "%s", ctx);
    return r;
}

int store_tx_run(store *s, store_tx_fn fn, void *ud, hypr_error *err, const char *fmt, ...)
{
    int depth = s->tx_depth;
    _cleanup_free_ char *begin = NULL, *commit = NULL, *rollback = NULL;
    if (depth == 0) {
        /* IMMEDIATE takes the write lock up front, so a concurrent writer waits in
         * busy_timeout instead of failing with SQLITE_BUSY at the first write. */
        begin = xstrdup("BEGIN IMMEDIATE");
        commit = xstrdup("COMMIT");
        rollback = xstrdup("ROLLBACK");
    } else {
        begin = xasprintf("SAVEPOINT hypr_sp%d", depth);
        commit = xasprintf("RELEASE hypr_sp%d", depth);
        rollback = xasprintf("ROLLBACK TO hypr_sp%d; RELEASE hypr_sp%d", depth, depth);
    }
    int r = store_exec(s, begin, err, "begin transaction");
    if (r < 0) {
        va_list ap;
        va_start(ap, fmt);
        r = tx_context(err, r, fmt, ap);
        va_end(ap);
        return r;
    }
    s->tx_depth++;
    r = fn(s, ud, err);
    if (r >= 0) {
        r = store_exec(s, commit, err, "commit transaction");
        if (r >= 0) {
            s->tx_depth--;
            return 0;
        }
        va_list ap;
        va_start(ap, fmt);
        tx_context(err, r, fmt, ap);
        va_end(ap);
    }
    /* A failed COMMIT leaves the transaction open, so it is rolled back too. Keep the
     * first error: it says why. */
    int rc = sqlite3_exec(s->db, rollback, NULL, NULL, NULL);
    if (rc != SQLITE_OK && sqlite3_get_autocommit(s->db) == 0)
        log_warn("roll back transaction: %s", sqlite3_errmsg(s->db));
    s->tx_depth--;
    return r;
}

typedef struct public_tx {
    int (*fn)(store *s, void *ud);
    void *ud;
} public_tx;

static int public_tx_fn(store *s, void *ud, hypr_error *err)
{
    public_tx *tx = ud;
    int r = tx->fn(s, tx->ud);
    if (r < 0 && err && !err->message) {
        /* fn has no error record of its own; give the caller at least the errno. */
        hypr_err(err, hypr_status_from_errno(r), -r, "transaction failed: %s", strerror(-r));
    }
    return r;
}

int store_transaction(store *s, int (*fn)(store *s, void *ud), void *ud, hypr_error *err)
{
    STORE_LOCKED(s);
    public_tx tx = {fn, ud};
    return store_tx_run(s, public_tx_fn, &tx, err, "transaction");
}

/* ---- open / close -------------------------------------------------------- */

/* SQLite creates files with 0644 (less umask); settings may hold registry
 * credentials, so the file is created owner-only first. SQLite gives the -wal and
 * -shm files the database file's mode. */
static int precreate(const char *path, hypr_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    return hypr_err(err, errno == EACCES ? HYPR_PERMISSION_DENIED : HYPR_UNAVAILABLE, errno,
                    "open database %s: %s", path, strerror(errno));
}

/* WAL lets readers (CLI-facing lists) run while the daemon writes. */
static int set_wal(store *s, hypr_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s, "PRAGMA journal_mode=WAL", &st, err, "set journal mode");
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return store_db_error(s, rc, err, "set journal mode");
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (!mode || strcmp(mode, "wal") != 0)
        log_warn("database %s: journal mode is %s, not wal (file system without shared "
                 "memory?)",
                 s->path, mode ? mode : "unknown");
    return 0;
}

static int configure(store *s, int target, hypr_error *err)
{
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    /* The first statement that reads the file: a non-database fails here. */
    int version = 0;
    int r = store_user_version(s, &version, err);
    if (r < 0) {
        if (err && err->status == HYPR_DATA_LOSS)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EINVAL,
                            "open database %s: file is not a hypr database (%s)", s->path,
                            sqlite3_errmsg(s->db));
        return r;
    }
    if (version > store_latest_version())
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOTSUP,
                        "database schema version %d is newer than this hyprd supports (%d)",
                        version, store_latest_version());

    r = set_wal(s, err);
    if (r < 0)
        return r;

    r = store_exec(s, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL", err,
                   "set database options");
    if (r < 0)
        return r;
    return store_migrate(s, target, err);
}

static int open_store(const char *path, int target, store **out, hypr_error *err)
{
    *out = NULL;
    if (str_empty(path))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "open database: no path given");
    int r = precreate(path, err);
    if (r < 0)
        return r;

    _cleanup_(store_closep) store *s = xcalloc(1, sizeof(*s));
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    s->path = xstrdup(path);

    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK)
        return store_db_error(s, rc, err, "open database %s", path);

    r = configure(s, target, err);
    if (r < 0) {
        if (err && err->message && !strstr(err->message, path))
            hypr_err_prefix(err, "open database %s", path);
        return r;
    }
    log_debug("opened %s (schema version %d)", path, s->version);
    *out = TAKE_PTR(s);
    return 0;
}

int store_open(const char *path, store **out, hypr_error *err)
{
    return open_store(path, store_latest_version(), out, err);
}

/* Test-only: leaves the schema at an older version to exercise migrations. */
int store_open_at_version(const char *path, int version, store **out, hypr_error *err)
{
    if (version < 1 || version > store_latest_version())
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "schema version %d is out of range (1..%d)", version,
                        store_latest_version());
    return open_store(path, version, out, err);
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->db) {
        int rc = sqlite3_close_v2(s->db);
        if (rc != SQLITE_OK)
            log_warn("close database %s: %s", s->path, sqlite3_errstr(rc));
    }
    pthread_mutex_destroy(&s->lock);
    free(s->path);
    free(s);
}

int store_schema_version(store *s)
{
    STORE_LOCKED(s);
    return s->version;
}

/* ---- settings ------------------------------------------------------------ */

void store_kv_free(store_kv *kv, size_t n)
{
    if (!kv)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

int store_setting_get(store *s, const char *key, char **value, hypr_error *err)
{
    STORE_LOCKED(s);
    *value = NULL;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s, "SELECT value FROM settings WHERE key = ?1", &st, err, "read setting");
    if (r < 0)
        return r;
    store_binder b = STORE_BINDER(st);
    bind_text(&b, key);
    if (b.rc != SQLITE_OK)
        return store_db_error(s, b.rc, err, "read setting %s", key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "no such setting: %s", key);
    if (rc != SQLITE_ROW)
        return store_db_error(s, rc, err, "read setting %s", key);
    store_row row = STORE_ROW(st);
    *value = row_text(&row);
    if (!*value)
        *value = xstrdup("");
    return 0;
}

typedef struct settings_batch {
    const store_kv *kv;
    size_t n;
} settings_batch;

static int settings_set_tx(store *s, void *ud, hypr_error *err)
{
    const settings_batch *batch = ud;
    _cleanup_stmt_ sqlite3_stmt *set = NULL, *unset = NULL;
    int r = store_prepare(s,
                          "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                          "updated_at = excluded.updated_at",
                          &set, err, "write settings");
    if (r < 0)
        return r;
    r = store_prepare(s, "DELETE FROM settings WHERE key = ?1", &unset, err, "write settings");
    if (r < 0)
        return r;
    int64_t now = time_now_ms() / 1000;
    for (size_t i = 0; i < batch->n; i++) {
        const store_kv *kv = &batch->kv[i];
        if (str_empty(kv->key))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "setting name is empty");
        sqlite3_stmt *st = kv->value ? set : unset;
        sqlite3_reset(st);
        store_binder b = STORE_BINDER(st);
        bind_text(&b, kv->key);
        if (kv->value) {
            bind_text(&b, kv->value);
            bind_int64(&b, now);
        }
        int rc = b.rc != SQLITE_OK ? b.rc : sqlite3_step(st);
        if (rc != SQLITE_DONE)
            return store_db_error(s, rc, err, "set %s", kv->key);
    }
    return 0;
}

/* A NULL value removes the setting. */
int store_settings_set(store *s, const store_kv *kv, size_t n, hypr_error *err)
{
    STORE_LOCKED(s);
    settings_batch batch = {kv, n};
    return store_tx_run(s, settings_set_tx, &batch, err, "set settings");
}

int store_settings_list(store *s, store_kv **out, size_t *n, hypr_error *err)
{
    STORE_LOCKED(s);
    *out = NULL;
    *n = 0;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r =
        store_prepare(s, "SELECT key, value FROM settings ORDER BY key", &st, err, "list settings");
    if (r < 0)
        return r;
    store_kv *kv = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            kv = xrealloc(kv, cap * sizeof(*kv));
        }
        store_row row = STORE_ROW(st);
        kv[count].key = row_text(&row);
        kv[count].value = row_text(&row);
        count++;
    }
    if (rc != SQLITE_DONE) {
        store_kv_free(kv, count);
        return store_db_error(s, rc, err, "list settings");
    }
    *out = kv;
    *n = count;
    return 0;
}

/* ---- counts ---------------------------------------------------------------- */

int store_count(store *s, store_counts *out, hypr_error *err)
{
    STORE_LOCKED(s);
    *out = (store_counts){0};
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s,
                          "SELECT (SELECT count(*) FROM vms), "
                          "(SELECT count(*) FROM vms WHERE status IN "
                          "('running', 'booting', 'restarting')), "
                          "(SELECT count(*) FROM images), "
                          "(SELECT coalesce(sum(size_bytes), 0) FROM images), "
                          "(SELECT count(*) FROM networks), (SELECT count(*) FROM volumes), "
                          "(SELECT count(*) FROM stacks)",
                          &st, err, "count records");
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return store_db_error(s, rc, err, "count records");
    store_row row = STORE_ROW(st);
    out->vms = (uint32_t)row_int64(&row);
    out->vms_running = (uint32_t)row_int64(&row);
    out->images = (uint32_t)row_int64(&row);
    out->images_size_bytes = (uint64_t)row_int64(&row);
    out->networks = (uint32_t)row_int64(&row);
    out->volumes = (uint32_t)row_int64(&row);
    out->stacks = (uint32_t)row_int64(&row);
    return 0;
}
