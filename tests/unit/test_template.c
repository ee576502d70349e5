/* The --format template engine: each construct's exact output against a ps row
 * and an inspect object, and each error's message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/json_cleanup.h"

static const char inspect_json[] =
    "{\"Id\": \"4f2a9c1e7b3d4f2a9c1e7b3d4f2a9c1e7b3d4f2a9c1e7b3d4f2a9c1e7b3d4f2a\","
    " \"Name\": \"Web-Server\", \"RestartCount\": 2, \"Ratio\": 1.5, \"Big\": 1000000.0,"
    " \"State\": {\"Status\": \"running\", \"Running\": true, \"Restarting\": false, \"Pid\": 42,"
    "  \"ExitCode\": 0, \"Error\": \"\"},"
    " \"Config\": {\"Env\": [\"PATH=/bin\", \"A=1\"], \"Cmd\": [\"nginx\", \"-g\", \"daemon "
    "off;\"],"
    "  \"Entrypoint\": null, \"Labels\": {\"k\": \"v\", \"app\": \"web\"}, \"Empty\": []},"
    " \"NetworkSettings\": {\"IPAddress\": \"10.88.0.2\", \"Ports\": {}},"
    " \"Mounts\": [{\"Source\": \"/a\", \"RW\": true}]}";

static json_t *dot(void)
{
    json_error_t je;
    json_t *v = json_loads(inspect_json, 0, &je);
    assert_non_null(v);
    return v;
}

static char *run(const char *src, int *rc, char **err_out)
{
    _cleanup_json_ json_t *d = dot();
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_template_ cli_template *t = NULL;
    _cleanup_buf_ hypr_buf out = {0};
    *rc = cli_template_parse_format(src, &t, &err);
    if (*rc >= 0)
        *rc = cli_template_exec(t, d, &out, &err);
    *err_out = err.message ? strdup(err.message) : NULL;
    buf_puts(&out, "");
    return buf_steal(&out);
}

typedef struct tcase {
    const char *src, *want;
} tcase;

static void check_outputs(const tcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc;
        char *err;
        _cleanup_free_ char *got = run(c[i].src, &rc, &err);
        if (rc < 0 || strcmp(got, c[i].want))
            fprintf(stderr, "template %s: got [%s] want [%s] err %s\n", c[i].src, got, c[i].want,
                    err ? err : "-");
        assert_int_equal(rc, 0);
        assert_string_equal(got, c[i].want);
        free(err);
    }
}

static void check_errors(const tcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc;
        char *err;
        _cleanup_free_ char *got = run(c[i].src, &rc, &err);
        if (rc >= 0 || !err || strcmp(err, c[i].want))
            fprintf(stderr, "template %s: got error [%s] want [%s] (output [%s])\n", c[i].src,
                    err ? err : "-", c[i].want, got);
        assert_true(rc < 0);
        assert_non_null(err);
        assert_string_equal(err, c[i].want);
        assert_string_equal(got, "");
        free(err);
    }
}

static void test_fields_and_values(void **state)
{
    static const tcase c[] = {
        {"{{.Name}}", "Web-Server"},
        {"{{.State.Status}} {{.State.Pid}}", "running 42"},
        {"{{.State.Running}}/{{.State.Restarting}}", "true/false"},
        {"{{.Config.Env}}", "[PATH=/bin A=1]"},
        {"{{.Config.Labels}}", "map[app:web k:v]"},
        {"{{.Config.Labels.missing}}", "<no value>"},
        {"{{.Config.Entrypoint}}", "<no value>"},
        {"{{.Ratio}} {{.Big}}", "1.5 1e+06"},
        {"{{.NetworkSettings.IPAddress}}", "10.88.0.2"},
        {"{{.Mounts}}", "[map[RW:true Source:/a]]"},
        {"plain text", "plain text"},
        {"", ""},
        {"a{{/* a comment */}}b", "ab"},
        {"a  {{- .State.Pid -}}  b", "a42b"},
        {"a {{- /* trimmed */ -}} b", "ab"},
        {"{{\"quoted\\t\\\"x\\\"\"}}", "quoted\t\"x\""},
        {"{{`raw`}}", "raw"},
        /* Docker replaces a typed \\n before parsing, even in a raw string */
        {"{{`a\\nb`}}", "a\nb"},
        {"{{-3}} {{0x10}} {{'a'}} {{true}}", "-3 16 97 true"},
        {"{{.State.Pid}}\\t{{.Name}}\\n", "42\tWeb-Server\n"},
        {"{{ .Name }}", "Web-Server"},
        {"{{(.State).Status}}", "running"},
    };
    check_outputs(c, ARRAY_SIZE(c));
}

