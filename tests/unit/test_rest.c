/* Unit tests of the REST gateway's parts: the proto3 JSON mapping both ways (as a
 * script reading or writing it would see it), route matching and the gRPC -> HTTP
 * status mapping. The HTTP/1.1 server is in test_http.c. */
#include "rest.h"
#include "rpc/rpc.h"
#include "hypr.pb-c.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "common/json_cleanup.h"
#include "json_asserts.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* The JSON text as a message of type desc (NULL when refused, err filled). */
static ProtobufCMessage *from_json(const ProtobufCMessageDescriptor *desc, const char *text,
                                   hypr_error *err)
{
    _cleanup_json_ json_t *j = parse(text);
    _cleanup_buf_ hypr_buf wire = {0};
    if (rpc_json_to_wire(desc, j, &wire, err) < 0)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, wire.len, (uint8_t *)wire.data);
    assert_non_null(m);
    return m;
}

/* The error message rpc_json_to_wire gives for text (which it must refuse). */
static char *json_error(const ProtobufCMessageDescriptor *desc, const char *text)
{
    _cleanup_json_ json_t *j = parse(text);
    _cleanup_buf_ hypr_buf wire = {0};
    hypr_error err = HYPR_ERROR_INIT;
    if (rpc_json_to_wire(desc, j, &wire, &err) != -EINVAL)
        fail_msg("%s was accepted as a %s", text, desc->name);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_non_null(err.message);
    return err.message;
}

static void assert_refused(const ProtobufCMessageDescriptor *desc, const char *text,
                           const char *mentions)
{
    _cleanup_free_ char *msg = json_error(desc, text);
    assert_contains(msg, mentions);
}

static void assert_messages_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t na = protobuf_c_message_get_packed_size(a), nb = protobuf_c_message_get_packed_size(b);
    assert_int_equal(na, nb);
    _cleanup_free_ uint8_t *pa = xmalloc(na + 1), *pb = xmalloc(nb + 1);
    protobuf_c_message_pack(a, pa);
    protobuf_c_message_pack(b, pb);
    assert_memory_equal(pa, pb, na);
}

/* ---- a VM as a user would get it ------------------------------------------------------ */

typedef struct vm_fixture {
    Hypr__V1__VM vm;
    Hypr__V1__VMConfig config;
    Hypr__V1__PortMapping port[2];
    Hypr__V1__PortMapping *ports[2];
    Hypr__V1__VMConfig__EnvEntry env[2];
    Hypr__V1__VMConfig__EnvEntry *envs[2];
    Hypr__V1__VMConfig__LabelsEntry label;
    Hypr__V1__VMConfig__LabelsEntry *labels[1];
    char *cmd[2];
} vm_fixture;

static void vm_fixture_init(vm_fixture *f)
{
    hypr__v1__vm__init(&f->vm);
    hypr__v1__vmconfig__init(&f->config);
    f->vm.id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    f->vm.name = "web";
    f->vm.status = HYPR__V1__VMSTATUS__VM_STATUS_RUNNING;
    f->vm.created_at = 1700000000;
    f->vm.stopped_at = -5;
    f->vm.restart_count = 4000000000u; /* beyond int32: still a number */
    f->vm.config = &f->config;
    f->config.image = "nginx:latest";
    f->config.cpus = 2;
    f->config.memory_mb = 18446744073709551615ull;
    for (int i = 0; i < 2; i++) {
        hypr__v1__port_mapping__init(&f->port[i]);
        f->ports[i] = &f->port[i];
    }
    f->port[0].host_ip = "127.0.0.1";
    f->port[0].host_port = 8080;
    f->port[0].guest_port = 80;
    f->port[1].host_port = 5353;
    f->port[1].guest_port = 53;
    f->port[1].protocol = "udp";
    f->config.n_ports = 2;
    f->config.ports = f->ports;
    const char *env[][2] = {{"PATH", "/bin"}, {"EMPTY", ""}};
    for (int i = 0; i < 2; i++) {
        hypr__v1__vmconfig__env_entry__init(&f->env[i]);
        f->env[i].key = (char *)env[i][0];
        f->env[i].value = (char *)env[i][1];
        f->envs[i] = &f->env[i];
    }
    f->config.n_env = 2;
    f->config.env = f->envs;
    hypr__v1__vmconfig__labels_entry__init(&f->label);
    f->label.key = "app";
    f->label.value = "shop";
    f->labels[0] = &f->label;
    f->config.n_labels = 1;
    f->config.labels = f->labels;
    f->cmd[0] = "nginx";
    f->cmd[1] = "-g";
    f->config.n_cmd = 2;
    f->config.cmd = f->cmd;
    f->config.auto_remove = true;
}

