/* The compose loader on small documents: each feature in its syntaxes, each error
 * with its file, line and model path. The corpora (awesome-compose, compose-go's
 * full example) are in test_compose_corpus.c. */
#include "compose_test_util.h"

typedef struct ok_case {
    const char *yaml;
    const char *path;
    const char *json;
} ok_case;

#define SVC "services:\n  web:\n    image: nginx\n"

static const ok_case ok_cases[] = {
    /* image, project name from the directory is checked separately */
    {SVC, "services/web/image", "\"nginx\""},
    {"name: My_App\n" SVC, "name", "\"my_app\""},
    /* ports: short, ranges, protocols, host IPs, long */
    {SVC "    ports: [80]\n", "services/web/ports",
     "[{\"mode\":\"ingress\",\"target\":80,\"protocol\":\"tcp\"}]"},
    {SVC "    ports: [8080:80]\n", "services/web/ports/0",
     "{\"mode\":\"ingress\",\"target\":80,\"published\":\"8080\",\"protocol\":\"tcp\"}"},
    {SVC "    ports: [\"53:53/udp\"]\n", "services/web/ports/0/protocol", "\"udp\""},
    {SVC "    ports: [\"127.0.0.1:8001:8001\"]\n", "services/web/ports/0/host_ip", "\"127.0.0.1\""},
    {SVC "    ports: [\"127.0.0.1::80\"]\n", "services/web/ports/0",
     "{\"mode\":\"ingress\",\"host_ip\":\"127.0.0.1\",\"target\":80,\"protocol\":\"tcp\"}"},
    {SVC "    ports: [\"[::1]:80:80\"]\n", "services/web/ports/0/host_ip", "\"::1\""},
    {SVC "    ports: [\"3000-3002\"]\n", "services/web/ports/2/target", "3002"},
    {SVC "    ports: [\"9090-9091:8080-8081\"]\n", "services/web/ports/1",
     "{\"mode\":\"ingress\",\"target\":8081,\"published\":\"9091\",\"protocol\":\"tcp\"}"},
    {SVC "    ports: [\"8000-8010:80\"]\n", "services/web/ports/0/published", "\"8000-8010\""},
    {SVC "    ports:\n      - target: 80\n        published: 8080\n        protocol: udp\n"
         "        mode: host\n",
     "services/web/ports/0",
     "{\"mode\":\"host\",\"target\":80,\"published\":\"8080\",\"protocol\":\"udp\"}"},
    /* YAML 1.2: 80:80 unquoted is a string, not a base-60 number */
    {SVC "    ports:\n      - 22:22\n", "services/web/ports/0/published", "\"22\""},
    {SVC "    expose: [\"3000\", 8000]\n", "services/web/expose", "[\"3000\",\"8000\"]"},
    /* volumes: short, long, tmpfs, nocopy, create_host_path, relative, ~ */
    {SVC "    volumes: [\"data:/data\"]\nvolumes:\n  data:\n", "services/web/volumes/0",
     "{\"type\":\"volume\",\"source\":\"data\",\"target\":\"/data\",\"volume\":{}}"},
    {SVC "    volumes: [\"./src:/app:ro\"]\n", "services/web/volumes/0/read_only", "true"},
    {SVC "    volumes: [\"/opt/data:/data\"]\n", "services/web/volumes/0/bind",
     "{\"create_host_path\":true}"},
    {SVC "    volumes: [\"~/cfg:/cfg\"]\n", "services/web/volumes/0/source",
     "\"/home/tester/cfg\""},
    {SVC "    volumes: [\"/anon\"]\n", "services/web/volumes/0",
     "{\"type\":\"volume\",\"target\":\"/anon\",\"volume\":{}}"},
    {SVC "    volumes: [\"data:/data:nocopy\"]\nvolumes: {data: {}}\n",
     "services/web/volumes/0/volume", "{\"nocopy\":true}"},
    {SVC "    volumes:\n      - type: bind\n        source: ./x\n        target: /x\n"
         "        bind: {create_host_path: true}\n",
     "services/web/volumes/0/bind/create_host_path", "true"},
    {SVC "    volumes:\n      - type: volume\n        source: vv\n        target: /v\n"
         "        read_only: true\n        volume: {nocopy: true}\nvolumes: {vv: }\n",
     "services/web/volumes/0",
     "{\"type\":\"volume\",\"source\":\"vv\",\"target\":\"/v\",\"read_only\":true,"
     "\"volume\":{\"nocopy\":true}}"},
    {SVC "    volumes:\n      - type: tmpfs\n        target: /t\n        tmpfs: {size: 64m}\n",
     "services/web/volumes/0/tmpfs/size", "\"67108864\""},
    {SVC "    tmpfs: /run\n", "services/web/tmpfs", "[\"/run\"]"},
    /* command / entrypoint */
    {SVC "    command: echo \"hello world\" 'a b'\n", "services/web/command",
     "[\"echo\",\"hello world\",\"a b\"]"},
    {SVC "    entrypoint: [\"/bin/sh\", \"-c\"]\n", "services/web/entrypoint",
     "[\"/bin/sh\",\"-c\"]"},
    /* environment: map, list, null from the OS environment, numbers */
    {SVC "    environment:\n      A: 1\n      B: \"x\"\n", "services/web/environment",
     "{\"A\":\"1\",\"B\":\"x\"}"},
    {SVC "    environment: [A=1, FOO, NOPE]\n", "services/web/environment",
     "{\"A\":\"1\",\"FOO\":\"foo\",\"NOPE\":null}"},
    {SVC "    environment:\n      FOO:\n", "services/web/environment/FOO", "\"foo\""},
    /* interpolation */
    {SVC "    hostname: ${FOO}-$FOO\n", "services/web/hostname", "\"foo-foo\""},
    {SVC "    hostname: 'it''s $$x'\n", "services/web/hostname", "\"it's $x\""},
    {SVC "    labels:\n      a: 'x \n        y\n\n        z'\n", "services/web/labels/a",
     "\"x y\\nz\""},
    {SVC "    labels: {note: \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3\"}\n",
     "services/web/labels/note", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3\""},
    {SVC "    hostname: ${NOPE:-dflt}\n", "services/web/hostname", "\"dflt\""},
    {SVC "    hostname: ${EMPTY:-dflt}\n", "services/web/hostname", "\"dflt\""},
    {SVC "    hostname: x${EMPTY-dflt}x\n", "services/web/hostname", "\"xx\""},
    {SVC "    hostname: ${FOO:+alt}\n", "services/web/hostname", "\"alt\""},
    {SVC "    hostname: a${NOPE:+alt}b\n", "services/web/hostname", "\"ab\""},
    {SVC "    hostname: ${EMPTY+set}\n", "services/web/hostname", "\"set\""},
    {SVC "    hostname: ${NOPE:-${FOO:-x}y}\n", "services/web/hostname", "\"fooy\""},
    {SVC "    hostname: $$FOO\n", "services/web/hostname", "\"$FOO\""},
    {SVC "    ports: [\"${PORT}:80\"]\n", "services/web/ports/0/published", "\"8080\""},
    {SVC "    labels:\n      ${FOO}: v\n", "services/web/labels", "{\"${FOO}\":\"v\"}"},
    {SVC "    hostname: ${FOO?never}\n", "services/web/hostname", "\"foo\""},
    {"name: p\n" SVC "    hostname: ${COMPOSE_PROJECT_NAME}\n", "services/web/hostname", "\"p\""},
    /* labels, annotations, sysctls, extra_hosts */
    {SVC "    labels: [a=b, c]\n", "services/web/labels", "{\"a\":\"b\",\"c\":\"\"}"},
    {SVC "    sysctls: {net.core.somaxconn: 1024}\n", "services/web/sysctls",
     "{\"net.core.somaxconn\":\"1024\"}"},
    {SVC "    extra_hosts: [\"h:1.2.3.4\"]\n", "services/web/extra_hosts", "[\"h=1.2.3.4\"]"},
    {SVC "    extra_hosts: {h: 1.2.3.4}\n", "services/web/extra_hosts", "[\"h=1.2.3.4\"]"},
    /* depends_on */
    {SVC "    depends_on: [db]\n  db:\n    image: postgres\n", "services/web/depends_on",
     "{\"db\":{\"condition\":\"service_started\",\"required\":true}}"},
    {SVC "    depends_on:\n      db: {condition: service_healthy, restart: true}\n  db:\n"
         "    image: postgres\n",
     "services/web/depends_on/db",
     "{\"condition\":\"service_healthy\",\"required\":true,\"restart\":true}"},
    {SVC "    depends_on:\n      gone: {required: false}\n", "services/web/depends_on", "null"},
    /* healthcheck */
    {SVC "    healthcheck:\n      test: curl -f http://localhost\n      interval: 90s\n"
         "      retries: 3\n      start_interval: 500ms\n",
     "services/web/healthcheck",
     "{\"test\":[\"CMD-SHELL\",\"curl -f http://localhost\"],\"interval\":\"1m30s\","
     "\"retries\":3,\"start_interval\":\"500ms\"}"},
    {SVC "    healthcheck:\n      disable: true\n", "services/web/healthcheck/disable", "true"},
    {SVC "    healthcheck:\n      test: [CMD, pg_isready]\n      timeout: 1h\n",
     "services/web/healthcheck/timeout", "\"1h0m0s\""},
    {SVC "    stop_grace_period: 1m\n", "services/web/stop_grace_period", "\"1m0s\""},
    /* deploy */
    {SVC "    deploy:\n      replicas: 3\n      resources:\n        limits: {cpus: '0.5', "
         "memory: 512M}\n",
     "services/web/deploy",
     "{\"replicas\":3,\"resources\":{\"limits\":{\"cpus\":0.5,\"memory\":\"536870912\"}}}"},
    {SVC "    scale: 2\n", "services/web/scale", "2"},
    /* networks */
    {SVC, "services/web/networks", "{\"default\":null}"},
    {"name: compose\n" SVC, "networks/default", "{\"name\":\"compose_default\",\"ipam\":{}}"},
    {SVC "    networks: [front]\nnetworks:\n  front:\n", "services/web/networks",
     "{\"front\":null}"},
    {SVC "    networks:\n      front: {aliases: [w], ipv4_address: 10.0.0.5}\n"
         "networks:\n  front:\n    ipam: {config: [{subnet: 10.0.0.0/24}]}\n",
     "services/web/networks/front", "{\"aliases\":[\"w\"],\"ipv4_address\":\"10.0.0.5\"}"},
    {SVC "networks:\n  ext: {external: true}\n", "networks/ext", "{\"external\":true,\"ipam\":{}}"},
    {SVC "networks:\n  n: {name: custom, internal: true}\n", "networks/n",
     "{\"name\":\"custom\",\"internal\":true,\"ipam\":{}}"},
    {SVC "    network_mode: host\n", "services/web/networks", "null"},
    /* top-level volumes / secrets / configs */
    {"name: compose\n" SVC "volumes:\n  db:\n", "volumes/db", "{\"name\":\"compose_db\"}"},
    {SVC "volumes:\n  db: {external: {name: legacy}}\n", "volumes/db",
     "{\"name\":\"legacy\",\"external\":true}"},
    {"name: compose\n" SVC "    secrets: [pw]\nsecrets:\n  pw: {file: ./pw.txt}\n", "secrets/pw",
     "{\"name\":\"compose_pw\",\"file\":\""
     "/tmp/hypr-compose-test-XXXXXX/pw.txt\"}"},
    {SVC "    configs: [{source: c, target: /etc/c, mode: 0440}]\nconfigs:\n  c: {file: c}\n",
     "services/web/configs/0", "{\"source\":\"c\",\"target\":\"/etc/c\",\"mode\":\"0440\"}"},
    /* build */
    {"services:\n  app:\n    build: ./app\n", "services/app/build/dockerfile", "\"Dockerfile\""},
    {"services:\n  app:\n    build:\n      context: https://github.com/x/y.git\n"
     "      args: [A=1]\n      target: prod\n",
     "services/app/build",
     "{\"context\":\"https://github.com/x/y.git\",\"dockerfile\":\"Dockerfile\","
     "\"args\":{\"A\":\"1\"},\"target\":\"prod\"}"},
    /* anchors, aliases and merge keys */
    {"x-base: &base\n  image: busybox\n  restart: always\nservices:\n  a:\n    <<: *base\n"
     "    restart: \"no\"\n",
     "services/a", "{\"image\":\"busybox\",\"restart\":\"no\",\"networks\":{\"default\":null}}"},
    {"x-env: &env\n  A: 1\nservices:\n  a:\n    image: x\n    environment: *env\n",
     "services/a/environment", "{\"A\":\"1\"}"},
    /* x- keys dropped, init kept */
    {SVC "    x-custom: 1\n    init: true\nx-top: 1\n", "services/web",
     "{\"image\":\"nginx\",\"init\":true,\"networks\":{\"default\":null}}"},
    /* profiles: off unless enabled */
    {SVC "  dbg:\n    image: busybox\n    profiles: [debug]\n", "services/dbg", "null"},
    /* extends in the same file */
    {"services:\n  base:\n    image: busybox\n    environment: {A: 1, B: 2}\n  web:\n"
     "    extends: base\n    environment: {B: 3}\n",
     "services/web/environment", "{\"A\":\"1\",\"B\":\"3\"}"},
    {"services:\n  base:\n    image: busybox\n    command: a b\n  web:\n"
     "    extends: {service: base}\n    command: c\n",
     "services/web/command", "[\"c\"]"},
};

