"""Checks of user-supplied values, with errors that name the value and the fix.

Bad values are caught where they enter metalm (configs, optimizer and model fields,
user arrays) rather than deep inside a jitted computation.
"""

import math
import numbers
from typing import Any

import numpy as np


def is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(value, where: str, *, minimum: int | None = None) -> int:
  """``value`` as an int, if it is one and at least ``minimum``; else a ValueError."""
  if not is_int(value) or (minimum is not None and value < minimum):
    bound = f" >= {minimum}" if minimum is not None else ""
    raise ValueError(f"{where} must be an integer{bound}; got {value!r}.")
  return int(value)


def real(value, where: str, *, minimum: float | None = None, positive: bool = False,
         below: float | None = None) -> float:
  """``value`` as a finite float within the bounds; else a ValueError."""
  ok = is_real(value) and math.isfinite(value)
  ok = ok and (minimum is None or value >= minimum) and (not positive or value > 0)
  ok = ok and (below is None or value < below)
  if not ok:
    bounds = [b for b in (f">= {minimum}" if minimum is not None else "",
                          "> 0" if positive else "",
                          f"< {below}" if below is not None else "") if b]
    bound = f" {' and '.join(bounds)}" if bounds else ""
    raise ValueError(f"{where} must be a finite number{bound}; got {value!r}.")
  return float(value)


def numeric_array(value: Any, where: str, *, dtype=np.float32) -> np.ndarray:
  """``value`` as a finite numeric array of ``dtype``; else a ValueError naming it."""
  array = np.asarray(value)
  if array.dtype.kind not in "biuf":
    raise ValueError(f"{where} must hold numbers; got an array of dtype {array.dtype}.")
  array = array.astype(dtype)
  if array.dtype.kind == "f" and not np.isfinite(array).all():
    bad = np.argwhere(~np.isfinite(array))[0]
    raise ValueError(f"{where} holds a non-finite value (NaN or infinity) at index "
                     f"{tuple(int(i) for i in bad)}.")
  return array
