/* Guest metrics: kestrel's counters arrive on the control channel a few times a
 * second; each StreamVMMetrics call of the VM gets them as rates and sizes. */
#define LOG_MODULE "vm"
#include "api.h"
#include "vm_internal.h"

#include <string.h>

void vm_metrics_frame(vm_runtime *vm, const ctl_frame *f)
{
    uint64_t v[CTL_M_COUNT];
    if (ctl_parse_metrics(f->payload, f->len, v) < 0)
        return;
    memcpy(vm->prev_metrics, vm->last_metrics, sizeof(v));
    memcpy(vm->last_metrics, v, sizeof(v));
    const uint64_t *p = vm->prev_metrics;
    uint64_t busy = v[CTL_M_CPU_USER] + v[CTL_M_CPU_SYSTEM];
    uint64_t total = busy + v[CTL_M_CPU_IDLE] + v[CTL_M_CPU_IOWAIT] + v[CTL_M_CPU_STEAL];
    uint64_t pbusy = p[CTL_M_CPU_USER] + p[CTL_M_CPU_SYSTEM];
    uint64_t ptotal = pbusy + p[CTL_M_CPU_IDLE] + p[CTL_M_CPU_IOWAIT] + p[CTL_M_CPU_STEAL];
    Hypr__V1__VMMetrics m = HYPR__V1__VMMETRICS__INIT;
    m.id = vm->id;
    m.timestamp_ms = time_now_ms();
    if (total > ptotal && busy >= pbusy)
        m.cpu_percent = 100.0 * (double)(busy - pbusy) / (double)(total - ptotal);
    m.memory_total_bytes = v[CTL_M_MEM_TOTAL];
    m.memory_used_bytes = v[CTL_M_MEM_TOTAL] - v[CTL_M_MEM_AVAILABLE];
    m.disk_total_bytes = v[CTL_M_DISK_TOTAL];
    m.disk_used_bytes = v[CTL_M_DISK_USED];
    m.net_rx_bytes = v[CTL_M_NET_RX_BYTES];
    m.net_tx_bytes = v[CTL_M_NET_TX_BYTES];
    for (size_t i = 0; i < ARRAY_SIZE(vm->metrics_calls); i++)
        if (vm->metrics_calls[i])
            rpc_call_send(vm->metrics_calls[i], &m.base);
}

void vm_metrics_end_all(vm_runtime *vm)
{
    for (size_t i = 0; i < ARRAY_SIZE(vm->metrics_calls); i++) {
        rpc_call *c = vm->metrics_calls[i];
        if (c) {
            vm->metrics_calls[i] = NULL;
            rpc_call_set_data(c, NULL);
            rpc_call_finish(c, HYPR_OK, NULL);
        }
    }
}

void api_stream_vm_metrics(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__StreamVMMetricsRequest *req = (Hypr__V1__StreamVMMetricsRequest *)msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    vm_runtime *vm = NULL;
    if (vm_runtime_lookup(api_daemon(call), req->id, false, &vm, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(vm->metrics_calls); i++) {
        if (!vm->metrics_calls[i]) {
            vm->metrics_calls[i] = call;
            rpc_call_set_data(call, vm);
            return;
        }
    }
    rpc_call_finish(call, HYPR_RESOURCE_EXHAUSTED, "too many metrics streams for this VM");
}

void api_stream_vm_metrics_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    vm_runtime *vm = rpc_call_get_data(call);
    if (!vm)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(vm->metrics_calls); i++)
        if (vm->metrics_calls[i] == call)
            vm->metrics_calls[i] = NULL;
}
