"""Each family's defaults, read from the code and written into its docstring.

A default lives once: in the constructor's signature, in the family's ``_DEFAULTS`` (values that
differ under DP), in a property, or as a rule sized at fit time (``_RULES``, in words). The docstring's
``Args`` entries get a generated "Default: ..." sentence from :func:`default_values`, so they cannot
drift from what a fit uses, and published settings are read from the same code
(``resolved_params``).
"""

from __future__ import annotations

import re
from typing import Any

#: Parameters whose defaults are the DP switch itself.
_SWITCHES = ("epsilon", "delta", "max_grad_norm", "dp")
_ARG = re.compile(r"^(?P<indent> +)(?P<name>\w+): ")


def default_values(cls: Any) -> dict[str, tuple[Any, Any]]:
    """``{parameter: (default without DP, default under DP)}`` for a concrete family, as its code
    resolves them on an unfitted model; rules sized at fit time are given in words."""
    plain = cls().resolved_params()
    private = cls(epsilon=1.0).resolved_params()
    rules: dict[str, tuple[str | None, str | None]] = getattr(cls, "_RULES", {})
    out = {}
    for name in cls._param_names():
        if name in _SWITCHES:
            continue
        rule_plain, rule_dp = rules.get(name, (None, None))
        out[name] = (rule_plain or plain.get(name), rule_dp or private.get(name))
    return out


def _render(value: Any) -> str:
    if isinstance(value, str) and (value.startswith("auto:") or " " in value):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def default_sentence(plain: Any, private: Any) -> str:
    """The generated sentence for one parameter."""
    if _render(plain) == _render(private):
        return f"Default: {_render(plain)}."
    return f"Default: {_render(plain)}; under DP {_render(private)}."


def document_defaults(cls: Any) -> None:
    """Append each single-name ``Args`` entry of ``cls``'s docstring with its generated default."""
    doc = cls.__dict__.get("__doc__")
    if not doc or "Args:" not in doc:
        return
    cls._raw_doc = doc
    values = default_values(cls)
    lines = doc.split("\n")
    out: list[str] = []
    pending: tuple[str, str] | None = None  # (indent of the entry, its sentence) until it ends
    in_args, entry_indent = False, -1
    for line in lines:
        match = _ARG.match(line)
        starts_entry = in_args and line.strip() != "" and len(line) - len(line.lstrip()) == entry_indent
        ends_args = in_args and line.strip() == ""
        if pending is not None and (starts_entry or ends_args):
            out.append(pending[0] + "    " + pending[1])
            pending = None
        if line.strip() == "Args:":
            in_args, entry_indent = True, len(line) - len(line.lstrip()) + 4
        elif ends_args:
            in_args = False
        if starts_entry and match is not None and match["name"] in values:
            pending = (match["indent"], default_sentence(*values[match["name"]]))
        out.append(line)
    if pending is not None:
        out.append(pending[0] + "    " + pending[1])
    cls.__doc__ = "\n".join(out)
