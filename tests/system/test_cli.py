"""Black-box tests of the `hypr` CLI against a real hyprd."""

import json
import os
import re
import socket
import subprocess

import pytest

from conftest import HYPR_BIN, import_busybox

COMMANDS = ["run", "ps", "start", "stop", "rm", "logs", "exec", "build", "images", "pull",
            "rmi", "image", "volume", "network", "compose", "gpu", "system", "health"]

START_HINT = "Is hyprd running? Start it with: sudo hyprd"


def hypr(*args, env=None, timeout=30):
    assert os.path.exists(HYPR_BIN), "hypr not built: %s" % HYPR_BIN
    e = dict(os.environ)
    e.pop("HYPR_HOST", None)
    e.update(env or {})
    p = subprocess.run([HYPR_BIN, *args], capture_output=True, timeout=timeout, env=e,
                       stdin=subprocess.DEVNULL)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def assert_not_crashed(p):
    assert p.returncode >= 0, "hypr killed by signal %d" % -p.returncode
    for bad in ("Traceback", "Segmentation fault", "AddressSanitizer", "runtime error"):
        assert bad not in p.out + p.err, p.out + p.err


def test_health(hyprd):
    """`hypr -H <sock> health` prints Status: healthy and the version, exit 0."""
    p = hypr("-H", hyprd.socket, "health")
    assert p.returncode == 0, p.err
    assert re.search(r"^\s*Status:\s+healthy\s*$", p.out, re.M), p.out
    assert re.search(r"^\s*Version:\s+0\.1\.0\s*$", p.out, re.M), p.out


def test_ps_json_empty(hyprd):
    """`hypr ps --format json` on a fresh daemon prints an empty JSON list."""
    p = hypr("-H", hyprd.socket, "ps", "--format", "json")
    assert p.returncode == 0, p.err
    assert json.loads(p.out) == []


def test_help_lists_every_command():
    """`hypr --help` exits 0 and lists every top-level command."""
    p = hypr("--help")
    assert p.returncode == 0, p.err
    missing = [c for c in COMMANDS if not re.search(r"^\s+%s\b(?![-.])" % re.escape(c), p.out, re.M)]
    assert not missing, "not listed: %s\n%s" % (missing, p.out)


def test_run_help():
    """`hypr run --help` exits 0 and describes `hypr run` (no daemon needed)."""
    p = hypr("-H", "/nonexistent/hypr.sock", "run", "--help")
    assert p.returncode == 0, p.err
    assert "run" in p.out, p.out
    assert_not_crashed(p)


def test_unknown_command_fails():
    """An unknown command exits non-zero with a message on stderr."""
    p = hypr("no-such-command")
    assert p.returncode != 0
    assert p.err.strip(), "no error message"
    assert_not_crashed(p)


def _stale_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the file stays, nobody listens: ECONNREFUSED


@pytest.mark.parametrize("kind", ["missing", "stale"])
def test_no_daemon_message(short_tmp, kind):
    """With no daemon at the socket (no file, or a dead socket file) hypr exits 1,
    names the socket path and says how to start hyprd."""
    sock = str(short_tmp / "hypr.sock")
    if kind == "stale":
        _stale_socket(sock)
    p = hypr("-H", sock, "health")
    assert p.returncode == 1, (p.returncode, p.out, p.err)
    assert sock in p.err, p.err
    assert START_HINT in p.err, p.err
    assert_not_crashed(p)


@pytest.mark.parametrize("args,rpc", [
    (["compose", "-p", "nostack", "down"], "DestroyStack"),
])
def test_unimplemented_command_reports_server_message(hyprd, args, rpc):
    """A command whose RPC is not implemented prints the server's message (naming the
    RPC) and exits non-zero."""
    p = hypr("-H", hyprd.socket, *args)
    assert p.returncode != 0, p.out
    assert rpc in p.err + p.out, (p.out, p.err)
    assert_not_crashed(p)


def test_hypr_host_env(hyprd, short_tmp):
    """HYPR_HOST selects the socket like -H does."""
    p = hypr("health", env={"HYPR_HOST": hyprd.socket})
    assert p.returncode == 0, p.err
    assert re.search(r"^\s*Status:\s+healthy\s*$", p.out, re.M), p.out
    missing = str(short_tmp / "elsewhere.sock")
    p = hypr("health", env={"HYPR_HOST": missing})
    assert p.returncode == 1
    assert missing in p.err, p.err


def test_system_settings_list_and_set(hyprd):
    """`hypr system settings` lists every setting with value and default;
    `system settings set K=V...` changes them all or, on one bad value, none."""
    sock = hyprd.socket
    p = hypr("-H", sock, "system", "settings", "--format", "json")
    assert p.returncode == 0, p.err
    rows = {r["Key"]: r for r in json.loads(p.out)}
    assert rows["shutdown_policy"]["Value"] == rows["shutdown_policy"]["Default"] == "keep"
    assert set(rows) == set(hyprd.settings())
    p = hypr("-H", sock, "system", "settings", "set", "shutdown_policy=stop", "stop_timeout=5")
    assert p.returncode == 0, p.err
    assert hyprd.settings()["shutdown_policy"] == "stop"
    assert hyprd.settings()["stop_timeout"] == "5"
    p = hypr("-H", sock, "system", "settings")
    assert re.search(r"^shutdown_policy\s+stop\s+keep\s+", p.out, re.M), p.out
    p = hypr("-H", sock, "system", "settings", "set", "stop_timeout=7", "shutdown_policy=nope")
    assert p.returncode != 0 and "shutdown_policy" in p.err, (p.returncode, p.err)
    assert hyprd.settings()["stop_timeout"] == "5"  # nothing changed
    p = hypr("-H", sock, "system", "settings", "set", "novalue")
    assert p.returncode != 0 and "KEY=VALUE" in p.err, p.err
    assert_not_crashed(p)


