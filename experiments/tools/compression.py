"""Accuracy against bits and sparsity, with the model's size on disk.

Sizes are of the arrays as they would be shipped, written with ``numpy.savez``: float32
kernels; b-bit weights packed ``8 / b`` to a byte plus float32 per-channel scales; pruned
kernels as their kept float32 values plus a one-bit-per-weight mask. Biases stay float32.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from matplotlib.figure import Figure

from experiments.tools import classifier
from metalm.tools import compression


def pack(values: np.ndarray, bits: int) -> np.ndarray:
  """Signed ``bits``-bit integers (int8 storage) packed densely into bytes."""
  if bits == 8:
    return np.asarray(values, np.int8)
  unsigned = (np.asarray(values, np.int16) + 2 ** (bits - 1)).astype(np.uint8).reshape(-1)
  bit_planes = np.unpackbits(unsigned[:, None], axis=1)[:, 8 - bits:]
  return np.packbits(bit_planes.reshape(-1))


def disk_bytes(path: str, arrays: dict) -> int:
  """Writes ``arrays`` with ``numpy.savez`` and returns the file's size."""
  np.savez(path, **arrays)
  return os.path.getsize(path)


def _flat(tree):
  return traverse_util.flatten_dict(jax.device_get(tree), sep="/",
                                    is_leaf=lambda _, v: isinstance(v, compression.QuantizedTensor))


def float_arrays(params) -> dict:
  return {k: np.asarray(v, np.float32) for k, v in _flat(params).items()}


def quantized_arrays(qparams, bits: int) -> dict:
  out = {}
  for k, v in _flat(qparams).items():
    if isinstance(v, compression.QuantizedTensor):
      out[k + "/values"] = pack(v.values, bits)
      out[k + "/scale"] = np.asarray(v.scale, np.float32)
    else:
      out[k] = np.asarray(v, np.float32)
  return out


def pruned_arrays(params, masks) -> dict:
  out = {}
  flat_masks = _flat(masks)
  for k, v in _flat(params).items():
    v, m = np.asarray(v, np.float32), np.asarray(flat_masks[k])
    if v.ndim >= 2:
      out[k + "/kept"] = v[m]
      out[k + "/mask"] = np.packbits(m.reshape(-1))
    else:
      out[k] = v
  return out