static void test_vm_to_json(void **state)
{
    (void)state;
    vm_fixture f;
    vm_fixture_init(&f);
    _cleanup_json_ json_t *o = rpc_pb_to_json(&f.vm.base);
    assert_true(json_is_object(o));

    assert_string_equal(str(o, "name"), "web");
    assert_string_equal(str(o, "status"), "VM_STATUS_RUNNING");
    /* 64-bit integers are strings (JavaScript cannot hold them), 32-bit ones numbers */
    assert_string_equal(str(o, "createdAt"), "1700000000");
    assert_string_equal(str(o, "stoppedAt"), "-5");
    assert_int_equal(num(o, "restartCount"), 4000000000);
    assert_int_equal(num(o, "config.cpus"), 2);
    assert_string_equal(str(o, "config.memoryMb"), "18446744073709551615");
    /* lowerCamelCase names, never the .proto's */
    assert_null(json_object_get(o, "created_at"));
    assert_null(json_object_get(json_object_get(o, "config"), "auto_remove"));
    assert_true(json_is_true(json_object_get(json_object_get(o, "config"), "autoRemove")));

    json_t *ports = json_object_get(json_object_get(o, "config"), "ports");
    assert_int_equal(json_array_size(ports), 2);
    assert_string_equal(str(json_array_get(ports, 0), "hostIp"), "127.0.0.1");
    assert_int_equal(num(json_array_get(ports, 0), "hostPort"), 8080);
    assert_int_equal(num(json_array_get(ports, 1), "guestPort"), 53);
    assert_string_equal(str(json_array_get(ports, 1), "protocol"), "udp");
    assert_string_equal(str(json_array_get(ports, 1), "hostIp"), "");

    /* maps are objects */
    json_t *env = json_object_get(json_object_get(o, "config"), "env");
    assert_int_equal(json_object_size(env), 2);
    assert_string_equal(str(env, "PATH"), "/bin");
    assert_string_equal(str(env, "EMPTY"), "");
    assert_string_equal(str(o, "config.labels.app"), "shop");
    json_t *cmd = json_object_get(json_object_get(o, "config"), "cmd");
    assert_int_equal(json_array_size(cmd), 2);
    assert_string_equal(json_string_value(json_array_get(cmd, 1)), "-g");

    /* unpopulated fields are there, with their zero value */
    assert_string_equal(str(o, "error"), "");
    assert_string_equal(str(o, "startedAt"), "0");
    assert_int_equal(num(o, "exitCode"), 0);
    assert_true(json_is_array(json_object_get(o, "networks")));
    assert_int_equal(json_array_size(json_object_get(o, "networks")), 0);
    json_t *config = json_object_get(o, "config");
    assert_true(json_is_null(json_object_get(config, "restart")));
    assert_true(json_is_null(json_object_get(config, "gpu")));
    assert_true(json_is_false(json_object_get(config, "entrypointSet")));
    assert_true(json_is_object(json_object_get(config, "labels")));
    assert_int_equal(json_array_size(json_object_get(config, "volumes")), 0);
    assert_int_equal(json_object_size(config), hypr__v1__vmconfig__descriptor.n_fields);
    assert_int_equal(json_object_size(o), hypr__v1__vm__descriptor.n_fields);

    /* an unset message is null, an empty one {} */
    Hypr__V1__GetVMResponse resp = HYPR__V1__GET_VMRESPONSE__INIT;
    _cleanup_json_ json_t *none = rpc_pb_to_json(&resp.base);
    assert_true(json_is_null(json_object_get(none, "vm")));
}

