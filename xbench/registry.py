"""Class-attribute registries: adding an explainer or a metric is one class.

A subclass that defines its own ``name`` is registered under that name when the
class body runs; nothing else has to be edited (compare Quantus's hand-kept dict).
"""
from __future__ import annotations

import difflib
from typing import Any, ClassVar, Generic, Iterator, TypeVar

from .errors import XBenchError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}
        #: ``prefix:rest`` names resolved by a factory (e.g. ``quantus:PixelFlipping``), made on first use
        self._prefixes: dict[str, Any] = {}
        self._prefix_help: dict[str, str] = {}
        self._made: dict[str, type[T]] = {}

    def add_prefix(self, prefix: str, factory: Any, description: str = "") -> None:
        """Resolve names ``prefix:rest`` with ``factory(rest) -> class`` (raising XBenchError if unknown)."""
        self._prefixes[prefix] = factory
        self._prefix_help[prefix] = description

    def prefixes(self) -> dict[str, str]:
        """Registered name prefixes and their one-line descriptions (for ``xbench list``)."""
        return dict(self._prefix_help)

    def add(self, cls: type[T]) -> None:
        name = cls.name  # type: ignore[attr-defined]
        old = self._classes.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"two {self.kind}s are named {name!r}: {old} and {cls}")
        self._classes[name] = cls

    def get(self, name: str) -> type[T]:
        cls = self._classes.get(name) or self._made.get(name)
        if cls is not None:
            return cls
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._prefixes:
            cls = self._made[name] = self._prefixes[prefix](rest)
            return cls
        raise XBenchError(unknown_name(self.kind, name, self.names()))

    def names(self) -> list[str]:
        return list(self._classes)

    def __contains__(self, name: object) -> bool:
        if name in self._classes or name in self._made:
            return True
        try:
            self.get(str(name))
        except XBenchError:
            return False
        return True

    def __iter__(self) -> Iterator[type[T]]:
        return iter(self._classes.values())


def unknown_name(kind: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


class Registered:
    """Base for registered classes; subclasses set ``name`` and are added to ``registry``."""

    name: ClassVar[str]
    registry: ClassVar[Registry[Any]]
    #: parameter defaults, named as captum names them where captum has the method
    params: ClassVar[dict[str, Any]] = {}
    #: bump when the class's output changes, to invalidate cached results
    version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.registry.add(cls)

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise XBenchError(
                f"{self.registry.kind} {self.name!r} has no parameter {unknown[0]!r}; "
                f"valid: {', '.join(self.params) or '(none)'}"
            )
        self.p: dict[str, Any] = {**self.params, **params}

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().split("\n")[0]
