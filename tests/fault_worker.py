"""The sinusoid experiment's entry point with one fault injected, for tests/test_faults.py.

  python tests/fault_worker.py FAULT STEP -- <experiments.sinusoid.main flags>

FAULT is one of:
  kill_while_saving   SIGKILL the process while the checkpoint of STEP is being
                      committed: its files are written, the directory not yet renamed.
  disk_full_after     once the checkpoint of STEP is complete, limit the size of every
                      file this process writes to zero bytes (RLIMIT_FSIZE), so every
                      later write fails as on a full disk.
"""

import os
import resource
import signal
import sys

from absl import app
from orbax.checkpoint._src.path import atomicity

from experiments.sinusoid import main as sinusoid_main
from metalm.train import checkpoint


def kill_while_saving(step: int) -> None:
  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def finalize_or_die(self, *args, **kwargs):
    if self._final_path.name == str(step):
      os.kill(os.getpid(), signal.SIGKILL)
    return await finalize(self, *args, **kwargs)

  atomicity.AtomicRenameTemporaryPath.finalize = finalize_or_die


def disk_full_after(step: int) -> None:
  save = checkpoint.Checkpointer.save

  def save_then_fill_the_disk(self, at_step, state):
    save(self, at_step, state)
    if at_step == step:
      self.wait()
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Writes fail with EFBIG instead.
      _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
      resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))

  checkpoint.Checkpointer.save = save_then_fill_the_disk


FAULTS = {"kill_while_saving": kill_while_saving, "disk_full_after": disk_full_after}

if __name__ == "__main__":
  fault, step, separator, *flags = sys.argv[1:]
  assert separator == "--", "usage: fault_worker.py FAULT STEP -- FLAGS"
  FAULTS[fault](int(step))
  app.run(sinusoid_main.main, argv=[sys.argv[0], *flags])
