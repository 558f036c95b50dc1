"""finsent: streaming sentiment monitoring for financial text (wiring: config, CLI, worker)."""

__version__ = "0.1.0"
