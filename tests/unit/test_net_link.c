/* Links over netlink. The whole binary runs in a fresh network namespace so nothing
 * it creates touches the machine's own network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "common/common.h"
#include "net/net.h"
#include "test_helpers.h"

static const char *const ID_A = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char *const ID_B = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

static void test_bridge_ensure_idempotent(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_bridge_ensure("vbr0", "10.88.0.1/16", &err), 0);
    assert_int_equal(net_bridge_ensure("vbr0", "10.88.0.1/16", &err), 0);
    assert_true(net_link_exists("vbr0"));

    net_link_info info;
    assert_int_equal(net_link_get("vbr0", &info, &err), 0);
    assert_string_equal(info.name, "vbr0");
    assert_string_equal(info.kind, "bridge");
    assert_true(info.up);
    assert_true(info.index > 0);
    assert_int_equal(info.master, 0);

    _cleanup_strv_ char **addrs = NULL;
    assert_int_equal(net_addr_list("vbr0", &addrs, &err), 0);
    assert_int_equal(strv_length(addrs), 1);
    assert_string_equal(addrs[0], "10.88.0.1/16");
}

static void test_bridge_without_address(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_bridge_ensure("vbr7", NULL, &err), 0);
    _cleanup_strv_ char **addrs = NULL;
    assert_int_equal(net_addr_list("vbr7", &addrs, &err), 0);
    assert_int_equal(strv_length(addrs), 0);
    assert_int_equal(net_link_delete("vbr7", &err), 0);
    assert_false(net_link_exists("vbr7"));
}

static void test_tap_attached_to_bridge(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_bridge_ensure("vbr1", "10.89.0.1/16", &err), 0);
    char tap[NET_IFNAME_LEN];
    assert_int_equal(net_tap_name(ID_A, 0, tap), 0);
    assert_int_equal(net_tap_create(tap, "vbr1", &err), 0);
    assert_int_equal(net_tap_create(tap, "vbr1", &err), 0); /* idempotent */

    net_link_info br, info;
    assert_int_equal(net_link_get("vbr1", &br, &err), 0);
    assert_int_equal(net_link_get(tap, &info, &err), 0);
    assert_string_equal(info.kind, "tun");
    assert_int_equal(info.master, br.index);
    assert_true(info.up);

    /* qemu opens the persistent TAP by name with the same flags. */
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, tap, strlen(tap) + 1);
    assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
    close(fd);
    /* Still there after the opener went away. */
    assert_true(net_link_exists(tap));

    assert_int_equal(net_link_delete(tap, &err), 0);
    assert_false(net_link_exists(tap));
    assert_int_equal(net_link_delete(tap, &err), 0); /* absent: fine */
    assert_int_equal(net_link_delete("vbr1", &err), 0);
    assert_false(net_link_exists("vbr1"));
}

static void test_tap_missing_bridge(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_tap_create("htapmissing", "vbr99", &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    assert_non_null(strstr(err.message, "vbr99"));
    assert_false(net_link_exists("htapmissing"));
}

static void test_name_clash_with_other_kind(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_bridge_ensure("vbr2", NULL, &err), 0);
    /* A TAP called like a bridge: ensuring the bridge must refuse, not reuse it. */
    assert_int_equal(net_tap_create("vbr3", "vbr2", &err), 0);
    assert_true(net_bridge_ensure("vbr3", "10.90.0.1/16", &err) < 0);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, "vbr3"));
    /* And a bridge called like a TAP is not turned into one (nor deleted). */
    assert_true(net_tap_create("vbr2", "vbr2", &err) < 0);
    assert_int_equal(err.status, HYPR_FAILED_PRECONDITION);
    assert_true(net_link_exists("vbr2"));
    assert_int_equal(net_link_delete("vbr3", &err), 0);
    assert_int_equal(net_link_delete("vbr2", &err), 0);
}

