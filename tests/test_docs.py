"""The documentation site (docs/build_site.py): the real build, its link rewriting and its link check."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")

REPO = Path(__file__).resolve().parents[1]
BUILDER = REPO / "docs" / "build_site.py"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_site", BUILDER)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build_site = _load_builder()


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _context(repo: Path, source: str, page: str, figure_dir: str, pages: dict):
    return build_site.PageContext(repo, source, page, figure_dir, pages)


# ---------------------------------------------------------------------------- the real repository


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The repository's site, built once for this module's checks."""
    folder = tmp_path_factory.mktemp("docs")
    site = folder / "site"
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--out", str(site), "--src", str(folder / "src")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def test_site_builds_from_the_repository(built_site):
    cards = sorted((REPO / "model_cards").glob("*.md"))
    site = built_site
    assert (site / "index.html").is_file()
    assert (site / "presets" / "index.html").is_file()
    built = sorted(p.parent.name for p in (site / "cards").glob("*/index.html"))
    assert built == sorted(c.stem for c in cards)
    for card in cards:
        page = site / "cards" / card.stem / "index.html"
        html = page.read_text()
        for target in IMAGE.findall(card.read_text()):
            figure = (card.parent / target).resolve()
            assert figure.is_file(), f"{card.name} shows {target}, which does not exist"
            copy = page.parent / figure.name
            assert copy.is_file() and copy.read_bytes() == figure.read_bytes(), f"{card.name}: {figure.name} not in the site"
            assert f'src="{figure.name}"' in html, f"{card.name}: no <img> shows {figure.name}"


def test_math_in_cards_becomes_mathml_outside_code(built_site):
    html = (built_site / "cards" / "calogan-eplus" / "index.html").read_text()
    assert html.count("<math ") >= 11 and "E_\\mathrm{tot}" not in html
    assert build_site.typeset_math("`$x$` costs $5, not $6") == "`$x$` costs $5, not $6"


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "build" / "test-artifacts"  # the screenshot a person can look at after a run


@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                    reason="Debian's chromium and chromium-driver are not installed")
def test_every_page_loads_in_a_real_browser_with_figures_and_typeset_math(built_site):
    """Headless Chromium over a local HTTP server: no console error on any page, every figure has a size, every formula is
    laid out as MathML (not raw TeX); a screenshot of one card page is kept in build/test-artifacts."""
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built_site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: the system picks a free one
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{server.server_address[1]}/"
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    problems = []
    try:
        for page in sorted(built_site.rglob("index.html")):
            driver.get(root + page.parent.relative_to(built_site).as_posix() + "/")
            errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            empty = driver.execute_script(
                "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0 || "
                "i.getBoundingClientRect().width === 0).map(i => i.src)")
            flat = driver.execute_script(
                "return [...document.querySelectorAll('math')].filter(m => m.getBoundingClientRect().width === 0"
                " || m.getBoundingClientRect().height === 0).length")
            raw_tex = "\\mathrm" in driver.execute_script("return document.body.innerText")
            if errors or empty or flat or raw_tex:
                problems.append((str(page.relative_to(built_site)), errors, empty, flat, raw_tex))
        driver.get(root + "cards/calogan-eplus/")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "calogan-eplus-card.png"))
    finally:
        driver.quit()
        server.shutdown()
    assert problems == []


# ---------------------------------------------------------------------------- link rewriting


def test_readme_links_become_pages_code_text_or_problems(tmp_path):
    _write(tmp_path / "model_cards" / "a.md", "# a\n")
    _write(tmp_path / "benchmarks" / "results.md", "numbers\n")
    _write(tmp_path / "pic.png", b"\x89PNG")
    readme = "\n".join([
        "See [the card](model_cards/a.md#speed) and [results](benchmarks/results.md).",
        "Also [benchmarks/results.md](benchmarks/results.md), ![a picture](pic.png),",
        "[the web](https://example.org), [below](#layout), [gone](model_cards/missing.md)",
        "and `[not a link](nowhere.md)` in code, |<w|psi>|^2 and <br> kept.",
        "```",
        "[inside a fence](nowhere.md)",
        "```",
        "",
    ])
    ctx = _context(tmp_path, "README.md", "index.md", "figures", {"model_cards/a.md": "cards/a.md"})
    out = build_site.rewrite_links(readme, ctx)
    assert "[the card](cards/a.md#speed)" in out
    assert "results (`benchmarks/results.md` in the repository)" in out
    assert "Also `benchmarks/results.md`," in out
    assert "![a picture](figures/pic.png)" in out and ctx.copies == {"figures/pic.png": tmp_path / "pic.png"}
    assert "[the web](https://example.org)" in out and "[below](#layout)" in out
    assert "`[not a link](nowhere.md)`" in out and "[inside a fence](nowhere.md)" in out
    assert "|&lt;w|psi>|^2 and <br> kept" in out
    assert "[below](#layout), gone\n" in out
    assert ctx.problems == ["README.md: link model_cards/missing.md names model_cards/missing.md, which does not exist"]


def test_card_figures_are_copied_next_to_the_card_and_missing_ones_reported(tmp_path):
    _write(tmp_path / "zoo" / "pretrained" / "a" / "evaluation.png", b"\x89PNG")
    _write(tmp_path / "model_cards" / "shared.png", b"\x89PNG")
    card = (
        "# a\n\n![evaluation](../zoo/pretrained/a/evaluation.png)\n"
        "drawn into model_cards/shared.png.\n![gone](../zoo/pretrained/a/missing.png)\n"
    )
    ctx = _context(tmp_path, "model_cards/a.md", "cards/a.md", "cards/a", {"model_cards/a.md": "cards/a.md"})
    out = build_site.rewrite_links(card, ctx)
    assert "![evaluation](a/evaluation.png)" in out
    assert "[model_cards/shared.png](a/shared.png)." in out
    assert ctx.copies == {
        "cards/a/evaluation.png": tmp_path / "zoo" / "pretrained" / "a" / "evaluation.png",
        "cards/a/shared.png": tmp_path / "model_cards" / "shared.png",
    }
    assert len(ctx.problems) == 1 and "figure ../zoo/pretrained/a/missing.png" in ctx.problems[0]


