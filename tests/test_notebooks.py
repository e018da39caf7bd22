"""The notebooks of ``notebooks/``: stored without outputs, and run top to bottom.

Every ``notebooks/*.ipynb`` is picked up. Each runs in a fresh Jupyter kernel with
``METALM_NOTEBOOK_SMOKE=1`` (the notebook's first code cell then picks tiny sizes) and
``METALM_NOTEBOOK_WORKDIR`` set to a temporary folder for its run directories, in the
environment of a user's shell (without the 8 forced CPU devices of ``conftest.py``).
A notebook whose metadata holds ``{"metalm": {"needs_data": true}}`` is skipped when
``METALM_DATA_DIR`` is unset.
"""

import os
import pathlib

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600
KERNEL_STARTUP_TIMEOUT_S = 180


def _read(path):
  return nbformat.read(path, as_version=4)


def test_notebooks_found():
  names = {path.name for path in NOTEBOOKS}
  assert {"quickstart.ipynb", "fewshot_omniglot.ipynb", "multitask.ipynb"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_without_outputs(path):
  notebook = _read(path)
  nbformat.validate(notebook)
  for index, cell in enumerate(notebook.cells):
    if cell.cell_type != "code":
      continue
    assert not cell.outputs, (
        f"{path.name}: code cell {index} has stored outputs; clear them before saving "
        "(e.g. jupyter nbconvert --clear-output --inplace).")
    assert cell.execution_count is None, (
        f"{path.name}: code cell {index} has execution count {cell.execution_count}; clear "
        "the outputs before saving.")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_runs_top_to_bottom(path, tmp_path, monkeypatch):
  notebook = _read(path)
  needs_data = notebook.metadata.get("metalm", {}).get("needs_data", False)
  if needs_data and not os.environ.get("METALM_DATA_DIR"):
    pytest.skip(f"{path.name} needs data: METALM_DATA_DIR is unset; point it at the "
                "datasets directory.")
  # The kernel inherits this process's environment.
  monkeypatch.delenv("XLA_FLAGS", raising=False)  # A user's shell: one CPU device.
  monkeypatch.delenv("MPLBACKEND", raising=False)  # The kernel's inline figures.
  monkeypatch.setenv("METALM_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("METALM_NOTEBOOK_WORKDIR", str(tmp_path / "runs"))
  client = nbclient.NotebookClient(
      notebook, timeout=CELL_TIMEOUT_S, startup_timeout=KERNEL_STARTUP_TIMEOUT_S,
      kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
  try:
    client.execute()
  except nbclient.exceptions.CellExecutionError as error:
    pytest.fail(f"{path.name} failed when run top to bottom:\n{error}", pytrace=False)