static void test_bytes_and_oneof_to_json(void **state)
{
    (void)state;
    Hypr__V1__LogEntry e = HYPR__V1__LOG_ENTRY__INIT;
    e.data.data = (uint8_t *)"hi\0\xff";
    e.data.len = 4;
    e.stream = "stdout";
    _cleanup_json_ json_t *o = rpc_pb_to_json(&e.base);
    assert_string_equal(str(o, "data"), "aGkA/w==");
    assert_string_equal(str(o, "timestampMs"), "0");
    e.data.len = 0;
    _cleanup_json_ json_t *empty = rpc_pb_to_json(&e.base);
    assert_string_equal(str(empty, "data"), "");

    /* a oneof shows only the member that is set, even at its zero value */
    Hypr__V1__ExecRequest x = HYPR__V1__EXEC_REQUEST__INIT;
    _cleanup_json_ json_t *unset = rpc_pb_to_json(&x.base);
    assert_int_equal(json_object_size(unset), 0);
    x.msg_case = HYPR__V1__EXEC_REQUEST__MSG_STDIN;
    x.stdin.data = (uint8_t *)"ls\n";
    x.stdin.len = 3;
    _cleanup_json_ json_t *in = rpc_pb_to_json(&x.base);
    assert_int_equal(json_object_size(in), 1);
    assert_string_equal(str(in, "stdin"), "bHMK");
    x.msg_case = HYPR__V1__EXEC_REQUEST__MSG_SIGNAL;
    x.signal = 0;
    _cleanup_json_ json_t *sig = rpc_pb_to_json(&x.base);
    assert_int_equal(json_object_size(sig), 1);
    assert_int_equal(num(sig, "signal"), 0);
    Hypr__V1__TerminalSize size = HYPR__V1__TERMINAL_SIZE__INIT;
    size.rows = 24;
    size.cols = 80;
    x.msg_case = HYPR__V1__EXEC_REQUEST__MSG_RESIZE;
    x.resize = &size;
    _cleanup_json_ json_t *rs = rpc_pb_to_json(&x.base);
    assert_int_equal(json_object_size(rs), 1);
    assert_int_equal(num(rs, "resize.cols"), 80);
}

static void test_invalid_utf8_keeps_the_field(void **state)
{
    (void)state;
    /* a guest's error text is not ours to trust: the key stays, the bad byte is replaced */
    Hypr__V1__VM vm = HYPR__V1__VM__INIT;
    vm.error = "exit \xff\xfe code";
    vm.name = "caf\xc3\xa9";
    _cleanup_json_ json_t *o = rpc_pb_to_json(&vm.base);
    assert_string_equal(str(o, "error"), "exit \xef\xbf\xbd\xef\xbf\xbd code");
    assert_string_equal(str(o, "name"), "caf\xc3\xa9");
    _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT);
    assert_non_null(text);

    Hypr__V1__VMConfig c = HYPR__V1__VMCONFIG__INIT;
    Hypr__V1__VMConfig__LabelsEntry l = HYPR__V1__VMCONFIG__LABELS_ENTRY__INIT, *lp = &l;
    l.key = "k\x80";
    l.value = "v\xc3";
    c.n_labels = 1;
    c.labels = &lp;
    _cleanup_json_ json_t *co = rpc_pb_to_json(&c.base);
    assert_string_equal(str(co, "labels.k\xef\xbf\xbd"), "v\xef\xbf\xbd");
}

/* ---- JSON -> message ------------------------------------------------------------------ */

