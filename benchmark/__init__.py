"""Face-XAI benchmark: the runner (suites, data, models, scoring, storage)."""

__version__ = "0.1.0"
