/* Schema migrations keyed by PRAGMA user_version. A migration is never edited once
 * released: a change to the schema is a new entry at the end. */
#define LOG_MODULE "state"

#include "state/store-private.h"

static const char *const migrations[] = {
    /* v1: the first schema. Times are unix seconds, 0 = never. */
    "CREATE TABLE settings ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE images ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT NOT NULL,"
    "  tag TEXT,"
    "  digest TEXT,"
    "  path TEXT,"
    "  manifest TEXT,"
    "  size_bytes INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (name, tag));"
    "CREATE TABLE vms ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT UNIQUE NOT NULL,"
    "  image TEXT,"
    "  image_id TEXT,"
    "  status TEXT NOT NULL DEFAULT 'created',"
    "  config BLOB,"
    "  ip_address TEXT,"
    "  error TEXT,"
    "  stack TEXT,"
    "  exit_code INTEGER NOT NULL DEFAULT 0,"
    "  pid INTEGER NOT NULL DEFAULT 0,"
    "  restart_count INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  stopped_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE vm_ports ("
    "  vm_id TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,"
    "  host_ip TEXT,"
    "  host_port INTEGER NOT NULL,"
    "  guest_port INTEGER NOT NULL,"
    "  protocol TEXT NOT NULL DEFAULT 'tcp');"
    "CREATE TABLE vm_networks ("
    "  vm_id TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,"
    "  network TEXT NOT NULL);"
    "CREATE TABLE vm_volumes ("
    "  vm_id TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,"
    "  source TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  read_only INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE networks ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT UNIQUE NOT NULL,"
    "  driver TEXT,"
    "  subnet TEXT,"
    "  gateway TEXT,"
    "  bridge TEXT,"
    "  internal INTEGER NOT NULL DEFAULT 0,"
    "  labels TEXT,"
    "  created_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE volumes ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  driver TEXT,"
    "  mountpoint TEXT,"
    "  labels TEXT,"
    "  stack TEXT,"
    "  created_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE stacks ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT UNIQUE NOT NULL,"
    "  compose TEXT,"
    "  status TEXT NOT NULL DEFAULT 'created',"
    "  created_at INTEGER NOT NULL DEFAULT 0);",

    /* v2: lookup indexes (status for counts, network for "who is attached", digest for
     * pulls, vm_id because SQLite does not index foreign keys and every VM read and
     * cascade delete searches the link tables by it) and the IPAM's allocation table.
     * ip_allocations.vm_id has no foreign key: the IPAM reserves addresses (gateway,
     * a VM about to be created) that belong to no VM row. */
    "CREATE INDEX vms_status ON vms (status);"
    "CREATE INDEX vm_networks_network ON vm_networks (network);"
    "CREATE INDEX images_digest ON images (digest);"
    "CREATE INDEX vm_ports_vm_id ON vm_ports (vm_id);"
    "CREATE INDEX vm_networks_vm_id ON vm_networks (vm_id);"
    "CREATE INDEX vm_volumes_vm_id ON vm_volumes (vm_id);"
    "CREATE TABLE ip_allocations ("
    "  network TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  vm_id TEXT,"
    "  PRIMARY KEY (network, address));"
    "CREATE INDEX ip_allocations_vm_id ON ip_allocations (vm_id);",

    /* v3: whether the user stopped the VM (docker's HasBeenManuallyStopped): an
     * unless-stopped VM stopped by hand stays stopped when hyprd starts again, one
     * stopped by hyprd's own shutdown comes back. */
    "ALTER TABLE vms ADD COLUMN manual_stop INTEGER NOT NULL DEFAULT 0;",
    /* v4: a volume made for one VM (-v /path, an image's VOLUME): `rm -v` and
     * `volume prune` without -a remove only these, as Docker's anonymous volumes. */
    "ALTER TABLE volumes ADD COLUMN anonymous INTEGER NOT NULL DEFAULT 0;",
};

int store_latest_version(void)
{
    return (int)ARRAY_SIZE(migrations);
}

typedef struct migration_step {
    int version;
    bool applied;
} migration_step;

int store_user_version(store *s, int *out, hypr_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_prepare(s, "PRAGMA user_version", &st, err, "read schema version");
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return store_db_error(s, rc, err, "read schema version");
    *out = sqlite3_column_int(st, 0);
    return 0;
}

static int migrate_one(store *s, void *ud, hypr_error *err)
{
    migration_step *step = ud;
    /* Another process may have migrated between our read and BEGIN IMMEDIATE. */
    int version;
    int r = store_user_version(s, &version, err);
    if (r < 0)
        return r;
    if (version >= step->version)
        return 0;
    r = store_exec(s, migrations[step->version - 1], err, "create schema");
    if (r < 0) {
        hypr_err_prefix(err, "migrate to schema version %d", step->version);
        return r;
    }
    _cleanup_free_ char *set = xasprintf("PRAGMA user_version = %d", step->version);
    r = store_exec(s, set, err, "set schema version");
    if (r < 0) {
        hypr_err_prefix(err, "migrate to schema version %d", step->version);
        return r;
    }
    step->applied = true;
    return 0;
}

int store_migrate(store *s, int target, hypr_error *err)
{
    int version;
    int r = store_user_version(s, &version, err);
    if (r < 0)
        return r;
    for (int v = version + 1; v <= target; v++) {
        migration_step step = {v, false};
        r = store_tx_run(s, migrate_one, &step, err, "migrate to schema version %d", v);
        if (r < 0)
            return r;
        if (step.applied)
            log_info("database %s: migrated to schema version %d", s->path, v);
    }
    r = store_user_version(s, &s->version, err);
    if (r < 0)
        return r;
    return 0;
}