static void test_vm_json_round_trip(void **state)
{
    (void)state;
    vm_fixture f;
    vm_fixture_init(&f);
    _cleanup_json_ json_t *o = rpc_pb_to_json(&f.vm.base);
    _cleanup_buf_ hypr_buf wire = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(rpc_json_to_wire(&hypr__v1__vm__descriptor, o, &wire, &err), 0);
    _cleanup_pb_ Hypr__V1__VM *back = (Hypr__V1__VM *)protobuf_c_message_unpack(
        &hypr__v1__vm__descriptor, NULL, wire.len, (uint8_t *)wire.data);
    assert_non_null(back);
    assert_messages_equal(&f.vm.base, &back->base);
    assert_string_equal(back->config->env[0]->key, "PATH");
    assert_int_equal(back->config->memory_mb, 18446744073709551615ull);
    assert_int_equal(back->stopped_at, -5);
    assert_int_equal(back->status, HYPR__V1__VMSTATUS__VM_STATUS_RUNNING);
    assert_null(back->config->restart);

    /* the bytes and a oneof member come back too */
    Hypr__V1__ExecRequest x = HYPR__V1__EXEC_REQUEST__INIT;
    x.msg_case = HYPR__V1__EXEC_REQUEST__MSG_STDIN;
    x.stdin.data = (uint8_t *)"\0\x01\xfe\xff";
    x.stdin.len = 4;
    _cleanup_json_ json_t *xo = rpc_pb_to_json(&x.base);
    _cleanup_buf_ hypr_buf xw = {0};
    assert_int_equal(rpc_json_to_wire(&hypr__v1__exec_request__descriptor, xo, &xw, &err), 0);
    _cleanup_pb_ Hypr__V1__ExecRequest *xb = (Hypr__V1__ExecRequest *)protobuf_c_message_unpack(
        &hypr__v1__exec_request__descriptor, NULL, xw.len, (uint8_t *)xw.data);
    assert_non_null(xb);
    assert_messages_equal(&x.base, &xb->base);
}

static void test_json_names_and_scalar_forms(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    /* lowerCamelCase and the .proto's names; 64-bit integers as strings and numbers */
    _cleanup_pb_ Hypr__V1__CreateVMRequest *r =
        (Hypr__V1__CreateVMRequest *)from_json(&hypr__v1__create_vmrequest__descriptor,
                                               "{\"config\": {\"image\": \"nginx\","
                                               " \"memoryMb\": \"1024\", \"auto_remove\": true,"
                                               " \"stop_timeout\": 7,"
                                               " \"ports\": [{\"host_port\": 8080,"
                                               " \"guestPort\": 80.0}],"
                                               " \"env\": {\"A\": \"1\", \"B\": null},"
                                               " \"restart\": {\"maxRetries\": 3}}}",
                                               &err);
    assert_non_null(r);
    assert_string_equal(r->config->image, "nginx");
    assert_int_equal(r->config->memory_mb, 1024);
    assert_true(r->config->auto_remove);
    assert_int_equal(r->config->stop_timeout, 7);
    assert_int_equal(r->config->n_ports, 1);
    assert_int_equal(r->config->ports[0]->host_port, 8080);
    assert_int_equal(r->config->ports[0]->guest_port, 80);
    assert_int_equal(r->config->n_env, 2);
    assert_string_equal(r->config->env[1]->key, "B");
    assert_string_equal(r->config->env[1]->value, "");
    assert_int_equal(r->config->restart->max_retries, 3);

    _cleanup_pb_ Hypr__V1__VM *v = (Hypr__V1__VM *)from_json(
        &hypr__v1__vm__descriptor,
        "{\"createdAt\": 1700000000, \"started_at\": \"-1700000000\", \"status\": 3,"
        " \"exitCode\": \"-2\", \"config\": null, \"error\": null, \"networks\": null}",
        &err);
    assert_non_null(v);
    assert_int_equal(v->created_at, 1700000000);
    assert_int_equal(v->started_at, -1700000000);
    assert_int_equal(v->status, HYPR__V1__VMSTATUS__VM_STATUS_RUNNING);
    assert_int_equal(v->exit_code, -2);
    assert_null(v->config); /* null is the default */
    assert_string_equal(v->error, "");

    _cleanup_pb_ Hypr__V1__VM *byname = (Hypr__V1__VM *)from_json(
        &hypr__v1__vm__descriptor, "{\"status\": \"VM_STATUS_STOPPED\"}", &err);
    assert_int_equal(byname->status, HYPR__V1__VMSTATUS__VM_STATUS_STOPPED);

    /* the extremes of each width */
    _cleanup_pb_ Hypr__V1__VM *ext = (Hypr__V1__VM *)from_json(
        &hypr__v1__vm__descriptor,
        "{\"createdAt\": \"-9223372036854775808\", \"startedAt\": 9223372036854775807,"
        " \"restartCount\": 4294967295, \"pid\": -2147483648,"
        " \"config\": {\"memoryMb\": \"18446744073709551615\"}}",
        &err);
    assert_non_null(ext);
    assert_int_equal(ext->created_at, INT64_MIN);
    assert_int_equal(ext->started_at, INT64_MAX);
    assert_int_equal(ext->restart_count, UINT32_MAX);
    assert_int_equal(ext->pid, INT32_MIN);
    assert_int_equal(ext->config->memory_mb, UINT64_MAX);

    _cleanup_pb_ Hypr__V1__LogEntry *log = (Hypr__V1__LogEntry *)from_json(
        &hypr__v1__log_entry__descriptor, "{\"data\": \"aGkA/w==\", \"stream\": \"stderr\"}", &err);
    assert_int_equal(log->data.len, 4);
    assert_memory_equal(log->data.data, "hi\0\xff", 4);
}

