/* What every table shares: parameter binding, column reading, lookups by ID, name
 * and ID prefix, lists, deletes, and duplicate detection on writes. */
#define LOG_MODULE "state"

#include <string.h>

#include "state/store-private.h"

/* ---- binding ---------------------------------------------------------------- */

void bind_text(store_binder *b, const char *v)
{
    if (b->rc != SQLITE_OK)
        return;
    b->idx++;
    b->rc = v ? sqlite3_bind_text(b->st, b->idx, v, -1, SQLITE_TRANSIENT)
              : sqlite3_bind_null(b->st, b->idx);
}

void bind_int64(store_binder *b, int64_t v)
{
    if (b->rc != SQLITE_OK)
        return;
    b->idx++;
    b->rc = sqlite3_bind_int64(b->st, b->idx, v);
}

void bind_blob(store_binder *b, const void *v, size_t len)
{
    if (b->rc != SQLITE_OK)
        return;
    b->idx++;
    if (!v) {
        b->rc = sqlite3_bind_null(b->st, b->idx);
        return;
    }
    if (len == 0)
        len = strlen(v);
    b->rc = sqlite3_bind_blob64(b->st, b->idx, v, len, SQLITE_TRANSIENT);
}

/* ---- reading ---------------------------------------------------------------- */

char *row_text(store_row *r)
{
    int col = r->col++;
    if (sqlite3_column_type(r->st, col) == SQLITE_NULL)
        return NULL;
    const char *text = (const char *)sqlite3_column_text(r->st, col);
    int len = sqlite3_column_bytes(r->st, col);
    return xstrndup(text ? text : "", (size_t)len);
}

int64_t row_int64(store_row *r)
{
    return sqlite3_column_int64(r->st, r->col++);
}

void row_id(store_row *r, char out[HYPR_ID_LEN + 1])
{
    int col = r->col++;
    const char *text = (const char *)sqlite3_column_text(r->st, col);
    size_t len = text ? (size_t)sqlite3_column_bytes(r->st, col) : 0;
    if (len > HYPR_ID_LEN)
        len = HYPR_ID_LEN;
    if (len)
        memcpy(out, text, len);
    out[len] = '\0';
}

char *row_blob(store_row *r, size_t *len)
{
    int col = r->col++;
    *len = 0;
    if (sqlite3_column_type(r->st, col) == SQLITE_NULL)
        return NULL;
    const void *data = sqlite3_column_blob(r->st, col);
    size_t n = (size_t)sqlite3_column_bytes(r->st, col);
    char *copy = xmalloc(n + 1);
    if (n)
        memcpy(copy, data, n);
    copy[n] = '\0';
    *len = n;
    return copy;
}

void store_records_free(const store_entity *e, void *objs, size_t n)
{
    if (!objs)
        return;
    for (size_t i = 0; i < n; i++)
        e->clear((char *)objs + i * e->size);
    free(objs);
}

/* ---- lookups ---------------------------------------------------------------- */

int store_find_where(store *s, const store_entity *e, const char *where, const char *p1,
                     const char *p2, void *obj, hypr_error *err)
{
    _cleanup_free_ char *sql = xasprintf("SELECT %s FROM %s WHERE %s", e->columns, e->table, where);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s, sql, &st, err, "find %s %s", e->noun, p1 ? p1 : "");
    if (r < 0)
        return r;
    store_binder b = STORE_BINDER(st);
    if (p1)
        bind_text(&b, p1);
    if (p2)
        bind_text(&b, p2);
    if (b.rc != SQLITE_OK)
        return store_db_error(s, b.rc, err, "find %s %s", e->noun, p1 ? p1 : "");
    int matches = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (matches++ == 0) {
            store_row row = STORE_ROW(st);
            e->read_row(&row, obj);
        }
    }
    if (rc != SQLITE_DONE) {
        if (matches)
            e->clear(obj);
        return store_db_error(s, rc, err, "find %s %s", e->noun, p1 ? p1 : "");
    }
    return matches;
}

static bool is_lower_hex(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

int store_find_id_prefix(store *s, const store_entity *e, const char *prefix, void *obj,
                         hypr_error *err)
{
    size_t len = strlen(prefix);
    if (len == 0 || len > HYPR_ID_LEN || !is_lower_hex(prefix))
        return 0;
    /* IDs are hex, so [prefix, prefix with its last character + 1) is exactly the IDs
     * that start with it, and the range is answered from the primary key index. */
    _cleanup_free_ char *upper = xstrdup(prefix);
    upper[len - 1]++;
    int r = store_find_where(s, e, "id >= ?1 AND id < ?2", prefix, upper, obj, err);
    if (r > 1) {
        e->clear(obj);
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "%s ID prefix \"%s\" is ambiguous (matches %d %s)", e->noun, prefix, r,
                        e->nouns);
    }
    return r;
}

