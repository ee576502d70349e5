/* Output helpers: aligned tables, JSON, and the VM renderings (status text,
 * ports, JSON objects) shared by ps, inspect, compose ps and system prune. */
#include "cli/cmd.h"

#include <assert.h>
#include <string.h>
#include <time.h>

void table_init_array(cli_table *t, size_t ncols, const char *const *header)
{
    t->ncols = ncols;
    t->nrows = 1;
    t->cells = xcalloc(ncols, sizeof(char *));
    for (size_t i = 0; i < ncols; i++)
        t->cells[i] = xstrdup(header[i]);
}

void table_init(cli_table *t, size_t ncols, ...)
{
    const char *header[16];
    assert(ncols <= ARRAY_SIZE(header));
    va_list ap;
    va_start(ap, ncols);
    for (size_t i = 0; i < ncols; i++)
        header[i] = va_arg(ap, const char *);
    va_end(ap);
    table_init_array(t, ncols, header);
}

void table_add(cli_table *t, ...)
{
    t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
    va_list ap;
    va_start(ap, t);
    for (size_t i = 0; i < t->ncols; i++) {
        const char *c = va_arg(ap, const char *);
        t->cells[t->nrows * t->ncols + i] = xstrdup(c ? c : "");
    }
    va_end(ap);
    t->nrows++;
}

/* Display width: count UTF-8 lead bytes, so "✔" counts as one column. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        w += (*p & 0xC0) != 0x80;
    return w;
}

void table_print(cli_table *t, FILE *f)
{
    _cleanup_free_ size_t *width = xcalloc(t->ncols, sizeof(size_t));
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        _cleanup_buf_ hypr_buf line = {0};
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            buf_puts(&line, cell);
            if (c + 1 < t->ncols)
                for (size_t pad = text_width(cell); pad < width[c] + 3; pad++)
                    buf_append(&line, " ", 1);
        }
        while (line.len && line.data[line.len - 1] == ' ')
            line.data[--line.len] = '\0';
        fprintf(f, "%s\n", line.data ? line.data : "");
    }
}

void table_free(cli_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = 0;
}

static char *template_header(const char *field, void *userdata)
{
    return cli_template_header_name(field, userdata);
}

int cli_print_template(cli_ctx *ctx, const char *format, json_t *rows, const char *const *headers,
                       bool trunc_ids)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_template_ cli_template *t = NULL;
    if (cli_template_parse_format(format, &t, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    _cleanup_buf_ hypr_buf text = {0};
    buf_puts(&text, "");
    if (cli_template_is_table(t)) {
        /* Docker ignores a header that fails and keeps what it printed */
        if (cli_template_exec_header(t, template_header, (void *)headers, &text, &err) < 0)
            hypr_error_clear(&err);
        buf_puts(&text, "\n");
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *id = json_object_get(row, "ID");
        if (trunc_ids && json_is_string(id)) {
            _cleanup_free_ char *s = short_id(json_string_value(id), true);
            json_object_set_new(row, "ID", json_string(s));
        }
        if (cli_template_exec(t, row, &text, &err) < 0) {
            /* Docker's words for a failed run too */
            char *m = err.message;
            err.message = xasprintf("template parsing error: %s", m);
            free(m);
            return cli_fail_with(ctx, 1, &err);
        }
        buf_puts(&text, "\n");
    }
    if (!cli_template_is_table(t)) {
        fwrite(text.data, 1, text.len, stdout);
        return 0;
    }
    /* tabwriter keeps the text after the last newline as a line of its own */
    _cleanup_buf_ hypr_buf table = {0};
    cli_tabwriter(text.data, text.len - 1, &table);
    fwrite(table.data, 1, table.len, stdout);
    fputc('\n', stdout);
    return 0;
}

void cli_print_json(json_t *v)
{
    _cleanup_free_ char *s = json_dumps(v, JSON_INDENT(4) | JSON_ENCODE_ANY);
    if (s)
        printf("%s\n", s);
}

json_t *json_from_map(pb_kv **entries, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, entries[i]->key, json_string(entries[i]->value));
    return o;
}

