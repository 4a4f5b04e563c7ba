"""The flag table (``collector.config.FLAGS``): each flag written once, the parsers made from it.

``--help``, docs/configuration.md and the README's table of common flags all come from the
table (tests/test_docs.py checks the pages); these tests check that the parsers do, that
every default is a value its own type accepts, and that a number flag given ``nan`` or
``inf`` says so in one line and exits 2, from the command line or from its variable.
"""

from __future__ import annotations

import argparse
import os
import re

import pytest

from collector import config, exporter_cli, report, wiring
from collector.config import FLAGS, Flag, Number

PARSERS = {config.EXPORTER: exporter_cli.build_parser, config.REPORT: report.build_parser}
MAINS = {config.EXPORTER: exporter_cli.main, config.REPORT: report.main}
NUMBERS = [(command, flag) for flag in FLAGS for command in flag.commands
           if isinstance(flag.kind, Number)]
NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"]  # the last: floats only


def options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions  # pylint: disable=protected-access
            for option in action.option_strings if option.startswith("--")]


@pytest.mark.parametrize("command", list(PARSERS))
def test_each_parser_has_exactly_its_commands_flags(command: str) -> None:
    """No flag is added beside the table: every option but --help and --version is one of
    the command's flags, in the table's order."""
    listed = [option for option in options(PARSERS[command]())
              if option not in {"--help", "--version"}]
    assert sorted(listed) == sorted(flag.name for flag in config.flags(command))
    assert {"--symbols", "--depth-bands", "--source", "--stream-url", "--spreads"} <= set(listed)


def test_names_and_variables_are_unique_and_binance_prefixed() -> None:
    names = [flag.name for flag in FLAGS]
    variables = [flag.env for flag in FLAGS]
    assert len(set(names)) == len(names) and len(set(variables)) == len(variables)
    assert all(re.fullmatch(r"--[a-z][a-z.-]+", name) for name in names)  # --web.* as Prometheus
    assert all(re.fullmatch(r"BINANCE_[A-Z_]+", variable) for variable in variables)
    # Kubernetes sets BINANCE_PORT=tcp://... for a Service named binance
    assert "BINANCE_PORT" not in variables


@pytest.mark.parametrize("flag", FLAGS, ids=lambda flag: flag.name)
def test_help_names_the_variable_default_and_range(flag: Flag) -> None:
    """--help is made from the definition: what the flag does, then what it accepts, its
    variable and its default."""
    for command in flag.commands:
        text = "".join(PARSERS[command]().format_help().split())  # as wrapped, any way
        assert "".join(flag.help_text().replace("%%", "%").split()) in text, command
    assert f"env {flag.env}" in flag.help_text()
    assert f"default {flag.shown_default})" in flag.help_text()
    if not isinstance(flag.kind, config.Choice):
        assert flag.range in flag.help_text()


