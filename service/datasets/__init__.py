"""Dataset uploads: images or one zip/tar, verified image by image, then stored by content.

Public surface: :func:`ingest` (uploads -> :class:`~state.datasets.DatasetManifest`) and
:class:`DatasetRejected`. The store itself (ids, layout, owners) is shared state and lives in
:mod:`state.datasets`, where the worker reads it too.
"""

from service.datasets.archives import UnsafeArchive
from service.datasets.ingest import DatasetLimits, DatasetRejected, Upload, ingest

__all__ = ["DatasetLimits", "DatasetRejected", "UnsafeArchive", "Upload", "ingest"]
