/* libFuzzer target for the Docker config.json hyprd and `hypr login` read and
 * rewrite (src/creds): the input is the file. A lookup must find credentials or
 * say there are none, never crash; a store must keep the file valid JSON (or
 * refuse it) and then find what it stored. */
#include "creds/creds.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

static char *dir, *path;

static void cleanup(void)
{
    rm_rf(dir);
}

static void setup(void)
{
    char tmpl[] = "/tmp/hypr-fuzz-creds-XXXXXX";
    if (!mkdtemp(tmpl))
        abort();
    dir = xstrdup(tmpl);
    path = path_join(dir, "config.json");
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir)
        setup();
    if (write_file_atomic(path, data, size, 0600) < 0)
        abort();
    static const char *const hosts[] = {"docker.io", "registry.example:5000", "127.0.0.1:5000"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        char *user = NULL, *pass = NULL;
        if (creds_lookup(dir, hosts[i], &user, &pass) == 0 && (!user || !pass))
            abort();
        free(user);
        free(pass);
    }
    /* The input as a server name, too. */
    char *server = xstrndup((const char *)data, size > 256 ? 256 : size);
    free(creds_key(server));
    free(server);

    hypr_error err = HYPR_ERROR_INIT;
    if (creds_store(dir, "registry.example:5000", "u", "p:w", NULL, &err) == 0) {
        char *user = NULL, *pass = NULL;
        if (creds_lookup(dir, "registry.example:5000", &user, &pass) != 0 ||
            strcmp(user, "u") != 0 || strcmp(pass, "p:w") != 0)
            abort();
        free(user);
        free(pass);
        json_t *o = json_load_file(path, 0, NULL);
        if (!json_is_object(o))
            abort();
        json_decref(o);
        creds_erase(dir, "registry.example:5000", NULL);
    }
    hypr_error_clear(&err);
    return 0;
}
