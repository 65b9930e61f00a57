"""Class-attribute registries: adding an explainer or a metric is one class.

A subclass that defines its own ``name`` is registered under that name when the
class body runs; nothing else has to be edited (compare Quantus's hand-kept dict).

Plugins (explainers and metrics that live outside xbench) reach a registry two ways:

- **entry points**: an installed distribution declares, in its ``pyproject.toml``,
  ``[project.entry-points."xbench.explainers"]`` (or ``"xbench.metrics"``) lines
  ``my_name = "my_pkg.module:MyClass"``. They are loaded lazily, all of a group at once, the
  first time the registry is asked for a name it does not know or for its list of names
  (``xbench list explainers``, a suite's ``explainers: all``). An entry point that fails to
  load is an error (one line naming it) when its name is asked for, and a warning on stderr
  when the registry is only listed.
- **``module:Class``** wherever a name is accepted (``--explainers``, a suite's list, the
  pytest fixture): importing the module registers the class, and results are recorded under
  the class's own ``name`` (:meth:`Registry.canonical`). Registered name prefixes such as
  ``quantus:`` win over this form.
"""
from __future__ import annotations

import difflib
import importlib
import re
import sys
from typing import Any, Callable, ClassVar, Generic, Iterator, TypeVar

from xbench.core.errors import XBenchError

T = TypeVar("T")

#: entry-point group of each registry kind that takes plugins
PLUGIN_GROUPS = {"explainer": "xbench.explainers", "metric": "xbench.metrics", "modality": "xbench.modalities"}
#: ``pkg.module:Class`` (the class may be a dotted attribute path)
_MODULE_CLASS = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _warn(message: str) -> None:
    print(f"xbench: warning: {message}", file=sys.stderr)


class Registry(Generic[T]):
    def __init__(self, kind: str, plugin_group: str | None = None) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}
        #: ``prefix:rest`` names resolved by a factory (e.g. ``quantus:PixelFlipping``), made on first use
        self._prefixes: dict[str, Any] = {}
        self._prefix_help: dict[str, str] = {}
        #: classes reached by another name: prefix-made, ``module:Class`` strings, entry-point names
        self._made: dict[str, type[T]] = {}
        #: the class that owns this registry (set by ``__set_name__``); plugins must subclass it
        self.base: type | None = None
        self.plugin_group = plugin_group if plugin_group is not None else PLUGIN_GROUPS.get(kind)
        self.warn: Callable[[str], None] = _warn
        self._plugins_loaded = False
        #: entry-point name -> one-line error, for entry points that failed to load
        self._plugin_errors: dict[str, str] = {}
        self._warned: set[str] = set()
        #: turns a plain callable named by ``module:function`` into a registered class (or None)
        self.wrap: Callable[[Any], type[T]] | None = None

    def __set_name__(self, owner: type, attr: str) -> None:
        self.base = owner

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
        # the same class defined again (a module re-imported) replaces itself; another class may not
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"two {self.kind}s are named {name!r}: {old} and {cls}")
        self._classes[name] = cls

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; also resolves ``prefix:rest``, ``module:Class`` and
        entry-point names (module doc). Unknown or broken names raise a one-line XBenchError."""
        cls = self._classes.get(name) or self._made.get(name)
        if cls is not None:
            return cls
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._prefixes:
            cls = self._made[name] = self._prefixes[prefix](rest)
            return cls
        if self.plugin_group and _MODULE_CLASS.match(name):
            cls = self._made[name] = self._import(name)
            return cls
        if self.plugin_group and not self._plugins_loaded:
            self._load_plugins()
            return self.get(name)
        if name in self._plugin_errors:
            raise XBenchError(self._plugin_errors[name])
        msg = unknown_name(self.kind, name, list(self._classes))
        if self._plugin_errors:
            msg += "; plugins that failed to load: " + ", ".join(map(repr, self._plugin_errors))
        raise XBenchError(msg)

    def canonical(self, name: str) -> str:
        """The name results are recorded under: the class's own ``name`` (so ``my_pkg.mod:MyClass``
        and an entry point's name become the class's ``name``); raises like :meth:`get`."""
        return self.get(name).name  # type: ignore[attr-defined]

    def names(self) -> list[str]:
        """Registered names, plugins' included (a plugin that fails to load is a warning)."""
        self._load_plugins(warn=True)
        return list(self._classes)

    def __contains__(self, name: object) -> bool:
        try:
            self.get(str(name))
        except XBenchError:
            return False
        return True

    def __iter__(self) -> Iterator[type[T]]:
        self._load_plugins(warn=True)
        return iter(list(self._classes.values()))

    # -- plugins ---------------------------------------------------------------------------
    def _check_class(self, obj: Any, what: str) -> type[T]:
        base = self.base.__name__ if self.base is not None else self.kind
        if not (isinstance(obj, type) and self.base is not None and issubclass(obj, self.base)):
            got = f"class {obj.__module__}.{obj.__qualname__}" if isinstance(obj, type) else type(obj).__name__
            raise XBenchError(f"{what} is not a subclass of xbench's {base} (got a {got})")
        if "name" not in obj.__dict__ or not isinstance(obj.__dict__["name"], str):
            raise XBenchError(f"{what}: class {obj.__qualname__} sets no 'name' of its own "
                              f"(results are recorded under it)")
        return obj

    def _import(self, spec: str) -> type[T]:
        """The class named by ``pkg.module:Class``, imported (which registers it); a plain function
        is turned into a class by the registry's ``wrap`` where it has one (explainers)."""
        where = f"{self.kind} {spec!r}"
        obj = import_object(spec, where)
        if not isinstance(obj, type) and callable(obj) and self.wrap is not None:
            obj = self.wrap(obj)
        return self._check_class(obj, where)

    def _load_plugins(self, warn: bool = False) -> None:
        """Load every entry point of the group once; failures are kept as one-line errors."""
        if self.plugin_group and not self._plugins_loaded:
            from importlib.metadata import entry_points

            self._plugins_loaded = True
            for ep in entry_points(group=self.plugin_group):
                dist = getattr(getattr(ep, "dist", None), "name", None)
                what = (f"{self.kind} plugin entry point '{ep.name} = {ep.value}' (group '{self.plugin_group}'"
                        + (f", distribution '{dist}')" if dist else ")"))
                try:
                    loaded = ep.load()
                except Exception as e:  # noqa: BLE001 - a broken plugin is one line, not a traceback
                    self._plugin_errors[ep.name] = f"{what} failed to load: {one_line(e)}"
                    continue
                try:
                    cls = self._check_class(loaded, what)
                except XBenchError as e:
                    self._plugin_errors[ep.name] = str(e)
                    continue
                if ep.name != cls.name:  # type: ignore[attr-defined]
                    self._made.setdefault(ep.name, cls)
        if warn:
            for msg in self._plugin_errors.values():
                if msg not in self._warned:
                    self._warned.add(msg)
                    self.warn(msg)

    def reset_plugins(self) -> None:
        """Forget what entry-point discovery found (tests, or after installing a plugin in-process);
        the next lookup of an unknown name or listing discovers again."""
        self._plugins_loaded = False
        self._plugin_errors.clear()
        self._warned.clear()


