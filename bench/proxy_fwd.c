/* Runs one hypr port forward until SIGINT/SIGTERM, for bench/forward.py:
 *   proxy_fwd tcp|udp HOST_IP HOST_PORT TARGET_IP TARGET_PORT   the userspace proxy
 *   proxy_fwd dnat HOST_IP HOST_PORT TARGET_IP TARGET_PORT      the nftables DNAT rule
 *                                                               (port_forward=nftables)
 * Prints "ready PORT" on stdout once the forward is in place. */
#include "common/common.h"
#include "net/net.h"

#include <string.h>

static net_proxy *proxy;

static void on_signal(uv_signal_t *s, int signum)
{
    if (proxy)
        net_proxy_stop(proxy);
    proxy = NULL;
    uv_close((uv_handle_t *)s->data, NULL);
    uv_close((uv_handle_t *)s, NULL);
}

static int parse_port(const char *s, uint16_t *out)
{
    int64_t v;
    if (parse_int64(s, 0, 65535, &v) < 0)
        return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s tcp|udp HOST_IP HOST_PORT TARGET_IP TARGET_PORT\n", argv[0]);
        return 2;
    }
    net_forward fwd = {argv[1], argv[2], 0, argv[4], 0};
    if (parse_port(argv[3], &fwd.host_port) < 0 || parse_port(argv[5], &fwd.target_port) < 0) {
        fprintf(stderr, "proxy_fwd: invalid port\n");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    bool dnat = strcmp(argv[1], "dnat") == 0;
    if (dnat) {
        /* What hyprd does for a published port with port_forward=nftables. */
        if (net_ip_forward_enable(&err) < 0 || net_fw_init(&err) < 0 ||
            net_fw_dnat_add("tcp", fwd.host_ip, fwd.host_port, fwd.target_ip, fwd.target_port,
                            &err) < 0) {
            fprintf(stderr, "proxy_fwd: %s\n", err.message);
            return 1;
        }
    } else if (net_proxy_start(loop, &fwd, &proxy, &err) < 0) {
        fprintf(stderr, "proxy_fwd: %s\n", err.message);
        uv_run(loop, UV_RUN_DEFAULT);
        return 1;
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    sigint.data = &sigterm;
    sigterm.data = &sigint;
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    printf("ready %u\n", dnat ? (unsigned)fwd.host_port : (unsigned)net_proxy_port(proxy));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    if (dnat && net_fw_dnat_remove("tcp", fwd.host_ip, fwd.host_port, fwd.target_ip,
                                   fwd.target_port, &err) < 0) {
        fprintf(stderr, "proxy_fwd: %s\n", err.message);
        return 1;
    }
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