static void test_functions(void **state)
{
    static const tcase c[] = {
        {"{{json .Config.Env}}", "[\"PATH=/bin\",\"A=1\"]"},
        {"{{json .Config.Entrypoint}}", "null"},
        {"{{json .Name}}", "\"Web-Server\""},
        {"{{json .State.Pid}}", "42"},
        {"{{index .Config.Labels \"k\"}}", "v"},
        {"{{index .Config.Labels \"nope\"}}", "<no value>"},
        {"{{index .Config.Cmd 1}}", "-g"},
        {"{{join .Config.Cmd \" \"}}", "nginx -g daemon off;"},
        {"{{lower .Name}} {{upper .Name}} {{title \"hello wide-world\"}}",
         "web-server WEB-SERVER Hello Wide-World"},
        {"{{split \"a,b,,c\" \",\"}}", "[a b  c]"},
        {"{{len (split \"a,b\" \",\")}}", "2"},
        {"{{len .Config.Env}} {{len .Name}} {{len .Config.Labels}}", "2 10 2"},
        {"{{.Name | upper}}", "WEB-SERVER"},
        {"{{.Name | lower | printf \"<%s>\"}}", "<web-server>"},
        {"[{{pad .Name 2 1}}]", "[  Web-Server ]"},
        {"[{{pad \"\" 2 1}}]", "[]"},
        {"{{truncate .Id 12}}", "4f2a9c1e7b3d"},
        {"{{truncate \"ab\" 5}}", "ab"},
        {"{{println .Name}}", "Web-Server\n"},
        {"{{println 1 2 \"x\"}}", "1 2 x\n"},
        {"{{print 1 2 \"x\" \"y\" 3}}", "1 2xy3"},
        {"{{printf \"%s:%d\" .Name .State.Pid}}", "Web-Server:42"},
        {"{{printf \"[%-10s][%5d][%05d][%v][%q]\" \"ab\" 7 -42 .Config.Env \"a\\\"b\"}}",
         "[ab        ][    7][-0042][[PATH=/bin A=1]][\"a\\\"b\"]"},
        {"{{printf \"%.2f %t %x %%\" .Ratio true 255}}", "1.50 true ff %"},
        {"{{printf \"%d %s\" \"x\"}}", "%!d(string=x) %!s(MISSING)"},
        {"{{printf \"%s\" 1 2}}", "%!s(int=1)%!(EXTRA int=2)"},
        {"{{eq .State.Status \"running\"}} {{eq .State.Pid 1 42}} {{ne .Name \"x\"}}",
         "true true true"},
        {"{{not .State.Running}} {{and .State.Running .Name}} {{or .State.Error \"fallback\"}}",
         "false Web-Server fallback"},
        {"{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1 2}}", "true true true false"},
        {"{{and false .Nope}}", "false"},
    };
    check_outputs(c, ARRAY_SIZE(c));
}