json_t *json_from_strv(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

json_t *json_time(int64_t unix_seconds)
{
    char buf[64];
    cli_rfc3339(unix_seconds, buf, sizeof(buf));
    return json_string(buf);
}

char *short_id(const char *id, bool trunc)
{
    if (str_startswith(id, "sha256:"))
        id += 7;
    return trunc ? xstrndup(id, HYPR_SHORT_ID_LEN) : xstrdup(id);
}

const char *vm_state_name(Hypr__V1__VMStatus s)
{
    switch (s) {
    case HYPR__V1__VMSTATUS__VM_STATUS_CREATED:
        return "created";
    case HYPR__V1__VMSTATUS__VM_STATUS_BOOTING:
        return "booting";
    case HYPR__V1__VMSTATUS__VM_STATUS_RUNNING:
        return "running";
    case HYPR__V1__VMSTATUS__VM_STATUS_STOPPING:
        return "stopping";
    case HYPR__V1__VMSTATUS__VM_STATUS_STOPPED:
        return "exited";
    case HYPR__V1__VMSTATUS__VM_STATUS_FAILED:
        return "failed";
    case HYPR__V1__VMSTATUS__VM_STATUS_RESTARTING:
        return "restarting";
    case HYPR__V1__VMSTATUS__VM_STATUS_PAUSED:
        return "paused";
    default:
        return "unknown";
    }
}

char *vm_status_text(const Hypr__V1__VM *vm, int64_t now)
{
    char d[64];
    switch (vm->status) {
    case HYPR__V1__VMSTATUS__VM_STATUS_CREATED:
        return xstrdup("Created");
    case HYPR__V1__VMSTATUS__VM_STATUS_BOOTING:
        return xstrdup("Booting");
    case HYPR__V1__VMSTATUS__VM_STATUS_RUNNING:
    case HYPR__V1__VMSTATUS__VM_STATUS_PAUSED:
        cli_human_duration(vm->started_at > 0 ? now - vm->started_at : 0, d, sizeof(d));
        return xasprintf("Up %s%s", d,
                         vm->status == HYPR__V1__VMSTATUS__VM_STATUS_PAUSED ? " (Paused)" : "");
    case HYPR__V1__VMSTATUS__VM_STATUS_STOPPING:
        return xstrdup("Stopping");
    case HYPR__V1__VMSTATUS__VM_STATUS_STOPPED:
        if (vm->stopped_at <= 0)
            return xasprintf("Exited (%d)", vm->exit_code);
        cli_human_duration(now - vm->stopped_at, d, sizeof(d));
        return xasprintf("Exited (%d) %s ago", vm->exit_code, d);
    case HYPR__V1__VMSTATUS__VM_STATUS_FAILED:
        return xstrdup("Failed");
    case HYPR__V1__VMSTATUS__VM_STATUS_RESTARTING:
        if (vm->stopped_at <= 0)
            return xasprintf("Restarting (%d)", vm->exit_code);
        cli_human_duration(now - vm->stopped_at, d, sizeof(d));
        return xasprintf("Restarting (%d) %s ago", vm->exit_code, d);
    default:
        return xstrdup("Unknown");
    }
}

char *ports_text(Hypr__V1__PortMapping **ports, size_t n)
{
    hypr_buf b = {0};
    buf_puts(&b, "");
    for (size_t i = 0; i < n; i++) {
        const Hypr__V1__PortMapping *p = ports[i];
        const char *ip = str_empty(p->host_ip) ? "127.0.0.1" : p->host_ip;
        bool v6 = strchr(ip, ':') != NULL;
        buf_printf(&b, "%s%s%s%s:%u->%u/%s", i ? ", " : "", v6 ? "[" : "", ip, v6 ? "]" : "",
                   p->host_port, p->guest_port, str_empty(p->protocol) ? "tcp" : p->protocol);
    }
    return buf_steal(&b);
}

char *vm_ports_text(const Hypr__V1__VM *vm)
{
    /* Docker lists a container's ports only while they are published: running. */
    bool up = vm->status == HYPR__V1__VMSTATUS__VM_STATUS_RUNNING ||
              vm->status == HYPR__V1__VMSTATUS__VM_STATUS_PAUSED;
    return up && vm->config ? ports_text(vm->config->ports, vm->config->n_ports) : xstrdup("");
}

/* Docker's NetworkSettings.Networks: one entry per network the VM joins, with the
 * running VM's address, gateway and MAC there ("" while it is not running). */
static json_t *networks_json(const Hypr__V1__VM *vm)
{
    const Hypr__V1__VMConfig *c = vm->config;
    static char *const dflt[] = {"bridge"};
    char *const *names = c && c->n_networks ? c->networks : dflt;
    size_t n = c && c->n_networks ? c->n_networks : 1;
    json_t *out = json_object();
    for (size_t i = 0; i < n; i++) {
        const Hypr__V1__NetworkAttachment *a = NULL;
        for (size_t j = 0; j < vm->n_networks && !a; j++)
            if (strcmp(vm->networks[j]->network, names[i]) == 0)
                a = vm->networks[j];
        json_object_set_new(out, names[i],
                            json_pack("{s:s, s:i, s:s, s:s}", "IPAddress", a ? a->ip_address : "",
                                      "IPPrefixLen", a ? a->prefix_len : 0, "Gateway",
                                      a ? a->gateway : "", "MacAddress", a ? a->mac_address : ""));
    }
    return out;
}

static json_t *ports_json(Hypr__V1__PortMapping **ports, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:I, s:I, s:s}", "HostIp",
                         str_empty(ports[i]->host_ip) ? "127.0.0.1" : ports[i]->host_ip, "HostPort",
                         (json_int_t)ports[i]->host_port, "GuestPort",
                         (json_int_t)ports[i]->guest_port, "Protocol",
                         str_empty(ports[i]->protocol) ? "tcp" : ports[i]->protocol));
    return a;
}

