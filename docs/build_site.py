"""Build the documentation site from README.md and model_cards/*.md with MkDocs.

    python docs/build_site.py [--out build/site] [--src build/docs-src] [--theme material]

Steps:

1. assemble a MkDocs source folder (default build/docs-src): the README becomes index.md, every
   model card becomes cards/NAME.md with its figures copied into cards/NAME/, and presets.md lists
   every card by family. Links are rewritten so that none can break: a link to a card goes to its
   page, a link to any other repository file becomes the file's path as code text, a figure is
   copied next to the page that shows it. A link or figure whose file does not exist in the
   repository is an error;
2. write mkdocs.yml with the nav generated from those pages and run `mkdocs build --strict`, which
   fails on any warning (a broken link or anchor, a page left out of the nav);
3. check the built HTML: every relative <a href> and <img src> must name a file of the site.

Every problem found is printed, one a line, and the exit status is 1. Uses the standard library
and MkDocs (with its dependency PyYAML) only; mkdocs-material is used when installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import html.parser
import importlib.util
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CARDS_DIR = "model_cards"
FIGURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")
# folders whose figures a card may name in its prose, not only as an image link
FIGURE_DIRS = ("model_cards/", "zoo/pretrained/")
GENERIC_HUB_TAGS = {"physics", "physics-model-zoo"}
SOURCE_MARKER = ".docs-src"  # marks a folder this script may empty and rebuild
SITE_FILES = ("index.html", "404.html", "sitemap.xml")  # one of them marks a site mkdocs may clean

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = r"(?P<code>`+).+?(?P=code)"
# what CommonMark reads as raw HTML: a comment, a well-formed tag, an autolink. Python-Markdown also
# swallows a "<" that starts none of these (|<w|psi>|^2 in a card), so such a "<" is escaped
RAW_HTML = (
    r"(?P<html><!--[\s\S]*?-->"
    r"|</?[A-Za-z][A-Za-z0-9-]*(?:\s+[A-Za-z_:][\w.:-]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*\s*/?>"
    r"|<[A-Za-z][A-Za-z0-9+.-]*:[^\s<>]*>)"
    r"|(?P<lt><)"
)
INLINE = re.compile(
    CODE_SPAN
    + r"|(?P<bang>!?)\[(?P<text>[^\]\n]*)\]\((?P<target><[^>\n]*>|[^)\s]+)(?:\s+\"[^\"\n]*\")?\)"
    + r"|(?<![\w/.-])(?P<mention>(?:" + "|".join(re.escape(d) for d in FIGURE_DIRS) + r")[\w./-]*?"
    + r"(?:" + "|".join(re.escape(s) for s in FIGURE_SUFFIXES) + r"))(?![\w/-])"
    + "|" + RAW_HTML
)
STRAY_LT = re.compile(CODE_SPAN + "|" + RAW_HTML)


class BuildError(Exception):
    """The build cannot go on; the message is one line."""


@dataclasses.dataclass
class Card:
    """One model card: where it comes from and what the site shows of it."""

    name: str
    summary: str
    family: str
    front_matter: dict
    body: str

    @property
    def page(self) -> str:
        return f"cards/{self.name}.md"


@dataclasses.dataclass
class PageContext:
    """What rewriting the links of one page needs to know, and what it collects."""

    repo: Path
    source: str  # repository-relative path of the Markdown file, e.g. "README.md"
    page: str  # its path in the docs folder, e.g. "index.md"
    figure_dir: str  # docs folder where its figures are copied, e.g. "cards/NAME"
    pages: dict  # repository path -> docs path of every file that becomes a page
    copies: dict = dataclasses.field(default_factory=dict)  # docs path -> source file
    problems: list = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------- Markdown handling


def split_front_matter(text: str) -> tuple[dict, str]:
    """Split YAML front matter (between --- lines at the very top) from the Markdown body."""
    match = re.match(r"---[ \t]*\n(.*?\n)---[ \t]*\n", text, re.S)
    if not match:
        return {}, text
    meta = yaml.safe_load(match.group(1)) or {}
    return (meta if isinstance(meta, dict) else {}), text[match.end():]


def closes(fence: str, line: str) -> bool:
    """True if `line` closes a code block opened by `fence` (same character, at least as many)."""
    match = FENCE.match(line)
    return bool(match) and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence)


def prose_chunks(markdown: str):
    """Yield (is_code, chunk) pieces of Markdown, a fenced code block being one code chunk."""
    chunk, fence = [], None
    for line in markdown.splitlines(keepends=True):
        opener = FENCE.match(line)
        if fence is None and opener:
            if chunk:
                yield False, "".join(chunk)
            chunk, fence = [line], opener.group(1)
        elif fence is not None and closes(fence, line):
            chunk.append(line)
            yield True, "".join(chunk)
            chunk, fence = [], None
        else:
            chunk.append(line)
    if chunk:
        yield fence is not None, "".join(chunk)


def resolve_in_repo(target: str, source: str) -> str | None:
    """Repository-relative path named by a link `target` in file `source`, or None if outside."""
    base = posixpath.dirname(source)
    path = posixpath.normpath(posixpath.join(base, urllib.parse.unquote(target)))
    return None if path == ".." or path.startswith("../") else path


def is_external(target: str) -> bool:
    """True for a URL with a scheme (https:, mailto:, data:), a //host link or a #fragment."""
    return bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:|//|#", target))