static void test_ok_cases(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(ok_cases); i++) {
        _cleanup_compose_project_ compose_project *p = NULL;
        json_t *m = load_ok(ok_cases[i].yaml, &p);
        /* the secrets case names the scratch directory, only known at run time */
        if (strstr(ok_cases[i].json, "XXXXXX")) {
            _cleanup_free_ char *want = xstrdup(ok_cases[i].json);
            char *x = strstr(want, "/tmp/hypr-compose-test-XXXXXX");
            memcpy(x, test_dir, strlen(test_dir));
            assert_json_at(m, ok_cases[i].path, want);
            continue;
        }
        if (!strcmp(ok_cases[i].json, "null")) {
            if (at(m, ok_cases[i].path) && !json_is_null(at(m, ok_cases[i].path)))
                fail_msg("case %zu: %s should be absent", i, ok_cases[i].path);
            continue;
        }
        assert_json_at(m, ok_cases[i].path, ok_cases[i].json);
    }
}

typedef struct err_case {
    const char *yaml;
    const char *message; /* a part of the error message */
} err_case;

static const err_case err_cases[] = {
    {SVC "    ports: [abc]\n", "compose.yaml:4: services.web.ports[0]: invalid port \"abc\""},
    {SVC "    ports: [\"80:80:80:80\"]\n", "services.web.ports[0]: invalid port \"80:80:80:80\""},
    {SVC "    ports: [\"70000:80\"]\n", "invalid port \"70000:80\""},
    {SVC "    ports: [\"80/xtp\"]\n", "invalid protocol \"xtp\""},
    {SVC "    ports: [\"8000-8002:80-81\"]\n", "the ranges differ in length"},
    {SVC "    ports:\n      - published: 80\n", "invalid port target"},
    {SVC "    volumes: [\"data:relative\"]\n", "services.web.volumes[0]"},
    {SVC "    volumes: [\"data:/d\"]\n", "refers to undefined volume data"},
    {SVC "    volumes:\n      - type: nfs\n        target: /x\n", "unsupported volume type"},
    {SVC "    volumes:\n      - type: bind\n        target: /x\n", "needs a source"},
    {SVC "    networks: [nope]\n", "refers to undefined network nope"},
    {SVC "    secrets: [nope]\n", "refers to undefined secret nope"},
    {SVC "    depends_on: [db]\n", "depends on undefined service \"db\""},
    {SVC "    depends_on:\n      web2: {condition: service_done}\n  web2:\n    image: x\n",
     "invalid condition \"service_done\""},
    {"services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n"
     "    depends_on: [a]\n",
     "dependency cycle detected: a -> b -> a"},
    {SVC "    imagee: typo\n", "services.web: unknown key \"imagee\""},
    {SVC "foo: 1\n", "unknown top-level key \"foo\""},
    {SVC "    hostname: ${NEEDED:?set it please}\n",
     "compose.yaml:4: services.web.hostname: required variable NEEDED is missing a value: set it "
     "please"},
    {SVC "    hostname: ${EMPTY:?}\n", "required variable EMPTY is missing a value"},
    {SVC "    hostname: ${NEEDED?}\n", "required variable NEEDED"},
    {SVC "    hostname: ${FOO\n", "unterminated"},
    {SVC "    hostname: ${FOO:x}\n", "invalid interpolation format"},
    {SVC "    hostname: a$\n", "invalid interpolation format"},
    {"services:\n  web:\n    image: [x\n", "compose.yaml:4: flow sequence without a closing"},
    {"services:\n  web:\n    restart: always\n", "has neither an image nor a build"},
    {"- a\n- b\n", "the top level must be a mapping"},
    {SVC "    healthcheck:\n      interval: soon\n", "invalid duration \"soon\""},
    {SVC "    healthcheck:\n      test: [RUN, x]\n", "must start with CMD"},
    {SVC "    deploy:\n      resources:\n        limits: {memory: lots}\n", "invalid memory"},
    {SVC "    deploy:\n      replicas: -1\n", "invalid replicas"},
    {SVC "    command: echo \"open\n", "unterminated quote"},
    {SVC "    privileged: maybe\n", "services.web.privileged: must be a boolean"},
    {"services:\n  a:\n    extends: a\n    image: x\n", "extends itself"},
    {"services:\n  a:\n    extends: missing\n", "extends: service \"missing\" not found"},
    {SVC "  web:\n    image: dup\n", "compose.yaml:4: duplicate key"},
    {SVC "secrets:\n  s: {labels: {a: b}}\n", "needs a file, environment, content or external"},
    {SVC "    hostname: \"caf\xc3\xa9\xff\"\n", "compose.yaml:4: not valid UTF-8"},
    {"%YAML 1.2\n---\n" SVC, "compose.yaml:1: YAML directives"},
    {SVC "    labels:\n      'it''s': 1\n",
     "compose.yaml:5: services.web.labels: mapping keys with escapes"},
};

