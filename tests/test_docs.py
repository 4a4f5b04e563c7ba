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
from types import ModuleType

from collector import config, exporter_cli, report

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
