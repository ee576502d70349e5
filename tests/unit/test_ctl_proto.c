#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kestrel/ctl_proto.h"

/* Feeds buf in pieces of `step` bytes and collects every frame (copied). */
typedef struct got {
    uint8_t type[64];
    uint32_t session[64];
    uint8_t *payload[64];
    uint32_t len[64];
    size_t n;
    int err;
} got;

static void got_free(got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->payload[i]);
}

static void decode_all(const uint8_t *buf, size_t len, size_t step, got *g)
{
    ctl_decoder d;
    ctl_decoder_init(&d);
    memset(g, 0, sizeof(*g));
    for (size_t off = 0; off < len && !g->err;) {
        size_t n = len - off < step ? len - off : step;
        int r = ctl_decoder_feed(&d, buf + off, n);
        off += n;
        ctl_frame f;
        while (r == 0 && (r = ctl_decoder_next(&d, &f)) == 1) {
            assert_true(g->n < 64);
            g->type[g->n] = f.type;
            g->session[g->n] = f.session;
            g->len[g->n] = f.len;
            g->payload[g->n] = malloc(f.len + 1);
            memcpy(g->payload[g->n], f.payload, f.len);
            g->n++;
            r = 0;
        }
        if (r < 0)
            g->err = r;
    }
    ctl_decoder_free(&d);
}

static void test_header_layout(void **state)
{
    (void)state;
    ctl_buf b = {0};
    assert_int_equal(ctl_encode_signal(&b, 0x01020304, 15), 0);
    assert_int_equal(b.len, CTL_HEADER_SIZE + 4);
    const uint8_t want[] = {0x4b, 1, CTL_SIGNAL, 0, 4, 3, 2, 1, 4, 0, 0, 0, 15, 0, 0, 0};
    assert_memory_equal(b.data, want, sizeof(want));
    ctl_buf_free(&b);
}

