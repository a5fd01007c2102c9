"""One registry type for datasets, models, explainers and metrics.

An entry is a canonical name, aliases, and a target: the object itself or a lazy
``"package.module:attr"`` string imported on first use, so that listing the catalogue
imports nothing heavy. Third-party packages add entries through an entry-point group;
a suite may also name any ``package.module:attr`` directly. A *prefix* routes an
open-ended family of names, ``prefix:Rest``, to a factory (``quantus:Sparseness``: an
adapter around any Quantus metric); those names are not listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from benchmark.errors import BenchError, UnknownNameError


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def load_target(target: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted) and return the object."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise BenchError(f"bad target {target!r}: expected 'package.module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise BenchError(f"cannot import {module_name!r} for {target!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise BenchError(f"{module_name!r} has no attribute {attr!r} ({target!r})") from exc
    return obj


@dataclass
class Entry:
    """One registered object: canonical name, aliases, and a target (lazy or loaded)."""

    name: str
    target: Any
    aliases: tuple[str, ...] = ()
    summary: str = ""
    source: str = "builtin"
    _loaded: Any = field(default=None, repr=False)

    def load(self) -> Any:
        if self._loaded is None:
            self._loaded = load_target(self.target) if isinstance(self.target, str) else self.target
        return self._loaded


class Registry:
    """A named catalogue of one kind of component.

    Args:
        kind: what it holds, used in messages ("explainer").
        group: the entry-point group third-party plugins register under.
    """

    def __init__(self, kind: str, group: str | None = None):
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry] = {}
        self._lookup: dict[str, str] = {}
        self._prefixes: dict[str, Entry] = {}
        self._prefixed: dict[str, Entry] = {}
        self._plugins_loaded = group is None

    def register(
        self,
        name: str,
        target: Any = None,
        *,
        aliases: tuple[str, ...] | list[str] = (),
        summary: str = "",
        source: str = "builtin",
    ) -> Any:
        """Register ``target`` under ``name``; without a target, works as a decorator."""
        if target is None:

            def deco(obj: Any) -> Any:
                self.register(name, obj, aliases=aliases, summary=summary, source=source)
                return obj

            return deco
        keys = [_norm(name), *(_norm(a) for a in aliases)]
        for key in keys:
            owner = self._lookup.get(key)
            if owner is not None and owner != name:
                raise ValueError(f"{self.kind} name {key!r} is taken by {owner!r}")
        self._entries[name] = Entry(name, target, tuple(aliases), summary, source)
        for key in keys:
            self._lookup[key] = name
        return target

    def prefix(self, prefix: str, factory: Any, *, summary: str = "") -> None:
        """Route every ``prefix:rest`` name to ``factory(rest)``.

        Args:
            prefix: the part before the colon, matched like names (case-insensitive).
            factory: a callable, or a lazy ``"package.module:attr"`` naming one, that
                returns the object for ``rest`` or raises :class:`UnknownNameError`.
                The object's ``name`` (when it is a string) is the canonical name.
            summary: one line for listings.
        """
        key = _norm(prefix)
        if key in self._prefixes:
            raise ValueError(f"{self.kind} prefix {key!r} is taken")
        self._prefixes[key] = Entry(f"{prefix}:<name>", factory, summary=summary)

    def _from_prefix(self, name: str) -> Entry | None:
        head, sep, rest = name.partition(":")
        factory = self._prefixes.get(_norm(head)) if sep else None
        if factory is None:
            return None
        if name not in self._prefixed:
            obj = factory.load()(rest.strip())
            own = getattr(obj, "name", None)
            canonical = own if isinstance(own, str) and own else f"{head}:{rest.strip()}"
            entry = Entry(canonical, obj, source=f"prefix:{_norm(head)}", _loaded=obj)
            self._prefixed[name] = entry
        return self._prefixed[name]

    def prefixes(self) -> dict[str, Entry]:
        """The registered prefixes: an entry per prefix, its target the factory."""
        return dict(self._prefixes)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if _norm(ep.name) not in self._lookup:
                self.register(
                    ep.name, ep.value, source=f"plugin:{ep.dist.name if ep.dist else '?'}"
                )

    def entry(self, name: str) -> Entry:
        """The entry for a name, alias or ``package.module:attr``; close matches if unknown."""
        self._load_plugins()
        key = self._lookup.get(_norm(name))
        if key is not None:
            return self._entries[key]
        if (prefixed := self._from_prefix(name)) is not None:
            return prefixed
        if ":" in name:
            return Entry(name, name, source="import")
        raise UnknownNameError(self.kind, name, self._entries)

    def get(self, name: str) -> Any:
        """The registered object (imported on first use)."""
        return self.entry(name).load()

    def canonical(self, name: str) -> str:
        """The canonical name behind a name or alias."""
        return self.entry(name).name

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return _norm(name) in self._lookup or ":" in name

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        self._load_plugins()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)
