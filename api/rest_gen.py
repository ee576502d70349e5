#!/usr/bin/python3
"""Generates the REST gateway's route table and its OpenAPI 3 document from
api/hypr.proto: each RPC whose leading comment has a "REST: METHOD /path" line
becomes a route. Run by meson at build time:

    rest_gen.py PROTOC hypr.proto OUT.c OUT.json

protoc compiles the .proto into a descriptor set with its comments (source info);
google.protobuf reads it. The C file holds the routes and the document as a string."""
import json
import os
import re
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

F = descriptor_pb2.FieldDescriptorProto
BODY_METHODS = {"POST", "PATCH", "PUT"}
PARAM = re.compile(r"\{(\w+)(=\*\*)?\}")


def load(protoc, proto):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run([protoc, "--include_source_info", "--descriptor_set_out=" + out,
                        "--proto_path=" + os.path.dirname(os.path.abspath(proto)),
                        os.path.basename(proto)], check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    return fds.file[0]


def comments(fd):
    out = {}
    for loc in fd.source_code_info.location:
        text = (loc.leading_comments + loc.trailing_comments).strip()
        if text:
            out[tuple(loc.path)] = text
    return out


def json_name(name):
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class Schemas:
    """Every message and enum as an OpenAPI schema, by full name."""

    def __init__(self, fd, notes):
        self.pkg = fd.package
        self.messages, self.enums, self.notes = {}, {}, {}
        for i, m in enumerate(fd.message_type):
            self._message(m, self.pkg, (4, i), notes)
        for i, e in enumerate(fd.enum_type):
            self.enums["%s.%s" % (self.pkg, e.name)] = e

    def _message(self, m, scope, path, notes):
        full = "%s.%s" % (scope, m.name)
        self.messages[full] = m
        self.notes[full] = notes.get(path, "")
        for j, f in enumerate(m.field):
            self.notes["%s.%s" % (full, f.name)] = notes.get(path + (2, j), "")
        for j, n in enumerate(m.nested_type):
            self._message(n, full, path + (3, j), notes)
        for e in m.enum_type:
            self.enums["%s.%s" % (full, e.name)] = e

    def is_map(self, f):
        if f.type != F.TYPE_MESSAGE or f.label != F.LABEL_REPEATED:
            return None
        m = self.messages.get(f.type_name.lstrip("."))
        return m if m is not None and m.options.map_entry else None

    def ref(self, type_name):
        return {"$ref": "#/components/schemas/" + type_name.lstrip(".")}

    def scalar(self, f):
        t = f.type
        if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
            return {"type": "string", "format": "int64"}
        if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
            return {"type": "string", "format": "uint64"}
        if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
            return {"type": "integer", "format": "int32"}
        if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
            return {"type": "integer", "format": "int64", "minimum": 0}
        if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
            return {"type": "number"}
        if t == F.TYPE_BOOL:
            return {"type": "boolean"}
        if t == F.TYPE_STRING:
            return {"type": "string"}
        if t == F.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        if t in (F.TYPE_ENUM, F.TYPE_MESSAGE):
            return self.ref(f.type_name)
        raise SystemExit("rest_gen: unsupported field type %d" % t)

    def field(self, f, note):
        entry = self.is_map(f)
        if entry is not None:
            s = {"type": "object", "additionalProperties": self.scalar(entry.field[1])}
        elif f.label == F.LABEL_REPEATED:
            s = {"type": "array", "items": self.scalar(f)}
        else:
            s = self.scalar(f)
        if note:
            s = {"allOf": [s], "description": note} if "$ref" in s else dict(s, description=note)
        return s

    def document(self):
        out = {}
        for full, m in sorted(self.messages.items()):
            if m.options.map_entry:
                continue
            props = {json_name(f.name): self.field(f, self.notes["%s.%s" % (full, f.name)])
                     for f in m.field}
            s = {"type": "object", "properties": props}
            if self.notes[full]:
                s["description"] = self.notes[full]
            out[full] = s
        for full, e in sorted(self.enums.items()):
            out[full] = {"type": "string", "enum": [v.name for v in e.value]}
        out["hypr.rest.Status"] = {
            "type": "object",
            "description": "An error: the gRPC status code and its message.",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
            "required": ["code", "message"]}
        return out


def routes(fd, notes, schemas):
    out = []
    svc = fd.service[0]
    for i, m in enumerate(svc.method):
        note = notes.get((6, 0, 2, i), "")
        lines = [l.strip() for l in note.splitlines()]
        rest = [l[len("REST:"):].strip() for l in lines if l.startswith("REST:")]
        desc = " ".join(l for l in lines if l and not l.startswith("REST:"))
        for r in rest:
            verb, path = r.split()
            if m.client_streaming:
                raise SystemExit("rest_gen: %s is a client stream: no REST route" % m.name)
            req = schemas.messages[m.input_type.lstrip(".")]
            fields = {f.name for f in req.field}
            for p, _ in PARAM.findall(path):
                if p not in fields:
                    raise SystemExit("rest_gen: %s %s: %s has no field %s"
                                     % (verb, path, req.name, p))
            out.append({"verb": verb, "path": path, "rpc": m.name, "desc": desc,
                        "rpc_path": "/%s.%s/%s" % (fd.package, svc.name, m.name),
                        "stream": m.server_streaming, "input": m.input_type.lstrip("."),
                        "output": m.output_type.lstrip(".")})
    return out


def openapi(fd, schemas, rts):
    paths = {}
    for r in rts:
        oa_path = PARAM.sub(lambda m: "{%s}" % m.group(1), r["path"])
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p, _ in PARAM.findall(r["path"])]
        req = schemas.messages[r["input"]]
        taken = {p for p, _ in PARAM.findall(r["path"])}
        op = {"operationId": r["rpc"], "tags": [r["path"].split("/")[2]]}
        if r["desc"]:
            op["description"] = r["desc"]
        if r["verb"] in BODY_METHODS:
            op["requestBody"] = {"required": False, "content": {
                "application/json": {"schema": schemas.ref(r["input"])}}}
        else:
            for f in req.field:
                if f.name in taken or f.type == F.TYPE_MESSAGE:
                    continue
                params.append({"name": json_name(f.name), "in": "query", "required": False,
                               "schema": schemas.field(f, "")})
        if params:
            op["parameters"] = params
        if r["stream"]:
            line = {"type": "object", "description": "one line per message; an error ends the "
                    "stream with an error line",
                    "properties": {"result": schemas.ref(r["output"]),
                                   "error": schemas.ref("hypr.rest.Status")}}
            ok = {"description": "a stream of newline-delimited JSON objects",
                  "content": {"application/x-ndjson": {"schema": line}}}
        else:
            ok = {"description": "OK",
                  "content": {"application/json": {"schema": schemas.ref(r["output"])}}}
        op["responses"] = {"200": ok, "default": {
            "description": "an error (gRPC status mapped to HTTP as grpc-gateway does)",
            "content": {"application/json": {"schema": schemas.ref("hypr.rest.Status")}}}}
        paths.setdefault(oa_path, {})[r["verb"].lower()] = op
    paths["/v1/openapi.json"] = {"get": {
        "operationId": "OpenAPI", "tags": ["openapi"], "description": "this document",
        "responses": {"200": {"description": "OK",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    return {"openapi": "3.0.3",
            "info": {"title": "hypr REST API", "version": "v1",
                     "description": "The REST form of hypr.v1.HyprService (api/hypr.proto): "
                     "messages in the proto3 JSON mapping."},
            "servers": [{"url": "http://127.0.0.1:41001"}],
            "paths": paths, "components": {"schemas": schemas.document()}}


def c_string(s):
    out = []
    for i in range(0, len(s), 100):
        chunk = s[i:i + 100].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.append('    "%s"' % chunk)
    return "\n".join(out)


def main():
    protoc, proto, out_c, out_json = sys.argv[1:5]
    fd = load(protoc, proto)
    notes = comments(fd)
    schemas = Schemas(fd, notes)
    rts = routes(fd, notes, schemas)
    doc = json.dumps(openapi(fd, schemas, rts), indent=1, sort_keys=True)
    with open(out_json, "w") as f:
        f.write(doc + "\n")
    lines = ["/* Generated by api/rest_gen.py from api/hypr.proto: do not edit. */",
             '#include "daemon/rest.h"', "", "const rest_route rest_routes[] = {"]
    for r in rts:
        lines.append('    {"%s", "%s", "%s", %s},' % (r["verb"], r["path"], r["rpc_path"],
                                                   "true" if r["stream"] else "false"))
    lines += ["};", "const size_t rest_n_routes = %d;" % len(rts), "",
              "const char rest_openapi_json[] =", c_string(doc + "\n") + ";", ""]
    with open(out_c, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