def test_front_matter_becomes_a_metadata_table():
    meta, body = build_site.split_front_matter("---\nlicense: apache-2.0\ntags:\n  - physics\n  - rbm\n---\n# x\n")
    assert body == "# x\n"
    assert build_site.card_family(meta, body) == "rbm"
    table = build_site.metadata_table(meta)
    assert "| license | `apache-2.0` |" in table and "`physics`, `rbm`" in table


def test_build_stops_on_a_missing_figure(tmp_path, capsys):
    repo = tmp_path / "repo"
    _write(repo / "README.md", "# Zoo\n\n[card](model_cards/a.md)\n")
    _write(repo / "model_cards" / "a.md", "# a\n\nSummary.\n\n![evaluation](../zoo/pretrained/a/evaluation.png)\n")
    code = build_site.main(["--repo", str(repo), "--src", str(tmp_path / "src"), "--out", str(tmp_path / "site")])
    assert code == 1
    assert "zoo/pretrained/a/evaluation.png, which does not exist" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_tiny_repository_builds(tmp_path):
    repo = tmp_path / "repo"
    _write(repo / "README.md", "# Zoo\n\n[card](model_cards/a.md), see `zoo/`.\n")
    _write(repo / "model_cards" / "a.md", "---\ntags:\n  - toy\n---\n# a\n\nA toy.\n\n![evaluation](../zoo/pretrained/a/evaluation.png)\n")
    _write(repo / "zoo" / "pretrained" / "a" / "evaluation.png", b"\x89PNG\r\n\x1a\n")
    site = tmp_path / "site"
    assert build_site.main(["--repo", str(repo), "--src", str(tmp_path / "src"), "--out", str(site)]) == 0
    assert (site / "cards" / "a" / "evaluation.png").is_file()
    assert "A toy." in (site / "presets" / "index.html").read_text()


def test_mkdocs_warning_fails_the_build(tmp_path, capsys):
    repo = tmp_path / "repo"
    _write(repo / "README.md", "# Zoo\n\nSee [below](#no-such-heading).\n")
    _write(repo / "model_cards" / "a.md", "# a\n\nA toy.\n")
    assert build_site.main(["--repo", str(repo), "--src", str(tmp_path / "src"), "--out", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err
    assert "WARNING" in err and "no-such-heading" in err
    assert err.rstrip().splitlines()[-1] == "docs: site not built: 1 problem(s) above"


# ---------------------------------------------------------------------------- the link check


def test_link_check_reports_every_broken_relative_link(tmp_path):
    site = tmp_path / "site"
    _write(site / "index.html", "\n".join([
        '<a href="sub/">ok</a> <a href="sub/#part">ok</a> <a href="page.html?x=1">ok</a>',
        '<a href="https://example.org/missing">external</a> <a href="#top">anchor</a> <a href="mailto:a@b">mail</a>',
        '<img src="img/there.png"> <img src="/img/there.png">',
        '<a href="nowhere/">broken</a> <img src="img/missing.png"> <a href="../outside.html">outside</a>',
    ]))
    _write(site / "page.html", '<a href="index.html">back</a>')
    _write(site / "sub" / "index.html", '<a href="../index.html">up</a> <img src="../img/gone.png">')
    _write(site / "img" / "there.png", b"\x89PNG")
    _write(tmp_path / "outside.html", "<p>not in the site</p>")
    broken = build_site.broken_links(site)
    assert broken == [
        "index.html: <a> nowhere/ -> no such file in the site",
        "index.html: <img> img/missing.png -> no such file in the site",
        "index.html: <a> ../outside.html -> no such file in the site",
        f"{Path('sub/index.html')}: <img> ../img/gone.png -> no such file in the site",
    ]


NAMED_AS_ENDPOINT = [re.compile(r"`(\w+)`(?: \([^)]*\))? (?:endpoints?|signatures?)\b"),
                     re.compile(r"\b(?:endpoints?|signatures?) `(\w+)`")]
SERVES = re.compile(r"\bserves? ([^.;]*)")


def endpoint_names_in(text: str) -> set:
    """What prose calls an endpoint: "`x` endpoint", "signature `x`", and each `x` after "serves" (to the clause's end)."""
    named = {m.group(1) for pattern in NAMED_AS_ENDPOINT for m in pattern.finditer(text)}
    return named | {token for m in SERVES.finditer(text) for token in re.findall(r"`(\w+)`", m.group(1))}


def test_endpoints_named_in_readme_cards_and_docs_are_declared():
    """A served name in prose must be a declared endpoint (the realnvp card once promised a `log_prob` signature)."""
    from zoo import registry

    declared = {e.name for spec in registry.list_specs() for e in spec.model_class(**spec.config).endpoints()}
    pages = [REPO / "README.md", *sorted((REPO / "model_cards").glob("*.md")), *sorted((REPO / "docs").rglob("*.md"))]
    undeclared = {str(p.relative_to(REPO)): sorted(endpoint_names_in(p.read_text()) - declared) for p in pages}
    assert {page: names for page, names in undeclared.items() if names} == {}
    assert endpoint_names_in("serves `sample` and `log_prob`; the `decode` endpoint") == {"sample", "log_prob", "decode"}
