#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <linux/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "common/common.h"
#include "test_helpers.h"

void test_enter_private_netns(void)
{
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "%s: unshare(CLONE_NEWNET): %s (needs root)\n",
                program_invocation_short_name, strerror(errno));
        exit(1);
    }
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
        (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
        fprintf(stderr, "%s: bring lo up: %s\n", program_invocation_short_name, strerror(errno));
        exit(1);
    }
}

int store_fixture_setup(void **state)
{
    store_fixture *f = xcalloc(1, sizeof(*f));
    f->dir = xstrdup("/tmp/hypr-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->path = path_join(f->dir, "hypr.db");
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    *state = f;
    return 0;
}

int store_fixture_teardown(void **state)
{
    store_fixture *f = *state;
    store_close(f->s);
    rm_rf(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}
