/* libFuzzer target: the runtime-manifest parser, plus the encoder's promise
 * that whatever parses re-encodes to text that parses to the same encoding. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kestrel/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kestrel_manifest m, m2;
    char err[256];
    if (manifest_parse((const char *)data, size, &m, err, sizeof(err)) != 0) {
        if (m.cmd.v || m.entrypoint.v || m.hostname || m.netifs || m.mac)
            abort(); /* nothing left behind on error */
        return 0;
    }
    char *t1 = NULL, *t2 = NULL;
    size_t l1, l2;
    if (manifest_encode(&m, &t1, &l1) != 0)
        abort();
    if (manifest_parse(t1, l1, &m2, err, sizeof(err)) != 0)
        abort();
    if (manifest_encode(&m2, &t2, &l2) != 0 || l1 != l2 || memcmp(t1, t2, l1) != 0)
        abort();
    if (m.cmd.n != m2.cmd.n || m.env.n != m2.env.n || m.n_volumes != m2.n_volumes ||
        m.n_netifs != m2.n_netifs || !m.mac != !m2.mac)
        abort();
    for (size_t i = 0; i < m.n_netifs; i++)
        if (strcmp(m.netifs[i].mac, m2.netifs[i].mac) != 0 ||
            strcmp(m.netifs[i].ip, m2.netifs[i].ip) != 0)
            abort();
    for (size_t i = 0; i < m.cmd.n; i++)
        if (strcmp(m.cmd.v[i], m2.cmd.v[i]) != 0)
            abort();
    free(t1);
    free(t2);
    manifest_free(&m);
    manifest_free(&m2);
    return 0;
}
