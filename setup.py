"""Metadata lives in setup.cfg; here only the console scripts, which depend on what is built.

The repository holds two packages: ``collector`` (the product) and ``binance_simulator``
(an offline Binance for tests, benchmarks and demos). The production image builds from
``collector`` alone and the simulator's image from ``binance_simulator`` alone, so each
command is declared only where its package exists.
"""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
SCRIPTS = []
if (HERE / "collector").is_dir():
    SCRIPTS += ["binance-report = collector.report:main",
                "binance-exporter = collector.exporter_cli:main",
                "binance-healthcheck = collector.healthcheck:main"]
if (HERE / "binance_simulator").is_dir():
    SCRIPTS.append("binance-simulator = binance_simulator.cli:main")

setup(entry_points={"console_scripts": SCRIPTS})
