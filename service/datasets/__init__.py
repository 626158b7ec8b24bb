"""User datasets: uploads (images or one zip/tar) verified image by image, stored by content.

Public surface: :func:`ingest` (uploads -> :class:`DatasetManifest`), :class:`DatasetStore`
(read a stored dataset, its image folder for the trainer), :class:`DatasetRejected`.
"""

from service.datasets.archives import UnsafeArchive
from service.datasets.ingest import DatasetLimits, DatasetRejected, Upload, ingest
from service.datasets.store import DatasetManifest, DatasetNotFound, DatasetStore, Rejection

__all__ = [
    "DatasetLimits",
    "DatasetManifest",
    "DatasetNotFound",
    "DatasetRejected",
    "DatasetStore",
    "Rejection",
    "UnsafeArchive",
    "Upload",
    "ingest",
]