@pytest.mark.parametrize("flag", FLAGS, ids=lambda flag: flag.name)
def test_the_parsers_default_is_the_tables(flag: Flag, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no flag and no variable, each flag has its table default, converted by its own
    type (a list flag's default is resolved by parse_args)."""
    for variable in [v for v in os.environ if v.startswith("BINANCE_")]:
        monkeypatch.delenv(variable)
    for command in flag.commands:
        args = config.parse_args(PARSERS[command](), [])
        value = getattr(args, flag.dest or flag.name[2:].replace("-", "_"))
        if flag.default is None:
            assert value in (None, ()), flag.name
        elif flag.many:
            assert value == [flag.kind(item) for item in flag.default.split(",")], flag.name
        else:
            assert value == flag.kind(flag.default), flag.name


def test_ranges_read_as_words() -> None:
    assert config.top.range == "1 to 50"
    assert config.seconds.range == "above 0 s"
    assert config.ttl.range == "at least 10 s"
    assert config.weight_budget.range == "above 0, at most 6000"
    assert config.non_negative_int.range == "at least 0"
    assert config.Choice("rest", "stream").range == "rest, stream"


@pytest.fixture
def nothing_started(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("started despite bad input")

    monkeypatch.setattr(exporter_cli, "serve", refuse)
    monkeypatch.setattr(wiring, "source", refuse)


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize(("command", "flag"), NUMBERS,
                         ids=[f"{c}{f.name}" for c, f in NUMBERS])
def test_nan_and_inf_are_refused_in_one_line_naming_the_range(
        command: str, flag: Flag, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--timeout nan`` once said "'nan' must be at least -inf". Every number flag, and its
    variable, now says the value is not a finite number and what it accepts: exit 2
    (EXIT_USAGE, as documented), one line, nothing started."""
    for value in NON_FINITE if flag.kind.kind is float else NON_FINITE[:-1]:  # type: ignore[attr-defined]
        for argv in ([f"{flag.name}={value}"], []):
            if not argv:
                monkeypatch.setenv(flag.env, value)
            with pytest.raises(SystemExit) as exc:
                MAINS[command](argv)
            assert exc.value.code == config.EXIT_USAGE == 2
            err = capsys.readouterr().err
            expected = (f"{command}: error: argument {flag.name}: {value!r} is not a finite "
                        f"number: give ")
            assert err.startswith(expected) and err.count("\n") == 1, err
            assert err.rstrip("\n").split(" (from ")[0].endswith(flag.range), err
            assert ("(from " in err) == (not argv), err
        monkeypatch.delenv(flag.env)


def test_a_non_finite_message_reads_as_a_sentence() -> None:
    cases = {config.seconds: "'nan' is not a finite number: give a number above 0 s",
             config.ttl: "'nan' is not a finite number: give a number of at least 10 s",
             config.top: "'nan' is not a finite number: give a whole number from 1 to 50",
             config.weight_budget: "'nan' is not a finite number: give a number above 0, "
                                   "at most 6000"}
    for kind, message in cases.items():
        with pytest.raises(argparse.ArgumentTypeError) as exc:
            kind("nan")
        assert str(exc.value) == message


def test_out_of_range_messages_are_unchanged() -> None:
    """Only nan and inf changed: the other messages are those users and tests know."""
    cases: list[tuple[Number, str, str]] = [
        (config.seconds, "0", "'0' must be a finite number above 0"),
        (config.seconds, "x", "'x' is not a number"),
        (config.positive_int, "0", "'0' must be at least 1"),
        (config.non_negative_int, "1.5", "'1.5' is not a whole number"),
        (config.top, "51", "'51' is above the maximum of 50"),
        (config.depth_levels, "5001", "'5001' is above Binance's maximum depth of 5000"),
        (config.ttl, "5", "'5' is below the 10 s minimum TTL"),
        (config.weight_budget, "6001", "'6001' is above Binance's limit of 6000 per minute "
         "and IP")]
    for number, value, message in cases:
        with pytest.raises(argparse.ArgumentTypeError) as exc:
            number(value)
        assert str(exc.value) == message
    assert config.seconds("0.5") == 0.5 and config.top("50") == 50


def test_an_empty_count_variable_means_until_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_COUNT", "")
    assert report.build_parser().parse_args([]).count is None
    monkeypatch.setenv("BINANCE_COUNT", "3")
    assert report.build_parser().parse_args([]).count == 3


def test_list_variables_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_BASE_URL", "http://a, http://b/")
    monkeypatch.setenv("BINANCE_SYMBOLS", "ADAUSDT,LTCBTC,ADAUSDT")
    args = config.parse_args(exporter_cli.build_parser(), [])
    assert args.base_urls == ["http://a", "http://b"]
    assert args.symbols == ("ADAUSDT", "LTCBTC")
    args = config.parse_args(exporter_cli.build_parser(), ["--symbols", "X", "--base-url",
                                                           "http://c"])
    assert (args.base_urls, args.symbols) == (["http://c"], ("X",))  # a flag wins
    monkeypatch.setenv("BINANCE_SYMBOLS", "")
    assert config.parse_args(report.build_parser(), []).symbols == ()