static const Hypr__V1__VMConfig empty_config = HYPR__V1__VMCONFIG__INIT;

json_t *vm_summary_json(const void *item, const cli_view_opts *vo)
{
    const Hypr__V1__VM *vm = item;
    const Hypr__V1__VMConfig *c = vm->config ? vm->config : &empty_config;
    _cleanup_free_ char *status = vm_status_text(vm, vo->now);
    _cleanup_free_ char *ports = vm_ports_text(vm);
    json_t *o = json_object();
    json_object_set_new(o, "ID", json_string(vm->id));
    json_object_set_new(o, "Names", json_string(vm->name));
    json_object_set_new(o, "Image", json_string(c->image));
    json_object_set_new(o, "ImageID", json_string(vm->image_id));
    json_object_set_new(o, "State", json_string(vm_state_name(vm->status)));
    json_object_set_new(o, "Status", json_string(status));
    json_object_set_new(o, "ExitCode", json_integer(vm->exit_code));
    json_object_set_new(o, "IPAddress", json_string(vm->ip_address));
    json_object_set_new(o, "Ports", json_string(ports));
    json_object_set_new(o, "Networks", json_from_strv(c->networks, c->n_networks));
    json_object_set_new(o, "Labels", JSON_MAP(c, labels));
    json_object_set_new(o, "CreatedAt", json_time(vm->created_at));
    /* Docker's ps fields for templates: "3 minutes ago", "\"sleep 3600\"" */
    char ago[64];
    cli_human_duration(vm->created_at > 0 ? vo->now - vm->created_at : 0, ago, sizeof(ago));
    _cleanup_free_ char *running_for = xasprintf("%s ago", ago);
    json_object_set_new(o, "RunningFor", json_string(running_for));
    _cleanup_buf_ hypr_buf command = {0};
    buf_puts(&command, "\"");
    for (size_t i = 0; i < c->n_entrypoint + c->n_cmd; i++)
        buf_printf(&command, "%s%s", i ? " " : "",
                   i < c->n_entrypoint ? c->entrypoint[i] : c->cmd[i - c->n_entrypoint]);
    buf_puts(&command, "\"");
    json_object_set_new(o, "Command", json_string(command.data));
    json_object_set_new(o, "Stack", json_string(vm->stack));
    json_object_set_new(o, "Error", json_string(vm->error));
    return o;
}