static void test_list_prefix(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_bridge_ensure("vbr4", "10.91.0.1/24", &err), 0);
    char a[NET_IFNAME_LEN], b[NET_IFNAME_LEN];
    assert_int_equal(net_tap_name(ID_A, 0, a), 0);
    assert_int_equal(net_tap_name(ID_B, 0, b), 0);
    assert_int_equal(net_tap_create(b, "vbr4", &err), 0);
    assert_int_equal(net_tap_create(a, "vbr4", &err), 0);

    _cleanup_strv_ char **taps = NULL;
    assert_int_equal(net_link_list_prefix("htap", &taps, &err), 0);
    assert_int_equal(strv_length(taps), 2);
    assert_string_equal(taps[0], a); /* sorted */
    assert_string_equal(taps[1], b);

    _cleanup_strv_ char **bridges = NULL;
    assert_int_equal(net_link_list_prefix("vbr", &bridges, &err), 0);
    assert_true(strv_contains(bridges, "vbr4"));
    assert_false(strv_contains(bridges, a));
    assert_false(strv_contains(bridges, "lo"));

    _cleanup_strv_ char **none = NULL;
    assert_int_equal(net_link_list_prefix("nothing-here", &none, &err), 0);
    assert_non_null(none);
    assert_int_equal(strv_length(none), 0);

    assert_int_equal(net_link_delete(a, &err), 0);
    assert_int_equal(net_link_delete(b, &err), 0);
    assert_int_equal(net_link_delete("vbr4", &err), 0);
    _cleanup_strv_ char **after = NULL;
    assert_int_equal(net_link_list_prefix("htap", &after, &err), 0);
    assert_int_equal(strv_length(after), 0);
}

static void test_names_and_macs(void **state)
{
    char name[NET_IFNAME_LEN];
    assert_int_equal(net_tap_name(ID_A, 0, name), 0);
    assert_string_equal(name, "htap0123456789a");
    assert_int_equal(strlen(name), NET_IFNAME_LEN - 1);
    /* Further NICs: distinct names that no VM's first TAP can have. */
    assert_int_equal(net_tap_name(ID_A, 1, name), 0);
    assert_string_equal(name, "htap0123456789g");
    assert_int_equal(net_tap_name(ID_A, NET_MAX_NICS - 1, name), 0);
    assert_string_equal(name, "htap0123456789m");
    assert_int_equal(net_tap_name(ID_A, NET_MAX_NICS, name), -EINVAL);
    assert_int_equal(net_tap_name("0123", 0, name), -EINVAL);
    assert_int_equal(net_tap_name("0123456789ABCDEF", 0, name), -EINVAL);
    assert_int_equal(net_tap_name(NULL, 0, name), -EINVAL);

    char m1[NET_MAC_STRLEN], m2[NET_MAC_STRLEN], m3[NET_MAC_STRLEN], m4[NET_MAC_STRLEN];
    assert_int_equal(net_mac_for_vm(ID_A, 0, m1), 0);
    assert_int_equal(net_mac_for_vm(ID_A, 0, m2), 0);
    assert_int_equal(net_mac_for_vm(ID_B, 0, m3), 0);
    assert_int_equal(net_mac_for_vm(ID_A, 1, m4), 0);
    assert_string_equal(m1, m2);
    assert_string_not_equal(m1, m3);
    assert_string_not_equal(m1, m4);
    assert_true(str_startswith(m4, "02:"));
    assert_int_equal(net_mac_for_vm(ID_A, NET_MAX_NICS, m4), -EINVAL);
    assert_int_equal(strlen(m1), 17);
    assert_true(str_startswith(m1, "02:"));
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2)
            assert_int_equal(m1[i], ':');
        else
            assert_non_null(strchr("0123456789abcdef", m1[i]));
    }
    assert_int_equal(net_mac_for_vm("", 0, m1), -EINVAL);
}

