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

    def add(self, cls: type[T]) -> None:
        name = cls.name  # type: ignore[attr-defined]
        old = self._classes.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"two {self.kind}s are named {name!r}: {old} and {cls}")
        self._classes[name] = cls

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise XBenchError(unknown_name(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return list(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

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