static void test_json_refusals_name_the_field(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *create = &hypr__v1__create_vmrequest__descriptor;
    assert_refused(create, "{\"config\": {\"nope\": 1}}", "unknown field \"config.nope\"");
    assert_refused(create, "{\"nope\": 1}", "unknown field \"nope\"");
    assert_refused(create, "{\"config\": {\"cpus\": \"x\"}}", "config.cpus");
    assert_refused(create, "{\"config\": {\"cpus\": -1}}", "config.cpus");
    assert_refused(create, "{\"config\": {\"cpus\": 4294967296}}", "config.cpus");
    assert_refused(create, "{\"config\": {\"cpus\": \"4294967296\"}}", "config.cpus");
    assert_refused(create, "{\"config\": {\"cpus\": 1.5}}", "config.cpus");
    assert_refused(create, "{\"config\": {\"cpus\": true}}", "config.cpus");
    assert_refused(create, "{\"config\": {\"memoryMb\": -1}}", "config.memoryMb");
    assert_refused(create, "{\"config\": {\"memoryMb\": \"-1\"}}", "config.memoryMb");
    assert_refused(create, "{\"config\": {\"memoryMb\": \"18446744073709551616\"}}",
                   "config.memoryMb");
    assert_refused(create, "{\"config\": {\"image\": 5}}", "config.image");
    assert_refused(create, "{\"config\": {\"autoRemove\": \"yes\"}}", "config.autoRemove");
    assert_refused(create, "{\"config\": {\"ports\": {}}}", "config.ports");
    assert_refused(create, "{\"config\": {\"ports\": [null]}}", "config.ports");
    assert_refused(create, "{\"config\": {\"ports\": [{\"hostPort\": -1}]}}",
                   "config.ports.hostPort");
    assert_refused(create, "{\"config\": {\"env\": {\"A\": 1}}}", "config.env");
    assert_refused(create, "{\"config\": {\"env\": [\"A=1\"]}}", "config.env");
    assert_refused(create, "{\"config\": \"nginx\"}", "config");
    assert_refused(create, "[]", "expected a JSON object");
    assert_refused(&hypr__v1__log_entry__descriptor, "{\"data\": \"not base64!\"}", "data");
    assert_refused(&hypr__v1__log_entry__descriptor, "{\"data\": \"aGk\"}", "data");
    assert_refused(&hypr__v1__vm__descriptor, "{\"status\": \"VM_STATUS_NOPE\"}", "VM_STATUS_NOPE");
    assert_refused(&hypr__v1__vm__descriptor, "{\"createdAt\": 9223372036854775808.0}",
                   "createdAt");
    assert_refused(&hypr__v1__vm__descriptor, "{\"createdAt\": -9.3e18}", "createdAt");
    assert_refused(&hypr__v1__vm__descriptor, "{\"pid\": 2147483648}", "pid");
}

