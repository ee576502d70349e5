/* Shared by the vmm unit tests: includes, a per-test temporary directory. */
#ifndef HYPR_TEST_VMM_H
#define HYPR_TEST_VMM_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <lzma.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <zlib.h>
#include <zstd.h>

#include "vmm/vmm-private.h"

#define VM_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char tmpdir[256];

__attribute__((unused)) static int setup_tmp(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hypr-test-vmm-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

__attribute__((unused)) static int teardown_tmp(void **state)
{
    rm_rf(tmpdir);
    return 0;
}

__attribute__((unused)) static char *tmp_path(const char *name)
{
    return path_join(tmpdir, name);
}

__attribute__((unused)) static void write_str(const char *path, const char *s)
{
    assert_int_equal(write_file_atomic(path, s, strlen(s), 0755), 0);
}

#endif
