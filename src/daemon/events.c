/* The event bus behind SubscribeEvents: every state change publishes here and
 * each open stream whose type filter matches gets a copy. */
#define LOG_MODULE "events"
#include "daemon.h"

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

static bool matches(const subscriber *s, const char *type)
{
    if (!s->filters || !s->filters[0])
        return true;
    for (char **f = s->filters; *f; f++)
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
        if (matches(s, type)) {
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
