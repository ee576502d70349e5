"""`hypr build --check`: the Dockerfile parser through the real CLI, no daemon (issue 12).
The corpus is BuildKit's own (../shared/testdata/buildkit); the JSON is compared with
its `result` dumps instruction by instruction (command and line count)."""

import json
import os
import pathlib

import pytest

from test_cli import assert_not_crashed, hypr

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "testdata" / "buildkit"
needs_corpus = pytest.mark.skipif(not SHARED.is_dir(),
                                  reason="BuildKit's corpus (%s) is absent" % SHARED)


def check(tmp_path, text, *flags):
    (tmp_path / "Dockerfile").write_text(text)
    p = hypr("build", "--check", *flags, str(tmp_path))
    assert_not_crashed(p)
    return p


def test_check_prints_the_model_as_json_with_lines_flags_and_heredocs(tmp_path):
    p = check(tmp_path, "# syntax=docker/dockerfile:1\nARG V=1\n"
                        "FROM --platform=linux/amd64 busybox:${V} AS Build\n"
                        "RUN echo a \\\n  b\n\nFROM scratch\n"
                        "COPY --from=build --chmod=644 /out /app\nCMD [\"/app\"]\n"
                        "RUN <<-EOT cat\n\thello $V\n\tEOT\n", "--format", "json")
    assert p.returncode == 0, p.err
    doc = json.loads(p.out)
    assert doc["directives"]["syntax"] == "docker/dockerfile:1"
    assert [i["cmd"] for i in doc["instructions_before_first_from"]] == ["ARG"]
    s0, s1 = doc["stages"]
    assert (s0["name"], s0["base"], s0["platform"], s0["line"]) == \
        ("build", "busybox:${V}", "linux/amd64", 3)  # stage names are lower-cased
    run = s0["instructions"][1]
    assert (run["cmd"], run["line"], run["end_line"], run["json"]) == ("RUN", 4, 5, False)
    copy, cmd, heredoc = s1["instructions"][1:]
    assert copy["flags"] == ["--from=build", "--chmod=644"] and copy["args"] == ["/out", "/app"]
    assert cmd["json"] is True and cmd["args"] == ["/app"]
    assert heredoc["end_line"] == 12
    # leading tabs stay in the content (BuildKit strips them when the RUN runs)
    assert heredoc["heredocs"] == [{"name": "EOT", "content": "\thello $V\n", "expand": True,
                                    "chomp": True}]
    p = hypr("build", "--check", str(tmp_path))  # without --format: a summary
    assert p.returncode == 0 and "2 stages, 7 instructions" in p.out, p.out
    assert "Dockerfile:3: StageNameCasing" in p.err, p.err  # BuildKit's lint, a warning


@pytest.mark.parametrize("text,line,words", [
    ("RUN true\nFROM busybox\n", 1, "no build stage"),
    ("FROM busybox\nRUN <<EOF\necho unterminated\n", 2, "unterminated heredoc"),
    ("FROM busybox\nNOSUCH thing\n", 2, "unknown instruction"),
    ("FROM busybox\nENV PATH\n", 2, "ENV must have two arguments"),
])
def test_check_refuses_bad_files_naming_file_and_line(tmp_path, text, line, words):
    p = check(tmp_path, text)
    assert p.returncode == 1, (p.out, p.err)
    assert "%s/Dockerfile:%d:" % (tmp_path, line) in p.err and words.lower() in p.err.lower(), p.err
    assert p.out == ""


def test_check_refuses_what_it_cannot_do(tmp_path):
    p = check(tmp_path, "FROM busybox\n", "--format", "yaml")
    assert p.returncode != 0 and "yaml" in p.err, p.err
    p = hypr("build", "--check", str(tmp_path / "nowhere"))
    assert p.returncode != 0 and "nowhere" in p.err, p.err


@needs_corpus
def test_check_agrees_with_buildkit_on_its_corpus(tmp_path):
    checked = 0
    for case in sorted((SHARED / "testfiles").iterdir()):
        result = (case / "result").read_text().splitlines()
        text = (case / "Dockerfile").read_text(errors="surrogateescape")
        if not any(l.startswith("(from ") for l in result):
            continue  # no stage: the check refuses it, the parser test covers the dump
        p = hypr("build", "--check", "--format", "json", "-f", str(case / "Dockerfile"),
                 str(case))
        assert_not_crashed(p)
        assert p.returncode == 0, (case.name, p.err)
        doc = json.loads(p.out)
        instrs = doc["instructions_before_first_from"] + \
            [i for s in doc["stages"] for i in s["instructions"]]
        assert [i["cmd"].lower() for i in instrs] == \
            [l[1:].split(" ", 1)[0].rstrip(")") for l in result], case.name
        checked += 1
        del text
    assert checked >= 25, checked
    for case in sorted((SHARED / "testfiles-negative").iterdir()):
        p = hypr("build", "--check", "-f", str(case / "Dockerfile"), str(case))
        assert_not_crashed(p)
        assert p.returncode == 1 and "Dockerfile:" in p.err, (case.name, p.err)
