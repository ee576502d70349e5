/* The proto3 JSON mapping, driven by protobuf-c's descriptors: messages to JSON for
 * the REST gateway's responses, and JSON (or a path/query parameter's text) to the
 * protobuf wire encoding, which protobuf_c_message_unpack then turns into the very
 * message a gRPC client would have sent. Going through the wire format keeps every
 * allocation protobuf-c's own. */
#define LOG_MODULE "rpc"
#include "rpc/rpc.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "common/json_cleanup.h"

/* Deeper nesting than any hypr message is refused (jansson accepts up to 2048). */
#define MAX_DEPTH 32

/* ---- names ------------------------------------------------------------------------ */

/* "host_ip" -> "hostIp" (the proto3 JSON name). Caller frees. */
static char *json_name(const char *name)
{
    char *out = xmalloc(strlen(name) + 1), *o = out;
    bool upper = false;
    for (const char *p = name; *p; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        *o++ = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = false;
    }
    *o = '\0';
    return out;
}

/* The JSON names of fields, computed once per field descriptor (they are static):
 * a list of 1,000 VMs would otherwise build each name 1,000 times. */
#define NAME_CACHE_SIZE 4096
static struct {
    const ProtobufCFieldDescriptor *field;
    char *name;
} name_cache[NAME_CACHE_SIZE];

static const char *cached_json_name(const ProtobufCFieldDescriptor *f)
{
    size_t h = ((uintptr_t)f >> 4) % NAME_CACHE_SIZE;
    for (size_t i = 0; i < NAME_CACHE_SIZE; i++, h = (h + 1) % NAME_CACHE_SIZE) {
        if (name_cache[h].field == f)
            return name_cache[h].name;
        if (!name_cache[h].field) {
            name_cache[h].field = f;
            name_cache[h].name = json_name(f->name);
            return name_cache[h].name;
        }
    }
    return NULL; /* full: callers build the name themselves */
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (strcmp(f->name, key) == 0)
            return f;
        _cleanup_free_ char *jn = json_name(f->name);
        if (strcmp(jn, key) == 0)
            return f;
    }
    return NULL;
}

/* protobuf-c describes map<K,V> as a repeated nested "XxxEntry" message {key=1, value=2}. */
static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
    return d && d->n_fields == 2 && str_endswith(d->name, "Entry") && d->fields[0].id == 1 &&
           d->fields[1].id == 2 && strcmp(d->fields[0].name, "key") == 0 &&
           strcmp(d->fields[1].name, "value") == 0;
}

/* ---- message -> JSON -------------------------------------------------------------- */

