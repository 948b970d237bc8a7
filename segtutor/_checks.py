"""Argument checks shared by the whole package (private; imports only torch).

One wording everywhere: ``"{name} must be {what is valid}, got {value!r}"``. A value of
the wrong *type* raises ``TypeError`` (its type is named too); a value of the right type
outside the valid range raises ``ValueError``. ``bool`` is never accepted as an ``int``
(``True`` is an ``int`` in Python, but ``kernel_size=True`` is a mistake), and nothing is
coerced: a function gets back exactly what it was given, or an error.

    >>> check_positive_int(3, "num_classes")
    3
    >>> check_int_pair(2, "stride", minimum=1)
    (2, 2)

:data:`IGNORE_INDEX` lives here too, because every layer of the package (data, losses,
metrics, training) needs the same value and this is the one module they all import.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor

#: Mask value for pixels that no loss or metric counts (object borders, unlabelled pixels,
#: padding), as in Pascal VOC.
IGNORE_INDEX = 255

T = TypeVar("T")


def describe(value: object) -> str:
    """``repr(value)`` shortened, or a tensor's dtype and shape (never its contents)."""
    if isinstance(value, Tensor):
        return f"a tensor of dtype {value.dtype} and shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_error(name: str, what: str, value: object) -> TypeError:
    return TypeError(f"{name} must be {what}, got {describe(value)} ({type(value).__name__})")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _int_kind(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an int in [{minimum}, {maximum}]"
    if minimum == 1:
        return "a positive int"
    if minimum == 0:
        return "a non-negative int"
    if minimum is not None:
        return f"an int >= {minimum}"
    if maximum is not None:
        return f"an int <= {maximum}"
    return "an int"


def check_int(value: object, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Return ``value`` (as a Python ``int``) if it is an integer within the bounds.

    Raises:
        TypeError: ``value`` is not an integer (``bool`` and ``float`` included).
        ValueError: ``value`` is below ``minimum`` or above ``maximum``.
    """
    what = _int_kind(minimum, maximum)
    if not _is_int(value):
        raise _type_error(name, what, value)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {what}, got {value}")
    return value


def check_positive_int(value: object, name: str) -> int:
    """:func:`check_int` with ``minimum=1``."""
    return check_int(value, name, minimum=1)


def check_non_negative_int(value: object, name: str) -> int:
    """:func:`check_int` with ``minimum=0``."""
    return check_int(value, name, minimum=0)


def check_optional_int(value: object, name: str, *, minimum: int | None = None) -> int | None:
    """``None``, or an int as :func:`check_int` checks it."""
    if value is None:
        return None
    what = f"None or {_int_kind(minimum, None)}"
    if not _is_int(value):
        raise _type_error(name, what, value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {what}, got {value}")
    return int(value)


def check_int_pair(value: object, name: str, *, minimum: int | None = None) -> tuple[int, int]:
    """An ``int`` or a pair of ``int`` ``(height, width)`` as a pair, as ``nn.Conv2d`` takes sizes.

    Raises:
        TypeError: ``value`` is neither an int nor a sequence of two ints.
        ValueError: a sequence of another length, or an entry below ``minimum``.
    """
    what = f"{_int_kind(minimum, None)} or a pair (height, width) of them"
    if _is_int(value):
        pair: tuple[Any, Any] = (value, value)
    elif isinstance(value, (tuple, list, torch.Size)):
        if len(value) != 2:
            raise ValueError(f"{name} must be {what}, got {describe(value)} "
                             f"({len(value)} entries)")
        pair = (value[0], value[1])
        if not all(_is_int(v) for v in pair):
            raise _type_error(name, what, value)
    else:
        raise _type_error(name, what, value)
    result = (int(pair[0]), int(pair[1]))
    if minimum is not None and min(result) < minimum:
        raise ValueError(f"{name} must be {what}, got {describe(value)}")
    return result


def check_number(value: object, name: str, *, minimum: float | None = None,
                 maximum: float | None = None, strict_minimum: bool = False,
                 strict_maximum: bool = False, finite: bool = True) -> float:
    """Return ``value`` as a ``float`` if it is a real number (not ``bool``) within the bounds.

    Args:
        value: the value to check.
        name: the argument's name, used in the message.
        minimum, maximum: bounds; ``None`` for none.
        strict_minimum, strict_maximum: exclude the bound itself (``> minimum``).
        finite: refuse ``nan`` and infinities.

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: out of bounds, or not finite when ``finite``.
    """
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if strict_minimum else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"{'<' if strict_maximum else '<='} {maximum:g}")
    what = ("a finite number" if finite else "a number") + (
        " " + " and ".join(parts) if parts else "")
    if not _is_number(value):
        raise _type_error(name, what, value)
    number = float(value)
    bad = ((finite and not math.isfinite(number)) or math.isnan(number)
           or (minimum is not None and (number <= minimum if strict_minimum else number < minimum))
           or (maximum is not None and (number >= maximum if strict_maximum else number > maximum)))
    if bad:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def check_interval(value: object, name: str, *, minimum: float | None = None,
                   maximum: float | None = None, strict_minimum: bool = False,
                   integer: bool = False) -> tuple[Any, Any]:
    """A range ``(low, high)`` with ``low <= high``, both within the bounds.

    Args:
        value: a tuple or list of two numbers.
        name: the argument's name.
        minimum, maximum: bounds for both ends (``None`` for none).
        strict_minimum: ``low > minimum`` instead of ``>=``.
        integer: both ends must be ints (returned as ``int``); else numbers (as ``float``).

    Raises:
        TypeError: not a tuple or list, or an end that is not an int/number.
        ValueError: not two entries, ``low > high``, or an end out of bounds.
    """
    kind = "ints" if integer else "numbers"
    bounds = []
    if minimum is not None:
        bounds.append(f"{minimum:g} {'<' if strict_minimum else '<='} low")
    bounds.append("low <= high")
    if maximum is not None:
        bounds.append(f"high <= {maximum:g}")
    what = f"(low, high) of {kind} with {', '.join(bounds)}"
    is_kind = _is_int if integer else _is_number
    if not isinstance(value, (tuple, list)):
        raise _type_error(name, what, value)
    if len(value) != 2:
        raise ValueError(f"{name} must be {what}, got {describe(value)} ({len(value)} entries)")
    if not all(is_kind(v) for v in value):
        raise _type_error(name, what, value)
    low, high = (int(v) for v in value) if integer else (float(v) for v in value)
    too_low = minimum is not None and (low <= minimum if strict_minimum else low < minimum)
    if math.isnan(low) or math.isnan(high) or too_low or low > high or (
            maximum is not None and high > maximum):
        raise ValueError(f"{name} must be {what}, got {describe(value)}")
    return low, high


def check_positive_number(value: object, name: str) -> float:
    """A finite real number ``> 0``."""
    return check_number(value, name, minimum=0, strict_minimum=True)


def check_probability(value: object, name: str) -> float:
    """A real number in ``[0, 1]`` (a dropout rate, an opacity)."""
    return check_number(value, name, minimum=0, maximum=1)


def check_bool(value: object, name: str) -> bool:
    """``True`` or ``False`` (``0``, ``1`` and ``None`` are refused)."""
    if not isinstance(value, bool):
        raise _type_error(name, "True or False", value)
    return value


def check_optional_bool(value: object, name: str) -> bool | None:
    """``True``, ``False`` or ``None``."""
    if value is not None and not isinstance(value, bool):
        raise _type_error(name, "True, False or None", value)
    return value


def check_choice(value: T, name: str, choices: Collection[Any]) -> T:
    """``value`` if it equals one of ``choices`` *and has its type*, else ``ValueError``.

    The type must match too, so ``8.0`` or ``True`` is not taken for the choice ``8`` or
    ``1``. The message lists the choices, so a typo shows its fix.
    """
    if not any(type(choice) is type(value) and choice == value for choice in choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {describe(value)}")
    return value


def check_tensor(value: object, name: str, *, dims: int | Sequence[int] | None = None,
                 floating: bool | None = None, layout: str | None = None) -> Tensor:
    """Return ``value`` if it is a tensor with the expected number of dimensions and kind.

    Args:
        value: the value to check.
        name: the argument's name.
        dims: the allowed ``ndim`` (one int or several); ``None`` allows any.
        floating: ``True`` requires a floating-point dtype, ``False`` an integer one
            (``bool`` and complex refused); ``None`` allows any dtype.
        layout: how the shape reads, e.g. ``"[N, C, H, W]"``, for the messages.

    Raises:
        TypeError: not a tensor, or the wrong kind of dtype.
        ValueError: the wrong number of dimensions.
    """
    shape = f" {layout}" if layout else ""
    if not isinstance(value, Tensor):
        raise _type_error(name, f"a torch.Tensor{shape}", value)
    if floating is True and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor{shape}, got dtype {value.dtype}")
    if floating is False and (value.is_floating_point() or value.is_complex()
                              or value.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor{shape}, got dtype {value.dtype}")
    if dims is not None:
        allowed = (dims,) if isinstance(dims, int) else tuple(dims)
        if value.ndim not in allowed:
            expected = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {expected}{shape}, got shape {tuple(value.shape)}")
    return value


def check_labels(labels: Tensor, name: str, num_classes: int,
                 ignore_index: int | None = None) -> Tensor:
    """``labels`` if every value is a class id in ``[0, num_classes)`` or ``ignore_index``.

    One check for masks, targets and predicted labels. The elementwise test is cheap; the
    sorted offending values (at most ten) are computed only for the message.

    Raises:
        ValueError: a value outside ``[0, num_classes)`` that is not ``ignore_index``.
    """
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        valid |= labels == ignore_index
    if not bool(valid.all()):
        values = torch.unique(labels[~valid])[:10].tolist()
        allowed = f"[0, {num_classes})" + (
            f" or ignore_index={ignore_index}" if ignore_index is not None else "")
        raise ValueError(f"{name} contains labels {values}; valid labels are {allowed}")
    return labels


def check_callable(value: T, name: str) -> T:
    """``value`` if it can be called, else ``TypeError``."""
    if not callable(value):
        raise _type_error(name, "callable", value)
    return value
