/* Layer application: tars generated here with libarchive, applied to the
 * in-memory tree; whiteouts, opaque dirs, hard links, and malicious entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <archive.h>
#include <archive_entry.h>

#include "image/image-private.h"

#include <pthread.h>
#include <time.h>

/* ---- building layers ----------------------------------------------------------------- */

typedef struct layer {
    struct archive *a;
    hypr_buf out;
    size_t used;
    char *mem;
    size_t cap;
} layer;

static void layer_begin(layer *l, int filter)
{
    memset(l, 0, sizeof(*l));
    l->cap = 4 << 20;
    l->mem = xmalloc(l->cap);
    l->a = archive_write_new();
    archive_write_set_format_pax_restricted(l->a);
    if (filter == 1)
        archive_write_add_filter_gzip(l->a);
    else if (filter == 2)
        archive_write_add_filter_zstd(l->a);
    else
        archive_write_add_filter_none(l->a);
    assert_int_equal(archive_write_open_memory(l->a, l->mem, l->cap, &l->used), ARCHIVE_OK);
}

static void add(layer *l, const char *name, mode_t type, unsigned perm, const char *data,
                const char *link, bool hard)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, 1700000000, 0);
    if (hard)
        archive_entry_set_hardlink(e, link);
    else if (link)
        archive_entry_set_symlink(e, link);
    size_t len = data ? strlen(data) : 0;
    archive_entry_set_size(e, (la_int64_t)len);
    assert_int_equal(archive_write_header(l->a, e), ARCHIVE_OK);
    if (len)
        assert_int_equal(archive_write_data(l->a, data, len), (la_ssize_t)len);
    archive_entry_free(e);
}

static void file(layer *l, const char *name, const char *data)
{
    add(l, name, AE_IFREG, 0644, data ? data : "", NULL, false);
}
static void dir(layer *l, const char *name)
{
    add(l, name, AE_IFDIR, 0755, NULL, NULL, false);
}
static void symlink_(layer *l, const char *name, const char *target)
{
    add(l, name, AE_IFLNK, 0777, NULL, target, false);
}
static void hardlink(layer *l, const char *name, const char *target)
{
    add(l, name, AE_IFREG, 0644, NULL, target, true);
}

static image_layer_src layer_end(layer *l)
{
    assert_int_equal(archive_write_close(l->a), ARCHIVE_OK);
    archive_write_free(l->a);
    return (image_layer_src){.data = l->mem, .len = l->used, .label = "test layer"};
}

static int apply(image_tree *t, layer *l, int index, hypr_error *err)
{
    image_layer_src src = layer_end(l);
    return image_tree_apply_layer(t, &src, index, NULL, err);
}