static void test_every_type_round_trip(void **state)
{
    (void)state;
    ctl_buf b = {0};
    ctl_phase_ts ts[] = {{CTL_PHASE_AGENT_START, 11}, {CTL_PHASE_WORKLOAD_START, 1ull << 40}};
    char *argv[] = {"sh", "-c", "echo hi there", NULL};
    char *env[] = {"A=1", "B=two words", NULL};
    ctl_exec_start es = {.tty = true,
                         .rows = 24,
                         .cols = 80,
                         .workdir = "/srv",
                         .user = "nobody:nogroup",
                         .argv = argv,
                         .argc = 3,
                         .env = env,
                         .envc = 2};
    uint64_t mv[CTL_M_COUNT];
    for (size_t i = 0; i < CTL_M_COUNT; i++)
        mv[i] = 1000 + i;

    assert_int_equal(ctl_encode_hello(&b, ts, 2), 0);
    assert_int_equal(ctl_encode_exec_start(&b, 7, &es), 0);
    assert_int_equal(ctl_encode_data(&b, CTL_STDIN, 7, "in", 2), 0);
    assert_int_equal(ctl_encode_raw(&b, CTL_STDIN_EOF, 7, NULL, 0), 0);
    assert_int_equal(ctl_encode_data(&b, CTL_STDOUT, 7, "out\n", 4), 0);
    assert_int_equal(ctl_encode_data(&b, CTL_STDERR, 7, "", 0), 0);
    assert_int_equal(ctl_encode_resize(&b, 7, 50, 132), 0);
    assert_int_equal(ctl_encode_signal(&b, 7, 2), 0);
    assert_int_equal(ctl_encode_exit(&b, 7, -1), 0);
    assert_int_equal(ctl_encode_log(&b, CTL_LOG_STDERR, "line\n", 5), 0);
    assert_int_equal(ctl_encode_metrics(&b, mv, CTL_M_COUNT), 0);
    assert_int_equal(ctl_encode_workload_exit(&b, 137, true, 3), 0);
    assert_int_equal(ctl_encode_raw(&b, CTL_SHUTDOWN, 0, NULL, 0), 0);
    assert_int_equal(ctl_encode_error(&b, 7, EBADMSG, "bad frame"), 0);

    /* whole, byte by byte, and in odd pieces: always the same frames */
    size_t steps[] = {b.len, 1, 3, 13};
    for (size_t s = 0; s < 4; s++) {
        got g;
        decode_all(b.data, b.len, steps[s], &g);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.n, 14);
        for (size_t i = 0; i < 14; i++)
            assert_int_equal(g.type[i], i + 1);

        ctl_hello h;
        assert_int_equal(ctl_parse_hello(g.payload[0], g.len[0], &h), 0);
        assert_int_equal(h.version, CTL_PROTO_VERSION);
        assert_int_equal(h.n, 2);
        assert_int_equal(h.ts[1].phase, CTL_PHASE_WORKLOAD_START);
        assert_true(h.ts[1].ns == 1ull << 40);

        ctl_exec_start e;
        assert_int_equal(g.session[1], 7);
        assert_int_equal(ctl_parse_exec_start(g.payload[1], g.len[1], &e), 0);
        assert_true(e.tty);
        assert_int_equal(e.rows, 24);
        assert_int_equal(e.cols, 80);
        assert_string_equal(e.workdir, "/srv");
        assert_string_equal(e.user, "nobody:nogroup");
        assert_int_equal(e.argc, 3);
        assert_string_equal(e.argv[2], "echo hi there");
        assert_null(e.argv[3]);
        assert_int_equal(e.envc, 2);
        assert_string_equal(e.env[1], "B=two words");
        assert_null(e.env[2]);
        ctl_exec_start_free(&e);

        assert_int_equal(g.len[2], 2);
        assert_memory_equal(g.payload[2], "in", 2);
        assert_int_equal(ctl_parse_empty(g.payload[3], g.len[3]), 0);
        assert_memory_equal(g.payload[4], "out\n", 4);
        assert_int_equal(g.len[5], 0);

        uint16_t rows, cols;
        assert_int_equal(ctl_parse_resize(g.payload[6], g.len[6], &rows, &cols), 0);
        assert_int_equal(rows, 50);
        assert_int_equal(cols, 132);
        uint32_t sig;
        assert_int_equal(ctl_parse_signal(g.payload[7], g.len[7], &sig), 0);
        assert_int_equal(sig, 2);
        int32_t code;
        assert_int_equal(ctl_parse_exit(g.payload[8], g.len[8], &code), 0);
        assert_int_equal(code, -1);

        uint8_t stream;
        const uint8_t *data;
        size_t dlen;
        assert_int_equal(g.session[9], 0);
        assert_int_equal(ctl_parse_log(g.payload[9], g.len[9], &stream, &data, &dlen), 0);
        assert_int_equal(stream, CTL_LOG_STDERR);
        assert_int_equal(dlen, 5);
        assert_memory_equal(data, "line\n", 5);

        uint64_t got_m[CTL_M_COUNT];
        assert_int_equal(ctl_parse_metrics(g.payload[10], g.len[10], got_m), 0);
        assert_memory_equal(got_m, mv, sizeof(mv));

        bool again;
        uint32_t restarts;
        assert_int_equal(
            ctl_parse_workload_exit(g.payload[11], g.len[11], &code, &again, &restarts), 0);
        assert_int_equal(code, 137);
        assert_true(again);
        assert_int_equal(restarts, 3);
        assert_int_equal(ctl_parse_empty(g.payload[12], g.len[12]), 0);

        uint32_t err;
        char *msg;
        assert_int_equal(ctl_parse_error(g.payload[13], g.len[13], &err, &msg), 0);
        assert_int_equal(err, EBADMSG);
        assert_string_equal(msg, "bad frame");
        free(msg);
        got_free(&g);
    }
    ctl_buf_free(&b);
}

