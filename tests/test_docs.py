"""The documents hold together: every relative link of README.md, flags.md and docs/*.md resolves (anchors
included, by GitHub's heading slugs), the README stays short, and no document speaks of issues or targets."""

from __future__ import annotations

import functools
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = sorted([os.path.join(ROOT, "README.md"), os.path.join(ROOT, "flags.md"),
               *glob.glob(os.path.join(ROOT, "docs", "*.md"))])
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# Words about how the project is run, not about the tool. flags.md may say "real targets" (label smoothing).
PLANNING = re.compile(r"\bissues?\b|\bsessions?\b|\btargets?\b", re.IGNORECASE)
PLANNING_IN_FLAGS = re.compile(r"\bissues?\b|\bsessions?\b|\btargets?\s+of\b|\bthe\s+targets\b|\(targets?\b|"
                               r"\btargets?:|\bour\s+targets?\b", re.IGNORECASE)


def prose_lines(path: str) -> list[str]:
    """The file's lines outside fenced code blocks, with inline code spans blanked."""
    lines, in_fence = [], False
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            if not in_fence:
                lines.append(re.sub(r"`[^`]*`", "``", line))
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


@functools.cache
def anchors(path: str) -> frozenset[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            match = None if in_fence else HEADING.match(line)
            if match:
                slug = github_slug(match.group(2))
                n = seen.get(slug, 0)
                seen[slug] = n + 1
                found.add(slug if n == 0 else f"{slug}-{n}")
    return frozenset(found)


def relative_links(path: str) -> list[str]:
    links = []
    for line in prose_lines(path):
        for target in LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
                links.append(target)
    return links


def broken_links(path: str) -> list[str]:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(linked):
            broken.append(f"{target} (no file {os.path.relpath(linked, ROOT)})")
        elif anchor and (not linked.endswith(".md") or anchor not in anchors(linked)):
            broken.append(f"{target} (no heading with anchor #{anchor} in {os.path.relpath(linked, ROOT)})")
    return broken


def names(paths):
    return [os.path.relpath(p, ROOT) for p in paths]


def test_the_slug_follows_github():
    assert github_slug("Presets: the best recipe in 18 CPU-minutes") == "presets-the-best-recipe-in-18-cpu-minutes"
    assert github_slug("python -m dcgan_tf.prepare") == "python--m-dcgan_tfprepare"
    assert github_slug("Other models, losses and stabilisers") == "other-models-losses-and-stabilisers"
    assert github_slug("Masks (1 = known; white = known in PNGs)") == "masks-1--known-white--known-in-pngs"


def test_links_are_found_outside_code_only(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# Top\n\n## Top\n\nSee [b](b.md#x), ![pic](p.png), [web](https://x.org) and [me](#top-1).\n"
                   "```bash\n[not](a link.md)\n# not a heading\n```\n`[nor](this.md)`\n")
    assert relative_links(str(doc)) == ["b.md#x", "p.png", "#top-1"]
    assert anchors(str(doc)) == {"top", "top-1"}
    assert broken_links(str(doc)) == ["b.md#x (no file " + os.path.relpath(tmp_path / "b.md", ROOT) + ")",
                                      "p.png (no file " + os.path.relpath(tmp_path / "p.png", ROOT) + ")"]


@pytest.mark.parametrize("path", DOCS, ids=names(DOCS))
def test_every_relative_link_resolves(path):
    assert not broken_links(path), f"{os.path.relpath(path, ROOT)}: " + "; ".join(broken_links(path))


def test_the_guides_the_readme_promises_exist():
    for guide in ("training", "completion", "quality", "scaling", "speed", "reliability", "prepare"):
        assert os.path.exists(os.path.join(ROOT, "docs", f"{guide}.md")), guide
        assert f"](docs/{guide}.md" in open(os.path.join(ROOT, "README.md"), encoding="utf-8").read(), guide


def test_the_readme_is_read_in_five_minutes():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines; move depth into docs/"
    assert "ruff check . && python -m pytest -q" in "\n".join(lines)  # .ci/run runs exactly this line


@pytest.mark.parametrize("path", DOCS, ids=names(DOCS))
def test_no_document_speaks_of_issues_or_targets(path):
    pattern = PLANNING_IN_FLAGS if os.path.basename(path) == "flags.md" else PLANNING
    with open(path, encoding="utf-8") as f:
        hits = [f"line {i}: {line.strip()}" for i, line in enumerate(f.read().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"{os.path.relpath(path, ROOT)} speaks of the project's planning: " + "; ".join(hits)
