/* Pull progress, rendered like `docker pull`: on a terminal one line per layer
 * redrawn in place; otherwise one plain line whenever a layer changes state, so
 * logs and CI output stay readable. */
#include "cli/cmd.h"

#include <string.h>

typedef struct layer_state {
    char *digest;
    char *status;
    uint64_t done, total;
} layer_state;

struct cli_progress {
    FILE *f;
    bool tty;
    layer_state *layers;
    size_t n;
    size_t drawn; /* lines of the in-place block currently on screen */
    int phase;
    bool downloaded;
    char *last_message;
};

cli_progress *progress_new(FILE *f, bool tty)
{
    cli_progress *p = xcalloc(1, sizeof(*p));
    p->f = f;
    p->tty = tty;
    return p;
}

void progress_free(cli_progress *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->layers[i].digest);
        free(p->layers[i].status);
    }
    free(p->layers);
    free(p->last_message);
    free(p);
}

bool progress_downloaded(const cli_progress *p)
{
    return p->downloaded;
}

static const char *status_text(const char *status)
{
    static const struct {
        const char *status, *text;
    } map[] = {
        {"waiting", "Waiting"},
        {"downloading", "Downloading"},
        {"verifying", "Verifying Checksum"},
        {"done", "Pull complete"},
        {"exists", "Already exists"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (!strcmp(status, map[i].status))
            return map[i].text;
    return status;
}

static char *layer_line(const layer_state *l, bool bar)
{
    _cleanup_free_ char *id = short_id(l->digest, true);
    if (!bar || strcmp(l->status, "downloading") || !l->total)
        return xasprintf("%s: %s", id, status_text(l->status));
    enum { WIDTH = 50 };
    size_t fill =
        (size_t)((double)(l->done > l->total ? l->total : l->done) * WIDTH / (double)l->total);
    char bar_s[WIDTH + 1];
    for (size_t i = 0; i < WIDTH; i++)
        bar_s[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar_s[WIDTH] = '\0';
    char done[32], total[32];
    format_size(l->done, done, sizeof(done));
    format_size(l->total, total, sizeof(total));
    return xasprintf("%s: Downloading [%s]  %s/%s", id, bar_s, done, total);
}

static void redraw(cli_progress *p)
{
    if (p->drawn)
        fprintf(p->f, "\033[%zuA", p->drawn);
    for (size_t i = 0; i < p->n; i++) {
        _cleanup_free_ char *line = layer_line(&p->layers[i], true);
        fprintf(p->f, "\r\033[2K%s\n", line);
    }
    p->drawn = p->n;
    fflush(p->f);
}

/* A status line goes above the layer block, which is then drawn again below it. */
static void print_line(cli_progress *p, const char *text)
{
    if (p->tty && p->drawn) {
        fprintf(p->f, "\033[%zuA\r\033[2K%s\n", p->drawn, text);
        p->drawn = 0;
        redraw(p);
        return;
    }
    fprintf(p->f, "%s\n", text);
    fflush(p->f);
}

void progress_update(cli_progress *p, const Hypr__V1__PullProgress *msg)
{
    bool changed = false;
    for (size_t i = 0; i < msg->n_layers; i++) {
        const Hypr__V1__LayerProgress *lp = msg->layers[i];
        layer_state *l = NULL;
        for (size_t j = 0; j < p->n; j++)
            if (!strcmp(p->layers[j].digest, lp->digest))
                l = &p->layers[j];
        if (!l) {
            p->layers = xrealloc(p->layers, (p->n + 1) * sizeof(*p->layers));
            l = &p->layers[p->n++];
            *l = (layer_state){xstrdup(lp->digest), xstrdup(""), 0, 0};
            changed = true;
        }
        bool status_changed = strcmp(l->status, lp->status) != 0;
        changed |= status_changed || l->done != lp->done_bytes || l->total != lp->total_bytes;
        if (status_changed) {
            free(l->status);
            l->status = xstrdup(lp->status);
            if (!p->tty && !str_empty(l->status)) {
                _cleanup_free_ char *line = layer_line(l, false);
                fprintf(p->f, "%s\n", line);
            }
        }
        l->done = lp->done_bytes;
        l->total = lp->total_bytes;
        if (!strcmp(lp->status, "downloading") || !strcmp(lp->status, "verifying"))
            p->downloaded = true;
    }
    if (p->tty && changed)
        redraw(p);
    if (!str_empty(msg->message) && (!p->last_message || strcmp(p->last_message, msg->message))) {
        free(p->last_message);
        p->last_message = xstrdup(msg->message);
        print_line(p, msg->message);
    } else if ((int)msg->phase != p->phase &&
               msg->phase == HYPR__V1__PULL_PROGRESS__PHASE__CONVERTING &&
               str_empty(msg->message)) {
        print_line(p, "Converting layers to a squashfs root filesystem");
    }
    if (msg->phase == HYPR__V1__PULL_PROGRESS__PHASE__CONVERTING)
        p->downloaded = p->downloaded || p->n > 0;
    p->phase = (int)msg->phase;
    fflush(p->f);
}

void progress_done(cli_progress *p)
{
    p->drawn = 0;
    fflush(p->f);
}

void progress_print_header(FILE *f, const char *reference)
{
    _cleanup_free_ char *name = NULL, *tag = NULL;
    cli_split_reference(reference, &name, &tag, true);
    const char *slash = strchr(reference, '/');
    const char *colon = strrchr(slash ? slash : reference, ':');
    if (!colon && !strchr(reference, '@'))
        fprintf(f, "Using default tag: latest\n");
    /* Docker names the repository without its registry host. */
    const char *path = name;
    const char *first = strchr(name, '/');
    bool docker_hub = true;
    if (first) {
        size_t len = (size_t)(first - name);
        if (memchr(name, '.', len) || memchr(name, ':', len) || !strncmp(name, "localhost", len)) {
            docker_hub = !strncmp(name, "docker.io", len);
            path = first + 1;
        }
    }
    if (docker_hub && !strchr(path, '/'))
        fprintf(f, "%s: Pulling from library/%s\n", tag, path);
    else
        fprintf(f, "%s: Pulling from %s\n", tag, path);
    fflush(f);
}
