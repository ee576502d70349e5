/* Mount specs (-v, --mount, --tmpfs), volume names, mount sets and the volume store's
 * tree walks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "volume/volume.h"

typedef int (*parse_fn)(const char *, volume_mount_spec *, hypr_error *);

#define V VOLUME_MOUNT_VOLUME
#define B VOLUME_MOUNT_BIND
#define T VOLUME_MOUNT_TMPFS

typedef struct ok_case {
    parse_fn parse;
    const char *spec;
    volume_mount_type type;
    const char *source, *target;
    bool ro, create, nocopy;
    uint64_t size;
    uint32_t mode;
    const char *options;
} ok_case;

#define VOL volume_parse_volume_flag
#define MNT volume_parse_mount_flag
#define TMP volume_parse_tmpfs_flag

static const ok_case ok_cases[] = {
    /* -v */
    {VOL, "/data", V, NULL, "/data"},
    {VOL, "/data/", V, NULL, "/data"},
    {VOL, "//a/./b//", V, NULL, "/a/b"},
    {VOL, "myvol:/data", V, "myvol", "/data"},
    {VOL, "my_vol.1-x:/data:ro", V, "my_vol.1-x", "/data", true},
    {VOL, "myvol:/data:rw", V, "myvol", "/data"},
    {VOL, "myvol:/data:nocopy", V, "myvol", "/data", .nocopy = true},
    {VOL, "myvol:/data:ro,nocopy", V, "myvol", "/data", true, .nocopy = true},
    {VOL, "myvol:/data:", V, "myvol", "/data"},
    {VOL, "myvol:/data:cached", V, "myvol", "/data"},
    {VOL, "/host/dir:/data", B, "/host/dir", "/data", .create = true},
    {VOL, "/host//dir/:/data:ro", B, "/host/dir", "/data", true, true},
    {VOL, "/:/host:ro,delegated", B, "/", "/host", true, true},
    {VOL, "/data:/data:rw", B, "/data", "/data", .create = true},
    /* --mount */
    {MNT, "type=volume,source=v1,target=/data", V, "v1", "/data"},
    {MNT, "target=/data", V, NULL, "/data"},
    {MNT, "dst=/data,src=v1,readonly", V, "v1", "/data", true},
    {MNT, "destination=/data,ro=true", V, NULL, "/data", true},
    {MNT, "target=/data,readonly=0", V, NULL, "/data"},
    {MNT, "target=/data,readonly=False,ro=T", V, NULL, "/data", true},
    {MNT, "target=/data,volume-nocopy", V, NULL, "/data", .nocopy = true},
    {MNT, "target=/data,volume-nocopy=false", V, NULL, "/data"},
    {MNT, "TYPE=Bind,Source=/h,Target=/data", B, "/h", "/data"},
    {MNT, "type=bind,source=/h/,target=/data/,consistency=cached", B, "/h", "/data"},
    {MNT, "type=bind,src=/h,dst=/d,ro=1", B, "/h", "/d", true},
    {MNT, "\"type=bind\",\"source=/a,b\",\"target=/x,y\"", B, "/a,b", "/x,y"},
    {MNT, "type=bind,source=/a=b,target=/c", B, "/a=b", "/c"},
    {MNT, "type=bind,\"source=/say \"\"hi\"\"\",target=/c", B, "/say \"hi\"", "/c"},
    {MNT, "type=tmpfs,target=/run", T, NULL, "/run"},
    {MNT, "type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770", T, NULL, "/run",
     .size = 64 << 20, .mode = 01770},
    {MNT, "type=tmpfs,dst=/run,tmpfs-size=1.5k,tmpfs-mode=0700,ro", T, NULL, "/run", true,
     .size = 1536, .mode = 0700},
    {MNT, "type=tmpfs,dst=/run,tmpfs-size=100", T, NULL, "/run", .size = 100},
    {MNT, "type=tmpfs,dst=/run,tmpfs-size=2GiB", T, NULL, "/run", .size = 2ull << 30},
    {MNT, "type=tmpfs,dst=/run,tmpfs-size=1 t", T, NULL, "/run", .size = 1ull << 40},
    {MNT, "type=tmpfs,dst=/run,tmpfs-size=0", T, NULL, "/run"},
    /* --tmpfs */
    {TMP, "/run", T, NULL, "/run"},
    {TMP, "/run/", T, NULL, "/run"},
    {TMP, "/run:size=64m,mode=1777", T, NULL, "/run", .size = 64 << 20, .mode = 01777},
    {TMP, "/run:ro", T, NULL, "/run", true},
    {TMP, "/run:rw,noexec,nosuid,size=65536k", T, NULL, "/run", .size = 65536 << 10,
     .options = "noexec,nosuid"},
    {TMP, "/run:uid=1000,gid=1000,nodev,nr_inodes=4096", T, NULL, "/run",
     .options = "uid=1000,gid=1000,nodev,nr_inodes=4096"},
};

