"""Errors an action raises to tell the engine not to retry it."""

from __future__ import annotations


class PermanentActionError(Exception):
    """The action failed in a way a retry cannot fix (a refused recipient, a bad URL, a missing
    template): the engine fails it at once (`action.failed`, then `run.failed`) instead of
    retrying with backoff. Host actions may raise it too (`whenthen.PermanentActionError`)."""