static bool exists(image_tree *t, const char *path)
{
    image_tree_stat st;
    return image_tree_lookup(t, path, &st) == 0;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_layer_keeps_types_modes_owners_xattrs(void **state)
{
    (void)state;
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    layer l;
    layer_begin(&l, 1);
    dir(&l, "./");
    dir(&l, "bin");
    file(&l, "bin/tool", "#!/bin/sh\n");
    symlink_(&l, "bin/sh", "tool");
    file(&l, "deep/implicit/parent/f", "x"); /* parents not in the tar */
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "dev/null");
    archive_entry_set_filetype(e, AE_IFCHR);
    archive_entry_set_perm(e, 0666);
    archive_entry_set_rdevmajor(e, 1);
    archive_entry_set_rdevminor(e, 3);
    assert_int_equal(archive_write_header(l.a, e), ARCHIVE_OK);
    archive_entry_free(e);
    e = archive_entry_new();
    archive_entry_set_pathname(e, "owned");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 04750);
    archive_entry_set_uid(e, 1000);
    archive_entry_set_gid(e, 2000);
    archive_entry_set_size(e, 0);
    archive_entry_xattr_add_entry(e, "user.note", "hello", 5);
    archive_entry_xattr_add_entry(e, "security.capability", "\x01\x02", 2);
    assert_int_equal(archive_write_header(l.a, e), ARCHIVE_OK);
    archive_entry_free(e);
    assert_int_equal(apply(t, &l, 0, &err), 0);

    image_tree_stat st;
    assert_int_equal(image_tree_lookup(t, "/bin/tool", &st), 0);
    assert_true(S_ISREG(st.mode));
    assert_int_equal(st.size, 10);
    assert_int_equal(image_tree_lookup(t, "bin/sh", &st), 0);
    assert_true(S_ISLNK(st.mode));
    assert_string_equal(st.target, "tool");
    assert_int_equal(image_tree_lookup(t, "deep/implicit/parent", &st), 0);
    assert_true(S_ISDIR(st.mode));
    assert_int_equal(st.mode & 07777, 0755);
    assert_int_equal(image_tree_lookup(t, "dev/null", &st), 0);
    assert_true(S_ISCHR(st.mode));
    assert_int_equal(st.rdev_major, 1);
    assert_int_equal(st.rdev_minor, 3);
    assert_int_equal(image_tree_lookup(t, "owned", &st), 0);
    assert_int_equal(st.mode & 07777, 04750);
    assert_int_equal(st.uid, 1000);
    assert_int_equal(st.gid, 2000);
    assert_int_equal(st.n_xattrs, 2);
    size_t len;
    const char *v = image_tree_xattr(t, "owned", "user.note", &len);
    assert_non_null(v);
    assert_int_equal(len, 5);
    assert_memory_equal(v, "hello", 5);
    free(l.mem);

    /* and the whole tree as a squashfs */
    char tmpl[] = "/tmp/hypr-test-sqfs-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    close(fd);
    image_layer_src none = {0};
    /* the data of bin/tool is in a layer that is not given */
    assert_true(image_tree_write_squashfs(t, &none, 0, tmpl, NULL, &err) < 0);
    assert_non_null(strstr(err.message, "missing layer"));
    assert_int_equal(access(tmpl, F_OK), -1); /* no partial output */
}

static void test_squashfs_write(void **state)
{
    (void)state;
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    layer l;
    layer_begin(&l, 2);
    file(&l, "a/hello", "hello world\n");
    file(&l, "a/empty", "");
    hardlink(&l, "a/again", "a/hello");
    symlink_(&l, "link", "a/hello");
    image_layer_src src = layer_end(&l);
    assert_int_equal(image_tree_apply_layer(t, &src, 0, NULL, &err), 0);
    char tmpl[] = "/tmp/hypr-test-sqfs-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    close(fd);
    if (image_tree_write_squashfs(t, &src, 1, tmpl, NULL, &err) < 0)
        fail_msg("%s", err.message);
    char magic[4] = {0};
    FILE *f = fopen(tmpl, "rb");
    assert_non_null(f);
    assert_int_equal(fread(magic, 1, 4, f), 4);
    fseek(f, 0, SEEK_END);
    assert_int_equal(ftell(f) % 4096, 0);
    fclose(f);
    assert_memory_equal(magic, "hsqs", 4);
    unlink(tmpl);
    free(l.mem);
}

/* With a spill dir, file contents are read back from the spill files: the
 * writer no longer needs the layers (it is given none here). */
static void test_squashfs_from_spill(void **state)
{
    (void)state;
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    image_tree_set_spill_dir(t, "/tmp");
    layer l;
    layer_begin(&l, 2);
    file(&l, "a/hello", "hello world\n");
    file(&l, "a/empty", "");
    hardlink(&l, "a/again", "a/hello");
    image_layer_src src = layer_end(&l);
    assert_int_equal(image_tree_apply_layer(t, &src, 0, NULL, &err), 0);
    free(l.mem);
    layer_begin(&l, 2);
    file(&l, "a/hello", "second layer wins\n");
    file(&l, "b", "b\n");
    image_layer_src src2 = layer_end(&l);
    assert_int_equal(image_tree_apply_layer(t, &src2, 1, NULL, &err), 0);
    free(l.mem);
    char tmpl[] = "/tmp/hypr-test-sqfs-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    close(fd);
    image_layer_src none = {.data = "", .len = 0, .label = "gone"};
    if (image_tree_write_squashfs(t, &none, 0, tmpl, NULL, &err) < 0)
        fail_msg("%s", err.message);
    struct stat st;
    assert_int_equal(stat(tmpl, &st), 0);
    assert_true(st.st_size >= 4096);
    unlink(tmpl);
}

