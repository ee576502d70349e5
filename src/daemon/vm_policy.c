/* Restart policy decisions, kept free of side effects so they are tested alone. */
#include "vm.h"

#include <string.h>

/* Restarts after a hypervisor crash back off up to this. */
#define FIRST_RESTART_DELAY_MS 500
#define MAX_RESTART_DELAY_MS   30000

bool vm_should_restart(const vm_restart_input *in)
{
    if (in->stop_requested || in->shutting_down || !in->failed || !in->workload_started ||
        !in->policy)
        return false;
    if (strcmp(in->policy, "always") == 0 || strcmp(in->policy, "unless-stopped") == 0)
        return true;
    if (strcmp(in->policy, "on-failure") == 0)
        return in->max_retries == 0 || in->restarts < in->max_retries;
    return false;
}

uint64_t vm_restart_delay_ms(uint32_t n)
{
    uint64_t delay = FIRST_RESTART_DELAY_MS;
    for (uint32_t i = 1; i < n && delay < MAX_RESTART_DELAY_MS; i++)
        delay *= 2;
    return delay > MAX_RESTART_DELAY_MS ? MAX_RESTART_DELAY_MS : delay;
}

bool vm_policy_restarts_with_daemon(const char *policy, uint32_t max_retries,
                                    uint32_t restart_count, bool manual_stop, int exit_code)
{
    /* Docker's rules: always comes back even after a docker stop, unless-stopped
     * only when it was not stopped by hand, on-failure when it was not stopped by
     * hand, failed (non-zero exit) and has retries left. */
    if (!policy)
        return false;
    if (strcmp(policy, "on-failure") == 0)
        return !manual_stop && exit_code != 0 && (max_retries == 0 || restart_count < max_retries);
    return strcmp(policy, "always") == 0 || (strcmp(policy, "unless-stopped") == 0 && !manual_stop);
}
