"""Every experiment config: the paper and table it reproduces, its figures, its commands.

  python -m experiments.list                                  # every family, as text
  python -m experiments.list --family=fewshot --format=markdown
  python -m experiments.list --format=json

Configs are found by path, ``experiments/<family>/configs/<name>.py`` (``base.py`` and
``__init__.py`` there are shared helpers, not experiments), and each one defines
``REPRODUCES``, for example::

  REPRODUCES = dict(
      paper="Finn et al. 2017, Model-Agnostic Meta-Learning ... (arXiv:1703.03400)",
      table="Table 1 (Omniglot, Conv-4)",
      metric="accuracy (%), 95% CI",
      expected={"5w1s": "98.7 ± 0.4", "20w1s": "95.8 ± 0.3"},
      main="experiments.fewshot.main",
  )

``expected`` maps each config argument (what follows ``:`` in ``--config``; ``""`` for
none) to the paper's figure, or to ``"not reported in the paper"``; ``main`` is the
module that runs the config. A config file without a well-formed ``REPRODUCES`` is an
error that names the file and the fields, so no experiment goes unlisted.
"""

import argparse
import importlib
import importlib.util
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent
HELPERS = ("__init__.py", "base.py")
FIELDS = {"paper": str, "table": str, "metric": str, "expected": dict, "main": str}
EXAMPLE = ('REPRODUCES = dict(paper="Author et al. YEAR, Title (arXiv:NNNN.NNNNN)", '
           'table="Table N (data set, model)", metric="accuracy (%), 95% CI", '
           'expected={"<config argument>": "<the paper\'s figure>"}, '
           'main="experiments.<family>.main")')
FORMATS = ("text", "markdown", "json")


class MetadataError(ValueError):
  """A config file without a well-formed ``REPRODUCES``."""


def config_files(root: pathlib.Path = ROOT, family: str | None = None) -> list[pathlib.Path]:
  """``root/<family>/configs/<name>.py`` files, sorted, without the shared helpers."""
  paths = sorted(p for p in root.glob("*/configs/*.py") if p.name not in HELPERS)
  if family is None:
    return paths
  families = sorted({p.parent.parent.name for p in paths})
  if family not in families:
    raise ValueError(f"No experiment family {family!r} under {root}; known: {families}.")
  return [p for p in paths if p.parent.parent.name == family]


def problems(reproduces) -> list[str]:
  """What is missing or malformed in a ``REPRODUCES`` value; empty when well formed."""
  if not isinstance(reproduces, dict):
    return [f"REPRODUCES is a {type(reproduces).__name__}, not a dict"]
  out = []
  missing = [name for name in FIELDS if name not in reproduces]
  if missing:
    out.append("missing field(s) " + ", ".join(missing))
  unknown = sorted(set(reproduces) - set(FIELDS))
  if unknown:
    out.append("unknown field(s) " + ", ".join(map(str, unknown)))
  for name, kind in FIELDS.items():
    value = reproduces.get(name)
    if name in reproduces and (not isinstance(value, kind) or not value):
      out.append(f"{name} must be a non-empty {kind.__name__}")
  expected = reproduces.get("expected")
  if isinstance(expected, dict):
    bad = [k for k, v in expected.items()
           if not isinstance(k, str) or not isinstance(v, str) or not v.strip()]
    if bad:
      out.append(f"expected must map config arguments to non-empty figures; bad: {bad}")
  main = reproduces.get("main")
  if isinstance(main, str) and main:
    try:
      found = importlib.util.find_spec(main) is not None
    except ImportError:
      found = False
    if not found:
      out.append(f"main {main!r} is not an importable module")
  return out


def command(main: str, path: str, family: str, name: str, argument: str) -> str:
  """The command line that runs one config argument, with its own ``--workdir``."""
  config = f"{path}:{argument}" if argument else path
  workdir = "_".join([family, name] + [part for part in argument.split(",") if part])
  return f"python -m {main} --config={config} --workdir=runs/{workdir}"


