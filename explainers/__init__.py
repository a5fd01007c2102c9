"""Explainers: each one small file on the `Explainer` template (explainers.base)."""

from explainers.base import Explainer

__all__ = ["Explainer"]
