/* hypr creds module: registry credentials in the Docker client's config.json
 * ($DOCKER_CONFIG/config.json or ~/.docker/config.json), the file `hypr login`
 * writes and hyprd reads when it pulls. Entries live under "auths", keyed by
 * registry, as base64 "auth" of user:password (or "username"/"password");
 * credential helpers (credsStore, credHelpers) are not run.
 * Depends only on common and jansson, so the CLI links it without the image module. */
#ifndef HYPR_CREDS_H
#define HYPR_CREDS_H

#include "common/common.h"

#define CREDS_DOCKER_HUB_KEY "https://index.docker.io/v1/"

/* The "auths" key for a server as a user names it: Docker Hub (empty,
 * "docker.io", "index.docker.io", ...) is "https://index.docker.io/v1/",
 * anything else its host[:port] ("http://h:5000/x" -> "h:5000"). Caller frees. */
char *creds_key(const char *server);

/* Credentials for a registry host from config.json of config_dir (NULL =
 * $DOCKER_CONFIG or ~/.docker); any key naming the same registry matches.
 * -ENOENT when there are none (an unreadable or invalid file counts as none). */
int creds_lookup(const char *config_dir, const char *host, char **user, char **pass);

/* Saves base64(user:pass) as auths[key].auth, replacing entries for the same
 * registry and keeping every other key; written atomically with mode 0600.
 * *path_out (may be NULL) receives the file's path. */
int creds_store(const char *config_dir, const char *key, const char *user, const char *pass,
                char **path_out, hypr_error *err);

/* Removes the entries for key's registry; -ENOENT when there were none. */
int creds_erase(const char *config_dir, const char *key, hypr_error *err);

#endif