def run(config, workdir, params, train, test):
  cfg, base = config.compression, config.classifier
  x_test, y_test = test
  files = os.path.join(workdir, "compression")
  os.makedirs(files, exist_ok=True)
  key = jax.random.key(config.seed)
  acc = lambda p, **kw: classifier.accuracy(lambda z: classifier.logits(p, z, **kw),
                                            x_test, y_test)
  rows = [{"name": "float32", "bits": 32, "sparsity": 0.0, "accuracy": acc(params),
           "bytes": disk_bytes(os.path.join(files, "float32.npz"), float_arrays(params))}]

  # float32 fine-tuned as long as QAT and pruning are (same rate and loss), like for like.
  extra = max([cfg.qat_steps] * bool(cfg.qat_bits) + [cfg.finetune_steps] * bool(cfg.sparsities),
              default=0)
  tuned32 = classifier.fit(lambda p, x, y, k: classifier.cross_entropy(p, x, y), params, train,
                           steps=extra, batch_size=base.batch_size,
                           learning_rate=cfg.qat_learning_rate, key=jax.random.fold_in(key, 32),
                           log=(workdir, "float32_finetuned"))
  rows.append({"name": "float32_finetuned", "bits": 32, "sparsity": 0.0, "steps": extra,
               "accuracy": acc(tuned32),
               "bytes": disk_bytes(os.path.join(files, "float32_finetuned.npz"),
                                   float_arrays(tuned32))})

  for bits in cfg.bits:  # Post-training per-channel weight quantization.
    qparams = compression.quantize_params(params, bits)
    rows.append({"name": f"ptq_int{bits}_weights", "bits": bits, "sparsity": 0.0,
                 "accuracy": acc(compression.dequantize_params(qparams)),
                 "bytes": disk_bytes(os.path.join(files, f"ptq_int{bits}.npz"),
                                     quantized_arrays(qparams, bits))})

  # int8 weights and int8 activations, scales calibrated on training batches.
  q8 = compression.quantize_params(params, 8)
  calib_x = jnp.asarray(train[0][:cfg.calibration_batches * base.batch_size])
  batches = [classifier.layer_inputs(params, b)
             for b in jnp.split(calib_x, cfg.calibration_batches)]
  for method in ("minmax", "percentile"):
    scales = [compression.calibrate_scale([b[i] for b in batches], method=method)
              for i in range(len(batches[0]))]
    arrays = {**quantized_arrays(q8, 8), "activation_scales": np.asarray(scales)}
    rows.append({"name": f"ptq_int8_weights_activations_{method}", "bits": 8, "sparsity": 0.0,
                 "accuracy": acc(compression.dequantize_params(q8), act_scales=scales),
                 "bytes": disk_bytes(os.path.join(files, f"ptq_w8a8_{method}.npz"), arrays)})

  for bits in cfg.qat_bits:  # Quantization-aware fine-tuning with the STE, then PTQ.
    loss = lambda p, x, y, k, bits=bits: classifier.cross_entropy(
        compression.fake_quant_params(p, bits), x, y)
    tuned = classifier.fit(loss, params, train, steps=cfg.qat_steps,
                           batch_size=base.batch_size, learning_rate=cfg.qat_learning_rate,
                           key=jax.random.fold_in(key, bits), log=(workdir, f"qat_int{bits}"))
    qparams = compression.quantize_params(tuned, bits)
    rows.append({"name": f"qat_int{bits}_weights", "bits": bits, "sparsity": 0.0,
                 "steps": cfg.qat_steps,
                 "accuracy": acc(compression.dequantize_params(qparams)),
                 "bytes": disk_bytes(os.path.join(files, f"qat_int{bits}.npz"),
                                     quantized_arrays(qparams, bits))})

  for sparsity in cfg.sparsities:  # Global magnitude pruning, one shot then fine-tuned.
    masks = compression.magnitude_masks(params, sparsity, scope="global")
    pruned = compression.apply_mask(params, masks)
    tuned = classifier.fit(lambda p, x, y, k: classifier.cross_entropy(p, x, y), pruned,
                           train, steps=cfg.finetune_steps, batch_size=base.batch_size,
                           learning_rate=cfg.qat_learning_rate,
                           key=jax.random.fold_in(key, int(1000 * sparsity)),
                           log=(workdir, f"pruned_{sparsity:g}"),
                           post_update=lambda p, masks=masks: compression.apply_mask(p, masks))
    rows.append({"name": f"pruned_{sparsity:g}", "bits": 32,
                 "sparsity": float(compression.sparsity_of(masks)),
                 "requested_sparsity": sparsity, "accuracy_one_shot": acc(pruned),
                 "accuracy": acc(tuned), "steps": cfg.finetune_steps,
                 "bytes": disk_bytes(os.path.join(files, f"pruned_{sparsity:g}.npz"),
                                     pruned_arrays(tuned, masks))})

  png = plot(os.path.join(workdir, "compression.png"), rows)
  return {"num_test": len(x_test), "rows": rows, "pngs": [os.path.basename(png)],
          "float32_bytes_in_memory": compression.float32_size_bytes(params)}


def plot(path, rows):
  """Accuracy against size on disk, one line per method (labels: bits or sparsity)."""
  by_name = {row["name"]: row for row in rows}
  float32 = by_name["float32"]
  series = {
      "float32 fine-tuned": [by_name["float32_finetuned"]],
      "PTQ weights": [float32] + [r for r in rows if r["name"].startswith("ptq_int")
                                  and r["name"].endswith("_weights")],
      "PTQ int8 weights + activations": [r for r in rows if "activations" in r["name"]],
      "QAT weights": [r for r in rows if r["name"].startswith("qat_")],
      "pruned, fine-tuned": [float32] + [r for r in rows if r["name"].startswith("pruned")],
      "pruned, one shot": [r | {"accuracy": r["accuracy_one_shot"]} for r in rows
                           if r["name"].startswith("pruned")],
  }
  fig = Figure(figsize=(7, 4.5))
  ax = fig.subplots()
  for (label, points), marker in zip(series.items(), "*osD^v", strict=True):
    if not points:
      continue
    ax.plot([r["bytes"] for r in points], [100 * r["accuracy"] for r in points],
            marker=marker, linewidth=1, markersize=5, label=label)
    for r in points:
      text = f"s={r['sparsity']:.2f}" if r["sparsity"] else f"{r['bits']}b"
      ax.annotate(text, (r["bytes"], 100 * r["accuracy"]), fontsize=6,
                  textcoords="offset points", xytext=(3, -8))
  ax.set_xscale("log")
  ax.set_xlabel("size on disk (bytes)")
  ax.set_ylabel("test accuracy (%)")
  ax.set_title("MNIST MLP: accuracy against size (quantization, pruning)", fontsize=10)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return path
