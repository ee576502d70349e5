/* Network RPCs: CreateNetwork and DeleteNetwork, on top of the network manager's
 * netmgr_network_create/remove (the lists and lookups are in api_resources.c). */
#define LOG_MODULE "api"
#include "api.h"
#include "netmgr.h"

void api_create_network(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__CreateNetworkRequest *req = (Hypr__V1__CreateNetworkRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_free_ char *labels =
        api_labels_json((ProtobufCMessage *const *)req->labels, req->n_labels);
    const netmgr_network_spec spec = {
        .name = req->name,
        .driver = req->driver,
        .subnet = req->subnet,
        .gateway = req->gateway,
        .internal = req->internal,
        .labels = labels,
    };
    _cleanup_store_network_ store_network sn = {0};
    Hypr__V1__CreateNetworkResponse resp = HYPR__V1__CREATE_NETWORK_RESPONSE__INIT;
    if (netmgr_network_create(d, &spec, &sn, &err) < 0 ||
        api_network_message(d, &sn, &resp.network, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    rpc_call_reply(call, &resp.base);
    api_network_message_free(resp.network);
}

void api_delete_network(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__DeleteNetworkRequest *req = (Hypr__V1__DeleteNetworkRequest *)msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_network_ store_network sn = {0};
    if (netmgr_network_remove(api_daemon(call), req->id, req->force, &sn, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    Hypr__V1__DeleteNetworkResponse resp = HYPR__V1__DELETE_NETWORK_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
}