static void test_parse_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(ok_cases); i++) {
        const ok_case *c = &ok_cases[i];
        if (!c->parse)
            continue;
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_mount_spec_ volume_mount_spec m = {0};
        int r = c->parse(c->spec, &m, &err);
        if (r != 0)
            fail_msg("%s: %s", c->spec, err.message);
        assert_int_equal(m.type, c->type);
        if (c->source)
            assert_string_equal(m.source, c->source);
        else
            assert_null(m.source);
        assert_string_equal(m.target, c->target);
        if (m.read_only != c->ro || m.create_host_path != c->create || m.nocopy != c->nocopy)
            fail_msg("%s: ro %d create %d nocopy %d", c->spec, m.read_only, m.create_host_path,
                     m.nocopy);
        assert_int_equal(m.tmpfs_size, c->size);
        assert_int_equal(m.tmpfs_mode, c->mode);
        if (c->options)
            assert_string_equal(m.options, c->options);
        else
            assert_null(m.options);
        /* What a parser accepts, the daemon's re-validation accepts. */
        if (volume_mounts_check(&m, 1, 1, &err) != 0)
            fail_msg("%s: check: %s", c->spec, err.message);
    }
}

typedef struct err_case {
    parse_fn parse;
    const char *spec;
    const char *names; /* the message must contain this */
} err_case;

