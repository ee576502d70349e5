#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "common/common.h"
#include "net/net.h"
#include "state/state.h"
#include "test_helpers.h"

static uint32_t ip(const char *s)
{
    uint32_t a;
    assert_int_equal(net_ip4_parse(s, &a), 0);
    return a;
}

static void assert_ip(uint32_t addr, const char *want)
{
    char text[NET_IP4_STRLEN];
    net_ip4_format(addr, text);
    assert_string_equal(text, want);
}

static void assert_error(hypr_error *err, hypr_status status, const char *want)
{
    assert_int_equal(err->status, status);
    assert_non_null(err->message);
    if (!strstr(err->message, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err->message, want);
    hypr_error_clear(err);
}

/* ---- addresses and subnets --------------------------------------------------- */

static void test_ip4_parse(void **state)
{
    assert_int_equal(ip("10.88.0.1"), 0x0a580001);
    assert_int_equal(ip("255.255.255.255"), 0xffffffff);
    assert_int_equal(ip("0.0.0.0"), 0);
    uint32_t a;
    const char *bad[] = {"",         "1.2.3",  "1.2.3.4.5", "1.2.3.256", "01.2.3.4",   "1.2.3.4 ",
                         " 1.2.3.4", "1..3.4", "a.b.c.d",   "1.2.3.-4",  "1.2.3.1000", "1.2.3.4/8"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(net_ip4_parse(bad[i], &a), -EINVAL);
    assert_int_equal(net_ip4_parse(NULL, &a), -EINVAL);
    assert_ip(0x0a580a05, "10.88.10.5");
}

static void test_subnet_parse(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    net_subnet sn;
    assert_int_equal(net_subnet_parse("10.88.0.0/16", &sn, &err), 0);
    assert_int_equal(sn.network, 0x0a580000);
    assert_int_equal(sn.prefix, 16);
    assert_ip(net_subnet_broadcast(&sn), "10.88.255.255");
    assert_ip(net_subnet_first_host(&sn), "10.88.0.1");
    assert_true(net_subnet_contains(&sn, ip("10.88.3.4")));
    assert_false(net_subnet_contains(&sn, ip("10.89.0.0")));
    char text[NET_CIDR_STRLEN];
    net_subnet_format(&sn, text);
    assert_string_equal(text, "10.88.0.0/16");
    assert_int_equal(net_subnet_parse("10.0.0.0/8", &sn, &err), 0);
    assert_int_equal(net_subnet_parse("192.168.1.4/30", &sn, &err), 0);

    assert_int_equal(net_subnet_parse("10.88.0.0/33", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT,
                 "invalid subnet \"10.88.0.0/33\": prefix must be 8..30");
    assert_int_equal(net_subnet_parse("10.88.0.0/31", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "prefix must be 8..30");
    assert_int_equal(net_subnet_parse("10.0.0.0/7", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "prefix must be 8..30");
    assert_int_equal(net_subnet_parse("10.88.0.0/", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "prefix must be 8..30");
    assert_int_equal(net_subnet_parse("10.88.0.0/+16", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "prefix");
    assert_int_equal(net_subnet_parse("10.88.0.0/ 16", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "prefix");
    assert_int_equal(net_subnet_parse("10.88.0.0/16 ", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "prefix");
    assert_int_equal(net_subnet_parse("10.88.0.0/016", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "prefix");
    assert_int_equal(net_subnet_parse("10.88.0.1/16", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT,
                 "invalid subnet \"10.88.0.1/16\": host bits set (did you mean 10.88.0.0/16?)");
    assert_int_equal(net_subnet_parse("10.88.0.0", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "want ADDRESS/PREFIX");
    assert_int_equal(net_subnet_parse("10.388.0.0/16", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "\"10.388.0.0\" is not an IPv4 address");
    assert_int_equal(net_subnet_parse("", &sn, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "invalid subnet");
}

static net_subnet sub(const char *cidr)
{
    net_subnet sn;
    assert_int_equal(net_subnet_parse(cidr, &sn, NULL), 0);
    return sn;
}

static void test_overlap(void **state)
{
    net_subnet a = sub("10.88.0.0/16"), b = sub("10.88.4.0/24"), c = sub("10.89.0.0/16"),
               d = sub("10.0.0.0/8"), e = sub("192.168.0.0/30"), f = sub("192.168.0.4/30");
    assert_true(ipam_subnets_overlap(&a, &b));
    assert_true(ipam_subnets_overlap(&b, &a));
    assert_false(ipam_subnets_overlap(&a, &c));
    assert_true(ipam_subnets_overlap(&d, &c));
    assert_true(ipam_subnets_overlap(&a, &a));
    assert_false(ipam_subnets_overlap(&e, &f));
    assert_false(ipam_subnets_overlap(&a, &e));
}

static void test_pick_subnet(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    net_subnet out;
    char text[NET_CIDR_STRLEN];
    assert_int_equal(ipam_pick_subnet(NULL, 0, &out, &err), 0);
    net_subnet_format(&out, text);
    assert_string_equal(text, "10.89.0.0/16");

    net_subnet existing[] = {sub("10.88.0.0/16"), sub("10.89.0.0/16"), sub("10.90.128.0/24")};
    assert_int_equal(ipam_pick_subnet(existing, ARRAY_SIZE(existing), &out, &err), 0);
    net_subnet_format(&out, text);
    assert_string_equal(text, "10.91.0.0/16");

    /* A /8 covering everything leaves nothing. */
    net_subnet all = sub("10.0.0.0/8");
    assert_int_equal(ipam_pick_subnet(&all, 1, &out, &err), -ENOSPC);
    assert_error(&err, HYPR_RESOURCE_EXHAUSTED, "no free /16 subnet");
    /* Only 10.255 left. */
    net_subnet most[] = {sub("10.64.0.0/10"),  sub("10.128.0.0/10"), sub("10.192.0.0/11"),
                         sub("10.224.0.0/12"), sub("10.240.0.0/13"), sub("10.248.0.0/14"),
                         sub("10.252.0.0/15"), sub("10.254.0.0/16")};
    assert_int_equal(ipam_pick_subnet(most, ARRAY_SIZE(most), &out, &err), 0);
    net_subnet_format(&out, text);
    assert_string_equal(text, "10.255.0.0/16");
}

/* ---- the allocator ------------------------------------------------------------ */

static void test_exhaust_29(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_(ipam_freep) ipam *p = NULL;
    assert_int_equal(ipam_new("n29", "192.168.5.8/29", NULL, NULL, &p, &err), 0);
    assert_int_equal(ipam_capacity(p), 5);
    assert_ip(ipam_gateway(p), "192.168.5.9");
    const char *want[] = {"192.168.5.10", "192.168.5.11", "192.168.5.12", "192.168.5.13",
                          "192.168.5.14"};
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        uint32_t a;
        assert_int_equal(ipam_allocate(p, "vm", NULL, &a, &err), 0);
        assert_ip(a, want[i]);
    }
    assert_int_equal(ipam_used(p), 5);
    uint32_t a;
    assert_int_equal(ipam_allocate(p, "vm", NULL, &a, &err), -ENOSPC);
    assert_error(&err, HYPR_RESOURCE_EXHAUSTED, "no free address in 192.168.5.8/29");
    assert_false(ipam_is_allocated(p, ip("192.168.5.8")));
    assert_false(ipam_is_allocated(p, ip("192.168.5.9")));
    assert_false(ipam_is_allocated(p, ip("192.168.5.15")));
}

static void test_exhaust_30_custom_gateway(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_(ipam_freep) ipam *p = NULL;
    /* /30: network .4, hosts .5 .6, broadcast .7; the gateway takes .6 here. */
    assert_int_equal(ipam_new("n30", "10.1.1.4/30", "10.1.1.6", NULL, &p, &err), 0);
    assert_int_equal(ipam_capacity(p), 1);
    uint32_t a;
    assert_int_equal(ipam_allocate(p, NULL, NULL, &a, &err), 0);
    assert_ip(a, "10.1.1.5");
    assert_int_equal(ipam_allocate(p, NULL, NULL, &a, &err), -ENOSPC);
    assert_error(&err, HYPR_RESOURCE_EXHAUSTED, "no free address in 10.1.1.4/30");
    assert_int_equal(ipam_release(p, ip("10.1.1.5"), &err), 0);
    assert_int_equal(ipam_allocate(p, NULL, NULL, &a, &err), 0);
    assert_ip(a, "10.1.1.5");

    ipam *q = NULL;
    assert_int_equal(ipam_new("x", "10.1.1.4/30", "10.1.1.7", NULL, &q, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "not a host address of 10.1.1.4/30");
    assert_int_equal(ipam_new("x", "10.1.1.4/30", "10.1.2.5", NULL, &q, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "invalid gateway");
    assert_int_equal(ipam_new("x", "10.1.1.4/30", "nope", NULL, &q, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "not an IPv4 address");
    assert_int_equal(ipam_new("x", "10.1.1.5/30", NULL, NULL, &q, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "host bits set");
    assert_int_equal(ipam_new("", "10.1.1.4/30", NULL, NULL, &q, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "no network");
    assert_null(q);
}

static void test_reuse_lowest(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_(ipam_freep) ipam *p = NULL;
    assert_int_equal(ipam_new("bridge", "10.88.0.0/16", NULL, NULL, &p, &err), 0);
    uint32_t a[200];
    for (int i = 0; i < 200; i++)
        assert_int_equal(ipam_allocate(p, NULL, NULL, &a[i], &err), 0);
    assert_ip(a[0], "10.88.0.2");
    assert_ip(a[199], "10.88.0.201");
    assert_int_equal(ipam_release(p, a[150], &err), 0);
    assert_int_equal(ipam_release(p, a[7], &err), 0);
    assert_int_equal(ipam_release(p, a[7], &err), -ENOENT);
    assert_error(&err, HYPR_NOT_FOUND, "address 10.88.0.9 is not allocated in network bridge");
    uint32_t b;
    assert_int_equal(ipam_allocate(p, NULL, NULL, &b, &err), 0);
    assert_int_equal(b, a[7]);
    assert_int_equal(ipam_allocate(p, NULL, NULL, &b, &err), 0);
    assert_int_equal(b, a[150]);
    assert_int_equal(ipam_allocate(p, NULL, NULL, &b, &err), 0);
    assert_ip(b, "10.88.0.202");
    /* Reserved addresses cannot be released either. */
    assert_int_equal(ipam_release(p, ip("10.88.0.1"), &err), -ENOENT);
    assert_error(&err, HYPR_NOT_FOUND, "not allocated");
    assert_int_equal(ipam_release(p, ip("10.99.0.5"), &err), -ENOENT);
    hypr_error_clear(&err);
}

static void test_specific_address_refused_when_taken_or_reserved(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_(ipam_freep) ipam *p = NULL;
    assert_int_equal(ipam_new("bridge", "10.88.0.0/16", NULL, NULL, &p, &err), 0);
    uint32_t a;
    assert_int_equal(ipam_allocate(p, "vm1", "10.88.7.7", &a, &err), 0);
    assert_ip(a, "10.88.7.7");
    assert_int_equal(ipam_allocate(p, "vm2", "10.88.7.7", &a, &err), -EEXIST);
    assert_error(&err, HYPR_ALREADY_EXISTS,
                 "address 10.88.7.7 is already allocated in network bridge");
    assert_int_equal(ipam_allocate(p, "vm2", "10.88.0.1", &a, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "10.88.0.1 is the gateway address");
    assert_int_equal(ipam_allocate(p, "vm2", "10.88.0.0", &a, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "the network address");
    assert_int_equal(ipam_allocate(p, "vm2", "10.88.255.255", &a, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "the broadcast address");
    assert_int_equal(ipam_allocate(p, "vm2", "10.89.0.5", &a, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "outside network bridge (10.88.0.0/16)");
    assert_int_equal(ipam_allocate(p, "vm2", "10.88.0.300", &a, &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "not an IPv4 address");
    /* Automatic allocation skips the taken specific address. */
    assert_int_equal(ipam_allocate(p, "vm3", "10.88.0.2", &a, &err), 0);
    assert_int_equal(ipam_allocate(p, "vm4", "", &a, &err), 0);
    assert_ip(a, "10.88.0.3");
}

/* Never hands out the network, gateway or broadcast address, whatever the gateway. */
static void test_never_reserved(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    const char *gateways[] = {NULL, "172.20.0.200", "172.20.0.254", "172.20.0.1"};
    for (size_t g = 0; g < ARRAY_SIZE(gateways); g++) {
        _cleanup_(ipam_freep) ipam *p = NULL;
        assert_int_equal(ipam_new("n", "172.20.0.0/24", gateways[g], NULL, &p, &err), 0);
        uint32_t gw = ipam_gateway(p);
        size_t n = 0;
        uint32_t a;
        while (ipam_allocate(p, NULL, NULL, &a, &err) == 0) {
            assert_int_not_equal(a, ip("172.20.0.0"));
            assert_int_not_equal(a, ip("172.20.0.255"));
            assert_int_not_equal(a, gw);
            n++;
        }
        assert_error(&err, HYPR_RESOURCE_EXHAUSTED, "no free address in 172.20.0.0/24");
        assert_int_equal(n, 253);
    }
}

static void test_65000_allocations_ordered_under_churn(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_(ipam_freep) ipam *p = NULL;
    assert_int_equal(ipam_new("bridge", "10.88.0.0/16", NULL, NULL, &p, &err), 0);
    assert_int_equal(ipam_capacity(p), 65533);
    int64_t t0 = time_monotonic_ms();
    uint32_t a = 0, prev = 0;
    for (int i = 0; i < 65000; i++) {
        assert_int_equal(ipam_allocate(p, NULL, NULL, &a, NULL), 0);
        assert_true(a > prev);
        prev = a;
    }
    /* Churn at the top: release and reallocate a spread of addresses. */
    for (uint32_t i = 0; i < 10000; i++) {
        uint32_t victim = ip("10.88.0.2") + (i * 7919) % 64000;
        assert_int_equal(ipam_release(p, victim, NULL), 0);
        assert_int_equal(ipam_allocate(p, NULL, NULL, &a, NULL), 0);
        assert_int_equal(a, victim);
    }
    int64_t elapsed = time_monotonic_ms() - t0;
    assert_int_equal(ipam_used(p), 65000);
    /* A linear scan of the allocations would be ~2e9 steps; a bitmap is milliseconds
     * even under ASan and a busy machine. */
    if (elapsed > 2000)
        fail_msg("75,000 allocations took %" PRId64 " ms", elapsed);
    /* The remaining 533 fill up, then exhaustion. */
    for (int i = 0; i < 533; i++)
        assert_int_equal(ipam_allocate(p, NULL, NULL, &a, NULL), 0);
    assert_ip(a, "10.88.255.254");
    assert_int_equal(ipam_allocate(p, NULL, NULL, &a, &err), -ENOSPC);
    assert_error(&err, HYPR_RESOURCE_EXHAUSTED, "no free address in 10.88.0.0/16");
}

/* ---- persistence --------------------------------------------------------------- */

static void test_store_api(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(store_ip_allocate(f->s, "bridge", "10.88.0.2", "vmA", &err), 0);
    assert_int_equal(store_ip_allocate(f->s, "bridge", "10.88.0.3", "vmB", &err), 0);
    assert_int_equal(store_ip_allocate(f->s, "bridge", "10.88.0.4", NULL, &err), 0);
    assert_int_equal(store_ip_allocate(f->s, "other", "10.88.0.2", "vmA", &err), 0);
    assert_int_equal(store_ip_allocate(f->s, "bridge", "10.88.0.2", "vmC", &err), -EEXIST);
    assert_error(&err, HYPR_ALREADY_EXISTS,
                 "address 10.88.0.2 is already allocated in network bridge");
    assert_int_equal(store_ip_allocate(f->s, "", "10.88.0.2", "vmC", &err), -EINVAL);
    assert_error(&err, HYPR_INVALID_ARGUMENT, "no network");

    store_ip_allocation *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_ip_list(f->s, "bridge", &rows, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].network, "bridge");
    assert_string_equal(rows[0].address, "10.88.0.2");
    assert_string_equal(rows[0].vm_id, "vmA");
    assert_null(rows[2].vm_id);
    store_ip_allocations_free(rows, n);

    assert_int_equal(store_ip_release(f->s, "bridge", "10.88.0.3", &err), 0);
    assert_int_equal(store_ip_release(f->s, "bridge", "10.88.0.3", &err), -ENOENT);
    assert_error(&err, HYPR_NOT_FOUND, "address 10.88.0.3 is not allocated in network bridge");

    /* vmA in every network. */
    assert_int_equal(store_ip_release_vm(f->s, NULL, "vmA", &rows, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].network, "bridge");
    assert_string_equal(rows[1].network, "other");
    store_ip_allocations_free(rows, n);
    assert_int_equal(store_ip_release_vm(f->s, NULL, "vmA", &rows, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(rows);
    assert_int_equal(store_ip_release_vm(f->s, "bridge", "nobody", NULL, NULL, &err), 0);
    assert_int_equal(store_ip_list(f->s, "other", &rows, &n, &err), 0);
    assert_int_equal(n, 0);
    store_ip_allocations_free(rows, n);
}

static void test_persist_round_trip(void **state)
{
    store_fixture *f = *state;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    uint32_t a;
    {
        _cleanup_(ipam_freep) ipam *p = NULL;
        assert_int_equal(ipam_new("bridge", "10.88.0.0/16", NULL, f->s, &p, &err), 0);
        for (int i = 0; i < 10; i++)
            assert_int_equal(ipam_allocate(p, i < 5 ? "vm1" : "vm2", NULL, &a, &err), 0);
        assert_int_equal(ipam_allocate(p, "vm3", "10.88.100.1", &a, &err), 0);
        assert_int_equal(ipam_release(p, ip("10.88.0.4"), &err), 0);
        /* Another network's rows do not leak in. */
        _cleanup_(ipam_freep) ipam *o = NULL;
        assert_int_equal(ipam_new("other", "10.88.0.0/16", NULL, f->s, &o, &err), 0);
        assert_int_equal(ipam_allocate(o, "vm9", "10.88.0.4", &a, &err), 0);
    }
    /* Reopen the store from disk. */
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    _cleanup_(ipam_freep) ipam *p = NULL;
    assert_int_equal(ipam_new("bridge", "10.88.0.0/16", NULL, f->s, &p, &err), 0);
    assert_int_equal(ipam_used(p), 10);
    assert_true(ipam_is_allocated(p, ip("10.88.0.2")));
    assert_false(ipam_is_allocated(p, ip("10.88.0.4")));
    assert_true(ipam_is_allocated(p, ip("10.88.100.1")));
    assert_int_equal(ipam_allocate(p, "vm4", NULL, &a, &err), 0);
    assert_ip(a, "10.88.0.4");
    assert_int_equal(ipam_allocate(p, "vm4", NULL, &a, &err), 0);
    assert_ip(a, "10.88.0.12");
    assert_int_equal(ipam_allocate(p, "vm5", "10.88.100.1", &a, &err), -EEXIST);
    assert_error(&err, HYPR_ALREADY_EXISTS, "already allocated");

    /* Releasing a VM frees its addresses in this network only. */
    assert_int_equal(ipam_release_vm(p, "vm1", &err), 0);
    assert_int_equal(ipam_used(p), 8); /* 12 less vm1's .2 .3 .5 .6 */
    assert_false(ipam_is_allocated(p, ip("10.88.0.2")));
    assert_int_equal(ipam_allocate(p, "vm6", NULL, &a, &err), 0);
    assert_ip(a, "10.88.0.2");

    store_ip_allocation *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_ip_list(f->s, "bridge", &rows, &n, &err), 0);
    assert_int_equal(n, ipam_used(p));
    store_ip_allocations_free(rows, n);
    assert_int_equal(store_ip_list(f->s, "other", &rows, &n, &err), 0);
    assert_int_equal(n, 1);
    store_ip_allocations_free(rows, n);

    /* A row that appears behind the IPAM's back makes the write fail cleanly. */
    assert_false(ipam_is_allocated(p, ip("10.88.0.3")));
    assert_int_equal(store_ip_allocate(f->s, "bridge", "10.88.0.3", "ghost", &err), 0);
    size_t used = ipam_used(p);
    assert_int_equal(ipam_allocate(p, "vm7", NULL, &a, &err), -EEXIST);
    assert_error(&err, HYPR_ALREADY_EXISTS, "already allocated");
    assert_int_equal(ipam_used(p), used);
    assert_false(ipam_is_allocated(p, ip("10.88.0.3")));

    /* Stored rows outside the subnet or on reserved addresses are ignored at load. */
    assert_int_equal(store_ip_allocate(f->s, "tiny", "10.9.9.9", NULL, &err), 0);
    assert_int_equal(store_ip_allocate(f->s, "tiny", "192.168.0.1", NULL, &err), 0);
    assert_int_equal(store_ip_allocate(f->s, "tiny", "192.168.0.2", NULL, &err), 0);
    _cleanup_(ipam_freep) ipam *t = NULL;
    assert_int_equal(ipam_new("tiny", "192.168.0.0/30", NULL, f->s, &t, &err), 0);
    assert_int_equal(ipam_used(t), 1);
    assert_int_equal(ipam_allocate(t, NULL, NULL, &a, &err), -ENOSPC);
    assert_error(&err, HYPR_RESOURCE_EXHAUSTED, "no free address in 192.168.0.0/30");
}

static void test_in_memory_release_vm(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_(ipam_freep) ipam *p = NULL;
    assert_int_equal(ipam_new("n", "10.0.0.0/8", NULL, NULL, &p, &err), 0);
    assert_int_equal(ipam_capacity(p), (1u << 24) - 3);
    assert_int_equal(ipam_release_vm(p, "x", &err), -EINVAL);
    assert_error(&err, HYPR_FAILED_PRECONDITION, "without a store");
    ipam_free(NULL);
}

int main(void)
{
    hypr_log_init("error");
#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip4_parse),
        cmocka_unit_test(test_subnet_parse),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_pick_subnet),
        cmocka_unit_test(test_exhaust_29),
        cmocka_unit_test(test_exhaust_30_custom_gateway),
        cmocka_unit_test(test_reuse_lowest),
        cmocka_unit_test(test_specific_address_refused_when_taken_or_reserved),
        cmocka_unit_test(test_never_reserved),
        cmocka_unit_test(test_65000_allocations_ordered_under_churn),
        cmocka_unit_test(test_in_memory_release_vm),
        T(test_store_api),
        T(test_persist_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
