"""tensorflow-datasets without TensorFlow: what works and what does not.

tensorflow-datasets without TensorFlow can build array_record datasets and read them
as random-access data sources. Everything that goes through tf.data
(``builder.as_dataset``, ``tfds.load``) needs the optional ``tf`` extra
(``pip install -e ".[tf]"``). Images must be given already encoded (e.g. PNG bytes):
encoding a raw numpy array also goes through TensorFlow.
"""

import importlib.util
import io

import numpy as np
import pytest

if importlib.util.find_spec("tensorflow") is not None:
  pytest.skip(
    "TensorFlow is installed; these tests check the TensorFlow-free path",
    allow_module_level=True,
  )

import tensorflow_datasets as tfds  # noqa: E402
from PIL import Image  # noqa: E402

_RNG = np.random.default_rng(0)
IMAGES = _RNG.integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
VECTORS = _RNG.integers(0, 256, (5, 4), dtype=np.uint8)
LABELS = np.array([0, 2, 1, 1, 0])


def _png(image):
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0]).save(buffer, format="PNG")
  return buffer.getvalue()


class MetalmTinyProbe(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Five examples with a uint8 vector, an 8x8 grayscale image and a 3-way label."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    # Not `dataset_info_from_configs`: it reads metadata files next to this module.
    return tfds.core.DatasetInfo(
      builder=self,
      disable_shuffling=True,  # Keep generation order so index i is example i.
      features=tfds.features.FeaturesDict({
        "vector": tfds.features.Tensor(shape=(4,), dtype=np.uint8),
        "image": tfds.features.Image(shape=(8, 8, 1)),
        "label": tfds.features.ClassLabel(num_classes=3),
      }),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _image(self, i):
    return _png(IMAGES[i])

  def _generate_examples(self):
    for i in range(len(LABELS)):
      yield i, {"vector": VECTORS[i], "image": self._image(i), "label": LABELS[i]}


class MetalmTinyProbeRawImage(MetalmTinyProbe, skip_registration=True):
  """The same examples, with images given as raw numpy arrays."""

  def _image(self, i):
    return IMAGES[i]


def _prepare(builder_cls, data_dir):
  builder = builder_cls(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare()
  return builder


def test_array_record_round_trip(tmp_path):
  builder = _prepare(MetalmTinyProbe, tmp_path)
  # Read back both through the building class and from the directory alone.
  for source in (
    builder.as_data_source(split="train"),
    tfds.builder_from_directory(builder.data_dir).as_data_source(split="train"),
  ):
    assert len(source) == len(LABELS)
    for i in range(len(source)):
      example = source[i]
      np.testing.assert_array_equal(example["vector"], VECTORS[i], strict=True)
      np.testing.assert_array_equal(example["image"], IMAGES[i], strict=True)
      assert example["label"] == LABELS[i]


def test_as_dataset_needs_tensorflow(tmp_path):
  builder = _prepare(MetalmTinyProbe, tmp_path)
  with pytest.raises(ModuleNotFoundError, match="No module named 'tensorflow'"):
    builder.as_dataset(split="train")


def test_raw_numpy_image_needs_tensorflow(tmp_path):
  builder = MetalmTinyProbeRawImage(data_dir=tmp_path, file_format="array_record")
  with pytest.raises(ModuleNotFoundError, match="No module named 'tensorflow'") as info:
    builder.download_and_prepare()
  assert 'In <Image> with name "image"' in str(info.value)