static const err_case err_cases[] = {
    /* -v */
    {VOL, "", "empty volume specification"},
    {VOL, "foo/bar:/x", "\"foo/bar\" is a relative path"},
    {VOL, "./foo:/x", "\"./foo\" is a relative path"},
    {VOL, "myvol:data", "\"data\": must be an absolute path"},
    {VOL, "data", "\"data\": must be an absolute path"},
    {VOL, "myvol:/", "\"/\": cannot be \"/\""},
    {VOL, "myvol://", "\"//\": cannot be \"/\""},
    {VOL, "/", "cannot be \"/\""},
    {VOL, "myvol:/a/../b", "\"/a/../b\": \"..\" components"},
    {VOL, "/h/../etc:/b", "bind source \"/h/../etc\""},
    {VOL, "::/x", "\"::/x\""},
    {VOL, ":/x", "\":/x\": empty source"},
    {VOL, "..:/x", "invalid volume name \"..\""},
    {VOL, ".:/x", "invalid volume name \".\""},
    {VOL, "a:/x", "invalid volume name \"a\""},
    {VOL, "-x:/x", "invalid volume name \"-x\""},
    {VOL, "my vol:/x", "invalid volume name \"my vol\""},
    {VOL, "/data:ro", "\"/data:ro\": a mode needs a source"},
    {VOL, "v1:/data:rx", "invalid mode \"rx\""},
    {VOL, "v1:/data:ro,", "invalid mode \"\""},
    {VOL, "v1:/data:ro,rw", "mode \"rw\" conflicts"},
    {VOL, "v1:/data:z", "mode \"z\" (SELinux"},
    {VOL, "/h:/data:Z", "mode \"Z\" (SELinux"},
    {VOL, "/h:/data:rshared", "mode \"rshared\" (mount propagation)"},
    {VOL, "/h:/data:nocopy", "nocopy applies to volumes"},
    {VOL, "a:b:c:d", "\"a:b:c:d\""},
    {VOL, "v1:/da\nta", "control characters"},
    /* --mount */
    {MNT, "", "empty mount specification"},
    {MNT, "type=volume,target=/data,colour=red", "unknown key \"colour\""},
    {MNT, "target=/data,Frobnicate", "unknown key \"frobnicate\""},
    {MNT, "target=/data,volume-driver=local", "\"volume-driver\" is not supported"},
    {MNT, "type=bind,src=/h,target=/data,bind-propagation=rshared", "bind-propagation"},
    {MNT, "type=nfs,target=/data", "unsupported mount type \"nfs\""},
    {MNT, "type=volume,source=v1", "target is required"},
    {MNT, "type=volume,src=v1,target", "field \"target\" must be a key=value"},
    {MNT, "type=volume,src=v1,target=data", "\"data\": must be an absolute path"},
    {MNT, "target=/", "cannot be \"/\""},
    {MNT, "target=/a/..", "\"/a/..\": \"..\" components"},
    {MNT, "type=volume,src=a,target=/x", "invalid volume name \"a\""},
    {MNT, "type=volume,src=a/b,target=/x", "invalid volume name \"a/b\""},
    {MNT, "type=volume,src=..,target=/x", "invalid volume name \"..\""},
    {MNT, "type=volume,src=,target=/x", "empty source"},
    {MNT, "type=bind,target=/x", "a bind mount needs a source"},
    {MNT, "type=bind,src=,target=/x", "a bind mount needs a source"},
    {MNT, "type=bind,src=rel/dir,target=/x", "\"rel/dir\": must be an absolute path"},
    {MNT, "type=bind,src=/h,target=/x,volume-nocopy", "volume-nocopy does not apply to a bind"},
    {MNT, "type=bind,src=/h,target=/x,tmpfs-size=1m", "tmpfs-size does not apply to a bind"},
    {MNT, "type=volume,target=/x,tmpfs-mode=700", "tmpfs-mode does not apply to a volume"},
    {MNT, "type=tmpfs,source=/h,target=/x", "source does not apply to a tmpfs"},
    {MNT, "type=tmpfs,target=/x,volume-nocopy", "volume-nocopy does not apply to a tmpfs"},
    {MNT, "target=/x,readonly=maybe", "invalid value \"maybe\" for readonly"},
    {MNT, "target=/x,ro=yes", "invalid value \"yes\" for ro"},
    {MNT, "target=/x,volume-nocopy=2", "invalid value \"2\" for volume-nocopy"},
    {MNT, "type=tmpfs,target=/x,tmpfs-size=12q", "invalid size \"12q\""},
    {MNT, "type=tmpfs,target=/x,tmpfs-size=-1", "invalid size \"-1\""},
    {MNT, "type=tmpfs,target=/x,tmpfs-size=", "invalid size \"\""},
    {MNT, "type=tmpfs,target=/x,tmpfs-size=.5m", "invalid size \".5m\""},
    {MNT, "type=tmpfs,target=/x,tmpfs-size=1.m", "invalid size \"1.m\""},
    {MNT, "type=tmpfs,target=/x,tmpfs-size=1mm", "invalid size \"1mm\""},
    {MNT, "type=tmpfs,target=/x,tmpfs-size=99999999999999999999",
     "invalid size \"99999999999999999999\": too large"},
    {MNT, "type=tmpfs,target=/x,tmpfs-size=8388608t", "invalid size \"8388608t\": too large"},
    {MNT, "type=tmpfs,target=/x,tmpfs-mode=800", "invalid tmpfs-mode \"800\""},
    {MNT, "type=tmpfs,target=/x,tmpfs-mode=17777", "invalid tmpfs-mode \"17777\""},
    {MNT, "type=tmpfs,target=/x,tmpfs-mode=", "invalid tmpfs-mode \"\""},
    {MNT, "type=bind,source=/a\"b,target=/c", "a quote inside an unquoted field"},
    {MNT, "\"type=bind\"x,target=/c", "text after a closing quote"},
    {MNT, "\"type=bind,target=/c", "unterminated quote"},
    {MNT, "type=bind,source=/a\n,target=/c", "line breaks"},
    {MNT, "type=volume,,target=/c", "unknown key \"\""},
    /* --tmpfs */
    {TMP, "", "empty tmpfs specification"},
    {TMP, "run", "\"run\": must be an absolute path"},
    {TMP, "/", "cannot be \"/\""},
    {TMP, "/run/../etc", "\"..\" components"},
    {TMP, "/run:size=12q", "invalid size \"12q\""},
    {TMP, "/run:size=", "invalid size \"\""},
    {TMP, "/run:mode=9", "invalid mode \"9\""},
    {TMP, "/run:uid=abc", "invalid value \"abc\" for uid"},
    {TMP, "/run:uid=4294967295", "uid 4294967295 is out of range"},
    {TMP, "/run:shared", "\"shared\" (mount propagation)"},
    {TMP, "/run:exec=1", "unsupported option \"exec=1\""},
    {TMP, "/run:mpol=local", "unsupported option \"mpol=local\""},
    {TMP, "/run:noexec,,nodev", "empty option"},
};

