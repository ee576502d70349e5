/* The filters of ListVms and ListImages ("status=running", "label=k=v",
 * "reference=busy*", ...), with Docker's meaning: values of one key are OR,
 * different keys are AND (label is the exception: every label= must match).
 * Pure (common only), so the parser and the matcher are unit-tested and fuzzed
 * alone; what needs the store (the image an ancestor= names, the VM or image a
 * before=/since= names, an image's exposed ports) is looked up by the caller
 * and handed in. Internal to src/daemon. */
#ifndef HYPR_DAEMON_LIST_FILTER_H
#define HYPR_DAEMON_LIST_FILTER_H

#include "common/common.h"

typedef enum { LIST_FILTER_VMS, LIST_FILTER_IMAGES } list_filter_kind;

typedef enum {
    LF_ID,
    LF_NAME,
    LF_LABEL,
    LF_STATUS,
    LF_EXITED,
    LF_ANCESTOR,
    LF_NETWORK,
    LF_VOLUME,
    LF_PUBLISH,
    LF_EXPOSE,
    LF_BEFORE,
    LF_SINCE,
    LF_DANGLING,
    LF_REFERENCE,
    LF_N_KEYS
} list_filter_key;

typedef struct list_filters {
    char **values[LF_N_KEYS]; /* each key's values as given, NULL when absent */
    /* Filled by the caller after parsing, from the store: */
    char **ancestor_ids;   /* IDs of the images the ancestor= values name */
    int64_t *before_order; /* per before= value: its VM's position / its image's created_at */
    int64_t *since_order;  /* likewise for since= */
} list_filters;

/* Parses specs (each "key=value", as typed) for a kind. A bad one is
 * INVALID_ARGUMENT in Docker's words: "bad format of filter (expected
 * name=value)", "invalid filter 'foo'", "invalid filter 'status=foo'". */
int list_filters_parse(list_filter_kind kind, char *const *specs, size_t n, list_filters *out,
                       hypr_error *err);
void list_filters_clear(list_filters *f);
#define _cleanup_list_filters_ _cleanup_(list_filters_clear)

/* The values given for key (NULL-terminated; NULL when none). */
static inline char *const *list_filters_values(const list_filters *f, list_filter_key key)
{
    return f->values[key];
}
/* Whether `ps` without --all lists stopped VMs too (status=, exited=, before=, since=). */
bool list_filters_want_stopped(const list_filters *f);

typedef struct list_filter_port {
    uint32_t port;     /* the guest (container) port */
    const char *proto; /* "tcp" or "udp"; NULL = tcp */
} list_filter_port;

/* A VM as the matcher sees it. */
typedef struct list_filter_vm {
    const char *id, *name;
    const char
        *status; /* hypr's: created, booting, running, stopping, stopped, failed, restarting */
    int exit_code;
    char *const *labels;      /* key, value, ..., NULL; may be NULL */
    const char *image;        /* the reference it was created from */
    const char *image_id;     /* may be NULL */
    char *const *networks;    /* names, may be NULL */
    char *const *network_ids; /* the same networks' IDs, may be NULL */
    char *const *volumes;     /* mount sources and targets, may be NULL */
    const list_filter_port *published;
    size_t n_published;
    const list_filter_port *exposed; /* the image's exposed ports (published ones count too) */
    size_t n_exposed;
    int64_t order; /* position in creation order (compared with before_order/since_order) */
} list_filter_vm;

bool list_filters_match_vm(const list_filters *f, const list_filter_vm *vm);

/* An image as the matcher sees it. */
typedef struct list_filter_image {
    const char *id;
    const char *name; /* "docker.io/library/busybox"; may be NULL */
    const char *tag;  /* NULL or "" = dangling */
    char *const *labels;
    int64_t created_at;
} list_filter_image;

bool list_filters_match_image(const list_filters *f, const list_filter_image *img);

#endif