def copy_figure(repo_path: str, ctx: PageContext) -> str:
    """Plan the copy of a repository figure next to the page; return the link relative to the page."""
    source = ctx.repo / repo_path
    stem, suffix = posixpath.splitext(posixpath.basename(repo_path))
    name, n = stem + suffix, 1
    while (dest := posixpath.join(ctx.figure_dir, name)) in ctx.copies and ctx.copies[dest] != source:
        n += 1
        name = f"{stem}-{n}{suffix}"
    ctx.copies[dest] = source
    return posixpath.relpath(dest, posixpath.dirname(ctx.page) or ".")


def rewrite_link(bang: str, text: str, target: str, ctx: PageContext) -> str:
    """The Markdown that replaces one link or image `[text](target)` on the page."""
    target = target.strip("<>")
    if is_external(target):
        return f"{bang}[{text}]({target})"
    path_part, hash_mark, fragment = target.partition("#")
    repo_path = resolve_in_repo(path_part, ctx.source)
    anchor = hash_mark + fragment
    if repo_path is None:
        ctx.problems.append(f"{ctx.source}: link to {target} leaves the repository")
        return text
    if not (ctx.repo / repo_path).exists():
        kind = "figure" if bang else "link"
        ctx.problems.append(f"{ctx.source}: {kind} {target} names {repo_path}, which does not exist")
        return text
    if repo_path in ctx.pages:
        link = posixpath.relpath(ctx.pages[repo_path], posixpath.dirname(ctx.page) or ".")
        return f"{bang}[{text}]({link}{anchor})"
    if repo_path.lower().endswith(FIGURE_SUFFIXES) and (ctx.repo / repo_path).is_file():
        return f"{bang}[{text}]({copy_figure(repo_path, ctx)})"
    return repository_note(text, repo_path)


def repository_note(text: str, repo_path: str) -> str:
    """Plain text for a link to a repository file that is not part of the site."""
    if text.strip("`") == repo_path:
        return f"`{repo_path}`"
    return f"{text} (`{repo_path}` in the repository)"


def rewrite_figure_mention(path: str, ctx: PageContext) -> str:
    """A figure path written as prose (e.g. model_cards/x.png) becomes a link to its copy."""
    if not (ctx.repo / path).is_file():
        ctx.problems.append(f"{ctx.source}: figure {path} does not exist")
        return path
    return f"[{path}]({copy_figure(path, ctx)})"


def rewrite_links(markdown: str, ctx: PageContext) -> str:
    """Rewrite the links, images and figure mentions of a page outside its code."""

    def replace(match: re.Match) -> str:
        if match.group("code") or match.group("html"):
            return match.group(0)
        if match.group("lt"):
            return "&lt;"
        if match.group("mention"):
            return rewrite_figure_mention(match.group("mention"), ctx)
        return rewrite_link(match.group("bang"), match.group("text"), match.group("target"), ctx)

    return "".join(chunk if code else INLINE.sub(replace, chunk) for code, chunk in prose_chunks(markdown))


def escape_stray_lt(text: str) -> str:
    """Escape each "<" of Markdown prose that does not start raw HTML (see RAW_HTML)."""
    return STRAY_LT.sub(lambda m: "&lt;" if m.group("lt") else m.group(0), text)


# ---------------------------------------------------------------------------- cards and pages