static void test_whiteouts(void **state)
{
    (void)state;
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    layer l0, l1, l2;
    layer_begin(&l0, 0);
    file(&l0, "a/keep", "k");
    file(&l0, "a/gone", "g");
    file(&l0, "a/dir/x", "x");
    file(&l0, "o/old", "1");
    file(&l0, "o/sub/old2", "2");
    file(&l0, "p/lower", "l");
    file(&l0, "motd", "v1");
    assert_int_equal(apply(t, &l0, 0, &err), 0);

    layer_begin(&l1, 1);
    file(&l1, "a/.wh.gone", "");
    file(&l1, "a/.wh.dir", "");
    file(&l1, "o/new", "n");
    file(&l1, "o/sub/new2", "n"); /* before the opaque marker: must stay */
    file(&l1, "o/.wh..wh..opq", "");
    file(&l1, "p/.wh.mine", ""); /* a whiteout of an entry of this same layer */
    file(&l1, "p/mine", "m");
    file(&l1, "motd", "v2");
    file(&l1, ".wh.nothing-here", "");
    file(&l1, "a/.wh..wh.plnk", "");
    assert_int_equal(apply(t, &l1, 1, &err), 0);

    assert_true(exists(t, "a/keep"));
    assert_false(exists(t, "a/gone"));
    assert_false(exists(t, "a/dir"));
    assert_false(exists(t, "a/dir/x"));
    assert_true(exists(t, "o/new"));
    assert_true(exists(t, "o/sub/new2"));
    assert_false(exists(t, "o/old"));
    assert_false(exists(t, "o/sub/old2"));
    assert_true(exists(t, "p/lower"));
    assert_true(exists(t, "p/mine"));
    assert_false(exists(t, "a/.wh.gone"));
    assert_false(exists(t, "o/.wh..wh..opq"));
    image_tree_stat st;
    assert_int_equal(image_tree_lookup(t, "motd", &st), 0);
    assert_int_equal(st.size, 2);

    /* replace a directory by a file and back */
    layer_begin(&l2, 0);
    file(&l2, "a", "now a file");
    assert_int_equal(apply(t, &l2, 2, &err), 0);
    assert_int_equal(image_tree_lookup(t, "a", &st), 0);
    assert_true(S_ISREG(st.mode));
    assert_false(exists(t, "a/keep"));
    free(l0.mem);
    free(l1.mem);
    free(l2.mem);
}

static void test_hardlinks(void **state)
{
    (void)state;
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    layer l0, l1;
    layer_begin(&l0, 1);
    file(&l0, "h/orig", "data");
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h/l%02d", i);
        hardlink(&l0, name, "h/orig");
    }
    hardlink(&l0, "other/dir/link", "./h/orig");
    assert_int_equal(apply(t, &l0, 0, &err), 0);
    image_tree_stat st;
    assert_int_equal(image_tree_lookup(t, "h/l49", &st), 0);
    assert_int_equal(st.nlink, 52);
    assert_int_equal(st.size, 4);
    size_t inodes = image_tree_count(t);

    layer_begin(&l1, 0);
    file(&l1, "h/.wh.orig", "");
    hardlink(&l1, "h/new", "h/l00"); /* link to a file of a lower layer */
    assert_int_equal(apply(t, &l1, 1, &err), 0);
    assert_false(exists(t, "h/orig"));
    assert_int_equal(image_tree_lookup(t, "other/dir/link", &st), 0);
    assert_int_equal(st.nlink, 52);
    assert_int_equal(image_tree_count(t), inodes);
    free(l0.mem);
    free(l1.mem);
}

static void expect_reject(void (*build)(layer *l), const char *why)
{
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    layer l;
    layer_begin(&l, 0);
    build(&l);
    int r = apply(t, &l, 0, &err);
    free(l.mem);
    if (r >= 0)
        fail_msg("layer accepted, expected \"%s\"", why);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    if (!strstr(err.message, why))
        fail_msg("\"%s\" not in \"%s\"", why, err.message);
}

