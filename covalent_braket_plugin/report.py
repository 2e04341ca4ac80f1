"""Where ``covalent-braket jobs`` and ``logs`` used to live: their names, kept for whoever
imports them from here.

A dispatch's jobs and their rows are :mod:`~covalent_braket_plugin.dispatch_jobs`'s, the
table :mod:`~covalent_braket_plugin.job_table`'s, reading and following a job's log
:mod:`~covalent_braket_plugin.logs`'s, and the commands :mod:`covalent_braket_plugin.cli`'s.
"""

from __future__ import annotations

from .dispatch_jobs import describe, dispatch_prefix, find_jobs, jobs_rows, settings_for
from .job_table import render
from .logs import FOLLOW_SECONDS, JobLog, show_log

__all__ = [
    "FOLLOW_SECONDS",
    "JobLog",
    "describe",
    "dispatch_prefix",
    "find_jobs",
    "jobs_rows",
    "render",
    "settings_for",
    "show_log",
]