static void test_parse_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(err_cases); i++) {
        const err_case *c = &err_cases[i];
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        volume_mount_spec m;
        int r = c->parse(c->spec, &m, &err);
        if (r == 0) {
            volume_mount_spec_clear(&m);
            fail_msg("\"%s\" was accepted", c->spec);
        }
        assert_int_equal(r, err.errnum ? -err.errnum : -EIO);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        assert_non_null(err.message);
        if (!strstr(err.message, c->names))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", c->spec, err.message, c->names);
        /* Nothing is left allocated in *out on failure. */
        assert_null(m.source);
        assert_null(m.target);
        assert_null(m.options);
    }
}

static void test_target_normalize(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/a", "/a"},         {"/a/", "/a"},      {"//a//b//", "/a/b"},
        {"/./a/./", "/a"},    {"/a/.b", "/a/.b"}, {"/a/..b/c...", "/a/..b/c..."},
        {"/a b/ü", "/a b/ü"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_free_ char *out = NULL;
        assert_int_equal(volume_target_normalize(cases[i].in, &out, &err), 0);
        assert_string_equal(out, cases[i].out);
    }
    static const char *const bad[] = {"", "a", "./a", "/", "///", "/.", "/..", "/a/../b"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        char *out = (char *)"untouched";
        assert_int_equal(volume_target_normalize(bad[i], &out, &err), -EINVAL);
        assert_null(out);
        if (*bad[i] && !strstr(err.message, bad[i]))
            fail_msg("%s: %s", bad[i], err.message);
    }
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_free_ char *out = NULL;
    assert_int_equal(volume_source_normalize("//", &out, &err), 0);
    assert_string_equal(out, "/");
    _cleanup_free_ char *longpath = xmalloc(5000);
    memset(longpath, 'a', 4999);
    longpath[0] = '/';
    longpath[4999] = '\0';
    char *none = NULL;
    assert_int_equal(volume_target_normalize(longpath, &none, &err), -EINVAL);
    assert_null(none);
    assert_non_null(strstr(err.message, "longer than"));
}

static void test_name_check(void **state)
{
    (void)state;
    static const char *const good[] = {
        "ab",
        "a1",
        "0a",
        "my_vol",
        "my.vol-2",
        "A_.-",
        "5f0a1d2e3c4b5a69788796a5b4c3d2e1f0a1b2c3d4e5f60718293a4b5c6d7e8f"};
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (volume_name_check(good[i], &err) != 0)
            fail_msg("%s: %s", good[i], err.message);
    }
    static const char *const bad[] = {"",    "a",  ".",   "..",  "-x",    "_x",    ".hidden",
                                      "a/b", "/a", "a b", "a:b", "vol\n", "ü-vol", "a@b"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        assert_int_equal(volume_name_check(bad[i], &err), -EINVAL);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        _cleanup_free_ char *quoted = xasprintf("\"%s\"", bad[i]);
        if (!strstr(err.message, quoted) || !strstr(err.message, "[a-zA-Z0-9][a-zA-Z0-9_.-]+"))
            fail_msg("%s: %s", bad[i], err.message);
    }
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(volume_name_check(NULL, &err), -EINVAL);
    char name[VOLUME_NAME_MAX + 2];
    memset(name, 'a', sizeof(name) - 1);
    name[VOLUME_NAME_MAX] = '\0';
    assert_int_equal(volume_name_check(name, &err), 0);
    name[VOLUME_NAME_MAX] = 'a';
    name[VOLUME_NAME_MAX + 1] = '\0';
    assert_int_equal(volume_name_check(name, &err), -EINVAL);
    assert_non_null(strstr(err.message, "longer than 255"));
}

static void test_generate_name(void **state)
{
    (void)state;
    _cleanup_free_ char *a = volume_generate_name();
    _cleanup_free_ char *b = volume_generate_name();
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(strlen(a), VOLUME_NAME_LEN);
    for (const char *p = a; *p; p++)
        assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    assert_string_not_equal(a, b);
    assert_int_equal(volume_name_check(a, NULL), 0);
}

static volume_mount_spec mk(volume_mount_type type, const char *source, const char *target)
{
    return (volume_mount_spec){
        .type = type, .source = source ? xstrdup(source) : NULL, .target = xstrdup(target)};
}

static void expect_check_error(volume_mount_spec *mounts, size_t n, size_t max, const char *names)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(volume_mounts_check(mounts, n, max, &err), -EINVAL);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    if (!strstr(err.message, names))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, names);
}

