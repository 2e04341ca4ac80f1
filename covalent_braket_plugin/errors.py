"""The executor's own error for jobs that did not give a usable result."""

from __future__ import annotations


class BraketJobError(RuntimeError):
    """A Braket job ended FAILED for a reason other than the electron raising, or its result
    could not be used."""
