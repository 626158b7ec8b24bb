"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The service's counters and histograms; labels: route, model, modality."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "diva_requests_total", "HTTP requests", ["method", "route", "status", "model"], registry=r
        )
        self.latency = Histogram(
            "diva_request_seconds",
            "HTTP request latency",
            ["route", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "diva_batch_size",
            "Items per forward pass",
            ["model", "modality"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "diva_batch_seconds",
            "Forward pass time",
            ["model", "modality"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "diva_queue_depth", "Items waiting for a batch", ["model", "modality"], registry=r
        )
        self.rejected = Counter(
            "diva_rejected_total",
            "Items refused because a queue was full",
            ["model", "modality"],
            registry=r,
        )
        self.models_loaded = Gauge("diva_models_loaded", "Models in memory", registry=r)
        self.label_cache = Counter(
            "diva_label_cache_total", "Label-embedding cache lookups", ["result"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