# ---- --format templates ----------------------------------------------------------------

def test_template_parse_error_refused_before_any_call():
    """A --format template that does not parse is refused with Docker's message before
    the CLI connects: nothing on stdout, exit 1, no "Cannot connect"."""
    for args in (["ps", "--format", "{{.ID"], ["images", "--format", "{{foo .}}"],
                 ["inspect", "-f", "{{if .X}}", "vm"], ["volume", "ls", "--format", "{{end}}"]):
        p = hypr("-H", "/nonexistent/hypr.sock", *args)
        assert_not_crashed(p)
        assert p.returncode == 1, (args, p.returncode, p.err)
        assert p.out == "", p.out
        assert p.err.startswith("template parsing error: template: :1: "), p.err
        assert "Cannot connect" not in p.err, p.err
    p = hypr("-H", "/nonexistent/hypr.sock", "ps", "--format", "{{.ID")
    assert p.err == "template parsing error: template: :1: unclosed action\n", p.err


def test_template_formats(hyprd, busybox_rootfs):
    """ps, images, inspect -f and volume ls render Go templates like Docker: plain
    templates a line per row, "table" ones with Docker's header and aligned columns."""
    import_busybox(hyprd, busybox_rootfs)

    def run(*args):
        p = hypr("-H", hyprd.socket, *args, timeout=150)
        assert_not_crashed(p)
        return p

    def ok(*args):
        p = run(*args)
        assert p.returncode == 0, "hypr %s -> %d\n%s%s" % (args, p.returncode, p.out, p.err)
        return p.out

    assert ok("images", "--format", "{{.Repository}}:{{.Tag}}") == "busybox:latest\n"
    lines = ok("images", "--format", "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}").splitlines()
    assert re.match(r"^REPOSITORY   TAG       IMAGE ID$", lines[0]), lines
    assert re.match(r"^busybox      latest    [0-9a-f]{12}$", lines[1]), lines

    vm = ok("run", "-d", "-n", "tmpl-web", "-l", "app=web", "-e", "FOO=bar", "busybox",
            "sleep", "3600").strip()
    try:
        assert ok("ps", "-a", "--format", "{{.ID}} {{.Names}}") == "%s tmpl-web\n" % vm[:12]
        assert ok("ps", "-a", "--no-trunc", "--format", "{{.ID}}") == vm + "\n"
        out = ok("ps", "-a", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Image}}")
        assert out == ("CONTAINER ID   NAMES      IMAGE\n%s   tmpl-web   busybox\n" % vm[:12]), out
        assert ok("ps", "-a", "--format",
                  '{{index .Labels "app"}} {{.Labels.nope}} {{.Names | upper}}') == \
            "web <no value> TMPL-WEB\n"

        out = ok("ps", "-a", "--format", "table {{.Command}}\\t{{.RunningFor}}")
        assert re.match(r'^COMMAND        CREATED\n"sleep 3600"   .* ago\n$', out), out

        p = run("ps", "-a", "--format", "{{.Foo}}")
        assert p.returncode == 1 and p.out == "", (p.returncode, p.out)
        assert p.err == ("Error: template parsing error: template: :1:2: executing \"\" at "
                         "<.Foo>: can't evaluate field Foo\n"), p.err

        state = ok("inspect", "-f", "{{.State.Status}}", "tmpl-web")
        assert state in ("running\n", "booting\n"), state
        assert ok("inspect", "--format", "{{json .Config.Labels}}", "tmpl-web") == \
            '{"app":"web"}\n'
        assert "FOO=bar\n" in ok("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}",
                                 "tmpl-web")
        assert ok("inspect", "-f", "{{join .Config.Cmd \" \"}}|{{lower .Name}}|"
                  "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}", vm) == \
            "sleep 3600|tmpl-web|app=web\n"
        assert ok("inspect", "-f", '{{printf "%-9s|" .Name}}{{if eq .Config.Image "busybox"}}'
                  'yes{{else}}no{{end}}', vm) == "tmpl-web |yes\n"
        p = run("inspect", "-f", "{{.Nope}}", vm)
        assert p.returncode == 1 and p.out == "", (p.returncode, p.out, p.err)
        assert "can't evaluate field Nope" in p.err, p.err
        assert json.loads(ok("inspect", "--format", "json", vm))[0]["Name"] == "tmpl-web"

        assert ok("health", "--format", "{{.Status}} {{len .Version}}") == "healthy 5\n"
        keys = [s["Key"] for s in json.loads(ok("system", "settings", "--format", "json"))]
        assert ok("system", "settings", "--format", "{{.Key}}").split() == keys
        types = [r["Type"] for r in json.loads(ok("system", "df", "--format", "json"))]
        assert ok("system", "df", "--format", "{{.Type}}").splitlines() == types
        assert ok("volume", "ls", "--format", "table {{.Driver}}\\t{{.Name}}") == \
            "DRIVER    VOLUME NAME\n"
        assert ok("volume", "ls", "--format", "{{.Name}}") == ""
        nets = json.loads(ok("network", "ls", "--format", "json"))
        assert ok("network", "ls", "--format", "{{.Name}}") == "".join(
            n["Name"] + "\n" for n in nets)
    finally:
        run("rm", "-f", vm)
