"""Small explicit name -> factory tables with errors that name the bad choice."""

import difflib
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
