"""binance-exporter: Binance Spot market data as Prometheus metrics and a console report."""

__version__ = "0.1.0"
