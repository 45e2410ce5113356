"""Every public callable of scpo documents its parameters (numpydoc ``Parameters`` section).

Modelled on python-control's ``control/tests/docstrings_test.py``. Public means: named in the
``__all__`` of the module that defines it. For a function, every parameter (``*args`` and
``**kwargs`` by their names) must appear in its ``Parameters`` section; for a class, every
constructor parameter must appear in the class docstring's ``Parameters`` or ``Attributes``
section (dataclass fields count as constructor parameters), and every public method defined on
the class must document its own parameters. Several names on one line (``a, b : float``) count.
The command functions of :mod:`scpo.cli` are documented by their typer help strings instead.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re

import pytest

import scpo

_SECTION = re.compile(r"^(Parameters|Attributes|Other Parameters)\n-+\n", re.M)
_ANY_SECTION = re.compile(r"^[A-Z][A-Za-z ]+\n-+\n", re.M)


def _documented(doc: str | None) -> set[str]:
    """Names listed in the Parameters / Attributes sections of a numpydoc docstring."""
    names: set[str] = set()
    if not doc:
        return names
    for m in _SECTION.finditer(doc):
        rest = doc[m.end():]
        nxt = _ANY_SECTION.search(rest)
        body = rest[: nxt.start()] if nxt else rest
        for line in body.splitlines():
            if not line or line[0].isspace():
                continue
            head = line.split(" : ")[0]
            for part in head.split(","):
                names.add(part.strip().lstrip("*"))
    return names


def _params(fn) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls")]


def _modules():
    yield scpo
    for info in pkgutil.walk_packages(scpo.__path__, "scpo."):
        if info.name.startswith("scpo.cli"):
            continue
        yield importlib.import_module(info.name)


def _public_callables():
    for mod in _modules():
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name, None)
            if obj is None or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{mod.__name__}.{name}", obj, _params(obj), inspect.getdoc(obj)
            elif inspect.isclass(obj):
                doc = inspect.getdoc(obj) or ""
                if dataclasses.is_dataclass(obj):
                    ctor = [f.name for f in dataclasses.fields(obj) if f.init and not f.name.startswith("_")]
                elif "__init__" in vars(obj):
                    ctor = _params(obj.__init__)
                    doc = doc + "\n\n" + (inspect.getdoc(obj.__init__) or "")
                else:
                    ctor = []
                yield f"{mod.__name__}.{name}", obj, ctor, doc
                for meth_name, meth in vars(obj).items():
                    if meth_name.startswith("_"):
                        continue
                    fn = meth.__func__ if isinstance(meth, (classmethod, staticmethod)) else meth
                    if inspect.isfunction(fn):
                        yield f"{mod.__name__}.{name}.{meth_name}", fn, _params(fn), inspect.getdoc(fn)


CASES = list(_public_callables())


def test_there_are_public_callables():
    assert len(CASES) > 100


@pytest.mark.parametrize("qualname, obj, params, doc", CASES, ids=[c[0] for c in CASES])
def test_parameters_are_documented(qualname, obj, params, doc):
    if not params:
        return
    missing = [p for p in params if p not in _documented(doc)]
    assert not missing, f"{qualname}: parameter(s) {missing} not documented in a numpydoc Parameters/Attributes section"
