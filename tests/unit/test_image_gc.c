/* The blob cache's collector on a temp store and cache dir: it removes the
 * blobs no stored image references, and keeps those a pull holds or let go
 * after the collector's snapshot, and files that are not blobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "image/image-private.h"
#include "test_helpers.h"

static char *digest_of(char c)
{
    char hex[65];
    memset(hex, c, 64);
    hex[64] = '\0';
    return xasprintf("sha256:%s", hex);
}

/* Writes <data>/cache/blobs/sha256/<hex of digest><suffix> with size bytes. */
static char *put_blob(const char *data_dir, const char *digest, const char *suffix, size_t size)
{
    _cleanup_free_ char *dir = path_join(data_dir, "cache/blobs/sha256");
    assert_int_equal(mkdir_p(dir, 0700), 0);
    char *path = xasprintf("%s/%s%s", dir, digest + strlen("sha256:"), suffix);
    _cleanup_free_ char *data = xcalloc(1, size + 1);
    memset(data, 'x', size);
    assert_int_equal(write_file_atomic(path, data, size, 0644), 0);
    return path;
}

static void add_image(store *s, const char *id_char, const char *tag, char **layers)
{
    image_info info = {.name = (char *)"localhost:5000/gc",
                       .tag = (char *)tag,
                       .digest = (char *)"sha256:feed",
                       .config_digest = (char *)"sha256:beef",
                       .layer_digests = layers};
    _cleanup_free_ char *json = image_info_to_json(&info);
    store_image img = {0};
    memset(img.id, id_char[0], HYPR_ID_LEN);
    img.name = info.name;
    img.tag = (char *)tag;
    img.digest = info.digest;
    img.path = (char *)"/nonexistent/images/gc";
    img.manifest = json;
    img.created_at = 1;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(store_image_insert(s, &img, &err), 0);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void run_gc(store_fixture *f, int64_t before_s, uint32_t *count, uint64_t *bytes)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_(image_blob_gc_freep) image_blob_gc *gc = NULL;
    assert_int_equal(image_blob_gc_prepare(f->s, &gc, &err), 0);
    assert_int_equal(image_blob_gc_run(gc, f->dir, before_s, count, bytes, &err), 0);
}

static void test_gc_removes_only_unreferenced_unheld_blobs(void **state)
{
    store_fixture *f = *state;
    _cleanup_free_ char *a = digest_of('a'), *b = digest_of('b'), *c = digest_of('c'),
                        *d = digest_of('d');
    _cleanup_free_ char *pa = put_blob(f->dir, a, "", 100), *pb = put_blob(f->dir, b, "", 200),
                        *pc = put_blob(f->dir, c, "", 300),
                        *pd = put_blob(f->dir, d, ".partial", 40);
    _cleanup_free_ char *other = xasprintf("%s/cache/blobs/sha256/README", f->dir);
    assert_int_equal(write_file_atomic(other, "x", 1, 0644), 0);
    char *layers[] = {a, NULL};
    add_image(f->s, "1", "v1", layers);

    /* The cache as df sees it. */
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    image_blob_file *files = NULL;
    size_t n = 0;
    assert_int_equal(image_blobs_list(f->dir, &files, &n, &err), 0);
    assert_int_equal(n, 4);
    uint64_t total = 0;
    size_t partials = 0;
    for (size_t i = 0; i < n; i++) {
        total += files[i].size;
        partials += files[i].partial;
        if (files[i].partial)
            assert_string_equal(files[i].digest, d);
    }
    assert_true(total == 640);
    assert_int_equal(partials, 1);
    image_blob_files_free(files, n);

    /* c is held by a pull in flight; b by one that ends after the snapshot. */
    image_descriptor held_c = {.digest = c}, held_b = {.digest = b};
    img_blob_pins *pin_c = img_blob_pins_take(&held_c, 1);
    img_blob_pins *pin_b = img_blob_pins_take(&held_b, 1);
    assert_true(image_blob_held(c));
    assert_false(image_blob_held(a));

    image_blob_gc *gc = NULL;
    assert_int_equal(image_blob_gc_prepare(f->s, &gc, &err), 0);
    img_blob_pins_release(pin_b);
    assert_false(image_blob_held(b));
    uint32_t count = 0;
    uint64_t bytes = 0;
    assert_int_equal(image_blob_gc_run(gc, f->dir, 0, &count, &bytes, &err), 0);
    image_blob_gc_free(gc);
    assert_int_equal(count, 1); /* only the orphan partial download */
    assert_true(bytes == 40);
    assert_true(exists(pa) && exists(pb) && exists(pc) && !exists(pd) && exists(other));

    /* The next collection sees b unheld; c goes once its pull lets go. */
    run_gc(f, 0, &count, &bytes);
    assert_int_equal(count, 1);
    assert_true(bytes == 200);
    assert_false(exists(pb));
    assert_true(exists(pc));
    img_blob_pins_release(pin_c);
    run_gc(f, 0, &count, &bytes);
    assert_int_equal(count, 1);
    assert_true(exists(pa) && !exists(pc) && exists(other));

    /* Nothing is left to collect: a referenced blob stays for good. */
    run_gc(f, 0, &count, &bytes);
    assert_int_equal(count, 0);
    assert_true(exists(pa));
}

/* until=: only blobs last written before the cut-off go. */
static void test_gc_honours_the_age_cutoff(void **state)
{
    store_fixture *f = *state;
    _cleanup_free_ char *old = digest_of('e'), *young = digest_of('f');
    _cleanup_free_ char *p_old = put_blob(f->dir, old, "", 10),
                        *p_young = put_blob(f->dir, young, "", 20);
    int64_t now = (int64_t)time(NULL);
    struct timespec ts[2] = {{.tv_sec = now - 7200}, {.tv_sec = now - 7200}};
    assert_int_equal(utimensat(AT_FDCWD, p_old, ts, 0), 0);
    uint32_t count = 0;
    uint64_t bytes = 0;
    run_gc(f, now - 3600, &count, &bytes);
    assert_int_equal(count, 1);
    assert_true(bytes == 10);
    assert_false(exists(p_old));
    assert_true(exists(p_young));
}

/* An image's layers come from its manifest.json; a row without one has none. */
static void test_layer_digests_of_a_row(void **state)
{
    store_fixture *f = *state;
    _cleanup_free_ char *a = digest_of('a'), *b = digest_of('b');
    char *layers[] = {a, b, NULL};
    add_image(f->s, "2", "v2", layers);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_image img = {0};
    assert_int_equal(store_image_find(f->s, "localhost:5000/gc:v2", &img, &err), 0);
    _cleanup_strv_ char **got = image_layer_digests(&img);
    assert_non_null(got);
    assert_int_equal(strv_length(got), 2);
    assert_string_equal(got[0], a);
    assert_string_equal(got[1], b);
    free(img.manifest);
    img.manifest = NULL;
    assert_null(image_layer_digests(&img));
    store_image_clear(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gc_removes_only_unreferenced_unheld_blobs,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_gc_honours_the_age_cutoff, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_layer_digests_of_a_row, store_fixture_setup,
                                        store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
