"""Checks a config against its reference so that typos fail loudly, by name."""

import difflib

import ml_collections


def check_fields(
    config: ml_collections.ConfigDict,
    reference: ml_collections.ConfigDict,
    *,
    free: tuple[str, ...] = (),
    prefix: str = "config",
) -> None:
  """Raises ValueError naming every field of ``config`` that ``reference`` lacks.

  Args:
    config: the config to check.
    reference: a config with every allowed field.
    free: dotted paths (relative to ``config``) whose sub-fields are checked
      elsewhere, e.g. ``"model"``, checked by ``metalm.models.build``.
    prefix: the name printed for ``config``.
  """
  problems = []
  for name in config.keys():
    path = f"{prefix}.{name}"
    if name not in reference:
      close = difflib.get_close_matches(name, list(reference.keys()), n=1)
      hint = f" (did you mean {prefix}.{close[0]}?)" if close else ""
      problems.append(f"unknown field {path}{hint}")
      continue
    if name in free:
      continue
    value, ref = config[name], reference[name]
    if isinstance(ref, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        problems.append(f"{path} must be a group of fields, got {value!r}")
        continue
      sub_free = tuple(
          f[len(name) + 1 :] for f in free if f.startswith(name + ".")
      )
      try:
        check_fields(value, ref, free=sub_free, prefix=path)
      except ValueError as e:
        problems.append(str(e))
  missing = sorted(set(reference.keys()) - set(config.keys()))
  problems += [f"missing field {prefix}.{name}" for name in missing]
  if problems:
    raise ValueError("Bad config: " + "; ".join(problems) + ".")