static void build_dotdot(layer *l)
{
    file(l, "../evil", "x");
}
static void build_dotdot_inner(layer *l)
{
    file(l, "a/../../evil", "x");
}
static void build_hardlink_missing(layer *l)
{
    hardlink(l, "pw", "/etc/passwd");
}
static void build_hardlink_escape(layer *l)
{
    hardlink(l, "pw", "../../../etc/passwd");
}
static void build_hardlink_dir(layer *l)
{
    dir(l, "d");
    hardlink(l, "x", "d");
}
static void build_whiteout_dotdot(layer *l)
{
    file(l, "a/.wh...", "");
}
static void build_whiteout_dot(layer *l)
{
    file(l, "a/.wh..", "");
}
static void build_symlink_loop(layer *l)
{
    symlink_(l, "loop", "loop");
    file(l, "loop/x", "x");
}

static void test_malicious(void **state)
{
    (void)state;
    expect_reject(build_dotdot, "escapes the image root");
    expect_reject(build_dotdot_inner, "escapes the image root");
    expect_reject(build_hardlink_missing, "does not exist in the image");
    expect_reject(build_hardlink_escape, "outside the image");
    expect_reject(build_hardlink_dir, "hard link to directory");
    expect_reject(build_whiteout_dotdot, "whiteout of \"..\"");
    expect_reject(build_whiteout_dot, "whiteout of");
    expect_reject(build_symlink_loop, "too many levels of symbolic links");
}

static void test_contained(void **state)
{
    (void)state;
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    layer l;
    layer_begin(&l, 0);
    file(&l, "/abs/file", "a");             /* absolute: inside the image */
    symlink_(&l, "evil", "/");              /* a symlink to / ... */
    file(&l, "evil/etc/passwd", "pwned\n"); /* ... and a file through it */
    symlink_(&l, "up", "../../../..");
    file(&l, "up/top", "t");
    symlink_(&l, "rel", "abs");
    file(&l, "rel/through", "r");
    file(&l, "etc/shadow", "s");
    hardlink(&l, "pw", "/etc/passwd"); /* a hard link to the image's own file */
    assert_int_equal(apply(t, &l, 0, &err), 0);
    image_tree_stat st;
    assert_true(exists(t, "abs/file"));
    assert_int_equal(image_tree_lookup(t, "evil", &st), 0);
    assert_true(S_ISLNK(st.mode));
    assert_int_equal(image_tree_lookup(t, "etc/passwd", &st), 0);
    assert_int_equal(st.size, 6);
    assert_int_equal(st.nlink, 2);
    assert_true(exists(t, "top"));
    assert_true(exists(t, "abs/through"));
    assert_int_equal(image_tree_lookup(t, "pw", &st), 0);
    assert_int_equal(st.nlink, 2);
    free(l.mem);
}

static void test_bad_archives(void **state)
{
    (void)state;
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    layer l;
    layer_begin(&l, 1);
    file(&l, "a", "0123456789");
    image_layer_src src = layer_end(&l);
    src.len /= 2; /* truncated gzip */
    image_tree_apply_layer(t, &src, 0, NULL, &err);
    /* either the header read or the squashfs data pass must notice */
    src.len = 7;
    assert_true(image_tree_apply_layer(t, &src, 1, NULL, &err) < 0);
    image_layer_src junk = {.data = "definitely not a tar archive, no way at all", .len = 43};
    assert_true(image_tree_apply_layer(t, &junk, 2, NULL, &err) < 0);
    image_layer_src empty = {.data = "", .len = 0};
    image_tree_apply_layer(t, &empty, 3, NULL, &err);
    free(l.mem);

    /* deep nesting is bounded */
    _cleanup_(image_tree_freep) image_tree *t2 = image_tree_new();
    hypr_buf p = {0};
    for (int i = 0; i < 600; i++)
        buf_puts(&p, "d/");
    buf_puts(&p, "f");
    layer_begin(&l, 0);
    file(&l, p.data, "x");
    assert_true(apply(t2, &l, 0, &err) < 0);
    assert_non_null(strstr(err.message, "nested"));
    buf_free(&p);
    free(l.mem);
}