static void test_payload_over_max_refused_both_ways(void **state)
{
    (void)state;
    ctl_buf b = {0};
    size_t big = CTL_MAX_PAYLOAD + 1;
    uint8_t *p = calloc(1, big);
    assert_int_equal(ctl_encode_raw(&b, CTL_STDOUT, 1, p, big), -EMSGSIZE);
    assert_int_equal(ctl_encode_log(&b, CTL_LOG_STDOUT, p, CTL_MAX_PAYLOAD), -EMSGSIZE);
    assert_int_equal(b.len, 0); /* nothing half-written */
    /* exactly the maximum is fine, and decodes */
    assert_int_equal(ctl_encode_raw(&b, CTL_STDOUT, 1, p, CTL_MAX_PAYLOAD), 0);
    got g;
    decode_all(b.data, b.len, 65536, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.len[0], CTL_MAX_PAYLOAD);
    got_free(&g);

    /* a header announcing more than the maximum: error as soon as the header is in */
    uint8_t hdr[CTL_HEADER_SIZE] = {0x4b, 1, CTL_STDOUT, 0, 1, 0, 0, 0, 0, 0, 0x10, 0};
    hdr[8] = 1; /* 0x00100001 */
    ctl_decoder d;
    ctl_decoder_init(&d);
    ctl_frame f;
    assert_int_equal(ctl_decoder_feed(&d, hdr, sizeof(hdr)), 0);
    assert_int_equal(ctl_decoder_next(&d, &f), -EMSGSIZE);
    /* sticky: the stream is dead */
    assert_int_equal(ctl_decoder_feed(&d, hdr, 1), -EMSGSIZE);
    assert_int_equal(ctl_decoder_next(&d, &f), -EMSGSIZE);
    ctl_decoder_reset(&d);
    assert_int_equal(ctl_decoder_next(&d, &f), 0);
    ctl_decoder_free(&d);
    ctl_buf_free(&b);
    free(p);
}

