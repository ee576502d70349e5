#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kestrel/manifest.h"

static int parse(const char *text, kestrel_manifest *m, char *err, size_t errlen)
{
    return manifest_parse(text, strlen(text), m, err, errlen);
}

static void test_round_trip_full(void **state)
{
    (void)state;
    kestrel_manifest m;
    manifest_init(&m);
    m.hostname = strdup("web-1");
    m.workdir = strdup("/srv/my app");
    m.user = strdup("www-data:www-data");
    m.ip = strdup("10.88.0.5/16");
    m.gateway = strdup("10.88.0.1");
    m.interface = strdup("eth0");
    m.rootfs = strdup("/dev/vda");
    m.rootfs_type = strdup("squashfs");
    m.upper = strdup("/dev/vdb");
    m.restart = RESTART_ON_FAILURE;
    m.restart_max = 5;
    m.stop_timeout_s = 30;
    m.stop_signal = 10;
    m.metrics_interval_ms = 1000;
    const char *tricky[] = {
        "nginx",
        "-g",
        "daemon off;",
        "with \"quotes\" and \\backslash\\",
        "multi\nline\r\ttabbed",
        "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x90\xa6", /* UTF-8 */
        "\x01\x1b[31mred\x7f\xff",
        " leading and trailing ",
        "",
        "# not a comment",
    };
    for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++)
        assert_int_equal(manifest_strv_push(&m.cmd, tricky[i]), 0);
    assert_int_equal(manifest_strv_push(&m.entrypoint, "/docker-entrypoint.sh"), 0);
    assert_int_equal(manifest_strv_push(&m.image_env, "PATH=/usr/bin:/bin"), 0);
    assert_int_equal(manifest_strv_push(&m.env, "GREETING=hello world"), 0);
    assert_int_equal(manifest_strv_push(&m.env, "EMPTY="), 0);
    assert_int_equal(manifest_strv_push(&m.dns, "10.88.0.1"), 0);
    assert_int_equal(manifest_strv_push(&m.dns, "1.1.1.1"), 0);
    assert_int_equal(manifest_strv_push(&m.modules, "extra/gpu.ko debug=1"), 0);
    assert_int_equal(manifest_add_volume(&m, "/dev/vdc", "/var/lib/data", "ext4", "rw,noatime"), 0);
    assert_int_equal(manifest_add_volume(&m, "hyprfs0", "/mnt/my share", "virtiofs", ""), 0);
    assert_int_equal(manifest_add_volume(&m, "hyprfs1", "/srv", "9p",
                                         "trans=virtio,version=9p2000.L,x-populate,ro"),
                     0);
    assert_int_equal(
        manifest_add_volume(&m, "tmpfs", "/scratch", "tmpfs", "size=67108864,mode=1777,rw,noexec"),
        0);
    m.readonly_root = 1;

    char *text;
    size_t len;
    assert_int_equal(manifest_encode(&m, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    /* the encoding is plain printable ASCII lines */
    for (size_t i = 0; i < len; i++)
        assert_true(text[i] == '\n' || (text[i] >= 0x20 && text[i] < 0x7f));
    assert_true(strncmp(text, "hypr-manifest 1\n", 16) == 0);

    kestrel_manifest d;
    char err[256];
    assert_int_equal(manifest_parse(text, len, &d, err, sizeof(err)), 0);
    assert_string_equal(d.hostname, "web-1");
    assert_string_equal(d.workdir, "/srv/my app");
    assert_string_equal(d.user, "www-data:www-data");
    assert_string_equal(d.ip, "10.88.0.5/16");
    assert_string_equal(d.gateway, "10.88.0.1");
    assert_string_equal(d.interface, "eth0");
    assert_string_equal(d.upper, "/dev/vdb");
    assert_int_equal(d.restart, RESTART_ON_FAILURE);
    assert_int_equal(d.restart_max, 5);
    assert_int_equal(d.stop_timeout_s, 30);
    assert_int_equal(d.stop_signal, 10);
    assert_int_equal(d.metrics_interval_ms, 1000);
    assert_int_equal(d.cmd.n, m.cmd.n);
    for (size_t i = 0; i < m.cmd.n; i++)
        assert_string_equal(d.cmd.v[i], m.cmd.v[i]);
    assert_null(d.cmd.v[d.cmd.n]);
    assert_int_equal(d.entrypoint.n, 1);
    assert_string_equal(d.env.v[0], "GREETING=hello world");
    assert_string_equal(d.env.v[1], "EMPTY=");
    assert_int_equal(d.dns.n, 2);
    assert_string_equal(d.modules.v[0], "extra/gpu.ko debug=1");
    assert_int_equal(d.n_volumes, 4);
    assert_string_equal(d.volumes[1].target, "/mnt/my share");
    assert_string_equal(d.volumes[1].options, "");
    assert_string_equal(d.volumes[0].options, "rw,noatime");
    assert_string_equal(d.volumes[2].source, "hyprfs1");
    assert_string_equal(d.volumes[2].fstype, "9p");
    assert_string_equal(d.volumes[2].options, "trans=virtio,version=9p2000.L,x-populate,ro");
    assert_string_equal(d.volumes[3].fstype, "tmpfs");
    assert_int_equal(d.readonly_root, 1);
    assert_non_null(strstr(text, "\nreadonly_root 1\n"));

    /* encode(decode(encode(m))) == encode(m) */
    char *text2;
    size_t len2;
    assert_int_equal(manifest_encode(&d, &text2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(text, text2, len);
    free(text);
    free(text2);
    manifest_free(&d);
    manifest_free(&m);
}

static void test_defaults_and_forward_compat(void **state)
{
    (void)state;
    kestrel_manifest m;
    char err[256];
    const char *text = "# written by hyprd\n"
                       "\n"
                       "hypr-manifest 1\r\n"
                       "cmd sh\n"
                       "future_key \"whatever\" 1 2 3\n"
                       "hostname first\n"
                       "hostname second\n"
                       "restart always\n"
                       "restart no\n"
                       "stop_timeout 3";
    assert_int_equal(parse(text, &m, err, sizeof(err)), 0);
    assert_string_equal(m.cmd.v[0], "sh");
    assert_string_equal(m.hostname, "second"); /* last wins */
    assert_int_equal(m.restart, RESTART_NO);
    assert_int_equal(m.stop_timeout_s, 3);
    assert_int_equal(m.metrics_interval_ms, 5000);
    assert_null(m.ip);
    assert_int_equal(m.mode, MANIFEST_MODE_RUN);
    assert_int_equal(m.readonly_root, 0);
    manifest_free(&m);

    /* the host's volume lines, verbatim */
    assert_int_equal(parse("hypr-manifest 1\ncmd sh\nreadonly_root 1\n"
                           "volume hyprfs0 /data virtiofs rw,x-populate\n"
                           "volume hyprfs1 /d9 9p "
                           "trans=virtio,version=9p2000.L,msize=262144,cache=mmap,ro\n"
                           "volume tmpfs /scratch tmpfs size=67108864,mode=1777,rw\n"
                           "volume /srv /mnt/srv bind ro\n"
                           "volume serial:vol1 /var/lib/db ext4 rw\n"
                           "upper serial:upper\n",
                           &m, err, sizeof(err)),
                     0);
    assert_int_equal(m.readonly_root, 1);
    assert_int_equal(m.n_volumes, 5);
    assert_string_equal(m.volumes[0].options, "rw,x-populate");
    assert_string_equal(m.volumes[1].fstype, "9p");
    assert_string_equal(m.upper, "serial:upper");
    /* absent readonly_root is not written */
    m.readonly_root = 0;
    char *t;
    size_t tl;
    assert_int_equal(manifest_encode(&m, &t, &tl), 0);
    assert_null(strstr(t, "readonly_root"));
    free(t);
    manifest_free(&m);

    assert_int_equal(parse("hypr-manifest 1\nmode build\n", &m, err, sizeof(err)), 0);
    assert_int_equal(m.mode, MANIFEST_MODE_BUILD);
    manifest_free(&m);

    /* escapes the encoder never writes are still read */
    assert_int_equal(
        parse("hypr-manifest 1\ncmd \"\\101\\x42\\e\\'\\?\\a\"\n", &m, err, sizeof(err)), 0);
    assert_string_equal(m.cmd.v[0], "AB\x1b'?\a");
    manifest_free(&m);
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int err;
        const char *line;
    } cases[] = {
        {"", -EINVAL, "missing"},
        {"cmd sh\n", -EINVAL, "line 1"},
        {"hypr-manifest 2\ncmd sh\n", -EPROTONOSUPPORT, "line 1"},
        {"hypr-manifest 0\ncmd sh\n", -EPROTONOSUPPORT, "line 1"},
        {"hypr-manifest one\n", -EINVAL, "line 1"},
        {"hypr-manifest 1\n", -EINVAL, "no entrypoint"},
        {"hypr-manifest 1\ncmd \"unterminated\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd \"a\"b\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd  sh\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd sh \n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd a b\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd \"\\x00\"\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd \"\\0\"\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd \"\\q\"\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd \"\\xZZ\"\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd \"\\777\"\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd \"tab\there\"\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd caf\xc3\xa9\n", -EINVAL, "line 2"},
        {"hypr-manifest 1\ncmd sh\nstop_timeout -1\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nstop_timeout 4294967296\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nrestart sometimes\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nrestart on-failure:x\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nmode debug\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nvolume a /b ext4\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nvolume a b ext4 \"\"\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nvolume a /b nfs rw\n", -EINVAL, "fstype must be one of"},
        {"hypr-manifest 1\ncmd sh\nvolume a /b \"\" rw\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nvolume a /b VIRTIOFS rw\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nreadonly_root yes\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nmac 02:ab:cd:ef:01\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nmac 02:ab:cd:ef:01:234\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nmac 02-ab-cd-ef-01-23\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nmac 02:ab:cd:ef:01:2g\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nmac 2:ab:cd:ef:01:234\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nmac \"\"\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nmac 02:ab:cd:ef:01:23 10.0.0.2/24\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nnetif 02:ab:cd:ef:01:23\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nnetif 02:ab:cd:ef:01:23 10.0.0.2/24 x\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nnetif\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nnetif 10.0.0.2/24 02:ab:cd:ef:01:23\n", -EINVAL, "line 3"},
        {"hypr-manifest 1\ncmd sh\nnetif \"02:ab:cd:ef:01:23\\n\" 10.0.0.2/24\n", -EINVAL,
         "line 3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kestrel_manifest m;
        char err[256];
        int r = parse(cases[i].text, &m, err, sizeof(err));
        if (r != cases[i].err || !strstr(err, cases[i].line))
            fail_msg("case %zu: got %d (%s), want %d (%s)", i, r, err, cases[i].err, cases[i].line);
        assert_null(m.cmd.v); /* nothing left behind */
    }
    kestrel_manifest m;
    char nul[] = "hypr-manifest 1\ncmd s\0h\n";
    assert_int_equal(manifest_parse(nul, sizeof(nul) - 1, &m, NULL, 0), -EINVAL);
}

static void test_netifs(void **state)
{
    (void)state;
    kestrel_manifest m;
    manifest_init(&m);
    assert_int_equal(manifest_strv_push(&m.cmd, "sh"), 0);
    m.ip = strdup("10.88.0.5/16");
    m.gateway = strdup("10.88.0.1");
    m.mac = strdup("02:AB:cd:EF:01:23"); /* any case */
    assert_int_equal(manifest_add_netif(&m, "02:ab:cd:ef:01:24", "10.89.0.5/24"), 0);
    assert_int_equal(manifest_add_netif(&m, "0A:0b:0C:0d:0E:0f", "192.168.7.2/30"), 0);
    /* the helper refuses what the parser would */
    assert_int_equal(manifest_add_netif(&m, "02:ab:cd:ef:01", "10.0.0.1/8"), -EINVAL);
    assert_int_equal(manifest_add_netif(&m, "02:ab:cd:ef:01:25", NULL), -EINVAL);
    assert_int_equal(manifest_add_netif(&m, NULL, "10.0.0.1/8"), -EINVAL);
    assert_int_equal(m.n_netifs, 2);

    char *text;
    size_t len;
    assert_int_equal(manifest_encode(&m, &text, &len), 0);
    assert_non_null(strstr(text, "\nmac \"02:AB:cd:EF:01:23\"\n"));
    assert_non_null(strstr(text, "\nnetif \"02:ab:cd:ef:01:24\" \"10.89.0.5/24\"\n"));
    assert_non_null(strstr(text, "\nnetif \"0A:0b:0C:0d:0E:0f\" \"192.168.7.2/30\"\n"));

    kestrel_manifest d;
    char err[256];
    assert_int_equal(manifest_parse(text, len, &d, err, sizeof(err)), 0);
    assert_string_equal(d.mac, "02:AB:cd:EF:01:23");
    assert_string_equal(d.ip, "10.88.0.5/16");
    assert_string_equal(d.gateway, "10.88.0.1");
    assert_null(d.interface);
    assert_int_equal(d.n_netifs, 2);
    assert_string_equal(d.netifs[0].mac, "02:ab:cd:ef:01:24");
    assert_string_equal(d.netifs[0].ip, "10.89.0.5/24");
    assert_string_equal(d.netifs[1].mac, "0A:0b:0C:0d:0E:0f");
    assert_string_equal(d.netifs[1].ip, "192.168.7.2/30");
    char *text2;
    size_t len2;
    assert_int_equal(manifest_encode(&d, &text2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(text, text2, len);
    free(text);
    free(text2);
    manifest_free(&d);
    assert_null(d.netifs);
    assert_int_equal(d.n_netifs, 0);

    /* bare tokens work too; a later mac wins, netifs keep their order */
    assert_int_equal(parse("hypr-manifest 1\ncmd sh\nmac 02:00:00:00:00:01\n"
                           "netif 02:00:00:00:00:03 10.1.0.2/24\nmac 02:00:00:00:00:02\n"
                           "netif 02:00:00:00:00:04 10.2.0.2/24\n",
                           &d, err, sizeof(err)),
                     0);
    assert_string_equal(d.mac, "02:00:00:00:00:02");
    assert_int_equal(d.n_netifs, 2);
    assert_string_equal(d.netifs[1].mac, "02:00:00:00:00:04");
    manifest_free(&d);

    /* an invalid MAC set by hand is refused by the encoder, not written */
    free(m.mac);
    m.mac = strdup("02:ab:cd:ef:01:23:45");
    assert_int_equal(manifest_encode(&m, &text, &len), -EINVAL);
    free(m.mac);
    m.mac = NULL;
    free(m.netifs[1].mac);
    m.netifs[1].mac = strdup("zz:ab:cd:ef:01:23");
    assert_int_equal(manifest_encode(&m, &text, &len), -EINVAL);
    free(m.netifs[1].mac);
    m.netifs[1].mac = strdup("02:ab:cd:ef:01:23");
    free(m.netifs[1].ip);
    m.netifs[1].ip = NULL;
    assert_int_equal(manifest_encode(&m, &text, &len), -EINVAL);
    manifest_free(&m);
}

static void test_old_network_keys(void **state)
{
    (void)state;
    kestrel_manifest m;
    char err[256];
    /* a manifest from before mac/netif: still valid, same meaning */
    assert_int_equal(parse("hypr-manifest 1\ncmd sh\ninterface \"eth1\"\nip \"10.88.0.5/16\"\n"
                           "gateway \"10.88.0.1\"\ndns \"10.88.0.1\"\n",
                           &m, err, sizeof(err)),
                     0);
    assert_string_equal(m.interface, "eth1");
    assert_string_equal(m.ip, "10.88.0.5/16");
    assert_string_equal(m.gateway, "10.88.0.1");
    assert_null(m.mac);
    assert_null(m.netifs);
    assert_int_equal(m.n_netifs, 0);
    char *text;
    size_t len;
    assert_int_equal(manifest_encode(&m, &text, &len), 0);
    assert_null(strstr(text, "mac"));
    assert_null(strstr(text, "netif"));
    free(text);
    manifest_free(&m);
}

static void test_mac_parse(void **state)
{
    (void)state;
    uint8_t mac[6];
    static const uint8_t want[6] = {0x02, 0xab, 0xcd, 0xef, 0x01, 0x23};
    assert_int_equal(manifest_mac_parse("02:ab:cd:ef:01:23", mac), 0);
    assert_memory_equal(mac, want, 6);
    assert_int_equal(manifest_mac_parse("02:AB:Cd:eF:01:23", mac), 0);
    assert_memory_equal(mac, want, 6);
    assert_int_equal(manifest_mac_parse("ff:ff:ff:ff:ff:ff", NULL), 0);
    static const char *const bad[] = {
        "",
        "02:ab:cd:ef:01",
        "02:ab:cd:ef:01:23:",
        "02:ab:cd:ef:01:23:45",
        "02ab:cd:ef:01:23:4",
        "02:ab:cd:ef:01:2",
        " 02:ab:cd:ef:01:23",
        "02:ab:cd:ef:01:g3",
        "02.ab.cd.ef.01.23",
        "002:ab:cd:ef:01:2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (manifest_mac_parse(bad[i], mac) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(manifest_mac_parse(NULL, mac), -EINVAL);
}

static void test_long_values(void **state)
{
    (void)state;
    kestrel_manifest m;
    manifest_init(&m);
    size_t n = 1u << 20;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(1 + i % 255); /* every byte but NUL */
    big[n] = 0;
    assert_int_equal(manifest_strv_push(&m.cmd, big), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(manifest_strv_push(&m.env, "K=v"), 0);
    char *text;
    size_t len;
    assert_int_equal(manifest_encode(&m, &text, &len), 0);
    assert_true(len > n);
    kestrel_manifest d;
    char err[256];
    int r = manifest_parse(text, len, &d, err, sizeof(err));
    if (len <= MANIFEST_MAX_SIZE) {
        assert_int_equal(r, 0);
        assert_string_equal(d.cmd.v[0], big);
        assert_int_equal(d.env.n, 1000);
        manifest_free(&d);
    } else {
        assert_int_equal(r, -EFBIG);
    }
    free(text);
    manifest_free(&m);
    free(big);

    /* above the size limit: refused before parsing */
    size_t huge = MANIFEST_MAX_SIZE + 1;
    char *h = malloc(huge);
    memset(h, '#', huge);
    assert_int_equal(manifest_parse(h, huge, &d, err, sizeof(err)), -EFBIG);
    free(h);
}

static void test_restart_policy_strings(void **state)
{
    (void)state;
    restart_policy p;
    uint32_t max;
    char buf[32];
    assert_int_equal(restart_policy_parse("on-failure:7", &p, &max), 0);
    assert_int_equal(p, RESTART_ON_FAILURE);
    assert_int_equal(max, 7);
    restart_policy_format(p, max, buf, sizeof(buf));
    assert_string_equal(buf, "on-failure:7");
    assert_int_equal(restart_policy_parse("unless-stopped", &p, &max), 0);
    assert_int_equal(p, RESTART_UNLESS_STOPPED);
    assert_int_equal(restart_policy_parse("on-failure", &p, &max), 0);
    assert_int_equal(max, 0);
    assert_int_equal(restart_policy_parse("on-failure:", &p, &max), -EINVAL);
    assert_int_equal(restart_policy_parse("on-failures", &p, &max), -EINVAL);
    assert_int_equal(restart_policy_parse("on-failure:99999999999", &p, &max), -ERANGE);
    assert_int_equal(restart_policy_parse("Always", &p, &max), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_full),  cmocka_unit_test(test_defaults_and_forward_compat),
        cmocka_unit_test(test_malformed),        cmocka_unit_test(test_netifs),
        cmocka_unit_test(test_old_network_keys), cmocka_unit_test(test_mac_parse),
        cmocka_unit_test(test_long_values),      cmocka_unit_test(test_restart_policy_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