def load(path: pathlib.Path, root: pathlib.Path = ROOT) -> dict:
  """One config file's entry: its ``REPRODUCES`` fields and a command per argument."""
  relative = path.relative_to(root.parent)
  if str(root.parent) not in sys.path:
    sys.path.insert(0, str(root.parent))
  try:
    module = importlib.import_module(".".join(relative.with_suffix("").parts))
  except Exception as e:
    raise MetadataError(f"{relative}: import failed ({type(e).__name__}: {e}).") from e
  if not hasattr(module, "REPRODUCES"):
    raise MetadataError(
        f"{relative}: no REPRODUCES. Every experiment config defines one, with the fields "
        f"{', '.join(FIELDS)}:\n    {EXAMPLE}")
  bad = problems(module.REPRODUCES)
  if bad:
    raise MetadataError(f"{relative}: malformed REPRODUCES: {'; '.join(bad)}. The fields "
                        f"are {', '.join(FIELDS)}:\n    {EXAMPLE}")
  meta = module.REPRODUCES
  family, name = path.parent.parent.name, path.stem
  return {
      "config": f"{family}/{name}", "family": family, "name": name,
      "path": relative.as_posix(),
      **{field: meta[field] for field in ("paper", "table", "metric", "main")},
      "runs": [{"argument": argument, "expected": figure,
                "command": command(meta["main"], relative.as_posix(), family, name,
                                   argument)}
               for argument, figure in meta["expected"].items()],
  }


def discover(root: pathlib.Path = ROOT, family: str | None = None) -> list[dict]:
  """Every config's entry; raises ``MetadataError`` naming every file that lacks one."""
  entries, errors = [], []
  for path in config_files(root, family):
    try:
      entries.append(load(path, root))
    except MetadataError as e:
      errors.append(str(e))
  if errors:
    raise MetadataError("\n".join(errors))
  return entries


def _argument(run: dict) -> str:
  return run["argument"] or "(no argument)"


def as_text(entries: list[dict]) -> str:
  lines = []
  for entry in entries:
    lines += [entry["config"], f"  paper:   {entry['paper']}", f"  table:   {entry['table']}",
              f"  metric:  {entry['metric']}"]
    width = max(len(_argument(run)) for run in entry["runs"])
    for run in entry["runs"]:
      lines += [f"  {_argument(run):<{width}}  {run['expected']}", f"      {run['command']}"]
    lines.append("")
  runs = sum(len(entry["runs"]) for entry in entries)
  lines.append(f"{len(entries)} config files, {runs} settings.")
  return "\n".join(lines)


def as_markdown(entries: list[dict]) -> str:
  cell = lambda text: text.replace("|", "\\|")
  lines = ["| config | paper | table | metric | argument | expected | command |",
           "|---|---|---|---|---|---|---|"]
  for entry in entries:
    for i, run in enumerate(entry["runs"]):
      head = ([f"`{entry['config']}`", entry["paper"], entry["table"], entry["metric"]]
              if i == 0 else ["", "", "", ""])
      lines.append("| " + " | ".join(
          [cell(text) for text in head]
          + [f"`{_argument(run)}`", cell(run["expected"]), f"`{run['command']}`"]) + " |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m experiments.list",
      description="Lists every experiment config with the paper and table it reproduces, "
                  "the paper's figure for each config argument, and the command to run it.")
  parser.add_argument("--family", default=None,
                      help="only this family (a folder of experiments/, e.g. fewshot)")
  parser.add_argument("--format", default="text", choices=FORMATS)
  args = parser.parse_args(argv)
  try:
    entries = discover(ROOT, args.family)
  except (MetadataError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if args.format == "json":
    print(json.dumps(entries, indent=2, ensure_ascii=False))
  else:
    print(as_markdown(entries) if args.format == "markdown" else as_text(entries))
  return 0


if __name__ == "__main__":
  sys.exit(main())
