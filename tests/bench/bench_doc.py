"""tests/bench doc: writes docs/benchmarks.md from the parts of a run,
merged with what the file already holds, so that a run limited by
BENCH_ONLY replaces only the sections of the workloads it ran.

The file has four parts, each between markers and with the header (date,
command, settings) of the last run that wrote it:

    <!-- bench:group generic -->      Sluice vs nginx proxy_cache
    <!-- bench:group eco -->          Sluice vs Verdaccio and a static nginx
    <!-- bench:group l2 -->           the S3 tier as L2 (BENCH_ONLY=l2 only)
    <!-- bench:group anchors -->      Sluice, nginx, Varnish, HAProxy cache

and inside a part one section per workload (<!-- bench:section NAME -->),
plus summary sections whose names start with "_" (whole pass, log
findings). A part the run did not touch is copied as it was. In a part it
did touch, the header and the summaries are the run's, each workload
section is the run's if the workload ran, and otherwise the old one, marked
with the date of the run that measured it. "## Raw runs" is one block of
lines "<workload> <arm> ...": the run's lines for the workloads it ran,
the old lines for the others.

A file written before the markers existed (one generic part, sections
known by their titles) is read as the generic part."""

import os
import re

from bench_config import ALL_WORKLOADS, ROOT, WARM, log

PATH = os.path.join(ROOT, "docs", "benchmarks.md")
GROUPS = [
    ("generic", "Generic files: Sluice vs nginx proxy_cache behind the same HAProxy"),
    ("eco", "Package registries: Sluice vs Verdaccio 5 (npm) and a static nginx (PyPI)"),
    ("l2", "Scale-out: the S3 tier as the shared L2"),
    ("anchors", "Anchors: Sluice vs nginx proxy_cache, Varnish (file) and HAProxy's cache behind the same HAProxy"),
]
TOP = """# Benchmarks: Sluice vs nginx proxy_cache, Verdaccio and a static nginx

Written by `make bench` (tests/bench/run); do not edit by hand - rerun it.
Method and setup: tests/bench/README.md. Four parts, each with the date and
settings of the run that wrote it (the third, the S3 tier, only when asked
for with BENCH_ONLY=l2; the fourth, every anchor of issue 19 side by side,
with BENCH_ONLY=anchors or a plain run). A run limited by BENCH_ONLY rewrites only
the sections of the workloads it ran; a section it kept says so, with the
date of its own run.
"""
KEPT = "_Kept from the run of %s: the latest run of this part did not include this workload._"


# ---------------------------------------------------------------- reading

def read_doc(path=PATH):
    """{"groups": {gid: {"date", "text", "head", "sections": {name: text}}},
    "raw": [lines]} of the file as it is (empty when there is none)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {"groups": {}, "raw": []}
    body, raw = split_raw(text)
    if "<!-- bench:group " not in body:
        g = legacy_group(body)
        return {"groups": {"generic": g} if g else {}, "raw": raw}
    groups = {}
    for m in re.finditer(r"<!-- bench:group (\S+) -->\n(.*?)<!-- bench:end \1 -->", body, re.S):
        groups[m.group(1)] = parse_group(m.group(2))
    return {"groups": groups, "raw": raw}


def split_raw(text):
    i = text.find("\n## Raw runs")
    if i < 0:
        return text, []
    m = re.search(r"```\n(.*?)```", text[i:], re.S)
    return text[:i], [l for l in (m.group(1).splitlines() if m else []) if l.strip()]


def parse_group(text):
    parts = re.split(r"<!-- bench:section (\S+) -->\n", text)
    sections = {parts[k]: parts[k + 1].rstrip() + "\n" for k in range(1, len(parts) - 1, 2)}
    return {"date": date_of(parts[0]), "head": parts[0].rstrip() + "\n", "sections": sections}


def date_of(head):
    m = re.search(r"^- Date: (.+)$", head, re.M)
    return m.group(1).strip() if m else "unknown date"


def legacy_group(body):
    """The generic part of a file from before the markers."""
    i = body.find("\n- Date:")
    if i < 0:
        return None
    chunks = re.split(r"\n(?=### )", body[i + 1:])
    sections = {}
    for c in chunks[1:]:
        name = legacy_name(c.splitlines()[0][4:])
        if name:
            sections[name] = c.rstrip() + "\n"
    head = "## %s\n\n%s" % (GROUPS[0][1], chunks[0].rstrip() + "\n")
    return {"date": date_of(chunks[0]), "head": head, "sections": sections}


def legacy_name(title):
    from bench_report import warm_title    # the titles the generic tables have always had
    for name, _, size, conns in WARM:
        if title == warm_title(size, conns):
            return name
    for prefix, name in (("Cold stampede", "stampede"), ("ENOSPC", "enospc"), ("Whole pass", "_whole"),
                         ("Server log findings", "_findings")):
        if title.startswith(prefix):
            return name
    return None


# ---------------------------------------------------------------- writing

def kept(section, date):
    """An old section, marked as such once."""
    if "_Kept from the run of " in section:
        return section
    title, _, rest = section.partition("\n")
    return "%s\n\n%s\n%s" % (title, KEPT % date, rest)


def merge_group(new, old, workloads):
    """new: {"head", "date", "sections": [(name, text)]} of this run;
    old: the part as the file has it, or None."""
    ours = dict(new["sections"])
    out = []
    for name in workloads:
        if name in ours:
            out.append((name, ours[name]))
        elif old and name in old["sections"]:
            out.append((name, kept(old["sections"][name], old["date"])))
    out += [(n, t) for n, t in new["sections"] if n.startswith("_")]
    return new["head"], out


def render_group(gid, head, sections):
    text = "<!-- bench:group %s -->\n%s\n" % (gid, head.rstrip() + "\n")
    for name, body in sections:
        text += "<!-- bench:section %s -->\n%s\n" % (name, body.rstrip() + "\n")
    return text + "<!-- bench:end %s -->\n" % gid


def merge_raw(new_lines, old_lines, ran):
    keep = [l for l in old_lines if l.split(" ", 1)[0] not in ran]
    order = {w: i for i, w in enumerate(ALL_WORKLOADS)}
    lines = keep + list(new_lines)
    return sorted(lines, key=lambda l: order.get(l.split(" ", 1)[0], len(order)))


def write_doc(new_groups, raw_lines, ran, workloads_of, path=PATH):
    """new_groups: {gid: {"head", "sections": [(name, text)]}} of the parts
    this run touched; raw_lines: its raw lines; ran: the workloads it ran;
    workloads_of: {gid: [workload names in table order]}."""
    old = read_doc(path)
    text = TOP
    for gid, title in GROUPS:
        if gid in new_groups:
            head, sections = merge_group(new_groups[gid], old["groups"].get(gid), workloads_of[gid])
            text += "\n" + render_group(gid, "## %s\n\n%s" % (title, head), sections)
        elif gid in old["groups"]:
            g = old["groups"][gid]
            text += "\n" + render_group(gid, g["head"], list(g["sections"].items()))
    text += "\n## Raw runs\n\n```\n%s\n```\n" % "\n".join(merge_raw(raw_lines, old["raw"], set(ran)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    log("wrote %s" % os.path.relpath(path, ROOT))