static void test_err_cases(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(err_cases); i++) {
        _cleanup_compose_project_ compose_project *p = NULL;
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (load_in(err_cases[i].yaml, NULL, &p, &err) == 0)
            fail_msg("case %zu loaded but should fail:\n%s", i, err_cases[i].yaml);
        assert_int_equal(err.status, HYPR_INVALID_ARGUMENT);
        if (!err.message || !strstr(err.message, err_cases[i].message))
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i,
                     err.message ? err.message : "(null)", err_cases[i].message);
    }
}

static void test_project_name(void **state)
{
    _cleanup_free_ char *a = compose_normalize_project_name("My App.v2!");
    assert_string_equal(a, "myappv2");
    _cleanup_free_ char *b = compose_normalize_project_name("__x-Y_");
    assert_string_equal(b, "x-y_");
    /* the directory's name when nothing else names it */
    _cleanup_compose_project_ compose_project *p = NULL;
    load_ok(SVC, &p);
    _cleanup_free_ char *base = compose_normalize_project_name(strrchr(test_dir, '/') + 1);
    assert_string_equal(p->name, base);
    /* -p wins over name:, and must be valid already */
    compose_options o = {.project_name = "given"};
    _cleanup_compose_project_ compose_project *q = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(load_in("name: other\n" SVC, &o, &q, &err), 0);
    assert_string_equal(q->name, "given");
    assert_string_equal(json_string_value(at(q->model, "networks/default/name")), "given_default");
    o.project_name = "Bad Name";
    _cleanup_compose_project_ compose_project *r = NULL;
    assert_int_not_equal(load_in(SVC, &o, &r, &err), 0);
    assert_non_null(strstr(err.message, "invalid project name"));
    /* COMPOSE_PROJECT_NAME wins over name: */
    char *env[] = {"COMPOSE_PROJECT_NAME=FromEnv", NULL};
    compose_options e = {.environ = env};
    _cleanup_compose_project_ compose_project *s = NULL;
    assert_int_equal(load_in("name: other\n" SVC, &e, &s, &err), 0);
    assert_string_equal(s->name, "fromenv");
}