/* Docker's inspect shows the config the container runs with: the image's Env, Cmd,
 * Entrypoint, WorkingDir and User where the run did not set them. */
static void merge_image_config(json_t *config, const Hypr__V1__VMConfig *c, cli_ctx *ctx,
                               const char *image_id)
{
    Hypr__V1__GetImageRequest req = HYPR__V1__GET_IMAGE_REQUEST__INIT;
    req.id = (char *)image_id;
    _cleanup_pb_ Hypr__V1__GetImageResponse *resp = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (str_empty(image_id) ||
        cli_unary_err(ctx, RPC_METHOD("GetImage"), &req, &hypr__v1__get_image_response__descriptor,
                      &resp, &err) < 0 ||
        !resp->image)
        return; /* the image is gone: the run's own settings only */
    const Hypr__V1__Image *img = resp->image;
    json_t *env = json_array(); /* the image's, each replaced by the run's of the same key */
    for (size_t i = 0; i < img->n_env; i++) {
        size_t klen = strcspn(img->env[i], "=");
        bool overridden = false;
        for (size_t j = 0; j < c->n_env && !overridden; j++)
            overridden =
                strlen(c->env[j]->key) == klen && strncmp(c->env[j]->key, img->env[i], klen) == 0;
        if (!overridden)
            json_array_append_new(env, json_string(img->env[i]));
    }
    json_array_extend(env, json_object_get(config, "Env"));
    json_object_set_new(config, "Env", env);
    bool own_entrypoint = c->entrypoint_set || c->n_entrypoint;
    if (!own_entrypoint && img->n_entrypoint)
        json_object_set_new(config, "Entrypoint",
                            json_from_strv(img->entrypoint, img->n_entrypoint));
    if (!c->n_cmd && !own_entrypoint) /* --entrypoint drops the image's cmd */
        json_object_set_new(config, "Cmd", json_from_strv(img->cmd, img->n_cmd));
    if (str_empty(c->workdir))
        json_object_set_new(config, "WorkingDir", json_string(img->workdir));
    if (str_empty(c->user))
        json_object_set_new(config, "User", json_string(img->user));
}

