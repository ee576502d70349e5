/* Where BuildKit's parser corpus is (../shared/testdata/buildkit next to the
 * project root, or $HYPR_SHARED_DIR/testdata/buildkit), for the builder tests.
 * HYPR_SOURCE_ROOT is defined by tests/unit/meson.build. */
#ifndef HYPR_TEST_BUILDKIT_CORPUS_H
#define HYPR_TEST_BUILDKIT_CORPUS_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/common.h"

/* The corpus directory, or NULL (after printing why) when it is absent. Caller frees. */
static inline char *buildkit_corpus_dir(void)
{
    const char *shared = getenv("HYPR_SHARED_DIR");
    char *dir = shared && *shared ? xasprintf("%s/testdata/buildkit", shared)
                                  : xstrdup(HYPR_SOURCE_ROOT "/../shared/testdata/buildkit");
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return dir;
    fprintf(stderr, "BuildKit corpus not found at %s (set HYPR_SHARED_DIR): skipping\n", dir);
    free(dir);
    return NULL;
}

/* A whole file of the corpus (relative to its directory); NULL if unreadable. */
static inline char *buildkit_corpus_read(const char *dir, const char *rel, size_t *len)
{
    char *path = xasprintf("%s/%s", dir, rel);
    char *data = NULL;
    size_t n = 0;
    int r = read_file(path, 16u << 20, &data, &n);
    free(path);
    if (r < 0)
        return NULL;
    if (len)
        *len = n;
    return data;
}

#endif
