"""The manual: README.md and docs/*.md.

The configuration reference (docs/configuration.md) and the README's table of common flags
are made by ``make docs`` (tools/flags_doc.py) from the flag definitions of
``collector.config.FLAGS``: a committed page that differs from what the tool writes fails
here, so a flag changed in one place cannot be documented otherwise in another.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

from collector import config, exporter_cli, report
from collector.exporter import BinanceCollector
from collector.records import REST, STREAM, Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flags_doc", ROOT / "tools" / "flags_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["flags_doc"] = module
    spec.loader.exec_module(module)
    return module


flags_doc = load_tool()


# ---------------------------------------------------------------- generated from the flags

def test_the_configuration_reference_is_what_the_flags_make() -> None:
    """docs/configuration.md is generated: edit collector/config.py, then `make docs`."""
    assert (DOCS / "configuration.md").read_text(encoding="utf-8") == \
        flags_doc.configuration_page(), "run `make docs` and commit docs/configuration.md"


def test_the_readmes_flag_table_is_what_the_flags_make() -> None:
    text = README.read_text(encoding="utf-8")
    assert flags_doc.readme(text) == text, "run `make docs` and commit README.md"
    assert text.count(flags_doc.BEGIN) == 1 and text.count(flags_doc.END) == 1


def test_check_fails_on_a_drifted_page_and_generate_repairs_it(tmp_path: Path) -> None:
    for path in (flags_doc.PAGE, flags_doc.README):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    assert flags_doc.main(["check", str(tmp_path)]) == 0
    page = tmp_path / flags_doc.PAGE
    page.write_text(page.read_text(encoding="utf-8").replace("`BINANCE_TOP` | `5`",
                                                             "`BINANCE_TOP` | `10`"))
    readme = tmp_path / flags_doc.README
    readme.write_text(readme.read_text(encoding="utf-8").replace("| `--top N` |", "| `--tops N` |"))
    assert flags_doc.drifted(tmp_path) == [flags_doc.PAGE, flags_doc.README]
    assert flags_doc.main(["check", str(tmp_path)]) == 1
    assert flags_doc.main(["generate", str(tmp_path)]) == 0
    assert flags_doc.drifted(tmp_path) == []


def test_the_reference_has_every_flag_and_variable_of_both_commands() -> None:
    """Each option of binance-exporter and binance-report, and each BINANCE_* variable their
    --help names, has its row; the README names where the rest is."""
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = {line.split(" | ")[0].strip("| `").split()[0]: line
            for line in page.splitlines() if line.startswith("| `--")}
    for parser in (exporter_cli.build_parser(), report.build_parser()):
        options = [option for action in parser._actions  # pylint: disable=protected-access
                   for option in action.option_strings
                   if option.startswith("--") and option not in {"--help", "--version"}]
        assert {"--source", "--stream-url", "--symbols", "--spreads", "--depth-bands"} <= \
            set(options)
        for option in options:
            assert option in rows, f"docs/configuration.md does not document {option}"
        for variable in set(re.findall(r"BINANCE_[A-Z_]+", parser.format_help())):
            assert f"`{variable}`" in page, f"docs/configuration.md does not name {variable}"
    for flag in config.FLAGS:
        assert f"`{flag.env}`" in rows[flag.name] and flag.range in rows[flag.name]
    assert "`--version` and `--help`" in page
    assert "(docs/configuration.md)" in README.read_text(encoding="utf-8")


# ---------------------------------------------------------------- links and anchors

PAGES = [README, *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
INLINE_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
EXTERNAL = ("http://", "https://", "mailto:")


def prose(text: str) -> str:
    """Markdown without code blocks and code spans: a link or heading there is code."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: links reduced to their text, lower case,
    punctuation (backticks, parentheses, dots, ``≥``, ``?``) dropped, each space a hyphen."""
    text = INLINE_LINK.sub(r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file; a repeated heading's are ``-1``, ``-2``, … as on
    GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        anchor = github_anchor(heading)
        found.add(f"{anchor}-{seen[anchor]}" if anchor in seen else anchor)
        seen[anchor] = seen.get(anchor, 0) + 1
    return found


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def test_github_anchor_matches_githubs_own() -> None:
    assert github_anchor(" Set up (Python ≥ 3.10)") == "set-up-python--310"
    assert github_anchor(" Stream mode (`--source stream`)") == "stream-mode---source-stream"
    assert github_anchor(" The report: `binance-report`") == "the-report-binance-report"
    assert github_anchor("No network? Try it offline") == "no-network-try-it-offline"
    assert github_anchor("6. Stream mode") == "6-stream-mode"
    assert github_anchor("Stream mode's metrics") == "stream-modes-metrics"
    assert github_anchor("[Alerts](alerts.md) of it") == "alerts-of-it"


def test_anchors_number_repeated_headings_and_skip_code(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## Notes\n\n```sh\n# not a heading\n```\n\n## Notes\n")
    assert anchors(page) == {"top", "notes", "notes-1"}
    page.write_text("See [a](b.md) and `[c](d.md)`.\n\n```\n[e](f.md)\n```\n")
    assert links(page) == ["b.md"]


def test_the_manual_is_in_pages_and_the_readme_is_a_front_page() -> None:
    """The README is at most 350 lines (about 300 meant): what it is, set-up, the common
    tasks, the metrics at a glance and links. The reference is in docs/."""
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 350
    expected = {"configuration", "metrics", "report", "stream-mode", "symbols",
                "request-weight", "deployment", "failure", "alerts", "development", "security"}
    assert {page.stem for page in DOCS.glob("*.md")} == expected
    linked = {target for target in links(README) if target.startswith("docs/")}
    assert {f"docs/{stem}.md" for stem in expected} <= linked  # each page one click away


def test_every_link_and_anchor_of_the_manual_leads_somewhere() -> None:
    """Each relative link of README.md and docs/*.md names a file or folder that exists,
    and each ``#anchor`` a heading of its target (or of the page itself), as GitHub
    makes anchors. External links are not followed (tests stay on loopback)."""
    broken = []
    checked = 0
    for page in PAGES:
        for target in links(page):
            if target.startswith(EXTERNAL):
                continue
            checked += 1
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not resolved.exists():
                broken.append(f"{where}: no such file")
            elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
                broken.append(f"{where}: no heading #{anchor} in {resolved.name}")
            elif ROOT not in resolved.parents and resolved != ROOT:
                broken.append(f"{where}: outside the repository")
    assert checked > 100
    assert not broken, "\n".join(broken)


def test_every_metric_the_exporter_can_serve_is_documented() -> None:
    """docs/metrics.md keeps a row for each family, in either mode and with any flag: a new
    family without a word in the manual fails here."""
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    documented = {re.sub(r"_(total|info)$", "", name)  # a family's name, as described
                  for name in re.findall(r"`(binance_[a-z0-9_]+)`", text)}
    for source in (REST, STREAM):
        settings = Settings(source=source, symbols=("ADAUSDT",), depth_bands=("2",))
        source_of = SimpleNamespace(settings=settings)
        served = {family.name
                  for family in BinanceCollector(source_of).describe()}  # type: ignore[arg-type]
        assert served - documented == set(), source