static void test_dotenv(void **state)
{
    write_text(".env", "# comment\nexport A=from_dotenv\nB = 'lit $FOO'  \nC=\"multi\nline\\t$A\"\n"
                       "D=plain # trailing comment\nFOO=dotenv_loses\nE=${A}_x\n");
    const char *yaml = SVC "    environment: [A, B, C, D, E]\n    hostname: $FOO\n";
    _cleanup_compose_project_ compose_project *p = NULL;
    json_t *m = load_ok(yaml, &p);
    assert_json_at(m, "services/web/environment",
                   "{\"A\":\"from_dotenv\",\"B\":\"lit $FOO\",\"C\":\"multi\\nline\\tfrom_dotenv\","
                   "\"D\":\"plain\",\"E\":\"from_dotenv_x\"}");
    /* the OS environment wins over .env */
    assert_json_at(m, "services/web/hostname", "\"foo\"");
    /* --env-file replaces .env */
    write_text("other.env", "A=from_other\n");
    char *files[] = {"other.env", NULL};
    compose_options o = {.env_files = files};
    _cleanup_compose_project_ compose_project *q = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(load_in(yaml, &o, &q, &err), 0);
    assert_json_at(q->model, "services/web/environment/A", "\"from_other\"");
    assert_json_at(q->model, "services/web/environment/B", "null");
    /* a bad .env is an error naming the file and line */
    write_text(".env", "OK=1\nBAD=\"unterminated\n");
    _cleanup_compose_project_ compose_project *r = NULL;
    assert_int_not_equal(load_in(yaml, NULL, &r, &err), 0);
    assert_non_null(strstr(err.message, ".env:2: unterminated quoted value"));
    _cleanup_free_ char *envp = path_join(test_dir, ".env");
    unlink(envp);
}

