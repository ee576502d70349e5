/* The cleanup helper for jansson's json_t, for the modules that use jansson.
 * Kept out of common.h so the common module itself depends only on libc. */
#ifndef HYPR_COMMON_JSON_CLEANUP_H
#define HYPR_COMMON_JSON_CLEANUP_H

#include <jansson.h>

#include "common/common.h"

/* jansson's own json_decrefp (behind its json_auto_t) accepts NULL. */
#define _cleanup_json_ _cleanup_(json_decrefp)

#endif
