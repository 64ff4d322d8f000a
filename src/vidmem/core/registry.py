"""One way to pick an implementation by name, for backend kinds, torch models and heads alike.

In the style of timm's `register_model` / `create_model` / `list_models`: an entry is
registered under a name with the facts other code needs about it (a backend kind: whether it
reads frames; a torch model: the value range its weights expect), and its implementation is
either the object itself or an import path ("package.module:Name") imported only when it is
built, so asking for facts never loads a heavy module. An unknown name is an error naming the
params key it came from and the registered names. Contract tests run over every entry of every
registry (tests/test_backend_registry.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vidmem.core.errors import ParamsError

T = TypeVar("T")
F = TypeVar("F")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    target: Any  # the implementation, or "package.module:Name" to import when first needed
    facts: T  # what callers may know without importing it


class Registry(Generic[T]):
    """Named implementations of one kind of thing (`what`: "backend kind", "torch model",
    "head"), each with facts of type T."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, target: Any, facts: T) -> Entry[T]:
        """Register `target` (an object, or "module:Name") under `name`; a later entry of the
        same name replaces it (a plug-in may override a built-in)."""
        self._entries[name] = Entry(name, target, facts)
        return self._entries[name]

    def register(self, name: str, facts: T) -> Callable[[F], F]:
        """A decorator form of `add` for an object defined right there."""
        def add(target: F) -> F:
            self.add(name, target, facts)
            return target
        return add

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entry(self, name: str, key: str | None = None) -> Entry[T]:
        """The entry `name`; an unknown one is a ParamsError naming the params `key` it came
        from and the registered names."""
        if name not in self._entries:
            raise ParamsError(f"{_where(key)}unknown {self.what} {name!r}: the registered ones "
                              f"are {self.names()}")
        return self._entries[name]

    def facts(self, name: str, key: str | None = None) -> T:
        return self.entry(name, key).facts

    def load(self, name: str, key: str | None = None) -> Any:
        """The implementation itself (its module imported now, when registered by path)."""
        target = self.entry(name, key).target
        return load_target(target) if isinstance(target, str) else target

    def resolve(self, name: Any, base: type, key: str | None = None) -> type:
        """The class `name` names: a registered one, or any `package.module:ClassName`, so that
        a plug-in needs no registration; either must be a subclass of `base`. Call it only with
        names params.yaml gave (an import path is imported). `key` names the params entry in
        errors, which list the registered names."""
        if isinstance(name, str) and name in self._entries:
            target = self.load(name, key)
        elif is_import_path(name):
            target = load_target(name)
        else:
            raise ParamsError(f"{_where(key)}unknown {self.what} {name!r}: the registered ones "
                              f"are {self.names()}, or a class by its import path, "
                              "package.module:ClassName")
        if not (isinstance(target, type) and issubclass(target, base)):
            raise ParamsError(f"{_where(key)}{self.what} {name!r} is not a vidmem {base.__name__} "
                              f"class ({base.__module__}.{base.__name__})")
        return target

    def create(self, name: str, *args: Any, key: str | None = None, **kwargs: Any) -> Any:
        """The implementation called with `args` (a class built, a builder run)."""
        return self.load(name, key)(*args, **kwargs)


def _where(key: str | None) -> str:
    """The prefix of an error about params entry `key`."""
    return f"params.yaml: '{key}': " if key else ""


def is_import_path(name: Any) -> bool:
    """Whether `name` is a `package.module:Name` path rather than a registered name."""
    return isinstance(name, str) and ":" in name


def load_target(target: str) -> Any:
    """The object at "package.module:Name"."""
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ParamsError(f"{target!r} is not an import path: use 'package.module:Name'")
    found = getattr(importlib.import_module(module_name), attribute, None)
    if found is None:
        raise ParamsError(f"{module_name} has no {attribute!r} (from {target!r})")
    return found