int store_found(store *s, const store_entity *e, void *obj, hypr_error *err)
{
    if (!e->load_links)
        return 0;
    int r = e->load_links(s, obj, 1, err);
    if (r < 0) {
        e->clear(obj);
        return r;
    }
    return 0;
}

int store_find_ref(store *s, const store_entity *e, const char *ref, void *obj, hypr_error *err)
{
    if (str_empty(ref))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no %s %s given", e->noun,
                        e->has_id ? "name or ID" : "name");
    int r;
    if (e->has_id) {
        r = store_find_where(s, e, "id = ?1", ref, NULL, obj, err);
        if (r != 0)
            return r < 0 ? r : store_found(s, e, obj, err);
    }
    r = store_find_where(s, e, "name = ?1", ref, NULL, obj, err);
    if (r != 0)
        return r < 0 ? r : store_found(s, e, obj, err);
    if (e->has_id) {
        r = store_find_id_prefix(s, e, ref, obj, err);
        if (r != 0)
            return r < 0 ? r : store_found(s, e, obj, err);
    }
    return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "no such %s: %s", e->noun, ref);
}

int store_list_rows(store *s, const store_entity *e, void **out, size_t *n, hypr_error *err)
{
    *out = NULL;
    *n = 0;
    _cleanup_free_ char *sql =
        xasprintf("SELECT %s FROM %s ORDER BY %s", e->columns, e->table, e->order);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s, sql, &st, err, "list %s", e->nouns);
    if (r < 0)
        return r;
    char *objs = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            objs = xrealloc(objs, cap * e->size);
        }
        void *obj = objs + count * e->size;
        memset(obj, 0, e->size);
        store_row row = STORE_ROW(st);
        e->read_row(&row, obj);
        count++;
    }
    if (rc != SQLITE_DONE) {
        r = store_db_error(s, rc, err, "list %s", e->nouns);
        store_records_free(e, objs, count);
        return r;
    }
    if (e->load_links && count) {
        r = e->load_links(s, objs, count, err);
        if (r < 0) {
            store_records_free(e, objs, count);
            return r;
        }
    }
    *out = objs;
    *n = count;
    return 0;
}

/* ---- writes ----------------------------------------------------------------- */

int store_delete_key(store *s, const store_entity *e, const char *key, hypr_error *err)
{
    if (str_empty(key))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no %s given", e->noun);
    _cleanup_free_ char *sql = xasprintf("DELETE FROM %s WHERE %s = ?1", e->table, e->key_col);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s, sql, &st, err, "delete %s %s", e->noun, key);
    if (r < 0)
        return r;
    store_binder b = STORE_BINDER(st);
    bind_text(&b, key);
    int rc = b.rc != SQLITE_OK ? b.rc : sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_db_error(s, rc, err, "delete %s %s", e->noun, key);
    if (sqlite3_changes(s->db) == 0)
        return hypr_err(err, HYPR_NOT_FOUND, ENOENT, "no such %s: %s", e->noun, key);
    return 0;
}

int store_step_write(store *s, sqlite3_stmt *st, const store_entity *e, const char *verb,
                     const char *id, const char *name, hypr_error *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY && e->has_id)
        return hypr_err(err, HYPR_ALREADY_EXISTS, EEXIST, "%s ID \"%s\" is already in use", e->noun,
                        id);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return hypr_err(err, HYPR_ALREADY_EXISTS, EEXIST, "%s %s \"%s\" is already in use", e->noun,
                        e->name_label, name);
    return store_db_error(s, rc, err, "%s %s %s", verb, e->noun, name ? name : id);
}

int store_check_id_name(const store_entity *e, const char *id, const char *name, hypr_error *err)
{
    if (e->has_id && !id_is_valid(id))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid %s ID \"%s\": want %d lowercase hex characters", e->noun,
                        id ? id : "", HYPR_ID_LEN);
    if (str_empty(name))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s %s is empty", e->noun,
                        e->name_label);
    return 0;
}

int store_insert_record(store *s, const store_entity *e, const void *obj, const char *id,
                        const char *name, hypr_error *err)
{
    int r = store_check_id_name(e, id, name, err);
    if (r < 0)
        return r;
    _cleanup_buf_ hypr_buf sql = {0};
    buf_printf(&sql, "INSERT INTO %s (%s) VALUES (?1", e->table, e->columns);
    int n = 1;
    for (const char *c = e->columns; *c; c++)
        if (*c == ',')
            buf_printf(&sql, ", ?%d", ++n);
    buf_puts(&sql, ")");
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    r = store_prepare(s, sql.data, &st, err, "insert %s %s", e->noun, name);
    if (r < 0)
        return r;
    store_binder b = STORE_BINDER(st);
    e->bind_row(&b, obj);
    if (b.rc != SQLITE_OK)
        return store_db_error(s, b.rc, err, "insert %s %s", e->noun, name);
    return store_step_write(s, st, e, "insert", id, name, err);
}
