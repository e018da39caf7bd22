"""Small explicit name -> factory tables with errors that name the bad choice."""

import difflib
import inspect
from typing import Mapping, TypeVar

T = TypeVar("T")


def lookup(kind: str, name: str, table: Mapping[str, T]) -> T:
  """Returns ``table[name]`` or raises a ValueError listing the valid names.

  Args:
    kind: what is being chosen, for the message (e.g. "meta-learner").
    name: the requested name.
    table: the registry.
  """
  if name in table:
    return table[name]
  close = difflib.get_close_matches(name, list(table), n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise ValueError(
      f"Unknown {kind} {name!r}.{hint} Choose one of: {', '.join(sorted(table))}."
  )


def check_keywords(factory, names, *, where: str, what: str, ignore=()) -> None:
  """Raises a ValueError naming every entry of ``names`` that ``factory`` does not take.

  Args:
    factory: the callable the keywords are meant for.
    names: keyword names taken from a config group.
    where: the config path, for the message (e.g. "config.outer_optimizer").
    what: what ``factory`` is, for the message (e.g. "optax.adam").
    ignore: parameters the config may not set (filled in by the caller).
  """
  accepted = set(inspect.signature(factory).parameters) - set(ignore)
  unknown = sorted(set(names) - accepted)
  if unknown:
    raise ValueError(f"Unknown field(s) {unknown} in {where} for {what}; "
                     f"it accepts: {sorted(accepted)}.")