static void test_env_file(void **state)
{
    write_text("svc.env", "A=from_file\nB=from_file\n");
    const char *yaml = SVC "    env_file:\n      - svc.env\n      - path: missing.env\n"
                           "        required: false\n    environment: {B: own}\n";
    _cleanup_compose_project_ compose_project *p = NULL;
    json_t *m = load_ok(yaml, &p);
    assert_json_at(m, "services/web/environment", "{\"A\":\"from_file\",\"B\":\"own\"}");
    assert_json_at(m, "services/web/env_file/1/required", "false");
    /* a required env_file that is missing: fine for config, an error for up */
    const char *req = SVC "    env_file: nothere.env\n";
    _cleanup_compose_project_ compose_project *q = NULL;
    load_ok(req, &q);
    compose_options o = {.check_files = true};
    _cleanup_compose_project_ compose_project *r = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_not_equal(load_in(req, &o, &r, &err), 0);
    assert_non_null(strstr(err.message, "nothere.env not found"));
    /* so are a missing secret file and a long-syntax bind source without
     * create_host_path */
    _cleanup_compose_project_ compose_project *s = NULL;
    assert_int_not_equal(
        load_in(SVC "    secrets: [s]\nsecrets:\n  s: {file: ./nosecret}\n", &o, &s, &err), 0);
    assert_non_null(strstr(err.message, "secrets.s.file: secrets"));
    const char *bind = SVC "    volumes:\n      - {type: bind, source: ./nodir, target: /d}\n";
    _cleanup_compose_project_ compose_project *t = NULL, *u = NULL;
    assert_int_not_equal(load_in(bind, &o, &t, &err), 0);
    assert_non_null(strstr(err.message, "nodir does not exist"));
    load_ok(bind, &u);
}

