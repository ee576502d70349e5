/* nftables rules in `inet hypr`, checked by listing the table. The whole binary runs
 * in a fresh network namespace so no rule reaches the machine's own ruleset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <nftables/libnftables.h>
#include <string.h>

#include "common/common.h"
#include "net/net.h"
#include "test_helpers.h"

static char *dump(void)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    char *text = NULL;
    assert_int_equal(net_fw_dump(&text, &err), 0);
    assert_non_null(text);
    return text;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Runs an nft command directly (for tables that are not hypr's). */
static int nft(const char *cmd, char **out)
{
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    assert_non_null(ctx);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    int r = nft_run_cmd_from_buffer(ctx, cmd);
    if (out)
        *out = xstrdup(nft_ctx_get_output_buffer(ctx));
    nft_ctx_free(ctx);
    return r;
}

#define ISOLATE0 "iifname \"vbr0\" oifname \"vbr*\" oifname != \"vbr0\" drop"
#define MASQ0    "ip saddr 10.88.0.0/16 oifname != \"vbr0\" masquerade"
#define ISOLATE1 "iifname \"vbr1\" oifname \"vbr*\" oifname != \"vbr1\" drop"
#define OUT1     "iifname \"vbr1\" oifname != \"vbr1\" drop"
#define IN1      "oifname \"vbr1\" iifname != \"vbr1\" drop"
#define DNAT_TCP "ip daddr 192.168.7.5 tcp dport 8080 dnat ip to 10.88.0.2:80"
#define DNAT_UDP "udp dport 5353 dnat ip to 10.88.0.3:53"

static void test_init_twice(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_fw_init(&err), 0);
    assert_int_equal(net_fw_init(&err), 0);
    _cleanup_free_ char *t = dump();
    assert_non_null(strstr(t, "table inet hypr"));
    assert_non_null(strstr(t, "chain forward"));
    assert_non_null(strstr(t, "type filter hook forward priority filter; policy accept;"));
    assert_non_null(strstr(t, "type nat hook postrouting priority srcnat; policy accept;"));
    assert_non_null(strstr(t, "type nat hook prerouting priority dstnat; policy accept;"));
    assert_null(strstr(t, "drop"));
}

static void test_network_rules(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_fw_init(&err), 0);
    assert_int_equal(net_fw_network_add("vbr0", "10.88.0.0/16", false, &err), 0);
    assert_int_equal(net_fw_network_add("vbr0", "10.88.0.0/16", false, &err), 0); /* replaces */
    assert_int_equal(net_fw_network_add("vbr1", "10.89.0.0/16", true, &err), 0);
    {
        _cleanup_free_ char *t = dump();
        assert_int_equal(count(t, ISOLATE0), 1);
        assert_int_equal(count(t, MASQ0), 1);
        assert_int_equal(count(t, ISOLATE1), 1);
        assert_int_equal(count(t, OUT1), 1);
        assert_int_equal(count(t, IN1), 1);
        assert_null(strstr(t, "10.89.0.0/16")); /* internal: no masquerade */
    }

    /* Switching vbr0 to internal replaces its rules exactly. */
    assert_int_equal(net_fw_network_add("vbr0", "10.88.0.0/16", true, &err), 0);
    {
        _cleanup_free_ char *t = dump();
        assert_int_equal(count(t, MASQ0), 0);
        assert_int_equal(count(t, "iifname \"vbr0\" oifname != \"vbr0\" drop"), 1);
    }
    assert_int_equal(net_fw_network_add("vbr0", "10.88.0.0/16", false, &err), 0);

    assert_int_equal(net_fw_network_remove("vbr0", &err), 0);
    {
        _cleanup_free_ char *t = dump();
        assert_null(strstr(t, "vbr0"));
        assert_int_equal(count(t, ISOLATE1), 1);
        assert_int_equal(count(t, OUT1), 1);
        assert_int_equal(count(t, IN1), 1);
    }
    assert_int_equal(net_fw_network_remove("vbr0", &err), 0); /* none: fine */
    assert_int_equal(net_fw_network_remove("vbr1", &err), 0);
    {
        _cleanup_free_ char *t = dump();
        assert_null(strstr(t, "vbr1"));
        assert_non_null(strstr(t, "chain postrouting"));
    }

    /* Init drops whatever was there. */
    assert_int_equal(net_fw_network_add("vbr2", "10.90.0.0/24", false, &err), 0);
    assert_int_equal(net_fw_init(&err), 0);
    _cleanup_free_ char *t = dump();
    assert_null(strstr(t, "vbr2"));
}

