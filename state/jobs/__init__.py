"""The job store: the source of truth for post-training jobs (survives broker and API restarts).

Public surface: :class:`Job`, :class:`JobStatus`, :func:`get_engine`, :func:`session_scope`,
:func:`migrate`, and the locked state transitions of :class:`JobStore`. Nothing here imports
torch or Celery, so the API's job routes stay light.
"""

from state.jobs.db import get_engine, migrate, session_scope
from state.jobs.models import TERMINAL, Job, JobStatus
from state.jobs.store import Claim, JobNotFound, JobStateError, JobStore, TooManyQueued

__all__ = [
    "TERMINAL",
    "Claim",
    "Job",
    "JobNotFound",
    "JobStateError",
    "JobStatus",
    "JobStore",
    "TooManyQueued",
    "get_engine",
    "migrate",
    "session_scope",
]
