"""Every experiment config is listed with its paper and figures; the README matches the code."""

import importlib
import importlib.util
import json
import pathlib
import re
import subprocess
import sys

import pytest

from experiments import list as experiments_list
from metalm import meta, mtl

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIG_FILES = experiments_list.config_files()
README = (REPO / "README.md").read_text()


def config_id(path: pathlib.Path) -> str:
  return f"{path.parent.parent.name}/{path.stem}"


def import_config(path: pathlib.Path):
  return importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))


def test_every_family_has_configs():
  families = {path.parent.parent.name for path in CONFIG_FILES}
  assert {"fewshot", "sinusoid", "multitask"} <= families
  assert not [p for p in CONFIG_FILES if p.name in ("base.py", "__init__.py")]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=config_id)
def test_config_declares_what_it_reproduces(path):
  module = import_config(path)
  assert hasattr(module, "REPRODUCES"), (
      f"{path.relative_to(REPO)} has no REPRODUCES (fields: {', '.join(experiments_list.FIELDS)})")
  reproduces = module.REPRODUCES
  assert set(reproduces) == set(experiments_list.FIELDS)
  for field in ("paper", "table", "metric", "main"):
    assert isinstance(reproduces[field], str) and reproduces[field].strip(), field
  assert importlib.util.find_spec(reproduces["main"]) is not None, reproduces["main"]
  assert isinstance(reproduces["expected"], dict) and reproduces["expected"]
  assert experiments_list.problems(reproduces) == []


@pytest.mark.parametrize("path", CONFIG_FILES, ids=config_id)
def test_every_expected_setting_is_a_config_argument(path):
  """``get_config`` accepts every key of ``expected``, and its smoke variant when it has one."""
  module = import_config(path)
  smoke = "smoke" in (module.__doc__ or "")
  for argument, figure in module.REPRODUCES["expected"].items():
    assert isinstance(figure, str) and figure.strip(), argument
    # As ml_collections' config flag calls it: no argument when nothing follows the ':'.
    config = module.get_config(*([argument] if argument else []))
    assert config is not None and "seed" in config, argument
    if smoke:
      module.get_config(",".join(part for part in (argument, "smoke") if part))


def test_lister_lists_every_config_file_as_json():
  out = subprocess.run([sys.executable, "-m", "experiments.list", "--format=json"], cwd=REPO,
                       capture_output=True, text=True, check=True).stdout
  entries = json.loads(out)
  listed = {entry["path"] for entry in entries}
  assert listed == {path.relative_to(REPO).as_posix() for path in CONFIG_FILES}
  for entry in entries:
    assert entry["runs"]
    for run in entry["runs"]:
      config = entry["path"] + (f":{run['argument']}" if run["argument"] else "")
      assert run["command"].startswith(f"python -m {entry['main']} --config={config} "
                                       f"--workdir=runs/{entry['family']}_{entry['name']}")


def test_lister_command_and_formats(capsys):
  assert experiments_list.command(
      "experiments.fewshot.main", "experiments/fewshot/configs/maml.py", "fewshot", "maml",
      "20w1s,smoke") == ("python -m experiments.fewshot.main "
                         "--config=experiments/fewshot/configs/maml.py:20w1s,smoke "
                         "--workdir=runs/fewshot_maml_20w1s_smoke")
  assert experiments_list.command(
      "experiments.sinusoid.main", "experiments/sinusoid/configs/maml.py", "sinusoid", "maml",
      "") == ("python -m experiments.sinusoid.main "
              "--config=experiments/sinusoid/configs/maml.py --workdir=runs/sinusoid_maml")
  assert experiments_list.main(["--family=sinusoid", "--format=markdown"]) == 0
  markdown = capsys.readouterr().out
  assert markdown.startswith("| config | paper | table | metric | argument | expected |")
  assert "`sinusoid/maml`" in markdown and "fewshot" not in markdown
  assert experiments_list.main(["--family=fewshot"]) == 0
  text = capsys.readouterr().out
  assert "fewshot/maml\n" in text and "98.7 ± 0.4" in text
  assert experiments_list.main(["--family=nonexistent"]) == 1
  assert "known: [" in capsys.readouterr().err


def test_lister_does_not_import_jax():
  code = "import sys, experiments.list; assert 'jax' not in sys.modules, 'jax imported'"
  subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def write_family(root: pathlib.Path, files: dict[str, str]) -> None:
  configs = root / "fam" / "configs"
  configs.mkdir(parents=True)
  for package in (root, root / "fam", configs):
    (package / "__init__.py").write_text("")
  for name, text in files.items():
    (configs / name).write_text(text)


GOOD = '''
REPRODUCES = dict(paper="P", table="T", metric="M", expected={"a": "1.0"}, main="json")


def get_config(arg=None):
  return arg
'''


def test_config_without_reproduces_is_an_error(tmp_path, monkeypatch, capsys):
  root = tmp_path / f"exp_{tmp_path.name}"
  write_family(root, {
      "base.py": "SHARED = 1\n",  # A helper: never listed, needs no REPRODUCES.
      "good.py": GOOD,
      "bare.py": "def get_config(arg=None):\n  return arg\n",
      "partial.py": 'REPRODUCES = dict(paper="P", table="T", expected={}, main="json")\n',
  })
  monkeypatch.syspath_prepend(str(tmp_path))
  assert [p.name for p in experiments_list.config_files(root)] == [
      "bare.py", "good.py", "partial.py"]
  assert experiments_list.load(root / "fam" / "configs" / "good.py", root)["runs"] == [
      {"argument": "a", "expected": "1.0",
       "command": f"python -m json --config={root.name}/fam/configs/good.py:a "
                  "--workdir=runs/fam_good_a"}]
  with pytest.raises(experiments_list.MetadataError) as error:
    experiments_list.discover(root)
  message = str(error.value)
  assert f"{root.name}/fam/configs/bare.py: no REPRODUCES" in message
  assert "paper, table, metric, expected, main" in message
  assert f"{root.name}/fam/configs/partial.py: malformed REPRODUCES" in message
  assert "missing field(s) metric" in message and "expected must be a non-empty dict" in message
  assert "good.py" not in message

  monkeypatch.setattr(experiments_list, "ROOT", root)
  assert experiments_list.main([]) == 1
  assert "bare.py: no REPRODUCES" in capsys.readouterr().err


def test_readme_paths_and_modules_exist():
  paths = set(re.findall(r"(?<![\w/.])((?:metalm|experiments|tests)/[\w/]*\w\.py)", README))
  assert len(paths) > 20
  assert [p for p in sorted(paths) if not (REPO / p).is_file()] == []
  modules = set(re.findall(r"python -m ([\w.]+)", README)) - {"pytest", "pip"}
  assert [m for m in sorted(modules) if importlib.util.find_spec(m) is None] == []


def test_readme_names_every_meta_learner_balancer_and_entry_point():
  assert [name for name in meta.METHODS if f"`{name}`" not in README] == []
  assert [name for name in mtl.BALANCERS if f"`{name}`" not in README] == []
  mains = {import_config(path).REPRODUCES["main"] for path in CONFIG_FILES}
  assert [m for m in sorted(mains) if f"python -m {m}" not in README] == []


def test_readme_example_command_is_a_listed_command():
  commands = {run["command"] for entry in experiments_list.discover()
              for run in entry["runs"]}
  flat = re.sub(r" \\\n\s+", " ", README)
  shown = [c for c in re.findall(r"python -m experiments\.\w+\.main --config=\S+ --workdir=\S+",
                                 flat) if "--workdir=runs/" in c]
  assert shown and set(shown) <= commands, set(shown) - commands