/* Written as text straight into a buffer: a list of 1,000 VMs is a few hundred
 * thousand values, and a jansson tree of them costs more in malloc than the rest. */

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80             ? 1
                 : (p[0] & 0xe0) == 0xc0 ? 2
                 : (p[0] & 0xf0) == 0xe0 ? 3
                 : (p[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (len == 0 || len > n || (len == 2 && p[0] < 0xc2) || (len == 4 && p[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (len == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
        return 0; /* overlong, or a surrogate */
    if (len == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
        return 0;
    return len;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
void rpc_json_put_string(hypr_buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(out, n + 2);
    buf_append(out, "\"", 1);
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++, i++;
            continue;
        }
        buf_append(out, p + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            buf_append(out, e, 2);
            i++;
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof(e), "\\u%04x", c);
            buf_append(out, e, 6);
            i++;
        } else {
            size_t len = utf8_len(p + i, n - i);
            if (len) {
                buf_append(out, p + i, len);
                i += len;
            } else {
                buf_puts(out, "\\ufffd");
                i++;
            }
        }
    }
    buf_append(out, p + n - run, run);
    buf_append(out, "\"", 1);
}

static void put_double(hypr_buf *out, double v)
{
    if (isnan(v))
        buf_puts(out, "\"NaN\"");
    else if (isinf(v))
        buf_puts(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else
        buf_printf(out, "%.17g", v);
}

static void put_message(hypr_buf *out, const ProtobufCMessage *msg);

/* One value at p. */
static void put_value(hypr_buf *out, const ProtobufCFieldDescriptor *f, const void *p)
{
    char num[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        buf_append(out, num, (size_t)snprintf(num, sizeof(num), "%" PRId32, *(const int32_t *)p));
        return;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        buf_append(out, num, (size_t)snprintf(num, sizeof(num), "%" PRIu32, *(const uint32_t *)p));
        return;
    case PROTOBUF_C_TYPE_INT64: /* 64-bit integers are strings in proto3 JSON */
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        buf_append(out, num,
                   (size_t)snprintf(num, sizeof(num), "\"%" PRId64 "\"", *(const int64_t *)p));
        return;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        buf_append(out, num,
                   (size_t)snprintf(num, sizeof(num), "\"%" PRIu64 "\"", *(const uint64_t *)p));
        return;
    case PROTOBUF_C_TYPE_FLOAT:
        put_double(out, *(const float *)p);
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        put_double(out, *(const double *)p);
        return;
    case PROTOBUF_C_TYPE_BOOL:
        buf_puts(out, *(const protobuf_c_boolean *)p ? "true" : "false");
        return;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value((const ProtobufCEnumDescriptor *)f->descriptor, v);
        if (ev)
            rpc_json_put_string(out, ev->name, strlen(ev->name));
        else
            buf_printf(out, "%d", v);
        return;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *str = *(char *const *)p;
        rpc_json_put_string(out, str ? str : "", str ? strlen(str) : 0);
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        _cleanup_free_ char *enc = base64_encode(b->data, b->len);
        rpc_json_put_string(out, enc, strlen(enc));
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        if (m)
            put_message(out, m);
        else
            buf_puts(out, "null");
        return;
    }
    }
    buf_puts(out, "null");
}

/* A map field: an object keyed by the entries' keys (always strings in JSON). */
static void put_map(hypr_buf *out, const ProtobufCFieldDescriptor *f, const void *array, size_t n)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    buf_puts(out, "{");
    for (size_t i = 0; i < n; i++) {
        const char *base = (const char *)((ProtobufCMessage *const *)array)[i];
        const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
        if (i)
            buf_puts(out, ",");
        if (kf->type == PROTOBUF_C_TYPE_STRING) {
            put_value(out, kf, base + kf->offset);
        } else {
            _cleanup_buf_ hypr_buf k = {0}; /* 5, true, "64": as a string */
            put_value(&k, kf, base + kf->offset);
            if (k.len && k.data[0] == '"')
                buf_append(out, k.data, k.len);
            else
                rpc_json_put_string(out, k.data ? k.data : "", k.len);
        }
        buf_puts(out, ":");
        put_value(out, vf, base + vf->offset);
    }
    buf_puts(out, "}");
}

static void put_message(hypr_buf *out, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    bool first = true;
    buf_puts(out, "{");
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        /* Only the member of a oneof that is set. */
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        if (!first)
            buf_puts(out, ",");
        first = false;
        const char *name = cached_json_name(f);
        _cleanup_free_ char *own = name ? NULL : json_name(f->name);
        rpc_json_put_string(out, name ? name : own, strlen(name ? name : own));
        buf_puts(out, ":");
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *array = *(char *const *)p;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor)) {
                put_map(out, f, array, n);
                continue;
            }
            buf_puts(out, "[");
            for (size_t k = 0; k < n; k++) {
                if (k)
                    buf_puts(out, ",");
                put_value(out, f, array + k * type_size(f->type));
            }
            buf_puts(out, "]");
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE &&
                   !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                   !*(const protobuf_c_boolean *)(base + f->quantifier_offset)) {
            buf_puts(out, "null");
        } else {
            put_value(out, f, p);
        }
    }
    buf_puts(out, "}");
}

void rpc_pb_to_json_text(const ProtobufCMessage *msg, hypr_buf *out)
{
    put_message(out, msg);
}

json_t *rpc_pb_to_json(const ProtobufCMessage *msg)
{
    _cleanup_buf_ hypr_buf b = {0};
    put_message(&b, msg);
    return json_loadb(b.data, b.len, 0, NULL);
}

/* ---- JSON -> wire ------------------------------------------------------------------ */

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void put_varint(hypr_buf *out, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    buf_append(out, b, n);
}

static void put_tag(hypr_buf *out, uint32_t id, int wire)
{
    put_varint(out, (uint64_t)id << 3 | (uint64_t)wire);
}

static void put_fixed(hypr_buf *out, uint64_t v, size_t bytes)
{
    uint8_t b[8];
    for (size_t i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    buf_append(out, b, bytes);
}

static void put_len(hypr_buf *out, uint32_t id, const void *data, size_t len)
{
    put_tag(out, id, WIRE_LEN);
    put_varint(out, len);
    buf_append(out, data, len);
}

typedef struct ctx {
    hypr_error *err;
    char path[256]; /* the field being decoded, for messages: "config.ports" */
} ctx;

static int bad(ctx *c, const char *what)
{
    return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid value for field \"%s\": %s",
                    c->path, what);
}

/* A JSON number or a numeric string (proto3 accepts both) as a signed integer. */
static int get_int(ctx *c, json_t *v, int64_t min, int64_t max, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < min || i > max)
            return bad(c, "out of range");
        *out = i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* (double)INT64_MAX rounds up to 2^63, which would pass "d > max" and
         * overflow the conversion: compare against max + 1, exact in a double. */
        if (d != floor(d) || d < (double)min || d >= (double)max + 1.0)
            return bad(c, "not an integer in range");
        *out = (int64_t)d;
        return 0;
    }
    if (json_is_string(v) && parse_int64(json_string_value(v), min, max, out) == 0)
        return 0;
    return bad(c, "expected an integer");
}

