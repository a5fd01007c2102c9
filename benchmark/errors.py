"""User-facing errors: one clear line, exit code 2, nothing written."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A problem with the user's input; the CLI prints it as one line and exits with 2."""

    exit_code = 2


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Close spellings of ``name`` among ``candidates`` (case-insensitive)."""
    cands = list(candidates)
    lowered = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` or ``""`` when nothing is close."""
    hits = close_matches(name, candidates)
    if not hits:
        return ""
    return "; did you mean " + " or ".join(repr(h) for h in hits) + "?"


class UnknownNameError(BenchError):
    """A name that no registry entry, alias or plugin answers to."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name = kind, name
        self.known = sorted(known)
        self.matches = close_matches(name, self.known)
        hint = did_you_mean(name, self.known)
        if not hint:
            hint = "; known: " + ", ".join(self.known) if self.known else ""
        super().__init__(f"unknown {kind} {name!r}{hint}")
