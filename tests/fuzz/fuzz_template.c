/* libFuzzer target: --format templates (src/cli/template*.c). The input is a
 * --format value; it is parsed the way the CLI parses it and, when it parses,
 * run against a ps row and an inspect object, and as a table header. Either
 * step may fail with a message; none may crash, leak or run unbounded. */
#include "cli/cli.h"

#include <stdint.h>
#include <string.h>

static const char row_json[] =
    "{\"ID\": \"4f2a9c1e7b3d\", \"Names\": \"web\", \"Image\": \"nginx:latest\","
    " \"ImageID\": \"sha256:0123456789ab\", \"State\": \"running\", \"Status\": \"Up 3 minutes\","
    " \"ExitCode\": 0, \"IPAddress\": \"10.88.0.2\", \"Ports\": \"127.0.0.1:8080->80/tcp\","
    " \"Networks\": [\"bridge\"], \"Labels\": {\"app\": \"web\", \"tier\": \"front\"},"
    " \"CreatedAt\": \"2024-05-01T10:00:00Z\", \"Stack\": \"\", \"Error\": \"\"}";

static const char inspect_json[] =
    "{\"Id\": \"4f2a9c1e7b3d4f2a\", \"Name\": \"web\", \"Created\": \"2024-05-01T10:00:00Z\","
    " \"State\": {\"Status\": \"running\", \"Running\": true, \"Pid\": 42, \"ExitCode\": 0},"
    " \"RestartCount\": 0, \"Ratio\": 0.25,"
    " \"Config\": {\"Env\": [\"PATH=/bin\", \"A=1\"], \"Cmd\": [\"nginx\", \"-g\", \"daemon "
    "off;\"],"
    "  \"Entrypoint\": null, \"Labels\": {\"k\": \"v\"}},"
    " \"HostConfig\": {\"Cpus\": 1, \"MemoryMB\": 512, \"PortBindings\": []},"
    " \"NetworkSettings\": {\"IPAddress\": \"10.88.0.2\", \"Networks\": {\"bridge\": "
    "{\"IPAddress\": \"10.88.0.2\", \"IPPrefixLen\": 16}}}}";

static char *header(const char *field, void *userdata)
{
    static const char *const overrides[] = {"ID", "CONTAINER ID", NULL};
    return cli_template_header_name(field, overrides);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = xstrndup((const char *)data, size);
    hypr_error err = HYPR_ERROR_INIT;
    cli_template *t = NULL;
    if (cli_template_parse_format(src, &t, &err) < 0) {
        hypr_error_clear(&err);
        free(src);
        return 0;
    }
    json_t *dots[] = {json_loads(row_json, 0, NULL), json_loads(inspect_json, 0, NULL)};
    hypr_buf out = {0};
    for (size_t i = 0; i < 2; i++) {
        if (cli_template_exec(t, dots[i], &out, &err) < 0)
            hypr_error_clear(&err);
        json_decref(dots[i]);
    }
    if (cli_template_exec_header(t, header, NULL, &out, &err) < 0)
        hypr_error_clear(&err);
    hypr_buf table = {0};
    cli_tabwriter(out.data ? out.data : "", out.len, &table);
    buf_free(&table);
    buf_free(&out);
    cli_template_free(t);
    free(src);
    return 0;
}
