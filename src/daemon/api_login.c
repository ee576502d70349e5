/* Login: checks registry credentials for `hypr login`, like Docker's POST /auth.
 *
 * The check is network I/O (GET /v2/, maybe a token round trip), so it runs on
 * libuv's thread pool with the same registry settings as a pull. If the call
 * closes first (client gone, deadline, shutdown) the check is cancelled, so a
 * registry that never answers does not hold a worker (or shutdown) for minutes,
 * and its result is dropped. Nothing is saved here: the client keeps the
 * credentials, in Docker's config.json. */
#define LOG_MODULE "api"
#include "api.h"
#include "image/image.h"

#include <string.h>

typedef struct login_work {
    uv_work_t req;
    rpc_call *call; /* NULL once the call went away */
    char *registry, *username, *password;
    api_registry_opts registry_opts;
    image_progress cancel; /* only its cancel flag: set when the call goes away */
    hypr_error err;
    int result;
} login_work;

static void wipe(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
}

static void login_work_free(login_work *w)
{
    wipe(w->password);
    free(w->password);
    free(w->username);
    free(w->registry);
    api_registry_opts_clear(&w->registry_opts);
    image_progress_destroy(&w->cancel);
    hypr_error_clear(&w->err);
    free(w);
}

static void login_run(uv_work_t *req)
{
    login_work *w = req->data;
    const image_login_opts o = {
        .server = w->registry,
        .user = w->username,
        .pass = w->password,
        .insecure = w->registry_opts.insecure,
        .ca_file = w->registry_opts.ca_file,
        .certs_dir = w->registry_opts.certs_dir,
        .cancel = &w->cancel,
    };
    w->result = image_registry_login(&o, &w->err);
}

static void login_done(uv_work_t *req, int status)
{
    (void)status;
    login_work *w = req->data;
    rpc_call *call = w->call;
    if (call) {
        rpc_call_set_data(call, NULL);
        if (w->result < 0) {
            /* The registry's own words ("login attempt to ... failed with status: 401 ..."). */
            api_fail(call, &w->err);
        } else {
            log_info("login to %s as %s succeeded",
                     str_empty(w->registry) ? "docker.io" : w->registry, w->username);
            Hypr__V1__LoginResponse resp = HYPR__V1__LOGIN_RESPONSE__INIT;
            resp.status = "Login Succeeded";
            rpc_call_reply(call, &resp.base);
        }
    }
    login_work_free(w);
}

void api_login(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__LoginRequest *req = (Hypr__V1__LoginRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    login_work *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    image_progress_init(&w->cancel, NULL, NULL);
    w->registry = xstrdup(req->registry);
    w->username = xstrdup(req->username);
    w->password = xstrdup(req->password);
    wipe(req->password);
    if (d->shutting_down) {
        login_work_free(w);
        rpc_call_finish(call, HYPR_UNAVAILABLE, "hyprd is shutting down");
        return;
    }
    if (str_empty(w->username) || str_empty(w->password)) {
        login_work_free(w);
        rpc_call_finish(call, HYPR_INVALID_ARGUMENT, "login needs a username and a password");
        return;
    }
    api_registry_opts_get(d, &w->registry_opts);
    w->call = call;
    rpc_call_set_data(call, w);
    int r = uv_queue_work(d->loop, &w->req, login_run, login_done);
    if (r < 0) {
        rpc_call_set_data(call, NULL);
        login_work_free(w);
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        hypr_err(&err, HYPR_INTERNAL, -r, "login: queue work: %s", uv_strerror(r));
        api_fail(call, &err);
    }
}

void api_login_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    login_work *w = rpc_call_get_data(call);
    if (!w)
        return;
    log_debug("login to %s: the call went away; cancelling the check",
              str_empty(w->registry) ? "docker.io" : w->registry);
    image_progress_cancel(&w->cancel);
    w->call = NULL;
}