static void test_control(void **state)
{
    static const tcase c[] = {
        {"{{if .State.Running}}up{{else}}down{{end}}", "up"},
        {"{{if .State.Restarting}}r{{else if .State.Running}}u{{else}}d{{end}}", "u"},
        {"{{if not .State.Running}}x{{end}}", ""},
        {"{{range .Config.Env}}{{println .}}{{end}}", "PATH=/bin\nA=1\n"},
        {"{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "app=web k=v "},
        {"{{range $i, $e := .Config.Cmd}}{{$i}}:{{$e}},{{end}}", "0:nginx,1:-g,2:daemon off;,"},
        {"{{range .Config.Empty}}x{{else}}none{{end}}", "none"},
        {"{{range .Config.Cmd}}{{if eq . \"-g\"}}{{break}}{{end}}{{.}}{{end}}", "nginx"},
        {"{{range .Config.Cmd}}{{if eq . \"-g\"}}{{continue}}{{end}}{{.}};{{end}}",
         "nginx;daemon off;;"},
        {"{{with .State}}{{.Status}}{{end}}", "running"},
        {"{{with .State.Error}}err{{else}}ok{{end}}", "ok"},
        {"{{$n := .Name}}{{range .Config.Cmd}}{{$n}}{{end}}", "Web-ServerWeb-ServerWeb-Server"},
        {"{{$x := 1}}{{$x = 2}}{{$x}}", "2"},
        {"{{range .Config.Env}}{{$.Name}} {{end}}", "Web-Server Web-Server "},
        {"{{range 3}}{{.}}{{end}}", "012"},
    };
    check_outputs(c, ARRAY_SIZE(c));
}

static void test_errors(void **state)
{
    static const tcase c[] = {
        {"{{.Foo}}", "template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo"},
        {"x\n {{.State.Nope.X}}", "template: :2:3: executing \"\" at <.State.Nope.X>: nil pointer "
                                  "evaluating interface {}.X"},
        {"{{.Name.X}}",
         "template: :1:2: executing \"\" at <.Name.X>: can't evaluate field X in type string"},
        {"{{index .Config.Cmd 9}}",
         "template: :1:2: executing \"\" at <index .Config.Cmd 9>: error calling index: index out "
         "of range: 9"},
        {"{{join .Name}}", "template: :1:2: executing \"\" at <join>: wrong number of args for "
                           "join: want 2 got 1"},
        {"{{eq .Name 1}}", "template: :1:2: executing \"\" at <eq .Name 1>: error calling eq: "
                           "incompatible types for comparison"},
        {"{{range .Name}}{{end}}",
         "template: :1:8: executing \"\" at <.Name>: range can't iterate over Web-Server"},
        {"{{.Name .Id}}", "template: :1:2: executing \"\" at <.Name>: can't give argument to "
                          "non-function .Name"},
        {"{{len 3}}",
         "template: :1:2: executing \"\" at <len 3>: error calling len: len of type int"},
        {"{{.ID", "template parsing error: template: :1: unclosed action"},
        {"{{}}", "template parsing error: template: :1: missing value for command"},
        {"{{foo .}}", "template parsing error: template: :1: function \"foo\" not defined"},
        {"{{if .X}}a", "template parsing error: template: :1: unexpected EOF"},
        {"{{end}}", "template parsing error: template: :1: unexpected {{end}}"},
        {"{{else}}", "template parsing error: template: :1: unexpected {{else}}"},
        {"{{$x}}", "template parsing error: template: :1: undefined variable \"$x\""},
        {"{{\"abc}}", "template parsing error: template: :1: unterminated quoted string"},
        {"{{/* x }}", "template parsing error: template: :1: unclosed comment"},
        {"{{break}}", "template parsing error: template: :1: {{break}} outside {{range}}"},
        {"{{.A | }}", "template parsing error: template: :1: missing command after |"},
        {"{{if}}{{end}}", "template parsing error: template: :1: missing value for if"},
        {"{{template \"x\"}}",
         "template parsing error: template: :1: {{template}} is not supported"},
        {"{{range 1000000000}}{{end}}",
         "template: :1:2: executing \"\": template execution takes too many steps"},
        {"{{range 1000000}}{{$}}{{end}}",
         "template: :1:2: executing \"\": template output is too large"},
        {"{{if true}}{{$x := 1}}{{end}}{{$x}}",
         "template parsing error: template: :1: undefined variable \"$x\""},
        {"{{range .Config.Cmd}}{{else}}{{break}}{{end}}",
         "template parsing error: template: :1: {{break}} outside {{range}}"},
        {"{{if 1}}{{else}}{{else}}{{end}}",
         "template parsing error: template: :1: expected end; found {{else}}"},
        {"{{printf 1}}", "template: :1:2: executing \"\" at <printf 1>: wrong type for value; "
                         "expected string; got int"},
        {"{{pad .Name \"x\" 1}}", "template: :1:2: executing \"\" at <pad .Name \"x\" 1>: "
                                  "wrong type for value; expected int; got string"},
        {"{{.A ! }}", "template parsing error: template: :1: unexpected \"!\" in command"},
        {"{{(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1)))))))))))))))))"
         "))))))))))))))))))))))))))))))))))))))))))))))))))}}",
         "template parsing error: template: :1: template nesting too deep"},
    };
    check_errors(c, ARRAY_SIZE(c));
}

static char *hdr(const char *field, void *ud)
{
    static const char *const overrides[] = {"ID", "CONTAINER ID", "RunningFor", "CREATED", NULL};
    return cli_template_header_name(field, overrides);
}

static void test_table_header_and_tabwriter(void **state)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_template_ cli_template *t = NULL;
    assert_int_equal(
        cli_template_parse_format("table {{.ID}}\\t{{.Image | upper}}\\t{{json .CreatedAt}}"
                                  "\\t{{.RunningFor}}",
                                  &t, &err),
        0);
    assert_true(cli_template_is_table(t));
    _cleanup_buf_ hypr_buf h = {0};
    assert_int_equal(cli_template_exec_header(t, hdr, NULL, &h, &err), 0);
    assert_string_equal(h.data, "CONTAINER ID\tIMAGE\tCREATED AT\tCREATED");

    _cleanup_free_ char *ip = cli_template_header_name("IPAddress", NULL);
    assert_string_equal(ip, "IP ADDRESS");
    _cleanup_free_ char *nm = cli_template_header_name("Names", NULL);
    assert_string_equal(nm, "NAMES");

    const char text[] = "ID\tNAME\tX\nabcdefabcdef\tn\tlast cell\nshort";
    _cleanup_buf_ hypr_buf out = {0};
    cli_tabwriter(text, strlen(text), &out);
    assert_string_equal(out.data, "ID             NAME      X\n"
                                  "abcdefabcdef   n         last cell\n"
                                  "short");

    /* a header that fails keeps what it printed (Docker ignores the error) */
    _cleanup_template_ cli_template *bad = NULL;
    assert_int_equal(cli_template_parse_format("table {{.ID}}\\t{{len 1}}", &bad, &err), 0);
    _cleanup_buf_ hypr_buf bh = {0};
    assert_true(cli_template_exec_header(bad, hdr, NULL, &bh, &err) < 0);
    hypr_error_clear(&err);
    assert_string_equal(bh.data, "CONTAINER ID\t");

    /* column blocks end at a line without that column, like text/tabwriter's */
    const char blocks[] = "a\tb\nccc\nlonger-than-ten\tx\n";
    _cleanup_buf_ hypr_buf bo = {0};
    cli_tabwriter(blocks, strlen(blocks), &bo);
    assert_string_equal(bo.data, "a         b\nccc\nlonger-than-ten   x\n");

    _cleanup_template_ cli_template *plain = NULL;
    assert_int_equal(cli_template_parse_format("{{.ID}}", &plain, &err), 0);
    assert_false(cli_template_is_table(plain));
    assert_true(cli_format_is_template("{{.ID}}"));
    assert_false(cli_format_is_template("json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_values),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_control),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_table_header_and_tabwriter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