static void test_mounts_check(void **state)
{
    (void)state;
    volume_mount_spec m[4] = {mk(V, "v1", "/data"), mk(B, "/h", "/data/"), mk(T, NULL, "/run"),
                              mk(V, NULL, "/cache")};
    expect_check_error(m, 2, 8, "duplicate mount target \"/data\"");
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(volume_mounts_check(m + 1, 3, 3, &err), 0);
    assert_int_equal(volume_mounts_check(NULL, 0, 0, &err), 0);
    expect_check_error(m + 1, 3, 2, "at most 2");
    expect_check_error(m + 1, 3, 2, "3 given");
    volume_mount_specs_free(NULL, 0);

    /* Each mount on its own must be consistent: what a gRPC client may send. */
    struct {
        volume_mount_spec m;
        const char *names;
    } bad[] = {
        {mk(T, "/h", "/run"), "tmpfs mount on \"/run\" cannot have a source (\"/h\")"},
        {mk(B, NULL, "/x"), "bind mount on \"/x\" has no source"},
        {mk(B, "rel", "/x"), "bind source \"rel\""},
        {mk(B, "/a/../b", "/x"), "bind source \"/a/../b\""},
        {mk(V, "a", "/x"), "invalid volume name \"a\""},
        {mk(V, "a/b", "/x"), "invalid volume name \"a/b\""},
        {mk(V, "v1", "x"), "mount target \"x\""},
        {mk(V, "v1", "/"), "mount target \"/\""},
        {mk(V, "v1", "/x/../y"), "mount target \"/x/../y\""},
        {mk(V, "v1", "/x"), "tmpfs-size does not apply to a volume"},
        {mk(B, "/h", "/x"), "nocopy does not apply to a bind"},
        {mk(T, NULL, "/x"), "mode 10000 is more than permission bits"},
        {mk(V, NULL, "/x"), "create_host_path does not apply to a volume"},
        {mk(T, NULL, "/x"), "nocopy does not apply to a tmpfs"},
        {mk((volume_mount_type)7, NULL, "/x"), "unknown type 7"},
    };
    bad[9].m.tmpfs_size = 1;
    bad[10].m.nocopy = true;
    bad[11].m.tmpfs_mode = 010000;
    bad[12].m.create_host_path = true;
    bad[13].m.nocopy = true;
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        expect_check_error(&bad[i].m, 1, 1, bad[i].names);
        volume_mount_spec_clear(&bad[i].m);
    }
    for (size_t i = 0; i < ARRAY_SIZE(m); i++)
        volume_mount_spec_clear(&m[i]);
    volume_mount_spec_clear(&m[0]); /* idempotent */
}

/* ---- filesystem helpers --------------------------------------------------------------- */

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/hypr-volume-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    _cleanup_free_ char *p = path_join(dir, name);
    assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
}

