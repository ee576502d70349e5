/* The event bus behind SubscribeEvents: every state change publishes here and
 * each open stream whose type filter matches gets a copy. */
#define LOG_MODULE "events"
#include "vm.h"

#include <string.h>

/* A subscriber that lets this much pile up unread is cut off rather than
 * growing the daemon's memory without bound. */
#define MAX_PENDING_BYTES (8u * 1024 * 1024)

typedef struct subscriber {
    rpc_call *call;
    char **filters; /* type prefixes; NULL = everything */
    struct subscriber *next;
} subscriber;

struct event_bus {
    vm_listener vms; /* first: the listener is the bus */
    subscriber *head;
    size_t count;
};

int event_bus_new(event_bus **out)
{
    *out = xcalloc(1, sizeof(event_bus));
    return 0;
}

static void subscriber_free(subscriber *s)
{
    strv_free(s->filters);
    free(s);
}

void event_bus_free(event_bus *bus)
{
    if (!bus)
        return;
    while (bus->head) {
        subscriber *s = bus->head;
        bus->head = s->next;
        subscriber_free(s);
    }
    free(bus);
}

void event_bus_subscribe(event_bus *bus, rpc_call *call, char **type_filters)
{
    subscriber *s = xcalloc(1, sizeof(*s));
    s->call = call;
    s->filters = type_filters;
    s->next = bus->head;
    bus->head = s;
    bus->count++;
}

void event_bus_unsubscribe(event_bus *bus, rpc_call *call)
{
    for (subscriber **p = &bus->head; *p; p = &(*p)->next) {
        if ((*p)->call == call) {
            subscriber *s = *p;
            *p = s->next;
            subscriber_free(s);
            bus->count--;
            return;
        }
    }
}

size_t event_bus_subscribers(event_bus *bus)
{
    return bus->count;
}

bool event_filter_matches(char *const *filters, const char *type)
{
    if (!filters || !filters[0])
        return true;
    for (char *const *f = filters; *f; f++)
        if (str_startswith(type, *f))
            return true;
    return false;
}

void event_publish(event_bus *bus, const char *type, const char *id, const char *message,
                   char *const *attrs)
{
    Hypr__V1__Event ev = HYPR__V1__EVENT__INIT;
    ev.type = (char *)type;
    ev.id = (char *)(id ? id : "");
    ev.message = (char *)(message ? message : "");
    ev.timestamp_ms = time_now_ms();

    size_t n_attrs = strv_length(attrs) / 2;
    _cleanup_free_ Hypr__V1__Event__AttributesEntry *entries = xcalloc(n_attrs, sizeof(*entries));
    _cleanup_free_ Hypr__V1__Event__AttributesEntry **ptrs = xcalloc(n_attrs, sizeof(*ptrs));
    for (size_t i = 0; i < n_attrs; i++) {
        hypr__v1__event__attributes_entry__init(&entries[i]);
        entries[i].key = attrs[2 * i];
        entries[i].value = attrs[2 * i + 1];
        ptrs[i] = &entries[i];
    }
    ev.n_attributes = n_attrs;
    ev.attributes = ptrs;

    log_debug("%s %s", type, ev.id);
    subscriber *s = bus->head;
    while (s) {
        /* Finishing a call may unsubscribe it (on_close), so step first. */
        subscriber *next = s->next;
        if (event_filter_matches(s->filters, type)) {
            if (rpc_call_pending(s->call) > MAX_PENDING_BYTES)
                rpc_call_finish(s->call, HYPR_RESOURCE_EXHAUSTED,
                                "event subscriber is not reading its events; disconnected");
            else
                rpc_call_send(s->call, &ev.base);
        }
        s = next;
    }
}

void event_bus_close_all(event_bus *bus)
{
    subscriber *s = bus->head;
    while (s) {
        subscriber *next = s->next;
        rpc_call_finish(s->call, HYPR_UNAVAILABLE, "hyprd is shutting down");
        s = next;
    }
}

/* ---- VM notices as events ------------------------------------------------------------ */

static const char *vm_event_type(const vm_notice *n)
{
    switch (n->kind) {
    case VM_NOTICE_PHASE:
        switch (n->phase) {
        case VM_PHASE_CREATED:
            return "vm.created";
        case VM_PHASE_BOOTING:
            return "vm.starting";
        case VM_PHASE_RUNNING:
            return "vm.started";
        case VM_PHASE_RESTARTING:
            return "vm.restarting";
        case VM_PHASE_STOPPING:
            return "vm.stopping";
        default:
            return NULL;
        }
    case VM_NOTICE_EXIT:
        return n->phase == VM_PHASE_FAILED ? "vm.failed" : "vm.stopped";
    case VM_NOTICE_REMOVED:
        return n->err ? NULL : "vm.deleted"; /* a failed removal left the VM in place */
    case VM_NOTICE_RENAMED:
        return "vm.renamed";
    }
    return NULL;
}

static void on_vm_notice(vm_listener *l, daemon_ctx *d, const vm_notice *n)
{
    (void)d;
    event_bus *bus = (event_bus *)l;
    const char *type = vm_event_type(n);
    if (!type)
        return;
    char *name = (char *)n->name;
    if (n->kind == VM_NOTICE_REMOVED) {
        char *attrs[] = {"name", name, NULL};
        event_publish(bus, type, n->id, NULL, attrs);
    } else if (n->kind == VM_NOTICE_RENAMED) {
        char *attrs[] = {"name", name, "oldName", (char *)n->old_name, NULL};
        event_publish(bus, type, n->id, NULL, attrs);
    } else if (n->phase == VM_PHASE_CREATED) {
        char *attrs[] = {"name", name, "image", (char *)n->image, NULL};
        event_publish(bus, type, n->id, NULL, attrs);
    } else {
        char code[16];
        snprintf(code, sizeof(code), "%d", n->exit_code);
        char *error = n->err ? n->err->message : NULL;
        char *attrs[] = {"name",
                         name,
                         "status",
                         (char *)vm_phase_status(n->phase),
                         "exit_code",
                         code,
                         error ? "error" : NULL,
                         error,
                         NULL};
        event_publish(bus, type, n->id, error, attrs);
    }
}

void event_bus_watch_vms(daemon_ctx *d)
{
    d->events->vms.notify = on_vm_notice;
    vm_listener_add(d, &d->events->vms);
}

void event_bus_unwatch_vms(daemon_ctx *d)
{
    if (d->events)
        vm_listener_remove(d, &d->events->vms);
}