static void test_merge_files(void **state)
{
    write_text("compose.yaml", "services:\n  web:\n    image: nginx:1\n    command: a b\n"
                               "    ports: [\"80:80\"]\n    environment: [A=1, B=2]\n"
                               "    volumes: [\"/h1:/data\"]\n    dns: 1.1.1.1\n");
    write_text("compose.override.yaml",
               "services:\n  web:\n    image: nginx:2\n    command: [c]\n"
               "    ports: [\"80:80\", \"443:443\"]\n    environment: {B: 3}\n"
               "    volumes: [\"/h2:/data\", \"/h3:/other\"]\n    dns: [8.8.8.8]\n"
               "  db:\n    image: postgres\n");
    char *files[] = {"compose.yaml", "compose.override.yaml", NULL};
    compose_options o = {.files = files, .environ = test_env, .cwd = test_dir};
    _cleanup_compose_project_ compose_project *p = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (compose_load(&o, &p, &err) < 0)
        fail_msg("%s", err.message);
    json_t *m = p->model;
    assert_json_at(m, "services/web/image", "\"nginx:2\"");
    assert_json_at(m, "services/web/command", "[\"c\"]");
    assert_int_equal(json_array_size(at(m, "services/web/ports")), 2);
    assert_json_at(m, "services/web/environment", "{\"A\":\"1\",\"B\":\"3\"}");
    assert_int_equal(json_array_size(at(m, "services/web/volumes")), 2);
    assert_json_at(m, "services/web/volumes/0/source", "\"/h2\"");
    assert_json_at(m, "services/web/dns", "[\"1.1.1.1\",\"8.8.8.8\"]");
    assert_json_at(m, "services/db/image", "\"postgres\"");
    assert_int_equal(strv_length(p->files), 2);
    /* discovery: hypr-compose.yml comes before compose.yaml */
    write_text("hypr-compose.yml", "services:\n  h:\n    image: hyprimg\n");
    _cleanup_free_ char *found = NULL;
    assert_int_equal(compose_find_file(test_dir, &found, &err), 0);
    assert_non_null(strstr(found, "/hypr-compose.yml"));
    compose_options d = {.environ = test_env, .cwd = test_dir};
    _cleanup_compose_project_ compose_project *q = NULL;
    assert_int_equal(compose_load(&d, &q, &err), 0);
    _cleanup_free_ char *imgs = compose_list_images(q);
    assert_string_equal(imgs, "hyprimg\n");
    static const char *const rm[] = {"compose.yaml", "compose.override.yaml", "hypr-compose.yml"};
    for (size_t i = 0; i < ARRAY_SIZE(rm); i++) {
        _cleanup_free_ char *f = path_join(test_dir, rm[i]);
        unlink(f);
    }
}

