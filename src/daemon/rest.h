/* The REST gateway: HTTP/1.1 + JSON on the rest_addr setting (127.0.0.1:41001),
 * serving the API's RPCs through the very handlers gRPC uses. Routes come from the
 * "REST:" lines of api/hypr.proto (api/rest_gen.py generates them at build time). */
#ifndef HYPR_DAEMON_REST_H
#define HYPR_DAEMON_REST_H

#include "daemon.h"

typedef struct rest_route {
    const char *verb; /* "GET" */
    const char *path; /* "/v1/vms/{id}/start"; {name=**} takes the rest, slashes too */
    const char *rpc;  /* "/hypr.v1.HyprService/StartVM" */
    bool stream;      /* server-streaming: NDJSON */
} rest_route;

extern const rest_route rest_routes[];
extern const size_t rest_n_routes;
extern const char rest_openapi_json[];

/* A server of handler (userdata d) listening on addr ("IPv4:PORT", as the settings
 * validate it); NULL when addr is empty or the port is taken (logged with what). */
http_server *daemon_http_listen(daemon_ctx *d, const char *addr, http_handler handler,
                                const char *what);

/* Listens on rest_addr (nothing when it is empty). A taken port is logged, not fatal. */
void rest_start(daemon_ctx *d);
/* Closes the listener and every connection (their calls are cancelled). */
void rest_stop(daemon_ctx *d);
/* rest_addr changed: listen there now. */
void rest_reconfigure(daemon_ctx *d);

/* The route for verb and path, with the path parameters as a NULL-terminated
 * name, value, name, value... vector (decoded; strv_free). NULL when none matches;
 * *path_known then says whether the path matched under another verb. */
const rest_route *rest_match(const char *verb, const char *path, char ***params, bool *path_known);
/* grpc-gateway's HTTP status for a gRPC status. */
int rest_http_status(hypr_status status);

#endif
