"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "JobsCollector", "JobsSource", "Metrics"]
log = logging.getLogger("diva.metrics")

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
        self.jobs_submitted = Counter(
            "diva_jobs_submitted_total", "Post-training jobs accepted by this API process", registry=r
        )

    def watch_jobs(self, source: JobsSource) -> None:
        """Export the job store's state on every scrape (see :class:`JobsCollector`)."""
        self.registry.register(JobsCollector(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class JobsSource:
    """Where the job gauges come from: callables, so the collector needs no database of its own."""

    counts_by_status: Callable[[], dict[str, int]]
    running_progress: Callable[[], list[dict[str, Any]]]
    queue_messages: Callable[[], int | None]


class JobsCollector(Collector):
    """Job gauges read from the job store at scrape time.

    The store is shared by every API replica and worker, so reading it (one grouped COUNT and
    one small SELECT) gives the same numbers from any replica, where in-process counters would
    each see only their own share. A store that cannot be read yields ``diva_jobs_store_up 0``
    instead of failing the whole scrape.
    """

    def __init__(self, source: JobsSource) -> None:
        self.source = source

    def describe(self) -> list[Any]:
        return []  # collected lazily: describing must not touch the database at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("diva_jobs_store_up", "1 when the job store answered this scrape")
        try:
            counts = self.source.counts_by_status()
            progress = self.source.running_progress()
        except Exception as exc:
            log.warning("job metrics unavailable", extra={"error": str(exc)})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("diva_jobs", "Jobs in each status (queued, running, ...)", labels=["status"])
        for status, count in sorted(counts.items()):
            jobs.add_metric([status], count)
        yield jobs
        depth = self.source.queue_messages()
        if depth is not None:
            yield GaugeMetricFamily(
                "diva_job_queue_messages", "Job messages waiting in the broker's train queue", value=depth
            )
        step = GaugeMetricFamily(
            "diva_job_step_seconds", "Seconds per optimiser step of each running job", labels=["job"]
        )
        rate = GaugeMetricFamily(
            "diva_job_images_per_second", "Training throughput of each running job", labels=["job"]
        )
        for entry in progress:
            job = str(entry.get("job", ""))
            if entry.get("step_time_s") is not None:
                step.add_metric([job], float(entry["step_time_s"]))
            if entry.get("images_per_s") is not None:
                rate.add_metric([job], float(entry["images_per_s"]))
        yield step
        yield rate