static void test_profiles(void **state)
{
    const char *yaml = SVC "  dbg:\n    image: busybox\n    profiles: [debug]\n"
                           "  tools:\n    image: busybox\n    profiles: [tools]\n";
    char *profiles[] = {"debug", NULL};
    compose_options o = {.profiles = profiles};
    _cleanup_compose_project_ compose_project *p = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_equal(load_in(yaml, &o, &p, &err), 0);
    _cleanup_free_ char *names = compose_list_services(p);
    assert_string_equal(names, "dbg\nweb\n");
    char *env[] = {"COMPOSE_PROFILES=tools,debug", NULL};
    compose_options e = {.environ = env};
    _cleanup_compose_project_ compose_project *q = NULL;
    assert_int_equal(load_in(yaml, &e, &q, &err), 0);
    _cleanup_free_ char *all = compose_list_services(q);
    assert_string_equal(all, "dbg\ntools\nweb\n");
}

static void test_extends_file(void **state)
{
    write_text("common.yml", "services:\n  base:\n    image: busybox\n    labels: {tier: base}\n");
    const char *yaml = "services:\n  web:\n    extends: {file: common.yml, service: base}\n"
                       "    labels: {own: yes}\n";
    _cleanup_compose_project_ compose_project *p = NULL;
    json_t *m = load_ok(yaml, &p);
    assert_json_at(m, "services/web/image", "\"busybox\"");
    assert_json_at(m, "services/web/labels", "{\"tier\":\"base\",\"own\":\"yes\"}");
    _cleanup_compose_project_ compose_project *q = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_not_equal(
        load_in("services:\n  web:\n    extends: {file: common.yml, service: nope}\n", NULL, &q,
                &err),
        0);
    assert_non_null(strstr(err.message, "not found in common.yml"));
    /* relative paths of the other file's service are relative to that file */
    _cleanup_free_ char *sub = path_join(test_dir, "sub");
    assert_int_equal(mkdir_p(sub, 0755), 0);
    write_text("sub/base.yml", "services:\n  b:\n    build: ./app\n"
                               "    volumes: [\"./data:/data\", \"named:/n\"]\n");
    _cleanup_compose_project_ compose_project *r = NULL;
    json_t *rm = load_ok("services:\n  web:\n    extends: {file: sub/base.yml, service: b}\n"
                         "volumes:\n  named:\n",
                         &r);
    _cleanup_free_ char *ctx = xasprintf("\"%s/sub/app\"", test_dir);
    _cleanup_free_ char *src = xasprintf("\"%s/sub/data\"", test_dir);
    assert_json_at(rm, "services/web/build/context", ctx);
    assert_json_at(rm, "services/web/volumes/0/source", src);
    assert_json_at(rm, "services/web/volumes/1/source", "\"named\"");
}