static int get_uint64(ctx *c, json_t *v, uint64_t *out)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (*s < '0' || *s > '9' || *end || errno)
            return bad(c, "expected an unsigned integer");
        *out = u;
        return 0;
    }
    int64_t i;
    int r = get_int(c, v, 0, INT64_MAX, &i);
    *out = (uint64_t)i;
    return r;
}

static int get_double(ctx *c, json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "NaN"))
        *out = NAN;
    else if (s && !strcmp(s, "Infinity"))
        *out = INFINITY;
    else if (s && !strcmp(s, "-Infinity"))
        *out = -INFINITY;
    else if (s && *s) {
        char *end;
        *out = strtod(s, &end);
        if (*end)
            return bad(c, "expected a number");
    } else
        return bad(c, "expected a number");
    return 0;
}

static int encode_message(ctx *c, const ProtobufCMessageDescriptor *d, json_t *obj, int depth,
                          hypr_buf *out);

/* One (non-repeated) value of field f. */
static int encode_value(ctx *c, const ProtobufCFieldDescriptor *f, json_t *v, int depth,
                        hypr_buf *out)
{
    int64_t i = 0;
    uint64_t u = 0;
    double dv = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
        if (get_int(c, v, INT32_MIN, INT32_MAX, &i) < 0)
            return -EINVAL;
        put_tag(out, f->id, WIRE_VARINT);
        put_varint(out, (uint64_t)i); /* negative: sign-extended to 10 bytes */
        return 0;
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SINT64:
        if (get_int(c, v, f->type == PROTOBUF_C_TYPE_SINT32 ? INT32_MIN : INT64_MIN,
                    f->type == PROTOBUF_C_TYPE_SINT32 ? INT32_MAX : INT64_MAX, &i) < 0)
            return -EINVAL;
        put_tag(out, f->id, WIRE_VARINT);
        put_varint(out, ((uint64_t)i << 1) ^ (uint64_t)(i >> 63));
        return 0;
    case PROTOBUF_C_TYPE_SFIXED32:
        if (get_int(c, v, INT32_MIN, INT32_MAX, &i) < 0)
            return -EINVAL;
        put_tag(out, f->id, WIRE_FIXED32);
        put_fixed(out, (uint32_t)(int32_t)i, 4);
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (get_int(c, v, INT64_MIN, INT64_MAX, &i) < 0)
            return -EINVAL;
        put_tag(out, f->id, f->type == PROTOBUF_C_TYPE_INT64 ? WIRE_VARINT : WIRE_FIXED64);
        if (f->type == PROTOBUF_C_TYPE_INT64)
            put_varint(out, (uint64_t)i);
        else
            put_fixed(out, (uint64_t)i, 8);
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (get_int(c, v, 0, UINT32_MAX, &i) < 0)
            return -EINVAL;
        put_tag(out, f->id, f->type == PROTOBUF_C_TYPE_UINT32 ? WIRE_VARINT : WIRE_FIXED32);
        if (f->type == PROTOBUF_C_TYPE_UINT32)
            put_varint(out, (uint64_t)i);
        else
            put_fixed(out, (uint64_t)i, 4);
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (get_uint64(c, v, &u) < 0)
            return -EINVAL;
        put_tag(out, f->id, f->type == PROTOBUF_C_TYPE_UINT64 ? WIRE_VARINT : WIRE_FIXED64);
        if (f->type == PROTOBUF_C_TYPE_UINT64)
            put_varint(out, u);
        else
            put_fixed(out, u, 8);
        return 0;
    case PROTOBUF_C_TYPE_FLOAT: {
        if (get_double(c, v, &dv) < 0)
            return -EINVAL;
        float fv = (float)dv;
        uint32_t bits;
        memcpy(&bits, &fv, 4);
        put_tag(out, f->id, WIRE_FIXED32);
        put_fixed(out, bits, 4);
        return 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        if (get_double(c, v, &dv) < 0)
            return -EINVAL;
        uint64_t bits;
        memcpy(&bits, &dv, 8);
        put_tag(out, f->id, WIRE_FIXED64);
        put_fixed(out, bits, 8);
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return bad(c, "expected true or false");
        put_tag(out, f->id, WIRE_VARINT);
        put_varint(out, json_is_true(v));
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
            if (!ev) {
                _cleanup_free_ char *m =
                    xasprintf("\"%s\" is not a %s", json_string_value(v), ed->name);
                return bad(c, m);
            }
            i = ev->value;
        } else if (get_int(c, v, INT32_MIN, INT32_MAX, &i) < 0) {
            return -EINVAL;
        }
        put_tag(out, f->id, WIRE_VARINT);
        put_varint(out, (uint64_t)i);
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            return bad(c, "expected a string");
        put_len(out, f->id, json_string_value(v), json_string_length(v));
        return 0;
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            return bad(c, "expected a base64 string");
        size_t n = 0;
        _cleanup_free_ char *dec =
            json_string_length(v) ? base64_decode(json_string_value(v), SIZE_MAX, &n) : xstrdup("");
        if (!dec)
            return bad(c, "not valid base64");
        put_len(out, f->id, dec, n);
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(v))
            return bad(c, "expected an object");
        _cleanup_buf_ hypr_buf sub = {0};
        int r = encode_message(c, f->descriptor, v, depth + 1, &sub);
        if (r < 0)
            return r;
        put_len(out, f->id, sub.data ? sub.data : "", sub.len);
        return 0;
    }
    }
    return bad(c, "unsupported type");
}