def import_object(spec: str, where: str) -> Any:
    """The object named by ``pkg.module:attr`` (the attribute may be a dotted path); one-line errors
    naming ``where`` for a missing module, a failing import or a missing attribute."""
    module, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            raise XBenchError(f"{where}: no module named {e.name!r} (is it installed or on PYTHONPATH?)") \
                from None
        raise XBenchError(f"{where}: importing module {module!r} failed: {one_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - any error in the user's module is one line
        raise XBenchError(f"{where}: importing module {module!r} failed: {one_line(e)}") from None
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            if module == "__main__":
                raise XBenchError(f"{where}: {attr!r} was defined in a script or notebook (__main__) and cannot "
                                  f"be imported again; define it in a module to reproduce this run")
            raise XBenchError(f"{where}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def one_line(e: BaseException) -> str:
    """``ExceptionType: message`` on one line (at most 300 characters of message)."""
    msg = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {msg[:300]}"


def unknown_name(kind: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


def wrong_type(default: Any, value: Any, types: tuple[type, ...] | None = None) -> str | None:
    """What ``value`` must be, if its type cannot stand in for the parameter's ``default``'s, else None.

    The default says the type: a bool takes a bool; an int an int (not a bool); a float an int or a
    float; a string a string; a list or tuple a list or tuple. A ``None`` default, or a ``None``
    value where the default is a container, takes anything (the class checks it). ``types``, where
    given, are the types it takes instead (a bool only if ``bool`` is among them)."""
    if types:
        ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        return None if ok else " or ".join(t.__name__ for t in types)
    if default is None or (value is None and isinstance(default, (list, tuple, dict))):
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, (list, tuple)):
        return None if isinstance(value, (list, tuple)) else "a list"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "a mapping"
    return None


class Registered:
    """Base for registered classes; subclasses set ``name`` and are added to ``registry``."""

    name: ClassVar[str]
    registry: ClassVar[Registry[Any]]
    #: parameter defaults, named as captum names them where captum has the method
    params: ClassVar[dict[str, Any]] = {}
    #: bump when the class's output changes, to invalidate cached results
    version: ClassVar[int] = 1
    #: check given parameters against the defaults' types (:func:`wrong_type`); off where the
    #: parameters are another library's, passed through (the Quantus bridge)
    typed_params: ClassVar[bool] = True
    #: parameters that take other types than their default's, e.g. ``{"patch": (str, int)}``
    param_types: ClassVar[dict[str, tuple[type, ...]]] = {}

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
        bad = self.mistyped(params)
        if bad:
            raise XBenchError(f"{self.registry.kind} {self.name!r}: parameter {bad[0]!r} must be {bad[1]}, "
                              f"got {params[bad[0]]!r}")
        self.p: dict[str, Any] = {**self.params, **params}

    @classmethod
    def mistyped(cls, params: dict[str, Any]) -> tuple[str, str] | None:
        """(name, what it must be) of the first known parameter in ``params`` whose value's type cannot
        stand in for its default's (:func:`wrong_type`; ``param_types`` overrides), else None."""
        if not cls.typed_params:
            return None
        for k, v in params.items():
            why = wrong_type(cls.params[k], v, cls.param_types.get(k)) if k in cls.params else None
            if why:
                return k, why
        return None

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().split("\n")[0]
