/* pci.ids: vendor and device names. The file is ~1.3 MB of lines
 *   VVVV  vendor name
 *   <TAB>DDDD  device name
 *   <TAB><TAB>SSSS SSSS  subsystem name      (skipped)
 * followed by a class section ("C 03  Display controller") where the list of
 * vendors ends. It is read once, at the first lookup, and kept in memory with
 * the names pointing into its text. */
#define LOG_MODULE "gpu"

#include <string.h>

#include "gpu/gpu.h"

typedef struct ids_device {
    uint16_t id;
    uint32_t order; /* line order: the first of duplicate ids wins */
    const char *name;
} ids_device;

typedef struct ids_vendor {
    uint16_t id;
    uint32_t order;
    const char *name;
    ids_device *devices;
    size_t n_devices;
} ids_vendor;

struct gpu_ids {
    char *path;  /* NULL for parsed text */
    bool loaded; /* the file was tried */
    char *text;  /* the names point into it */
    ids_vendor *vendors;
    size_t n_vendors;
};

gpu_ids *gpu_ids_new(const char *path)
{
    if (!path)
        path = getenv("HYPR_PCI_IDS");
    gpu_ids *ids = xcalloc(1, sizeof(*ids));
    ids->path = xstrdup(str_empty(path) ? GPU_PCI_IDS_PATH : path);
    return ids;
}

/* "VVVV<space or tab>name": the id and the name (trimmed), or false. */
static bool parse_entry(char *s, uint16_t *id, const char **name)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit_value(s[i]);
        if (d < 0)
            return false;
        v = v << 4 | (unsigned)d;
    }
    if (s[4] != ' ' && s[4] != '\t')
        return false;
    char *n = s + 4;
    n += strspn(n, " \t");
    size_t len = strlen(n);
    while (len && (n[len - 1] == ' ' || n[len - 1] == '\t' || n[len - 1] == '\r'))
        n[--len] = '\0';
    if (!len)
        return false;
    *id = (uint16_t)v;
    *name = n;
    return true;
}

static int cmp_vendor(const void *a, const void *b)
{
    const ids_vendor *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_device(const void *a, const void *b)
{
    const ids_device *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void add_device(ids_vendor *v, uint16_t id, const char *name, uint32_t order)
{
    /* Grows by doubling: a vendor has up to a few thousand devices. */
    size_t n = v->n_devices;
    if ((n & (n - 1)) == 0)
        v->devices = xrealloc(v->devices, (n ? 2 * n : 1) * sizeof(*v->devices));
    v->devices[v->n_devices++] = (ids_device){id, order, name};
}

/* Takes text (NUL-terminated, len bytes before the NUL). */
static void parse_text(gpu_ids *ids, char *text, size_t len)
{
    ids->text = text;
    size_t cap = 0;
    bool in_vendor = false; /* the last vendor line parsed: device lines belong to it */
    uint32_t order = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line = p;
        if (nl)
            *nl = '\0';
        p = nl ? nl + 1 : end;
        order++;
        if (line[0] == '\0' || line[0] == '#')
            continue;
        if (line[0] == 'C' && line[1] == ' ')
            break; /* the classes: no vendor follows */
        uint16_t id;
        const char *name;
        if (line[0] != '\t') {
            in_vendor = parse_entry(line, &id, &name);
            if (!in_vendor)
                continue;
            if (ids->n_vendors == cap) {
                cap = cap ? 2 * cap : 256;
                ids->vendors = xrealloc(ids->vendors, cap * sizeof(*ids->vendors));
            }
            ids->vendors[ids->n_vendors++] = (ids_vendor){.id = id, .order = order, .name = name};
            continue;
        }
        /* A subsystem line (two tabs), or a device line of no vendor, is skipped. */
        if (line[1] != '\t' && in_vendor && parse_entry(line + 1, &id, &name))
            add_device(&ids->vendors[ids->n_vendors - 1], id, name, order);
    }
    if (ids->n_vendors > 1)
        qsort(ids->vendors, ids->n_vendors, sizeof(*ids->vendors), cmp_vendor);
    for (size_t i = 0; i < ids->n_vendors; i++)
        if (ids->vendors[i].n_devices > 1)
            qsort(ids->vendors[i].devices, ids->vendors[i].n_devices, sizeof(ids_device),
                  cmp_device);
}

gpu_ids *gpu_ids_parse(const char *data, size_t len)
{
    gpu_ids *ids = xcalloc(1, sizeof(*ids));
    ids->loaded = true;
    char *text = xmalloc(len + 1);
    memcpy(text, data, len);
    text[len] = '\0';
    parse_text(ids, text, len);
    return ids;
}

static void ensure_loaded(gpu_ids *ids)
{
    if (ids->loaded)
        return;
    ids->loaded = true;
    char *text = NULL;
    size_t len = 0;
    int r = read_file(ids->path, 64u << 20, &text, &len);
    if (r < 0) {
        /* Names are a nicety: the list shows the numeric ids without them. */
        log_debug("no PCI names: %s: %s", ids->path, strerror(-r));
        return;
    }
    parse_text(ids, text, len);
}

/* The first entry with id in a sorted array (lower bound), or NULL. */
#define LOWER_BOUND(arr, n, want, out)                                                             \
    do {                                                                                           \
        size_t lo_ = 0, hi_ = (n);                                                                 \
        while (lo_ < hi_) {                                                                        \
            size_t mid_ = lo_ + (hi_ - lo_) / 2;                                                   \
            if ((arr)[mid_].id < (want))                                                           \
                lo_ = mid_ + 1;                                                                    \
            else                                                                                   \
                hi_ = mid_;                                                                        \
        }                                                                                          \
        (out) = lo_ < (n) && (arr)[lo_].id == (want) ? &(arr)[lo_] : NULL;                         \
    } while (0)

static const ids_vendor *find_vendor(gpu_ids *ids, unsigned vendor)
{
    if (!ids || vendor > 0xffff)
        return NULL;
    ensure_loaded(ids);
    const ids_vendor *v;
    LOWER_BOUND(ids->vendors, ids->n_vendors, vendor, v);
    return v;
}

const char *gpu_ids_vendor(gpu_ids *ids, unsigned vendor)
{
    const ids_vendor *v = find_vendor(ids, vendor);
    return v ? v->name : NULL;
}

const char *gpu_ids_device(gpu_ids *ids, unsigned vendor, unsigned device)
{
    const ids_vendor *v = find_vendor(ids, vendor);
    if (!v || device > 0xffff)
        return NULL;
    const ids_device *d;
    LOWER_BOUND(v->devices, v->n_devices, device, d);
    return d ? d->name : NULL;
}

void gpu_ids_free(gpu_ids *ids)
{
    if (!ids)
        return;
    for (size_t i = 0; i < ids->n_vendors; i++)
        free(ids->vendors[i].devices);
    free(ids->vendors);
    free(ids->text);
    free(ids->path);
    free(ids);
}
