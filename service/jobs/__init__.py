"""The job store: the source of truth for post-training jobs (survives broker and API restarts).

Public surface: :class:`Job`, :class:`JobStatus`, :func:`get_engine`, :func:`session_scope`,
:func:`migrate`, and the locked state transitions of :class:`JobStore`. Nothing here imports
torch or Celery, so the API's job routes stay light.
"""

from service.jobs.db import get_engine, migrate, session_scope
from service.jobs.models import TERMINAL, Job, JobStatus
from service.jobs.store import Claim, JobNotFound, JobStateError, JobStore, owner_of

__all__ = [
    "TERMINAL",
    "Claim",
    "Job",
    "JobNotFound",
    "JobStateError",
    "JobStatus",
    "JobStore",
    "get_engine",
    "migrate",
    "owner_of",
    "session_scope",
]
