"""TensorBoard event files read back by TensorBoard itself, metrics, progress, plots."""

import glob
import json
import logging
import os

import numpy as np
import pytest
from matplotlib import image as mpl_image

from metalm.eval import plots
from metalm.train import metrics, tensorboard

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def accumulate(logdir):
  acc = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.SCALARS: 0,
                                  event_accumulator.IMAGES: 0})
  return acc.Reload()


def scalars(acc, tag):
  return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.mark.parametrize("data,expected", [
    (b"", 0x00000000),
    (b"a", 0xC1D04330),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),  # The iSCSI vectors of RFC 3720, B.4.
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
])
def test_crc32c_known_vectors(data, expected):
  assert tensorboard.crc32c(data) == expected


def test_tfrecord_framing():
  record = tensorboard.tfrecord(b"abc")
  assert record[:8] == (3).to_bytes(8, "little") and record[12:15] == b"abc"
  masked = tensorboard.masked_crc32c(b"abc")
  crc = tensorboard.crc32c(b"abc")
  assert masked == ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)
  assert record[15:] == masked.to_bytes(4, "little") and len(record) == 19


def test_tensorboard_reads_scalars_and_images(tmp_path):
  pixels = np.zeros((5, 7, 3), np.uint8)
  pixels[1, 2] = (255, 0, 10)
  with tensorboard.SummaryWriter(str(tmp_path)) as writer:
    for step in (1, 2, 3):
      writer.scalars(step, {"loss": 1.0 / step, "train/accuracy": 10.0 * step})
    writer.image(3, "pixels", pixels)
    writer.image(3, "as_png", tensorboard.encode_png(pixels[..., 0]))
  [path] = glob.glob(str(tmp_path / "events.out.tfevents.*"))
  assert os.path.basename(path).startswith("events.out.tfevents.")
  assert f".{os.getpid()}." in os.path.basename(path)
  acc = accumulate(tmp_path)
  assert scalars(acc, "loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
  assert scalars(acc, "train/accuracy") == [(1, 10.0), (2, 20.0), (3, 30.0)]
  [image] = acc.Images("pixels")
  assert (image.step, image.height, image.width) == (3, 5, 7)
  assert image.encoded_image_string.startswith(PNG_SIGNATURE)
  decoded = mpl_image.imread(_write(tmp_path / "decoded.png", image.encoded_image_string))
  np.testing.assert_allclose(decoded * 255, pixels, atol=0.5)
  [grey] = acc.Images("as_png")
  assert (grey.height, grey.width) == (5, 7)


def _write(path, data):
  with open(path, "wb") as f:
    f.write(data)
  return str(path)


def test_restart_marker_drops_the_orphaned_steps(tmp_path):
  first = tensorboard.SummaryWriter(str(tmp_path))
  first.session_start(1)
  for step in (10, 20, 30, 40):
    first.scalars(step, {"loss": float(step)})
  first.flush()
  # Resumed from the checkpoint at step 20: steps 30 and 40 are orphaned.
  second = tensorboard.SummaryWriter(str(tmp_path))
  second.session_start(21)
  second.scalars(30, {"loss": -30.0})
  second.close()
  assert scalars(accumulate(tmp_path), "loss") == [(10, 10.0), (20, 20.0), (30, -30.0)]


def test_metric_writer_writes_jsonl_and_tensorboard_and_resumes(tmp_path):
  writer = metrics.MetricWriter(str(tmp_path))
  for step in (10, 20, 30, 40):
    writer.write(step, {"loss": np.float32(step), "steps_per_sec": 5.0})
  resumed = metrics.MetricWriter(str(tmp_path), resume_step=20)
  resumed.write(30, {"loss": -30.0, "steps_per_sec": 6.0})
  with open(tmp_path / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert [(r["step"], r["loss"]) for r in rows] == [(10, 10.0), (20, 20.0), (30, -30.0)]
  assert len(glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))) == 2
  acc = accumulate(tmp_path / "tensorboard")
  assert scalars(acc, "loss") == [(10, 10.0), (20, 20.0), (30, -30.0)]
  assert scalars(acc, "steps_per_sec") == [(10, 5.0), (20, 5.0), (30, 6.0)]


def test_finished_run_adds_no_event_file(tmp_path):
  metrics.MetricWriter(str(tmp_path), resume_step=100)
  assert not os.path.exists(tmp_path / "tensorboard")


def test_progress_line_has_bar_rate_and_eta(caplog):
  progress = metrics.Progress(0, 1000)
  with caplog.at_level(logging.INFO, logger="absl"):
    progress.log(400, {"loss": 0.3125}, 12.3)
  [line] = [r.getMessage() for r in caplog.records if "step 400/1000" in r.getMessage()]
  assert "[########............] 40%" in line
  assert "| loss 0.3125 |" in line and "12.3 steps/s" in line and "ETA 0m48s" in line
  assert metrics.bar(0, 10) == "[....................] 0%"
  assert metrics.bar(10, 10) == "[####################] 100%"


def assert_png(path, size=None):
  with open(path, "rb") as f:
    assert f.read(8) == PNG_SIGNATURE
  assert os.path.getsize(path) > 1000
  pixels = mpl_image.imread(path)
  if size is not None:
    assert pixels.shape[:2] == size
  return pixels


def test_learning_curves_plot_every_scalar(tmp_path):
  with open(tmp_path / "metrics.jsonl", "w") as f:
    for step in range(10, 110, 10):
      f.write(json.dumps({"step": step, "loss": 100.0 / step, "accuracy": step / 100,
                          "steps_per_sec": 3.0, "per_task": [1, 2]}) + "\n")
  assert plots.scalar_keys(plots.read_metrics(str(tmp_path))) == [
      "loss", "accuracy", "steps_per_sec"]
  path = plots.learning_curves(str(tmp_path))
  assert path == str(tmp_path / "learning_curves.png")
  assert_png(path, size=(280, 1200))  # 3 panels of 4 x 2.8 inches at 100 dpi.
  one = plots.learning_curves(str(tmp_path), str(tmp_path / "loss.png"), keys=["loss"])
  assert_png(one, size=(280, 400))
  with pytest.raises(ValueError, match="No values of 'nope'"):
    plots.learning_curves(str(tmp_path), str(tmp_path / "x.png"), keys=["nope"])


def test_accuracy_with_ci_takes_a_list_or_a_dict(tmp_path):
  listed = plots.accuracy_with_ci(
      str(tmp_path / "accuracy.png"),
      [{"label": "maml", "accuracy": 97.1, "ci95": 0.4},
       {"label": "protonet", "accuracy": 98.0, "ci95": 0.3}])
  assert_png(listed, size=(350, 450))
  mapped = plots.accuracy_with_ci(
      str(tmp_path / "mse.png"), {f"{k} steps": (1.0 / (k + 1), 0.1) for k in range(5)},
      ylabel="MSE")
  assert_png(mapped, size=(350, 750))


def test_plots_go_to_tensorboard_as_images(tmp_path):
  path = plots.accuracy_with_ci(str(tmp_path / "accuracy.png"), {"maml": (97.0, 0.5)})
  plots.to_tensorboard(str(tmp_path), 300, [path])
  [image] = accumulate(tmp_path / "tensorboard").Images("accuracy")
  assert (image.step, image.height, image.width) == (300, 350, 450)
  with open(path, "rb") as f:
    assert image.encoded_image_string == f.read()
