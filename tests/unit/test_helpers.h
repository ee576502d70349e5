/* Helpers shared by the unit tests that need the same environment: a private
 * network namespace, a store in a fresh temp dir. Linked in through
 * test_helpers_dep (tests/unit/meson.build). */
#ifndef HYPR_TEST_HELPERS_H
#define HYPR_TEST_HELPERS_H

#include "state/state.h"

/* Moves the test process into a network namespace of its own with lo up, so
 * bridges, TAPs and nftables rules never touch the host's. Exits 1 with the
 * reason when it cannot (it needs root). */
void test_enter_private_netns(void);

/* A store opened on <dir>/hypr.db, dir a fresh /tmp/hypr-test-store-XXXXXX. */
typedef struct store_fixture {
    char *dir;
    char *path;
    store *s;
} store_fixture;
/* cmocka setup/teardown: *state is the store_fixture; teardown removes dir. */
int store_fixture_setup(void **state);
int store_fixture_teardown(void **state);

#endif
