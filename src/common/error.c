#include "common.h"

#include <string.h>

static int error_return(const hypr_error *err)
{
    return err && err->errnum > 0 ? -err->errnum : -EIO;
}

int hypr_err(hypr_error *err, hypr_status status, int errnum, const char *fmt, ...)
{
    if (errnum < 0)
        errnum = -errnum;
    if (!err)
        return errnum > 0 ? -errnum : -EIO;
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    free(err->message);
    err->message = msg;
    err->status = status;
    err->errnum = errnum;
    return error_return(err);
}

int hypr_err_prefix(hypr_error *err, const char *fmt, ...)
{
    if (!err)
        return -EIO;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = xasprintf("%s: %s", ctx, err->message ? err->message : "unknown error");
    free(ctx);
    free(err->message);
    err->message = msg;
    if (err->status == HYPR_OK)
        err->status = HYPR_INTERNAL;
    return error_return(err);
}

void hypr_error_clear(hypr_error *err)
{
    if (!err)
        return;
    free(err->message);
    err->message = NULL;
    err->status = HYPR_OK;
    err->errnum = 0;
}

const char *hypr_status_name(hypr_status status)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if ((unsigned)status < ARRAY_SIZE(names))
        return names[status];
    return "UNKNOWN";
}

hypr_status hypr_status_from_errno(int negerr)
{
    switch (-negerr) {
    case 0:
        return HYPR_OK;
    case EINVAL:
        return HYPR_INVALID_ARGUMENT;
    case ENOENT:
        return HYPR_NOT_FOUND;
    case EEXIST:
        return HYPR_ALREADY_EXISTS;
    case EACCES:
    case EPERM:
        return HYPR_PERMISSION_DENIED;
    case ENOSPC:
    case ENOMEM:
    case EMSGSIZE:
        return HYPR_RESOURCE_EXHAUSTED;
    case ETIMEDOUT:
        return HYPR_DEADLINE_EXCEEDED;
    case ECANCELED:
        return HYPR_CANCELLED;
    case EBUSY:
        return HYPR_FAILED_PRECONDITION;
    case ENOSYS:
    case EOPNOTSUPP:
        return HYPR_UNIMPLEMENTED;
    case ECONNREFUSED:
    case EAGAIN:
        return HYPR_UNAVAILABLE;
    default:
        return HYPR_INTERNAL;
    }
}
