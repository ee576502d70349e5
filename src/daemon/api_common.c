/* What every handler uses: the daemon of a call, and the one place a failed call
 * is answered (and an internal error logged, once). */
#define LOG_MODULE "api"
#include "api.h"

daemon_ctx *api_daemon(rpc_call *call)
{
    return rpc_server_userdata(rpc_call_server(call));
}

void api_fail(rpc_call *call, const hypr_error *err)
{
    if (err->status == HYPR_INTERNAL || err->status == HYPR_UNKNOWN || err->status == HYPR_OK)
        log_error("%s: %s", rpc_call_path(call), err->message ? err->message : "unknown error");
    else
        log_debug("%s: %s: %s", rpc_call_path(call), hypr_status_name(err->status),
                  err->message ? err->message : "");
    rpc_call_finish_error(call, err);
}