static void test_bad_names(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_bridge_ensure("vbr0123456789abcdef", NULL, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "vbr0123456789abcdef"));
    assert_int_equal(net_bridge_ensure("", NULL, &err), -EINVAL);
    assert_int_equal(net_bridge_ensure("vbr 0", NULL, &err), -EINVAL);
    assert_int_equal(net_bridge_ensure("vbr/0", NULL, &err), -EINVAL);
    assert_int_equal(net_bridge_ensure(NULL, NULL, &err), -EINVAL);
    assert_int_equal(net_tap_create("htap0123456789abc", "vbr0", &err), -EINVAL);
    assert_int_equal(net_tap_create("htapx", "vbr\"0", &err), -EINVAL);
    assert_int_equal(net_link_delete("..", &err), -EINVAL);
    assert_false(net_link_exists("way-too-long-interface-name"));
    net_link_info info;
    assert_int_equal(net_link_get("nosuchlink", &info, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);

    assert_int_equal(net_bridge_ensure("vbr5", "10.92.0.1", &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_int_equal(net_bridge_ensure("vbr5", "10.92.0.300/16", &err), -EINVAL);
    assert_int_equal(net_bridge_ensure("vbr5", "10.92.0.1/33", &err), -EINVAL);
    assert_false(net_link_exists("vbr5"));
    assert_true(net_ifname_is_valid("htap0123456789a"));
    assert_false(net_ifname_is_valid("htap0123456789ab"));
}

/* The output of a shell command (tests may use ip(8); the daemon never does). */
static char *run_capture(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    hypr_buf b = {0};
    char chunk[256];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    pclose(f);
    return buf_steal(&b);
}

static void test_neigh_forget(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_bridge_ensure("vbr9", "10.99.0.1/16", &err), 0);
    /* The ARP entry a previous VM with that address left behind. */
    assert_int_equal(system("ip neigh replace 10.99.0.5 lladdr 02:00:00:00:00:01 dev vbr9 nud "
                            "stale"),
                     0);
    _cleanup_free_ char *before = run_capture("ip neigh show 10.99.0.5 dev vbr9");
    assert_non_null(strstr(before, "02:00:00:00:00:01"));
    uint32_t addr = (10u << 24) | (99u << 16) | 5u;
    assert_int_equal(net_neigh_forget("vbr9", addr), 0);
    _cleanup_free_ char *after = run_capture("ip neigh show 10.99.0.5 dev vbr9");
    assert_null(strstr(after, "02:00:00:00:00:01"));
    /* Nothing to forget, or no such device: not an error. */
    assert_int_equal(net_neigh_forget("vbr9", addr), 0);
    assert_int_equal(net_neigh_forget("vbrnone", addr), 0);
    assert_int_equal(net_link_delete("vbr9", &err), 0);
}

/* The bridge's MAC as ip(8) shows it (the daemon never reads it). */
static char *bridge_mac_shown(const char *bridge)
{
    _cleanup_free_ char *cmd = xasprintf(
        "ip -o link show dev %s | sed -n 's/.*link\\/ether \\([0-9a-f:]*\\).*/\\1/p'", bridge);
    char *out = run_capture(cmd);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static void test_bridge_keeps_its_mac(void **state)
{
    (void)state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    char want[NET_MAC_STRLEN], again[NET_MAC_STRLEN], other[NET_MAC_STRLEN];
    assert_int_equal(net_mac_for_bridge("vbr6", want), 0);
    assert_int_equal(net_mac_for_bridge("vbr6", again), 0);
    assert_int_equal(net_mac_for_bridge("vbr8", other), 0);
    assert_string_equal(want, again);
    assert_string_not_equal(want, other);
    assert_true(str_startswith(want, "06:"));
    assert_int_equal(strlen(want), 17);
    assert_int_equal(net_mac_for_bridge("", other), -EINVAL);

    /* A bridge left by an older hyprd has the kernel's MAC: ensuring it pins ours. */
    assert_int_equal(system("ip link add vbr6 type bridge"), 0);
    assert_int_equal(net_bridge_ensure("vbr6", "10.93.0.1/16", &err), 0);
    _cleanup_free_ char *pinned = bridge_mac_shown("vbr6");
    assert_string_equal(pinned, want);

    /* Left to the kernel, the bridge would take this TAP's lower MAC when it joins and
     * change again when it leaves: guests would keep sending to the old gateway MAC. */
    char tap[NET_IFNAME_LEN];
    assert_int_equal(net_tap_name(ID_B, 0, tap), 0);
    assert_int_equal(net_tap_create(tap, "vbr6", &err), 0);
    _cleanup_free_ char *set_low = xasprintf("ip link set dev %s address 02:00:00:00:00:01", tap);
    assert_int_equal(system(set_low), 0);
    _cleanup_free_ char *with_tap = bridge_mac_shown("vbr6");
    assert_string_equal(with_tap, want);
    assert_int_equal(net_link_delete(tap, &err), 0);
    _cleanup_free_ char *without = bridge_mac_shown("vbr6");
    assert_string_equal(without, want);
    assert_int_equal(net_bridge_ensure("vbr6", "10.93.0.1/16", &err), 0); /* idempotent */
    _cleanup_free_ char *ensured = bridge_mac_shown("vbr6");
    assert_string_equal(ensured, want);
    assert_int_equal(net_link_delete("vbr6", &err), 0);
}

static void test_ip_forward(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_ip_forward_enable(&err), 0);
    _cleanup_free_ char *v = NULL;
    size_t len = 0;
    assert_int_equal(read_file("/proc/sys/net/ipv4/ip_forward", 64, &v, &len), 0);
    assert_true(len >= 1);
    assert_int_equal(v[0], '1');
}

/* Never run against the machine's own namespace: a failure to unshare aborts. */
int main(void)
{
    test_enter_private_netns();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bridge_ensure_idempotent),
        cmocka_unit_test(test_bridge_without_address),
        cmocka_unit_test(test_tap_attached_to_bridge),
        cmocka_unit_test(test_tap_missing_bridge),
        cmocka_unit_test(test_name_clash_with_other_kind),
        cmocka_unit_test(test_list_prefix),
        cmocka_unit_test(test_names_and_macs),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_neigh_forget),
        cmocka_unit_test(test_bridge_keeps_its_mac),
        cmocka_unit_test(test_ip_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
