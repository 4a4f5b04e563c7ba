"""Metadata lives in setup.cfg; here only the console scripts, which depend on what is built.

The repository holds two packages: ``collector`` (the product) and ``binance_simulator``
(an offline Binance for tests, benchmarks and demos). The production image builds from
``collector`` alone, so ``binance-simulator`` is declared only where its package exists.
"""
from pathlib import Path

from setuptools import setup

SCRIPTS = [
    "binance-report = collector.report:main",
    "binance-exporter = collector.cli:main",
]
if (Path(__file__).parent / "binance_simulator").is_dir():
    SCRIPTS.append("binance-simulator = binance_simulator.cli:main")

setup(entry_points={"console_scripts": SCRIPTS})