/* A map's JSON object: one entry message per key. Keys are strings in JSON. */
static int encode_map(ctx *c, const ProtobufCFieldDescriptor *f, json_t *obj, int depth,
                      hypr_buf *out)
{
    if (!json_is_object(obj))
        return bad(c, "expected an object");
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        _cleanup_buf_ hypr_buf entry = {0};
        _cleanup_json_ json_t *k = NULL;
        if (ed->fields[0].type == PROTOBUF_C_TYPE_STRING)
            k = json_string(key);
        else if (ed->fields[0].type == PROTOBUF_C_TYPE_BOOL)
            k = !strcmp(key, "true") ? json_true() : !strcmp(key, "false") ? json_false() : NULL;
        else
            k = json_string(key); /* integers parse from their text */
        if (!k || encode_value(c, &ed->fields[0], k, depth, &entry) < 0)
            return k ? -EINVAL : bad(c, "bad map key");
        if (!json_is_null(val) && encode_value(c, &ed->fields[1], val, depth, &entry) < 0)
            return -EINVAL;
        put_len(out, f->id, entry.data ? entry.data : "", entry.len);
    }
    return 0;
}

static int encode_field(ctx *c, const ProtobufCFieldDescriptor *f, json_t *v, int depth,
                        hypr_buf *out)
{
    if (json_is_null(v))
        return 0;
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return encode_value(c, f, v, depth, out);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor))
        return encode_map(c, f, v, depth, out);
    if (!json_is_array(v))
        return bad(c, "expected an array");
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (json_is_null(item))
            return bad(c, "null in an array");
        if (encode_value(c, f, item, depth, out) < 0)
            return -EINVAL;
    }
    return 0;
}

static int encode_message(ctx *c, const ProtobufCMessageDescriptor *d, json_t *obj, int depth,
                          hypr_buf *out)
{
    if (depth > MAX_DEPTH)
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "JSON nested too deeply");
    if (!json_is_object(obj))
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "expected a JSON object for %s",
                        d->name);
    size_t plen = strlen(c->path);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const ProtobufCFieldDescriptor *f = find_field(d, key);
        if (!f)
            return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "unknown field \"%s%s%s\" in %s",
                            c->path, plen ? "." : "", key, d->name);
        snprintf(c->path + plen, sizeof(c->path) - plen, "%s%s", plen ? "." : "", key);
        int r = encode_field(c, f, v, depth, out);
        c->path[plen] = '\0';
        if (r < 0)
            return r;
    }
    return 0;
}

int rpc_json_to_wire(const ProtobufCMessageDescriptor *desc, json_t *obj, hypr_buf *out,
                     hypr_error *err)
{
    ctx c = {.err = err};
    return encode_message(&c, desc, obj, 0, out);
}

int rpc_text_to_wire(const ProtobufCMessageDescriptor *desc, const char *field, const char *text,
                     hypr_buf *out, hypr_error *err)
{
    ctx c = {.err = err};
    snprintf(c.path, sizeof(c.path), "%s", field);
    const ProtobufCFieldDescriptor *f = find_field(desc, field);
    if (!f)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "unknown parameter \"%s\" for %s",
                        field, desc->name);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "parameter \"%s\" is a message: send it in a JSON body", field);
    _cleanup_json_ json_t *v = NULL;
    if (f->type == PROTOBUF_C_TYPE_BOOL)
        v = !strcmp(text, "true") || !strcmp(text, "1")    ? json_true()
            : !strcmp(text, "false") || !strcmp(text, "0") ? json_false()
                                                           : json_string(text);
    else
        v = json_string(text);
    if (!v)
        return bad(&c, "not UTF-8");
    return encode_value(&c, f, v, 0, out);
}