static void test_include(void **state)
{
    _cleanup_free_ char *inc = path_join(test_dir, "inc");
    assert_int_equal(mkdir_p(inc, 0755), 0);
    write_text("inc/db.yml", "services:\n  db:\n    image: postgres\n"
                             "    volumes: [\"./init:/docker-entrypoint-initdb.d\", \"pg:/var\"]\n"
                             "volumes:\n  pg:\n");
    const char *yaml = "include:\n  - inc/db.yml\nservices:\n  web:\n    image: nginx\n"
                       "    depends_on: [db]\n";
    _cleanup_compose_project_ compose_project *p = NULL;
    json_t *m = load_ok(yaml, &p);
    assert_json_at(m, "services/db/image", "\"postgres\"");
    _cleanup_free_ char *src = xasprintf("\"%s/inc/init\"", test_dir);
    assert_json_at(m, "services/db/volumes/0/source", src);
    assert_non_null(at(m, "volumes/pg"));
    assert_json_at(m, "services/web/depends_on/db/condition", "\"service_started\"");
    /* the long form, and errors */
    _cleanup_compose_project_ compose_project *q = NULL;
    load_ok("include:\n  - path: [inc/db.yml]\n", &q);
    assert_non_null(at(q->model, "services/db"));
    _cleanup_compose_project_ compose_project *r = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    assert_int_not_equal(load_in("include: inc/db.yml\n", NULL, &r, &err), 0);
    assert_non_null(strstr(err.message, "include: must be a list"));
    write_text("inc/loop.yml", "include: [loop.yml]\n");
    _cleanup_compose_project_ compose_project *t = NULL;
    assert_int_not_equal(load_in("include: [inc/loop.yml]\n", NULL, &t, &err), 0);
    assert_non_null(strstr(err.message, "nested too deeply"));
}

static void test_outputs(void **state)
{
    const char *yaml =
        "name: out\nservices:\n  web:\n    image: nginx\n"
        "    volumes: [\"data:/d\"]\n    command: [\"a: b\", \"#c\", \"\", \"$$x\"]\n"
        "    deploy: {update_config: {max_failure_ratio: 1.0}}\n"
        "  app:\n    build: .\nvolumes:\n  data:\n";
    _cleanup_compose_project_ compose_project *p = NULL;
    load_ok(yaml, &p);
    _cleanup_free_ char *vols = compose_list_volumes(p), *imgs = compose_list_images(p);
    assert_string_equal(vols, "data\n");
    assert_string_equal(imgs, "nginx\nout-app\n");
    /* the YAML output reads back as the same model */
    _cleanup_free_ char *y = compose_to_yaml(p);
    assert_non_null(strstr(y, "name: out\n"));
    assert_non_null(strstr(y, "- \"a: b\"\n"));
    _cleanup_compose_project_ compose_project *q = NULL;
    json_t *back = load_ok(y, &q);
    assert_true(json_equal(at(back, "services/web/command"), at(p->model, "services/web/command")));
    assert_true(json_equal(at(back, "services/web/volumes"), at(p->model, "services/web/volumes")));
    /* a float stays a float (1.0, not 1) and a literal $ stays literal */
    assert_true(json_is_real(at(back, "services/web/deploy/update_config/max_failure_ratio")));
    assert_json_at(back, "services/web/command/3", "\"$x\"");
    _cleanup_free_ char *j = compose_to_json(p);
    json_error_t jerr;
    _cleanup_json_ json_t *parsed = json_loads(j, 0, &jerr);
    assert_non_null(parsed);
    assert_true(json_equal(parsed, p->model));
}

static int setup(void **state)
{
    if (!mkdtemp(test_dir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    return rm_rf(test_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_cases),     cmocka_unit_test(test_err_cases),
        cmocka_unit_test(test_project_name), cmocka_unit_test(test_dotenv),
        cmocka_unit_test(test_env_file),     cmocka_unit_test(test_merge_files),
        cmocka_unit_test(test_profiles),     cmocka_unit_test(test_extends_file),
        cmocka_unit_test(test_include),      cmocka_unit_test(test_outputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