def first_heading_and_paragraph(body: str) -> tuple[str, str]:
    """The text of the first `# ` heading and of the paragraph right after it."""
    lines = body.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# "):
            paragraph = []
            for following in lines[i + 1:]:
                if following.strip():
                    paragraph.append(following.strip())
                elif paragraph:
                    break
            return line[2:].strip(), " ".join(paragraph)
    return "", ""


def card_family(front_matter: dict, body: str) -> str:
    """The architecture family of a card: its specific Hub tag, else the `family` it names."""
    tags = [str(t) for t in front_matter.get("tags") or [] if str(t) not in GENERIC_HUB_TAGS]
    if tags:
        return tags[0]
    match = re.search(r"family `([^`]+)`", body)
    return match.group(1) if match else "other"


def read_card(path: Path) -> Card:
    """Parse one model card file."""
    front_matter, body = split_front_matter(path.read_text(encoding="utf-8"))
    _, summary = first_heading_and_paragraph(body)
    return Card(
        name=path.stem,
        summary=summary,
        family=card_family(front_matter, body),
        front_matter=front_matter,
        body=body,
    )


def readme_order(readme: str) -> list[str]:
    """Card names in the order the README first links to them."""
    names = re.findall(rf"\]\((?:\./)?{CARDS_DIR}/([^)#\s]+)\.md", readme)
    return list(dict.fromkeys(names))


def natural_key(name: str) -> list:
    """Sort key that orders numbers by value: rbm-ising-L8-T2 < rbm-ising-L8-T2.27 < rbm-ising-L8-T3."""
    parts = re.split(r"(\d+(?:\.\d+)?)", name)
    return [(1, float(p), "") if i % 2 else (0, 0.0, p) for i, p in enumerate(parts)]


def sort_cards(cards: list[Card], order: list[str]) -> list[Card]:
    """Cards grouped by family, families in the order the README first links to them, names sorted."""
    rank = {name: i for i, name in enumerate(order)}
    first = {}
    for card in cards:
        first[card.family] = min(first.get(card.family, len(rank)), rank.get(card.name, len(rank)))
    return sorted(cards, key=lambda c: (first[c.family], c.family, natural_key(c.name)))


def table_cell(value) -> str:
    """Text safe to put in a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def metadata_table(front_matter: dict) -> str:
    """A short Markdown section summarising a card's Hugging Face Hub front matter."""
    rows = []
    for key, label in (("library_name", "library"), ("license", "license")):
        if key in front_matter:
            rows.append((label, f"`{front_matter[key]}`"))
    if front_matter.get("tags"):
        rows.append(("tags", ", ".join(f"`{t}`" for t in front_matter["tags"])))
    for entry in front_matter.get("model-index") or []:
        for result in entry.get("results") or []:
            task, dataset = result.get("task") or {}, result.get("dataset") or {}
            if task:
                rows.append(("task", f"{task.get('name', '')} (`{task.get('type', '')}`)"))
            if dataset:
                rows.append(("dataset", f"{dataset.get('name', '')} ({dataset.get('type', '')})"))
            if result.get("metrics"):
                rows.append(("metrics", f"{len(result['metrics'])}, listed under Evaluation above"))
    if not rows:
        return ""
    lines = ["## Hub metadata", "", "The card's front matter on the Hugging Face Hub:", ""]
    lines += ["| field | value |", "|---|---|"]
    lines += [f"| {label} | {table_cell(value)} |" for label, value in rows]
    return "\n".join(lines) + "\n"


INLINE_MATH = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=\S)\$(?![\w$])")
CODE = re.compile(r"(^```.*?^```[^\n]*$|`[^`\n]+`)", re.S | re.M)  # fenced blocks and inline code


def typeset_math(markdown: str) -> str:
    """Inline TeX, ``$E_\\mathrm{tot}$``, as MathML, which browsers typeset natively (Chromium since 109,
    Firefox, Safari): the site needs no script and no network to show it. Code is left as it is."""
    from latex2mathml.converter import convert

    def outside_code(text: str) -> str:
        return INLINE_MATH.sub(lambda m: convert(m.group(1)), text)

    parts = CODE.split(markdown)
    return "".join(part if i % 2 else outside_code(part) for i, part in enumerate(parts))


def card_page(card: Card, ctx: PageContext) -> str:
    """The Markdown of a card's page: links rewritten, math typeset, front matter as a table at the end."""
    body = typeset_math(rewrite_links(card.body, ctx)).rstrip("\n") + "\n"
    table = metadata_table(card.front_matter)
    return body + ("\n" + table if table else "")