json_t *vm_inspect_json(const void *item, const cli_view_opts *vo)
{
    const Hypr__V1__VM *vm = item;
    const Hypr__V1__VMConfig *c = vm->config ? vm->config : &empty_config;
    json_t *env = json_array();
    for (size_t i = 0; i < c->n_env; i++) {
        _cleanup_free_ char *kv = xasprintf("%s=%s", c->env[i]->key, c->env[i]->value);
        json_array_append_new(env, json_string(kv));
    }
    json_t *mounts = json_array();
    for (size_t i = 0; i < c->n_volumes; i++) {
        const Hypr__V1__VolumeMount *m = c->volumes[i];
        const char *type = !str_empty(m->type) ? m->type : m->source[0] == '/' ? "bind" : "volume";
        json_t *j =
            json_pack("{s:s, s:s, s:s, s:s, s:b}", "Type", type, "Source", m->source, "Destination",
                      m->target, "Mode", m->read_only ? "ro" : "", "RW", !m->read_only);
        if (strcmp(type, "volume") == 0)
            json_object_set_new(j, "Name", json_string(m->source));
        json_array_append_new(mounts, j);
    }
    bool paused = vm->status == HYPR__V1__VMSTATUS__VM_STATUS_PAUSED;
    bool running = vm->status == HYPR__V1__VMSTATUS__VM_STATUS_RUNNING || paused; /* as Docker */
    json_t *state = json_object();
    json_object_set_new(state, "Status", json_string(vm_state_name(vm->status)));
    json_object_set_new(state, "Running", json_boolean(running));
    json_object_set_new(state, "Paused", json_boolean(paused));
    json_object_set_new(state, "Restarting",
                        json_boolean(vm->status == HYPR__V1__VMSTATUS__VM_STATUS_RESTARTING));
    json_object_set_new(state, "Pid", json_integer(vm->pid));
    json_object_set_new(state, "ExitCode", json_integer(vm->exit_code));
    json_object_set_new(state, "Error", json_string(vm->error));
    json_object_set_new(state, "StartedAt", json_time(vm->started_at));
    json_object_set_new(state, "FinishedAt", json_time(vm->stopped_at));

    json_t *config = json_object();
    json_object_set_new(config, "Image", json_string(c->image));
    json_object_set_new(config, "Hostname", json_string(c->hostname));
    json_object_set_new(config, "User", json_string(c->user));
    json_object_set_new(config, "Env", env);
    json_object_set_new(config, "Entrypoint",
                        c->entrypoint_set || c->n_entrypoint
                            ? json_from_strv(c->entrypoint, c->n_entrypoint)
                            : json_null());
    json_object_set_new(config, "Cmd", json_from_strv(c->cmd, c->n_cmd));
    json_object_set_new(config, "WorkingDir", json_string(c->workdir));
    json_object_set_new(config, "Labels", JSON_MAP(c, labels));
    json_object_set_new(config, "StopTimeout", json_integer(c->stop_timeout));
    if (!str_empty(c->stop_signal)) /* Docker leaves it out when unset */
        json_object_set_new(config, "StopSignal", json_string(c->stop_signal));
    if (vo->ctx)
        merge_image_config(config, c, vo->ctx, vm->image_id);

    json_t *host = json_object();
    json_object_set_new(host, "Cpus", json_integer(c->cpus));
    json_object_set_new(host, "MemoryMB", json_integer((json_int_t)c->memory_mb));
    json_object_set_new(host, "AutoRemove", json_boolean(c->auto_remove));
    json_object_set_new(host, "ReadonlyRootfs", json_boolean(c->read_only));
    json_object_set_new(
        host, "RestartPolicy",
        json_pack("{s:s, s:I}", "Name",
                  c->restart && !str_empty(c->restart->name) ? c->restart->name : "no",
                  "MaximumRetryCount", (json_int_t)(c->restart ? c->restart->max_retries : 0)));
    json_object_set_new(host, "PortBindings", ports_json(c->ports, c->n_ports));
    if (c->gpu && !str_empty(c->gpu->pci_address))
        json_object_set_new(
            host, "Gpu",
            json_pack("{s:s, s:s}", "PciAddress", c->gpu->pci_address, "Vendor", c->gpu->vendor));

    json_t *net = json_object();
    json_object_set_new(net, "IPAddress", json_string(vm->ip_address));
    json_object_set_new(net, "Networks", networks_json(vm));
    json_t *ports = json_object();
    for (size_t i = 0; i < c->n_ports; i++) {
        const Hypr__V1__PortMapping *p = c->ports[i];
        _cleanup_free_ char *key =
            xasprintf("%u/%s", p->guest_port, str_empty(p->protocol) ? "tcp" : p->protocol);
        _cleanup_free_ char *hp = xasprintf("%u", p->host_port);
        json_t *list = json_object_get(ports, key);
        if (!list) {
            list = json_array();
            json_object_set_new(ports, key, list);
        }
        json_array_append_new(list, json_pack("{s:s, s:s}", "HostIp",
                                              str_empty(p->host_ip) ? "127.0.0.1" : p->host_ip,
                                              "HostPort", hp));
    }
    json_object_set_new(net, "Ports", ports);

    json_t *o = json_object();
    json_object_set_new(o, "Id", json_string(vm->id));
    json_object_set_new(o, "Name", json_string(vm->name));
    json_object_set_new(o, "Created", json_time(vm->created_at));
    json_object_set_new(o, "Image", json_string(vm->image_id));
    json_object_set_new(o, "State", state);
    json_object_set_new(o, "RestartCount", json_integer(vm->restart_count));
    json_object_set_new(o, "Hypervisor", json_string(vm->hypervisor));
    json_object_set_new(o, "Stack", json_string(vm->stack));
    json_object_set_new(o, "Config", config);
    json_object_set_new(o, "HostConfig", host);
    json_object_set_new(o, "Mounts", mounts);
    json_object_set_new(o, "NetworkSettings", net);
    return o;
}
