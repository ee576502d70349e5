/* hypr compose module: the compose-spec loader. Finds and reads compose files,
 * loads .env and env_file files, interpolates ${VAR}, merges several -f files and
 * `extends`, and normalises the result into the model `docker compose config
 * --format json` prints (a jansson tree). No daemon knowledge: the CLI prints the
 * model (`hypr compose config`), the orchestrator deploys it.
 * Errors are INVALID_ARGUMENT (NOT_FOUND for a missing compose file) with a message
 * naming the file, the line and the path in the model:
 *   compose.yaml:12: services.web.ports[0]: invalid port "abc" */
#ifndef HYPR_COMPOSE_H
#define HYPR_COMPOSE_H

#include <jansson.h>

#include "common/common.h"

/* The largest compose or env file read (bytes). */
#define COMPOSE_FILE_MAX (16u * 1024 * 1024)

typedef struct compose_options {
    char **files;             /* -f, in order; NULL: discovered (compose_find_file) */
    const char *project_name; /* -p; NULL: COMPOSE_PROJECT_NAME, `name:`, the dir name */
    const char *project_dir;  /* --project-directory; NULL: the first file's directory */
    char **env_files;         /* --env-file; NULL: <project dir>/.env when it exists */
    char **profiles;          /* --profile; NULL: COMPOSE_PROFILES */
    char **environ;           /* the OS environment (NAME=VALUE); NULL: the process's own */
    const char *cwd;          /* where discovery starts and -f is relative to; NULL: getcwd */
    bool check_files;         /* env_file entries marked required must exist (up does) */
} compose_options;

typedef struct compose_project {
    char *name;    /* normalised project name */
    char *workdir; /* absolute project directory */
    char **files;  /* absolute paths of the files loaded, in order */
    json_t *model; /* the normalised model: name, services, networks, volumes, secrets, configs */
} compose_project;

void compose_project_free(compose_project *p);
DEFINE_CLEANUP_FUNC(compose_project, compose_project_free)
#define _cleanup_compose_project_ _cleanup_(compose_project_freep)

/* The default file in dir or, as Docker Compose, in the nearest parent that has one
 * (hypr-compose.yml, hypr-compose.yaml, Hyprfile, Hyprfile.yml, Hyprfile.yaml,
 * compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml). NOT_FOUND. */
int compose_find_file(const char *dir, char **out, hypr_error *err);

/* Loads and normalises the project o describes. */
int compose_load(const compose_options *o, compose_project **out, hypr_error *err);
/* The same for one compose document in memory; filename names it in messages and
 * its directory is the project directory (unless o->project_dir). */
int compose_load_buffer(const char *data, size_t len, const char *filename,
                        const compose_options *o, compose_project **out, hypr_error *err);

/* "my-app" for "My App!": lowercase, only [a-z0-9_-], leading characters that are
 * not a letter or digit dropped. Caller frees; "" when nothing is left. */
char *compose_normalize_project_name(const char *name);

/* The model as JSON (2-space indent, keys sorted, trailing newline) or YAML. */
char *compose_to_json(const compose_project *p);
char *compose_to_yaml(const compose_project *p);
/* One per line, sorted by name: service names, top-level volume keys, images
 * (a service without image: "<project>-<service>", as Compose names built images). */
char *compose_list_services(const compose_project *p);
char *compose_list_volumes(const compose_project *p);
char *compose_list_images(const compose_project *p);

#endif