def presets_page(cards: list[Card], figures: dict[str, str]) -> str:
    """The overview page: every card, by family, with its one-line summary."""
    families = list(dict.fromkeys(c.family for c in cards))
    lines = [
        "# Presets",
        "",
        f"{len(cards)} presets in {len(families)} families. Each name opens the preset's model card:",
        "what it learns, its architecture, training data and procedure, the metrics measured on held-out",
        "data, its speed, limitations and citation.",
    ]
    for family in families:
        lines += ["", f"## {family}", "", "| preset | summary |", "|---|---|"]
        members = [c for c in cards if c.family == family]
        lines += [f"| [{c.name}]({c.page}) | {table_cell(escape_stray_lt(c.summary))} |" for c in members]
    if figures:
        lines += ["", "## Figures across presets", ""]
        for caption, link in figures.items():
            lines += [f"![{caption}]({link})", "", f"`{CARDS_DIR}/{caption}`", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------- assembling the source


def prepare_folder(folder: Path) -> None:
    """Empty a folder this script made before (or create it); refuse any other non-empty folder."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / SOURCE_MARKER).exists():
            raise BuildError(f"{folder} is not empty and was not made by docs/build_site.py; not touching it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SOURCE_MARKER).write_text("made by docs/build_site.py; emptied on every build\n")


def write_file(docs: Path, relative: str, content: str | Path) -> None:
    """Write text, or copy a file, to docs/relative."""
    dest = docs / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        shutil.copyfile(content, dest)
    else:
        dest.write_text(content, encoding="utf-8")


def site_name(readme: str) -> str:
    """The README's title."""
    title, _ = first_heading_and_paragraph(readme)
    return title or "Physics model zoo"


def nav(cards: list[Card]) -> list:
    """MkDocs nav: home, the presets overview, then the cards grouped by family."""
    groups = {}
    for card in cards:
        groups.setdefault(card.family, []).append({card.name: card.page})
    return [
        {"Home": "index.md"},
        {"Presets": "presets.md"},
        {"Model cards": [{family: entries} for family, entries in groups.items()]},
    ]


def mkdocs_config(name: str, theme: str, cards: list[Card]) -> dict:
    """The mkdocs.yml of the assembled folder; strict validation of links and anchors."""
    config = {
        "site_name": name,
        "docs_dir": "docs",
        "use_directory_urls": True,
        "nav": nav(cards),
        "validation": {
            "omitted_files": "warn",
            "absolute_links": "warn",
            "unrecognized_links": "warn",
            "anchors": "warn",
        },
        "markdown_extensions": ["tables", "fenced_code", {"toc": {"permalink": True}}],
    }
    if theme == "material":
        config["theme"] = {
            "name": "material",
            "features": ["navigation.sections", "navigation.top", "content.code.copy", "search.highlight"],
            "font": False,  # the system's fonts: the site loads nothing from the network (Google Fonts otherwise)
            "palette": [
                {"scheme": "default", "primary": "indigo",
                 "toggle": {"icon": "material/weather-night", "name": "Dark mode"}},
                {"scheme": "slate", "primary": "indigo",
                 "toggle": {"icon": "material/weather-sunny", "name": "Light mode"}},
            ],
        }
        config["markdown_extensions"] = [
            "tables",
            "admonition",
            {"toc": {"permalink": True}},
            {"pymdownx.highlight": {"anchor_linenums": False}},
            "pymdownx.superfences",
        ]
    else:
        config["theme"] = {"name": theme}
    return config


def assemble(repo: Path, src: Path, theme: str) -> tuple[list[Card], list[str]]:
    """Write the MkDocs source folder `src` (mkdocs.yml and docs/); return the cards and problems."""
    prepare_folder(src)
    docs = src / "docs"
    readme = (repo / "README.md").read_text(encoding="utf-8")
    cards = sort_cards([read_card(p) for p in sorted((repo / CARDS_DIR).glob("*.md"))], readme_order(readme))
    pages = {"README.md": "index.md"} | {f"{CARDS_DIR}/{c.name}.md": c.page for c in cards}
    problems, copies = [], {}

    def context(source: str, page: str, figure_dir: str) -> PageContext:
        return PageContext(repo, source, page, figure_dir, pages, copies, problems)

    write_file(docs, "index.md", typeset_math(rewrite_links(readme, context("README.md", "index.md", "figures"))))
    for card in cards:
        ctx = context(f"{CARDS_DIR}/{card.name}.md", card.page, f"cards/{card.name}")
        write_file(docs, card.page, card_page(card, ctx))
    overview = context(CARDS_DIR, "presets.md", "figures")
    shared_figures = [p for p in sorted((repo / CARDS_DIR).iterdir()) if p.suffix.lower() in FIGURE_SUFFIXES]
    shared = {p.name: copy_figure(f"{CARDS_DIR}/{p.name}", overview) for p in shared_figures}
    write_file(docs, "presets.md", presets_page(cards, shared))
    for dest, source in copies.items():
        write_file(docs, dest, source)
    config = mkdocs_config(site_name(readme), theme, cards)
    write_file(src, "mkdocs.yml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return cards, problems


# ---------------------------------------------------------------------------- build and check


def run_mkdocs(src: Path, out: Path) -> list[str]:
    """`mkdocs build --strict`; return the warning and error lines if it fails."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
               "--config-file", str(src / "mkdocs.yml"), "--site-dir", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode == 0:
        return []
    output = (result.stdout + result.stderr).splitlines()
    reported = [line.strip() for line in output if re.match(r"\s*(WARNING|ERROR)\b", line)]
    last_lines = [line for line in output if line.strip()][-5:]
    return reported or last_lines or [f"mkdocs exited with {result.returncode}"]


class _LinkCollector(html.parser.HTMLParser):
    """Collects the href of <a> and the src of <img> tags of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        wanted = {"a": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value is not None:
                self.links.append((tag, value))


def link_target(site: Path, page: Path, url: str) -> Path | None:
    """The file of `site` a relative URL on `page` points at, or None for an external URL."""
    if is_external(url) or not url.strip():
        return None
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    if not path:
        return None
    base = site if path.startswith("/") else page.parent
    target = Path(os.path.normpath(base / path.lstrip("/")))
    return target / "index.html" if target.is_dir() or path.endswith("/") else target


def broken_links(site: Path) -> list[str]:
    """Every relative <a href> and <img src> of the site's HTML that names no file of the site."""
    site = site.resolve()
    broken = []
    for page in sorted(site.rglob("*.html")):
        collector = _LinkCollector()
        collector.feed(page.read_text(encoding="utf-8", errors="replace"))
        for tag, url in collector.links:
            target = link_target(site, page, url)
            if target is None:
                continue
            inside = target == site or site in target.parents
            if not inside or not target.is_file():
                broken.append(f"{page.relative_to(site)}: <{tag}> {url} -> no such file in the site")
    return broken


def default_theme() -> str:
    """mkdocs-material when it is installed, else MkDocs' built-in readthedocs theme."""
    return "material" if importlib.util.find_spec("material") else "readthedocs"


def build(repo: Path, src: Path, out: Path, theme: str) -> list[str]:
    """Assemble, build and check the site; return the problems (empty when all is well)."""
    if out.resolve() in (repo.resolve(), *repo.resolve().parents) or out.resolve() == src.resolve():
        raise BuildError(f"--out {out} would overwrite the repository or the docs source")
    if out.exists() and any(out.iterdir()) and not any((out / f).exists() for f in SITE_FILES):
        raise BuildError(f"--out {out} is a non-empty folder that is not a built site; not touching it")
    _, problems = assemble(repo, src, theme)
    if problems:
        return problems
    problems = run_mkdocs(src, out)
    return problems or broken_links(out)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "site", help="site folder (build/site)")
    parser.add_argument("--src", type=Path, default=REPO / "build" / "docs-src",
                        help="MkDocs source folder, emptied first (build/docs-src)")
    parser.add_argument("--repo", type=Path, default=REPO, help="repository to document (this one)")
    parser.add_argument("--theme", default=default_theme(),
                        help="MkDocs theme (material if installed, else readthedocs)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        problems = build(args.repo.resolve(), args.src.resolve(), args.out.resolve(), args.theme)
    except BuildError as error:
        print(f"docs: {error}", file=sys.stderr)
        return 1
    if problems:
        for problem in problems:
            print(f"docs: {problem}", file=sys.stderr)
        print(f"docs: site not built: {len(problems)} problem(s) above", file=sys.stderr)
        return 1
    print(f"docs: site built in {time.perf_counter() - start:.1f} s: {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