/* A message that holds itself, which no hypr message does, for the depth limit. */
typedef struct node {
    ProtobufCMessage base;
    struct node *child;
} node;
static const ProtobufCMessageDescriptor node_descriptor;
static const ProtobufCFieldDescriptor node_fields[] = {
    {"child", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, 0, offsetof(node, child),
     &node_descriptor, NULL, 0, 0, NULL, NULL},
};
static const unsigned node_by_name[] = {0};
static const ProtobufCIntRange node_ranges[] = {{1, 0}, {0, 1}};
static const ProtobufCMessageDescriptor node_descriptor = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
                                                           "test.Node",
                                                           "Node",
                                                           "Node",
                                                           "test",
                                                           sizeof(node),
                                                           1,
                                                           node_fields,
                                                           node_by_name,
                                                           1,
                                                           node_ranges,
                                                           NULL,
                                                           NULL,
                                                           NULL,
                                                           NULL};

static char *nested(int levels)
{
    _cleanup_buf_ hypr_buf b = {0};
    for (int i = 0; i < levels; i++)
        buf_puts(&b, "{\"child\": ");
    buf_puts(&b, "{}");
    for (int i = 0; i < levels; i++)
        buf_puts(&b, "}");
    return buf_steal(&b);
}

static void test_json_depth_limit(void **state)
{
    (void)state;
    _cleanup_free_ char *ok = nested(32), *deep = nested(33);
    _cleanup_json_ json_t *jok = parse(ok), *jdeep = parse(deep);
    _cleanup_buf_ hypr_buf wire = {0};
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(rpc_json_to_wire(&node_descriptor, jok, &wire, &err), 0);
    _cleanup_pb_ node *n =
        (node *)protobuf_c_message_unpack(&node_descriptor, NULL, wire.len, (uint8_t *)wire.data);
    assert_non_null(n);
    int depth = 0;
    for (node *p = n->child; p; p = p->child)
        depth++;
    assert_int_equal(depth, 32);
    buf_free(&wire);
    assert_int_equal(rpc_json_to_wire(&node_descriptor, jdeep, &wire, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_contains(err.message, "nested too deeply");
}

/* ---- path and query parameters ------------------------------------------------------------ */

static void test_text_parameters(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    const ProtobufCMessageDescriptor *del = &hypr__v1__delete_vmrequest__descriptor;
    _cleanup_buf_ hypr_buf w = {0};
    assert_int_equal(rpc_text_to_wire(del, "id", "web", &w, &err), 0);
    assert_int_equal(rpc_text_to_wire(del, "force", "true", &w, &err), 0);
    _cleanup_pb_ Hypr__V1__DeleteVMRequest *d =
        (Hypr__V1__DeleteVMRequest *)protobuf_c_message_unpack(del, NULL, w.len, (uint8_t *)w.data);
    assert_string_equal(d->id, "web");
    assert_true(d->force);
    /* a later value wins: ?force=true&force=false */
    assert_int_equal(rpc_text_to_wire(del, "force", "false", &w, &err), 0);
    _cleanup_pb_ Hypr__V1__DeleteVMRequest *d2 =
        (Hypr__V1__DeleteVMRequest *)protobuf_c_message_unpack(del, NULL, w.len, (uint8_t *)w.data);
    assert_false(d2->force);
    assert_int_equal(rpc_text_to_wire(del, "force", "yes", &w, &err), -EINVAL);
    assert_contains(err.message, "force");

    const ProtobufCMessageDescriptor *stop = &hypr__v1__stop_vmrequest__descriptor;
    _cleanup_buf_ hypr_buf s = {0};
    assert_int_equal(rpc_text_to_wire(stop, "timeoutSeconds", "30", &s, &err), 0);
    _cleanup_pb_ Hypr__V1__StopVMRequest *st =
        (Hypr__V1__StopVMRequest *)protobuf_c_message_unpack(stop, NULL, s.len, (uint8_t *)s.data);
    assert_int_equal(st->timeout_seconds, 30);
    assert_int_equal(rpc_text_to_wire(stop, "timeout_seconds", "-1", &s, &err), -EINVAL);
    assert_contains(err.message, "timeout_seconds");
    assert_int_equal(rpc_text_to_wire(stop, "timeout_seconds", "ten", &s, &err), -EINVAL);
    assert_int_equal(rpc_text_to_wire(stop, "timeout_seconds", "", &s, &err), -EINVAL);
    assert_int_equal(rpc_text_to_wire(stop, "nope", "1", &s, &err), -EINVAL);
    assert_contains(err.message, "unknown parameter \"nope\"");

    /* a repeated field takes one value per parameter */
    const ProtobufCMessageDescriptor *start = &hypr__v1__exec_start__descriptor;
    _cleanup_buf_ hypr_buf e = {0};
    assert_int_equal(rpc_text_to_wire(start, "command", "ls", &e, &err), 0);
    assert_int_equal(rpc_text_to_wire(start, "command", "-l", &e, &err), 0);
    _cleanup_pb_ Hypr__V1__ExecStart *es =
        (Hypr__V1__ExecStart *)protobuf_c_message_unpack(start, NULL, e.len, (uint8_t *)e.data);
    assert_int_equal(es->n_command, 2);
    assert_string_equal(es->command[0], "ls");
    assert_string_equal(es->command[1], "-l");
    /* messages (and maps) only in a JSON body */
    assert_int_equal(rpc_text_to_wire(start, "size", "24x80", &e, &err), -EINVAL);
    assert_contains(err.message, "JSON body");
    assert_int_equal(rpc_text_to_wire(start, "env", "A=1", &e, &err), -EINVAL);
    assert_int_equal(
        rpc_text_to_wire(&hypr__v1__create_vmrequest__descriptor, "config", "{}", &e, &err),
        -EINVAL);
    assert_contains(err.message, "config");

    /* an enum by name or number */
    _cleanup_buf_ hypr_buf vb = {0};
    assert_int_equal(
        rpc_text_to_wire(&hypr__v1__vm__descriptor, "status", "VM_STATUS_FAILED", &vb, &err), 0);
    _cleanup_pb_ Hypr__V1__VM *vm = (Hypr__V1__VM *)protobuf_c_message_unpack(
        &hypr__v1__vm__descriptor, NULL, vb.len, (uint8_t *)vb.data);
    assert_int_equal(vm->status, HYPR__V1__VMSTATUS__VM_STATUS_FAILED);
}

/* ---- routes ------------------------------------------------------------------------------- */

static const rest_route *match(const char *verb, const char *path, const char *rpc,
                               const char *id_name, const char *id)
{
    _cleanup_strv_ char **params = NULL;
    bool known = false;
    const rest_route *r = rest_match(verb, path, &params, &known);
    if (!rpc) {
        assert_null(r);
        assert_null(params);
        return NULL;
    }
    if (!r)
        fail_msg("%s %s matches no route", verb, path);
    assert_string_equal(r->rpc, rpc);
    assert_string_equal(r->verb, verb);
    if (id_name) {
        assert_int_equal(strv_length(params), 2);
        assert_string_equal(params[0], id_name);
        assert_string_equal(params[1], id);
    } else {
        assert_int_equal(strv_length(params), 0);
    }
    return r;
}

static void test_routes(void **state)
{
    (void)state;
    match("GET", "/v1/vms/abc", "/hypr.v1.HyprService/GetVM", "id", "abc");
    match("GET", "/v1/vms", "/hypr.v1.HyprService/ListVms", NULL, NULL);
    match("POST", "/v1/vms", "/hypr.v1.HyprService/CreateVM", NULL, NULL);
    match("POST", "/v1/vms/abc/start", "/hypr.v1.HyprService/StartVM", "id", "abc");
    match("DELETE", "/v1/vms/web", "/hypr.v1.HyprService/DeleteVM", "id", "web");
    match("GET", "/v1/images/localhost:5000/busybox:latest", "/hypr.v1.HyprService/GetImage", "id",
          "localhost:5000/busybox:latest");
    match("GET", "/v1/images/nginx", "/hypr.v1.HyprService/GetImage", "id", "nginx");
    match("GET", "/v1/images/a/b/history", "/hypr.v1.HyprService/GetImageHistory", "id", "a/b");
    match("DELETE", "/v1/images/docker.io/library/nginx:1.25", "/hypr.v1.HyprService/DeleteImage",
          "id", "docker.io/library/nginx:1.25");
    match("GET", "/v1/stacks/shop/logs", "/hypr.v1.HyprService/StreamStackServiceLogs", "stack",
          "shop");
    /* %2F stays inside its segment; other escapes decode too */
    match("GET", "/v1/vms/a%2Fb", "/hypr.v1.HyprService/GetVM", "id", "a/b");
    match("GET", "/v1/vms/my%20vm", "/hypr.v1.HyprService/GetVM", "id", "my vm");
    match("GET", "/v1/images/a%2fb/history", "/hypr.v1.HyprService/GetImageHistory", "id", "a/b");
    /* a literal segment beats a parameter; the verb picks between them */
    const rest_route *run = match("POST", "/v1/vms/run", "/hypr.v1.HyprService/RunVM", NULL, NULL);
    assert_true(run->stream);
    const rest_route *get = match("GET", "/v1/vms/run", "/hypr.v1.HyprService/GetVM", "id", "run");
    assert_false(get->stream);
    assert_true(
        match("GET", "/v1/vms/abc/logs", "/hypr.v1.HyprService/StreamLogs", "id", "abc")->stream);

    _cleanup_strv_ char **params = NULL;
    bool known = false;
    assert_null(rest_match("PUT", "/v1/vms", &params, &known));
    assert_true(known);
    assert_null(params);
    assert_null(rest_match("POST", "/v1/vms/abc", &params, &known));
    assert_true(known);
    assert_null(rest_match("GET", "/v1/nothing", &params, &known));
    assert_false(known);
    assert_null(rest_match("GET", "/v1/vms/abc/start/now", &params, &known));
    assert_false(known);
    assert_null(rest_match("GET", "/v2/vms", &params, &known));
    assert_false(known);
    assert_null(rest_match("GET", "", &params, &known));
    assert_null(rest_match("GET", "/", &params, &known));
    assert_false(known);
    /* bad or NUL escapes match nothing */
    assert_null(rest_match("GET", "/v1/vms/a%00b", &params, &known));
    assert_null(rest_match("GET", "/v1/vms/a%zz", &params, &known));
    assert_null(rest_match("GET", "/v1/vms/a%2", &params, &known));
    assert_null(params);
}

static void test_http_status_mapping(void **state)
{
    (void)state;
    static const struct {
        hypr_status status;
        int http;
    } want[] = {
        {HYPR_OK, 200},
        {HYPR_CANCELLED, 499},
        {HYPR_UNKNOWN, 500},
        {HYPR_INVALID_ARGUMENT, 400},
        {HYPR_DEADLINE_EXCEEDED, 504},
        {HYPR_NOT_FOUND, 404},
        {HYPR_ALREADY_EXISTS, 409},
        {HYPR_PERMISSION_DENIED, 403},
        {HYPR_RESOURCE_EXHAUSTED, 429},
        {HYPR_FAILED_PRECONDITION, 400},
        {HYPR_ABORTED, 409},
        {HYPR_OUT_OF_RANGE, 400},
        {HYPR_UNIMPLEMENTED, 501},
        {HYPR_INTERNAL, 500},
        {HYPR_UNAVAILABLE, 503},
        {HYPR_DATA_LOSS, 500},
        {HYPR_UNAUTHENTICATED, 401},
    };
    assert_int_equal(ARRAY_SIZE(want), 17);
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        if (rest_http_status(want[i].status) != want[i].http)
            fail_msg("%s -> %d, want %d", hypr_status_name(want[i].status),
                     rest_http_status(want[i].status), want[i].http);
    }
    assert_int_equal(rest_http_status((hypr_status)17), 500);
    assert_int_equal(rest_http_status((hypr_status)-1), 500);
}

int main(void)
{
    hypr_log_init("error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vm_to_json),
        cmocka_unit_test(test_bytes_and_oneof_to_json),
        cmocka_unit_test(test_invalid_utf8_keeps_the_field),
        cmocka_unit_test(test_vm_json_round_trip),
        cmocka_unit_test(test_json_names_and_scalar_forms),
        cmocka_unit_test(test_json_refusals_name_the_field),
        cmocka_unit_test(test_json_depth_limit),
        cmocka_unit_test(test_text_parameters),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_http_status_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