static void test_dir_remove_symlinks(void **state)
{
    (void)state;
    _cleanup_free_ char *base = make_tmpdir();
    _cleanup_free_ char *outside = path_join(base, "outside");
    _cleanup_free_ char *vol = path_join(base, "vol");
    assert_int_equal(mkdir(outside, 0755), 0);
    write_text(outside, "keep", "precious");
    _cleanup_free_ char *deep = path_join(vol, "a/b/c");
    assert_int_equal(mkdir_p(deep, 0755), 0);
    write_text(vol, "a/file", "x");
    write_text(deep, "f", "y");
    /* Links out of the tree, to a directory and to a file, at several depths. */
    _cleanup_free_ char *l1 = path_join(vol, "link-dir");
    _cleanup_free_ char *l2 = path_join(deep, "link-dir");
    _cleanup_free_ char *l3 = path_join(vol, "a/link-file");
    _cleanup_free_ char *keep = path_join(outside, "keep");
    assert_int_equal(symlink(outside, l1), 0);
    assert_int_equal(symlink(outside, l2), 0);
    assert_int_equal(symlink(keep, l3), 0);
    _cleanup_free_ char *dangling = path_join(vol, "a/b/dangling");
    assert_int_equal(symlink("/nonexistent/x", dangling), 0);
    _cleanup_free_ char *fifo = path_join(vol, "a/fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);

    assert_int_equal(volume_dir_is_empty(vol), 0);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r;
    if (volume_dir_remove(vol, &err) != 0)
        fail_msg("%s", err.message);
    struct stat st;
    assert_int_equal(lstat(vol, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(stat(keep, &st), 0);
    _cleanup_free_ char *text = NULL;
    assert_int_equal(read_file(keep, 100, &text, NULL), 0);
    assert_string_equal(text, "precious");

    /* A missing path is success; a symlink at the top is unlinked, not followed. */
    assert_int_equal(volume_dir_remove(vol, &err), 0);
    assert_int_equal(symlink(outside, vol), 0);
    /* Linux says ENOTDIR for O_DIRECTORY | O_NOFOLLOW on a symlink. */
    r = volume_dir_is_empty(vol);
    assert_true(r == -ENOTDIR || r == -ELOOP);
    assert_int_equal(volume_dir_remove(vol, &err), 0);
    assert_int_equal(lstat(vol, &st), -1);
    assert_int_equal(stat(keep, &st), 0);

    /* Deeper than a process has descriptors: the walk holds only a few. */
    assert_int_equal(mkdir(vol, 0755), 0);
    _cleanup_close_ int fd = open(vol, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (int i = 0; i < 1500; i++) {
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    uint64_t bytes = 0;
    if (volume_dir_usage(vol, &bytes, &err) != 0)
        fail_msg("%s", err.message);
    assert_true(bytes > 0);
    if (volume_dir_remove(vol, &err) != 0)
        fail_msg("%s", err.message);
    assert_int_equal(lstat(vol, &st), -1);

    assert_int_equal(volume_dir_is_empty(outside), 0);
    assert_int_equal(rm_rf(base), 0);
    assert_int_equal(volume_dir_is_empty(base), -ENOENT);
}

static void test_dir_usage_and_empty(void **state)
{
    (void)state;
    _cleanup_free_ char *vol = make_tmpdir();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r;
    assert_int_equal(volume_dir_is_empty(vol), 1);
    uint64_t empty = 0, one = 0, linked = 0, with_symlink = 0;
    assert_int_equal(volume_dir_usage(vol, &empty, &err), 0);

    /* 1 MiB of real data (written, so it has blocks on any filesystem). */
    _cleanup_free_ char *big = path_join(vol, "big");
    _cleanup_free_ char *data = xcalloc(1, 1 << 20);
    memset(data, 'x', 1 << 20);
    assert_int_equal(write_file_atomic(big, data, 1 << 20, 0644), 0);
    assert_int_equal(volume_dir_is_empty(vol), 0);
    assert_int_equal(volume_dir_usage(vol, &one, &err), 0);
    assert_true(one >= empty + (1 << 20));

    /* A hard link in a subdirectory is the same inode: counted once. */
    _cleanup_free_ char *sub = path_join(vol, "sub");
    _cleanup_free_ char *hard = path_join(sub, "hard");
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(link(big, hard), 0);
    assert_int_equal(volume_dir_usage(vol, &linked, &err), 0);
    assert_true(linked < one + (1 << 20));

    /* A symlink to a big file outside counts as the link, not as the file. */
    _cleanup_free_ char *outside = make_tmpdir();
    _cleanup_free_ char *obig = path_join(outside, "big");
    assert_int_equal(write_file_atomic(obig, data, 1 << 20, 0644), 0);
    _cleanup_free_ char *sl = path_join(sub, "link");
    assert_int_equal(symlink(outside, sl), 0);
    _cleanup_free_ char *sl2 = path_join(vol, "flink");
    assert_int_equal(symlink(obig, sl2), 0);
    assert_int_equal(volume_dir_usage(vol, &with_symlink, &err), 0);
    assert_true(with_symlink < linked + (1 << 20));

    /* Not a directory / missing: errors naming the path. */
    r = volume_dir_usage(sl, &one, &err);
    assert_true(r == -ENOTDIR || r == -ELOOP);
    assert_non_null(strstr(err.message, sl));
    _cleanup_free_ char *missing = path_join(vol, "missing");
    assert_int_equal(volume_dir_usage(missing, &one, &err), -ENOENT);
    assert_int_equal(err.status, HYPR_NOT_FOUND);
    assert_int_equal(volume_dir_is_empty(big), -ENOTDIR);

    assert_int_equal(volume_dir_remove(vol, &err), 0);
    assert_int_equal(volume_dir_remove(outside, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_target_normalize),
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_generate_name),
        cmocka_unit_test(test_mounts_check),
        cmocka_unit_test(test_dir_remove_symlinks),
        cmocka_unit_test(test_dir_usage_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
