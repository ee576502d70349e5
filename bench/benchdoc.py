"""Writes one benchmark's section of docs/benchmarks.md, leaving the others as they are."""
import re

HEADER = ("# hypr benchmarks\n\nEach section is written by `make bench` (bench/run.py); "
          "numbers come from the machine named in the section.\n")


def update_section(doc_path, section, text):
    """Replaces the section titled `section` ("## P3 — ...") with text, or appends it."""
    try:
        with open(doc_path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = HEADER
    body = section + "\n\n" + text.rstrip() + "\n"
    pat = re.compile(r"^" + re.escape(section) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(doc):
        doc = pat.sub(lambda _: body + "\n", doc, count=1).rstrip() + "\n"
    else:
        doc = doc.rstrip() + "\n\n" + body
    with open(doc_path, "w") as f:
        f.write(doc)