static void test_bad_headers(void **state)
{
    (void)state;
    struct {
        uint8_t h[CTL_HEADER_SIZE];
        int err;
    } cases[] = {
        {{0x4a, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, -EPROTO},
        {{0x4b, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, -EPROTONOSUPPORT},
        {{0x4b, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, -EBADMSG},
        {{0x4b, 1, CTL_TYPE_MAX + 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, -EBADMSG},
        {{0x4b, 1, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, -EMSGSIZE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        got g;
        decode_all(cases[i].h, CTL_HEADER_SIZE, 1, &g);
        assert_int_equal(g.err, cases[i].err);
        assert_int_equal(g.n, 0);
    }
    /* a good frame followed by garbage: the good one comes out first */
    ctl_buf b = {0};
    assert_int_equal(ctl_encode_signal(&b, 1, 9), 0);
    uint8_t junk[CTL_HEADER_SIZE] = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1'};
    uint8_t *all = malloc(b.len + sizeof(junk));
    memcpy(all, b.data, b.len);
    memcpy(all + b.len, junk, sizeof(junk));
    got g;
    decode_all(all, b.len + sizeof(junk), 5, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.err, -EPROTO);
    got_free(&g);
    free(all);
    ctl_buf_free(&b);
}

static void test_partial_frames_wait(void **state)
{
    (void)state;
    ctl_buf b = {0};
    assert_int_equal(ctl_encode_data(&b, CTL_STDOUT, 3, "hello", 5), 0);
    ctl_decoder d;
    ctl_decoder_init(&d);
    ctl_frame f;
    for (size_t i = 0; i + 1 < b.len; i++) {
        assert_int_equal(ctl_decoder_feed(&d, b.data + i, 1), 0);
        assert_int_equal(ctl_decoder_next(&d, &f), 0);
    }
    assert_int_equal(ctl_decoder_feed(&d, b.data + b.len - 1, 1), 0);
    assert_int_equal(ctl_decoder_next(&d, &f), 1);
    assert_int_equal(f.session, 3);
    assert_memory_equal(f.payload, "hello", 5);
    assert_int_equal(ctl_decoder_next(&d, &f), 0);
    ctl_decoder_free(&d);
    ctl_buf_free(&b);
}

static void test_truncated_payloads(void **state)
{
    (void)state;
    ctl_buf b = {0};
    char *argv[] = {"ls", "-l", NULL};
    ctl_exec_start es = {.workdir = "", .user = "", .argv = argv, .argc = 2};
    assert_int_equal(ctl_encode_exec_start(&b, 1, &es), 0);
    const uint8_t *p = b.data + CTL_HEADER_SIZE;
    size_t len = b.len - CTL_HEADER_SIZE;
    ctl_exec_start e;
    assert_int_equal(ctl_parse_exec_start(p, len, &e), 0);
    ctl_exec_start_free(&e);
    /* every shorter prefix, and one trailing byte, is malformed */
    for (size_t i = 0; i < len; i++)
        assert_int_equal(ctl_parse_exec_start(p, i, &e), -EBADMSG);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, p, len);
    longer[len] = 0;
    assert_int_equal(ctl_parse_exec_start(longer, len + 1, &e), -EBADMSG);
    free(longer);

    /* a string count that cannot fit, an embedded NUL, an empty argv */
    uint8_t huge_count[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(ctl_parse_exec_start(huge_count, sizeof(huge_count), &e), -EBADMSG);
    uint8_t nul[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   0, 0, 0, 0, 0,
                     0, 1, 0, 0, 0, 2, 0, 0, 0, 'a', 0, 0, 0, 0, 0};
    assert_int_equal(ctl_parse_exec_start(nul, sizeof(nul), &e), -EBADMSG);
    uint8_t noargv[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ctl_parse_exec_start(noargv, sizeof(noargv), &e), -EBADMSG);

    ctl_hello h;
    uint8_t hello_short[] = {1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0};
    assert_int_equal(ctl_parse_hello(hello_short, sizeof(hello_short), &h), -EBADMSG);
    uint16_t r, c;
    assert_int_equal(ctl_parse_resize((const uint8_t *)"abc", 3, &r, &c), -EBADMSG);
    uint32_t s;
    assert_int_equal(ctl_parse_signal((const uint8_t *)"abcde", 5, &s), -EBADMSG);
    uint64_t mv[CTL_M_COUNT];
    uint8_t metrics_bad[] = {2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(ctl_parse_metrics(metrics_bad, sizeof(metrics_bad), mv), -EBADMSG);
    /* fewer fields than known: the rest reads as 0 (older sender) */
    uint8_t metrics_old[] = {1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ctl_parse_metrics(metrics_old, sizeof(metrics_old), mv), 0);
    assert_int_equal(mv[0], 9);
    assert_int_equal(mv[CTL_M_NET_TX_PACKETS], 0);
    uint8_t stream;
    const uint8_t *data;
    size_t dlen;
    assert_int_equal(ctl_parse_log((const uint8_t *)"", 0, &stream, &data, &dlen), -EBADMSG);
    assert_int_equal(ctl_parse_log((const uint8_t *)"\x07x", 2, &stream, &data, &dlen), -EBADMSG);
    int32_t code;
    bool again;
    uint32_t restarts;
    uint8_t we[] = {0, 0, 0, 0, 2, 0, 0, 0, 0};
    assert_int_equal(ctl_parse_workload_exit(we, sizeof(we), &code, &again, &restarts), -EBADMSG);
    uint32_t err;
    char *msg;
    assert_int_equal(ctl_parse_error((const uint8_t *)"ab", 2, &err, &msg), -EBADMSG);
    assert_int_equal(ctl_parse_empty((const uint8_t *)"x", 1), -EBADMSG);
    ctl_buf_free(&b);
}

static void test_encoder_arguments(void **state)
{
    (void)state;
    ctl_buf b = {0};
    ctl_exec_start none = {0};
    assert_int_equal(ctl_encode_exec_start(&b, 1, &none), -EINVAL);
    assert_int_equal(ctl_encode_raw(&b, 0, 1, NULL, 0), -EINVAL);
    assert_int_equal(ctl_encode_data(&b, CTL_EXIT, 1, "x", 1), -EINVAL);
    assert_int_equal(b.len, 0);
    assert_string_equal(ctl_type_name(CTL_WORKLOAD_EXIT), "WORKLOAD_EXIT");
    assert_string_equal(ctl_type_name(99), "UNKNOWN");
    ctl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_every_type_round_trip),
        cmocka_unit_test(test_payload_over_max_refused_both_ways),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_partial_frames_wait),
        cmocka_unit_test(test_truncated_payloads),
        cmocka_unit_test(test_encoder_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
