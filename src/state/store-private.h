/* Internals shared by the state module's files; nothing outside src/state includes this. */
#ifndef HYPR_STORE_PRIVATE_H
#define HYPR_STORE_PRIVATE_H

#include <pthread.h>
#include <sqlite3.h>

#include "state/state.h"

struct store {
    sqlite3 *db;
    char *path;
    int version;
    /* Nesting depth of store_tx_run: the outermost level is BEGIN IMMEDIATE, inner
     * levels are savepoints, so a caller's transaction can wrap store functions that
     * open their own. */
    int tx_depth;
    /* Recursive so that a transaction callback can call back into the store while
     * the transaction holds the lock; other threads wait for the whole transaction. */
    pthread_mutex_t lock;
};

DEFINE_CLEANUP_FUNC(sqlite3_stmt, sqlite3_finalize)
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

static inline store *store_lock(store *s)
{
    pthread_mutex_lock(&s->lock);
    return s;
}
static inline void store_unlockp(store **s)
{
    if (*s)
        pthread_mutex_unlock(&(*s)->lock);
}
/* Holds the store's lock until the end of the enclosing scope. */
#define STORE_LOCKED(s)                                                                            \
    _cleanup_(store_unlockp) store *store_locked_ __attribute__((unused)) = store_lock(s)

/* Fills err with "<op>: <sqlite message>" and a status that fits the SQLite result
 * code rc; returns the matching negative errno. */
int store_db_error(store *s, int rc, hypr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* fmt names the operation for the error message (only formatted on failure). */
int store_prepare(store *s, const char *sql, sqlite3_stmt **out, hypr_error *err, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
/* Runs SQL without results (may hold several statements). */
int store_exec(store *s, const char *sql, hypr_error *err, const char *op);

/* Runs fn in a transaction (a savepoint when one is already open); rolls back when fn
 * returns a negative value. fmt is the context of BEGIN/COMMIT failures. Callers hold
 * the lock. */
typedef int (*store_tx_fn)(store *s, void *ud, hypr_error *err);
int store_tx_run(store *s, store_tx_fn fn, void *ud, hypr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Reads PRAGMA user_version: the schema version of the file. */
int store_user_version(store *s, int *out, hypr_error *err);
/* Applies migrations up to target (1..store_latest_version()). */
int store_migrate(store *s, int target, hypr_error *err);

/* ---- binding parameters and reading columns, left to right ------------- */

typedef struct store_binder {
    sqlite3_stmt *st;
    int idx;
    int rc; /* first failure, SQLITE_OK if none */
} store_binder;
#define STORE_BINDER(st)                                                                           \
    {                                                                                              \
        (st), 0, SQLITE_OK                                                                         \
    }
/* NULL binds SQL NULL. */
void bind_text(store_binder *b, const char *v);
void bind_int64(store_binder *b, int64_t v);
/* A NULL v binds NULL; len 0 with a non-NULL v binds the NUL-terminated text. */
void bind_blob(store_binder *b, const void *v, size_t len);

typedef struct store_row {
    sqlite3_stmt *st;
    int col;
} store_row;
#define STORE_ROW(st)                                                                              \
    {                                                                                              \
        (st), 0                                                                                    \
    }
char *row_text(store_row *r); /* NULL for SQL NULL */
int64_t row_int64(store_row *r);
void row_id(store_row *r, char out[HYPR_ID_LEN + 1]);
/* Copied with a trailing NUL that len does not count; NULL/0 for SQL NULL. */
char *row_blob(store_row *r, size_t *len);

/* ---- tables addressed by ID / name -------------------------------------- */

typedef struct store_entity {
    const char *table;
    const char *columns;    /* SELECT list, in read_row order */
    const char *key_col;    /* what deletes match: "id" or "name" */
    const char *order;      /* ORDER BY of lists */
    const char *noun;       /* "VM" */
    const char *nouns;      /* "VMs" */
    const char *name_label; /* what the UNIQUE column is called in messages */
    bool has_id;            /* has a hex id column: ID and ID-prefix lookups */
    size_t size;            /* of one record struct */
    void (*read_row)(store_row *r, void *obj);
    /* Binds every column in `columns` order. */
    void (*bind_row)(store_binder *b, const void *obj);
    void (*clear)(void *obj);
    /* Loads rows of child tables for n records, may be NULL. */
    int (*load_links)(store *s, void *objs, size_t n, hypr_error *err);
} store_entity;

/* Defines fn_obj, which wraps a typed clear function for the entity table's void * interface. */
#define ENTITY_CLEAR(type, fn)                                                                     \
    static void fn##_obj(void *obj)                                                                \
    {                                                                                              \
        fn((type *)obj);                                                                           \
    }

/* SELECT <columns> WHERE <where> with up to two text parameters (NULL = unused).
 * Reads the first row into obj; returns the number of matching rows (0 = none,
 * obj untouched) or a negative errno. */
int store_find_where(store *s, const store_entity *e, const char *where, const char *p1,
                     const char *p2, void *obj, hypr_error *err);
/* Unique ID prefix lookup: 1 found, 0 none, -EINVAL (ambiguous) or another error.
 * A ref that is not lowercase hex matches nothing. */
int store_find_id_prefix(store *s, const store_entity *e, const char *prefix, void *obj,
                         hypr_error *err);
/* Exact ID, exact name, unique ID prefix; -ENOENT "no such VM: ref" when none. */
int store_find_ref(store *s, const store_entity *e, const char *ref, void *obj, hypr_error *err);
/* Call after a successful lookup: loads links or clears obj on failure. */
int store_found(store *s, const store_entity *e, void *obj, hypr_error *err);
int store_list_rows(store *s, const store_entity *e, void **out, size_t *n, hypr_error *err);
/* DELETE by key_col; -ENOENT when nothing matched. */
int store_delete_key(store *s, const store_entity *e, const char *key, hypr_error *err);
/* Steps a bound INSERT/UPDATE: a primary key / UNIQUE violation becomes -EEXIST with
 * a message naming id or name; other failures "<verb> <noun> <name>: ...". */
int store_step_write(store *s, sqlite3_stmt *st, const store_entity *e, const char *verb,
                     const char *id, const char *name, hypr_error *err);
/* Checks id and name, then INSERTs every column of obj; name is what a duplicate
 * message calls the record. */
int store_insert_record(store *s, const store_entity *e, const void *obj, const char *id,
                        const char *name, hypr_error *err);
/* Checks the fields every record with an id and a name needs. */
int store_check_id_name(const store_entity *e, const char *id, const char *name, hypr_error *err);
void store_records_free(const store_entity *e, void *objs, size_t n);

#endif
