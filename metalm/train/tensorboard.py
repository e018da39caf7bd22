"""TensorBoard event files in plain Python: scalars, images and restart markers.

No TensorFlow, TensorBoard or protobuf at runtime: the few ``Event`` messages needed
are encoded by hand and framed as TFRecords (length, masked CRC-32C, data, masked
CRC-32C). Each ``SummaryWriter`` writes its own file,
``events.out.tfevents.<time>.<host>.<pid>.<n>``, in its log directory.

A run resumed from step k calls ``session_start(k + 1)``: TensorBoard then drops the
points at steps >= k + 1 that the interrupted run wrote after its last checkpoint.
"""

import itertools
import os
import socket
import struct
import time
import zlib
from typing import Sequence

import numpy as np

FILE_VERSION = "brain.Event:2"
SESSION_START = 1
_COUNTER = itertools.count()


def _crc32c_table() -> tuple[int, ...]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    table.append(crc)
  return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), reflected, as TFRecord framing uses it."""
  crc, table = 0xFFFFFFFF, _CRC32C_TABLE
  for byte in data:
    crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
  """One TFRecord: uint64 length, its masked CRC, the data, the data's masked CRC."""
  length = struct.pack("<Q", len(data))
  return (length + struct.pack("<I", masked_crc32c(length)) + data
          + struct.pack("<I", masked_crc32c(data)))


# --- Protobuf wire format, the few field kinds an Event needs --------------------------------


def _varint(value: int) -> bytes:
  value &= (1 << 64) - 1  # Negative int64 as its two's complement.
  out = bytearray()
  while True:
    byte, value = value & 0x7F, value >> 7
    out.append(byte | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
  return _varint(field << 3 | wire_type)


def _int_field(field: int, value: int) -> bytes:
  return _key(field, 0) + _varint(int(value))


def _bytes_field(field: int, value: bytes | str) -> bytes:
  if isinstance(value, str):
    value = value.encode()
  return _key(field, 2) + _varint(len(value)) + value


def _double_field(field: int, value: float) -> bytes:
  return _key(field, 1) + struct.pack("<d", value)


def _float_field(field: int, value: float) -> bytes:
  return _key(field, 5) + struct.pack("<f", value)


def event(step: int, *, wall_time: float | None = None, file_version: str | None = None,
          summary_values: Sequence[bytes] = (), session_status: int | None = None) -> bytes:
  """An encoded ``Event`` (wall_time 1, step 2, file_version 3, summary 5, session_log 7)."""
  out = _double_field(1, time.time() if wall_time is None else wall_time)
  out += _int_field(2, step)
  if file_version is not None:
    out += _bytes_field(3, file_version)
  if summary_values:
    out += _bytes_field(5, b"".join(_bytes_field(1, v) for v in summary_values))
  if session_status is not None:
    out += _bytes_field(7, _int_field(1, session_status))
  return out


def scalar_value(tag: str, value: float) -> bytes:
  """An encoded ``Summary.Value`` with ``simple_value``."""
  return _bytes_field(1, tag) + _float_field(2, float(value))


def image_value(tag: str, png: bytes) -> bytes:
  """An encoded ``Summary.Value`` with an ``Image`` (height, width, colorspace, PNG)."""
  height, width, colorspace = png_header(png)
  image = (_int_field(1, height) + _int_field(2, width) + _int_field(3, colorspace)
           + _bytes_field(4, png))
  return _bytes_field(1, tag) + _bytes_field(4, image)


# --- PNG ---------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> channels (TensorBoard's colorspace: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4, 3: 3}
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


def png_header(png: bytes) -> tuple[int, int, int]:
  """``(height, width, channels)`` from a PNG's IHDR chunk."""
  if png[:8] != _PNG_SIGNATURE or png[12:16] != b"IHDR":
    raise ValueError("Not a PNG image: expected PNG bytes or an HxWxC uint8 array.")
  width, height = struct.unpack(">II", png[16:24])
  return height, width, _CHANNELS[png[25]]


def encode_png(pixels) -> bytes:
  """PNG bytes of an ``[H, W]`` or ``[H, W, C]`` (C in 1-4) uint8 array."""
  pixels = np.asarray(pixels)
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  if pixels.dtype != np.uint8 or pixels.ndim != 3 or not 1 <= pixels.shape[-1] <= 4:
    raise ValueError(f"Expected an HxW or HxWxC (C <= 4) uint8 image, got {pixels.dtype} "
                     f"of shape {pixels.shape}.")
  height, width, channels = pixels.shape
  rows = np.concatenate([np.zeros((height, 1), np.uint8),
                         np.ascontiguousarray(pixels).reshape(height, -1)], axis=1)

  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data)))

  header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE[channels], 0, 0, 0)
  return (_PNG_SIGNATURE + chunk(b"IHDR", header)
          + chunk(b"IDAT", zlib.compress(rows.tobytes())) + chunk(b"IEND", b""))


# --- The writer ----------------------------------------------------------------------------


class SummaryWriter:
  """Events for a new event file in ``logdir``; ``flush`` appends them to it.

  No file stays open between flushes, so a writer needs no closing.
  """

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_COUNTER)}")
    self.path = os.path.join(logdir, name)
    self._pending = [tfrecord(event(0, file_version=FILE_VERSION))]
    self.flush()

  def session_start(self, step: int) -> None:
    """Marks a (re)start: TensorBoard drops earlier-written points at steps >= ``step``."""
    self._pending.append(tfrecord(event(step, session_status=SESSION_START)))

  def scalars(self, step: int, values: dict) -> None:
    """One event with a scalar per entry of ``values`` (tag -> number)."""
    values = [scalar_value(k, v) for k, v in values.items()]
    self._pending.append(tfrecord(event(step, summary_values=values)))

  def image(self, step: int, tag: str, image) -> None:
    """``image``: PNG bytes, or an ``[H, W]`` / ``[H, W, C]`` uint8 array."""
    png = bytes(image) if isinstance(image, (bytes, bytearray)) else encode_png(image)
    self._pending.append(tfrecord(event(step, summary_values=[image_value(tag, png)])))

  def flush(self) -> None:
    with open(self.path, "ab") as f:
      f.writelines(self._pending)
    self._pending = []

  def close(self) -> None:
    self.flush()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