static void test_add_without_init(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(nft("delete table inet hypr", NULL), 0);
    assert_int_equal(net_fw_network_remove("vbr0", &err), 0); /* no table: nothing to do */
    assert_int_equal(net_fw_network_add("vbr0", "10.88.0.0/16", false, &err), 0);
    _cleanup_free_ char *t = dump();
    assert_int_equal(count(t, MASQ0), 1);
}

static void test_dnat(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_fw_init(&err), 0);
    assert_int_equal(net_fw_dnat_add("tcp", "192.168.7.5", 8080, "10.88.0.2", 80, &err), 0);
    assert_int_equal(net_fw_dnat_add("tcp", "192.168.7.5", 8080, "10.88.0.2", 80, &err), 0);
    assert_int_equal(net_fw_dnat_add("udp", "0.0.0.0", 5353, "10.88.0.3", 53, &err), 0);
    {
        _cleanup_free_ char *t = dump();
        assert_int_equal(count(t, DNAT_TCP), 1);
        assert_int_equal(count(t, DNAT_UDP), 1);
        assert_non_null(strstr(t, "fib daddr type local"));
    }
    assert_int_equal(net_fw_dnat_remove("tcp", "192.168.7.5", 8080, "10.88.0.2", 80, &err), 0);
    {
        _cleanup_free_ char *t = dump();
        assert_int_equal(count(t, DNAT_TCP), 0);
        assert_int_equal(count(t, DNAT_UDP), 1);
    }
    /* A different forward is not removed by a near match. */
    assert_int_equal(net_fw_dnat_remove("tcp", "0.0.0.0", 5353, "10.88.0.3", 53, &err), 0);
    assert_int_equal(net_fw_dnat_remove("udp", "0.0.0.0", 5353, "10.88.0.3", 53, &err), 0);
    _cleanup_free_ char *t = dump();
    assert_null(strstr(t, "dnat"));
}

static void test_invalid_arguments(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(net_fw_init(&err), 0);
    assert_int_equal(net_fw_network_add("vbr0\"; flush ruleset", "10.88.0.0/16", false, &err),
                     -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_true(net_fw_network_add("vbr0", "10.88.0.0/33", false, &err) < 0);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_true(net_fw_network_add("vbr0", "10.88.0.1/16", false, &err) < 0);
    assert_true(net_fw_network_add("vbr0", NULL, false, &err) < 0);
    assert_int_equal(net_fw_network_remove("", &err), -EINVAL);
    assert_int_equal(net_fw_dnat_add("icmp", "0.0.0.0", 1, "10.88.0.2", 1, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_int_equal(net_fw_dnat_add("tcp", "localhost", 1, "10.88.0.2", 1, &err), -EINVAL);
    assert_int_equal(net_fw_dnat_add("tcp", "0.0.0.0", 1, "10.88.0.2/32", 1, &err), -EINVAL);
    assert_int_equal(net_fw_dnat_add("tcp", "0.0.0.0", 0, "10.88.0.2", 1, &err), -EINVAL);
    assert_int_equal(net_fw_dnat_add("tcp", "0.0.0.0", 1, "10.88.0.2", 0, &err), -EINVAL);
    assert_int_equal(net_fw_dnat_remove(NULL, "0.0.0.0", 1, "10.88.0.2", 1, &err), -EINVAL);
    _cleanup_free_ char *t = dump();
    assert_null(strstr(t, "drop"));
    assert_null(strstr(t, "dnat"));
}

static void test_other_tables_untouched(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(nft("add table inet other\n"
                         "add chain inet other c { type filter hook forward priority 0; }\n"
                         "add rule inet other c iifname \"vbr0\" counter accept\n",
                         NULL),
                     0);
    assert_int_equal(net_fw_init(&err), 0);
    assert_int_equal(net_fw_network_add("vbr0", "10.88.0.0/16", false, &err), 0);
    assert_int_equal(net_fw_network_remove("vbr0", &err), 0);
    _cleanup_free_ char *out = NULL;
    assert_int_equal(nft("list table inet other", &out), 0);
    assert_non_null(strstr(out, "iifname \"vbr0\" counter"));
    assert_int_equal(nft("delete table inet other", NULL), 0);
}

int main(void)
{
    test_enter_private_netns();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_twice),        cmocka_unit_test(test_network_rules),
        cmocka_unit_test(test_add_without_init),  cmocka_unit_test(test_dnat),
        cmocka_unit_test(test_invalid_arguments), cmocka_unit_test(test_other_tables_untouched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
