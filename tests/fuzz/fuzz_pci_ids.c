/* libFuzzer target for the pci.ids parser (src/gpu): the input is the file. Any
 * text parses; every name found is a non-empty line fragment, and the first
 * vendor line of the input is found by its id unless a class line comes first. */
#include "gpu/gpu.h"

#include <stdint.h>
#include <string.h>

static void check_name(const char *name)
{
    if (name && (!*name || strchr(name, '\n') || name[strlen(name) - 1] == ' '))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gpu_ids *ids = gpu_ids_parse((const char *)data, size);
    /* Ids of the input's own lines, and a spread of others. */
    for (size_t i = 0; i + 4 <= size && i < 4096; i++) {
        char hex[5];
        memcpy(hex, data + i, 4);
        hex[4] = '\0';
        char *end;
        unsigned long v = strtoul(hex, &end, 16);
        if (*end)
            continue;
        const char *vendor = gpu_ids_vendor(ids, (unsigned)v);
        check_name(vendor);
        check_name(gpu_ids_device(ids, (unsigned)v, (unsigned)v));
        if (vendor)
            for (unsigned d = 0; d < 0x10000; d += 0x1111)
                check_name(gpu_ids_device(ids, (unsigned)v, d));
    }
    for (unsigned v = 0; v <= 0x10000; v += 0x101)
        check_name(gpu_ids_vendor(ids, v));
    /* "VVVV  name" on the first line, with no earlier class section, is a vendor. */
    if (size >= 6 && data[4] == ' ' && memchr(data, '\n', size) == NULL) {
        char hex[5];
        memcpy(hex, data, 4);
        hex[4] = '\0';
        char *end;
        unsigned long v = strtoul(hex, &end, 16);
        bool named = false;
        for (size_t i = 5; i < size; i++)
            named |= data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\0';
        /* A NUL inside the line ends its name, which may leave it empty. */
        bool nul = memchr(data, '\0', size) != NULL;
        if (!*end && strspn(hex, "0123456789abcdefABCDEF") == 4 && named && !nul &&
            !gpu_ids_vendor(ids, (unsigned)v))
            abort();
    }
    gpu_ids_free(ids);
    return 0;
}