/* Layers read while their blobs arrive: blobs become ready out of order, and a
 * failed download releases the readers waiting for theirs. */
typedef struct gate_feeder {
    img_blob_gate *gate;
    size_t n_ready;
    bool fail;
} gate_feeder;

static void *feed_gate(void *ud)
{
    gate_feeder *f = ud;
    for (size_t k = 0; k < f->n_ready; k++) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        img_blob_gate_ready(f->gate, f->gate->n - 1 - k); /* last blob first */
    }
    if (f->fail)
        img_blob_gate_fail(f->gate);
    return NULL;
}

static void gated_apply(size_t n_ready, bool fail, int want)
{
    layer l[3];
    image_layer_src srcs[3];
    for (int i = 0; i < 3; i++) {
        layer_begin(&l[i], 1);
        char name[16], data[16];
        snprintf(name, sizeof(name), "f%d", i);
        snprintf(data, sizeof(data), "layer %d\n", i);
        file(&l[i], name, data);
        file(&l[i], "same", data);
        srcs[i] = layer_end(&l[i]);
    }
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    img_blob_gate gate;
    img_blob_gate_init(&gate, 3);
    gate_feeder f = {.gate = &gate, .n_ready = n_ready, .fail = fail};
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, feed_gate, &f), 0);
    int r = img_tree_apply_layers(t, srcs, 3, &gate, NULL, &err);
    pthread_join(tid, NULL);
    assert_int_equal(r, want);
    if (want == 0) {
        image_tree_stat st;
        assert_int_equal(image_tree_lookup(t, "same", &st), 0);
        assert_int_equal(st.size, strlen("layer 2\n"));
        assert_true(exists(t, "f0") && exists(t, "f1") && exists(t, "f2"));
    } else {
        assert_int_equal(err.status, HYPR_CANCELLED);
        assert_non_null(strstr(err.message, "download failed"));
    }
    img_blob_gate_destroy(&gate);
    for (int i = 0; i < 3; i++)
        free(l[i].mem);
}

static void test_gated_apply(void **state)
{
    (void)state;
    gated_apply(3, false, 0);
    gated_apply(2, true, -ECANCELED); /* blob 0 never arrives */
    gated_apply(0, true, -ECANCELED);
}

/* A bad first layer ends the apply at once, without waiting for the blobs still
 * downloading, and tells the downloads to stop. */
static void test_gated_apply_bad_layer(void **state)
{
    (void)state;
    layer l[3];
    image_layer_src srcs[3];
    for (int i = 0; i < 3; i++) {
        layer_begin(&l[i], 1);
        file(&l[i], i == 0 ? "../escape" : "ok", "x");
        srcs[i] = layer_end(&l[i]);
    }
    _cleanup_(image_tree_freep) image_tree *t = image_tree_new();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    img_blob_gate gate;
    img_blob_gate_init(&gate, 3);
    img_blob_gate_ready(&gate, 0); /* blobs 1 and 2 never arrive */
    assert_true(img_tree_apply_layers(t, srcs, 3, &gate, NULL, &err) < 0);
    assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
    assert_true(img_blob_gate_aborted(&gate));
    assert_int_equal(img_blob_gate_wait(&gate, 1), -ECANCELED);
    img_blob_gate_destroy(&gate);
    for (int i = 0; i < 3; i++)
        free(l[i].mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_keeps_types_modes_owners_xattrs),
        cmocka_unit_test(test_squashfs_write),
        cmocka_unit_test(test_whiteouts),
        cmocka_unit_test(test_hardlinks),
        cmocka_unit_test(test_malicious),
        cmocka_unit_test(test_contained),
        cmocka_unit_test(test_bad_archives),
        cmocka_unit_test(test_squashfs_from_spill),
        cmocka_unit_test(test_gated_apply),
        cmocka_unit_test(test_gated_apply_bad_layer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
