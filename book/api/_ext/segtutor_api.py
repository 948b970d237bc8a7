"""Sphinx extension for the API reference (``book/api/``): which names autodoc shows.

``.. automodule:: segtutor.X`` with a bare ``:members:`` then documents exactly
:func:`public_names` of the module -- its ``__all__``, or (without one) the names its own
source defines at top level that do not start with an underscore, TypeVars left out --
whether or not a name has a docstring or a ``#:`` comment (autodoc alone drops
undocumented constants such as ``segtutor.train.CHECKPOINT_FORMAT``). Members of classes
keep autodoc's rule: only documented ones are shown, so a dataclass's fields appear once,
in its "Attributes" section, and ``forward`` without a docstring is not listed; a named
tuple's fields (documented only as "Alias for field number N") are not listed either.

Objects that ``segtutor`` re-exports from another library (``VGG16_Weights`` from
torchvision) get a line saying where they come from, and enumerations no constructor
signature. ``tests/project/test_api_reference.py`` uses :func:`public_names` too, so the
pages and the test agree on what "public" means.

Enable it in ``_config.yml``::

    sphinx:
      local_extensions:
        segtutor_api: book/api/_ext
"""

from __future__ import annotations

import ast
import enum
import inspect
import sys
from types import ModuleType
from typing import Any, TypeVar

from sphinx.application import Sphinx
from sphinx.errors import PycodeError
from sphinx.ext.autodoc import DataDocumenter, ModuleDocumenter
from sphinx.pycode import ModuleAnalyzer

PACKAGE = "segtutor"


def public_names(module: ModuleType) -> list[str]:
    """The names a module offers: its ``__all__``, else what its own source defines.

    Without ``__all__``: every top-level ``def``, ``class`` and assignment of the module's
    source whose name does not start with an underscore, except TypeVars (typing helpers,
    not API). Imported names do not count.
    """
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return list(declared)
    tree = ast.parse(inspect.getsource(module))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names.extend(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [name for name in dict.fromkeys(names)
            if not name.startswith("_") and not isinstance(vars(module).get(name), TypeVar)]


class _State:
    """The module autodoc is documenting now (set when its docstring is processed)."""

    module: ModuleType | None = None


def _remember_module(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                     lines: list[str]) -> None:
    if what == "module":
        _State.module = obj
    elif _is_foreign(obj):
        origin = f"{obj.__module__}.{obj.__qualname__}"
        lines[:0] = [f"Re-exported from ``{origin}``.", ""]


def _is_foreign(obj: Any) -> bool:
    """A class or function that segtutor re-exports from another library."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return False
    module = getattr(obj, "__module__", None) or ""
    return module != PACKAGE and not module.startswith(PACKAGE + ".")


def _skip_member(app: Sphinx, what: str, name: str, obj: Any, skip: bool,
                 options: Any) -> bool | None:
    """Show every public name of a module, documented or not; hide named tuples' fields.

    A ``NamedTuple``'s fields carry the generated docstring "Alias for field number N";
    listed, they would repeat the class's "Attributes" section (a duplicate object
    description when napoleon turns that section into attribute entries).
    """
    if what in ("class", "exception") and _is_namedtuple_field(obj):
        return True
    module = _State.module
    if what != "module" or not skip or module is None:
        return None
    excluded = options.get("exclude-members") or set()
    if name in excluded or name not in public_names(module):
        return None
    return False


def _is_namedtuple_field(obj: Any) -> bool:
    doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and doc.startswith("Alias for field number ")


def _drop_enum_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                         signature: str | None,
                         return_annotation: str | None) -> tuple[str, str | None] | None:
    """An enumeration is used through its members, not called: no ``(value, names=...)``."""
    if what == "class" and inspect.isclass(obj) and issubclass(obj, enum.Enum):
        return "", None
    return None


class PublicDataDocumenter(DataDocumenter):
    """A public constant or type alias of a module that has no ``#:`` comment there.

    autodoc's own :class:`~sphinx.ext.autodoc.DataDocumenter` takes module-level data only
    when the documented module's source comments it, so ``segtutor.data.IGNORE_INDEX``
    (defined, and commented, in ``segtutor._checks``) would be left out. This one takes the
    rest of a module's :func:`public_names` and looks for the ``#:`` comment in every
    ``segtutor`` module that binds the same object to the same name; without one the entry
    shows only the name and value, never the docstring of the value's type (``int``).
    """

    objtype = "publicdata"
    directivetype = "data"
    priority = DataDocumenter.priority - 1

    @classmethod
    def can_document_member(cls, member: Any, membername: str, isattr: bool,
                            parent: Any) -> bool:
        return (isinstance(parent, ModuleDocumenter) and not inspect.ismodule(member)
                and membername in public_names(parent.object))

    def get_doc(self) -> list[list[str]] | None:
        name = self.objpath[-1]
        homes = [self.modname] + sorted(
            modname for modname, module in list(sys.modules.items())
            if modname.startswith(PACKAGE + ".") and modname != self.modname
            and module is not None and vars(module).get(name, _MISSING) is self.object)
        for modname in homes:
            try:
                analyzer = ModuleAnalyzer.for_module(modname)
                analyzer.analyze()
            except PycodeError:
                continue
            comment = analyzer.attr_docs.get(("", name))
            if comment:
                return [list(comment)]
        return []


_MISSING = object()


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(PublicDataDocumenter)
    app.connect("autodoc-process-docstring", _remember_module)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-signature", _drop_enum_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
