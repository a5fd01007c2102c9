"""Metrics: each a class carrying its metadata (name, direction, needs)."""

from metrics.base import Metric, MetricContext, MetricResult, RegionScore

__all__ = ["Metric", "MetricContext", "MetricResult", "RegionScore"]
