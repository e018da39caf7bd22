"""Mixed precision: low-precision compute over float32 parameters.

``with_compute_dtype(model, jnp.bfloat16)`` casts the floating parameters and inputs to
bfloat16 inside ``apply`` and returns float32 outputs and state. Parameters, optimizer
state and the (meta-)gradients stay float32: the casts are differentiable, so gradients
arrive at the float32 parameters in float32, and losses are computed in float32 from the
cast-back outputs (Micikevicius et al. 2018, arXiv:1710.03740).
"""

import jax
import jax.numpy as jnp

from metalm.models import functional

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def _cast_floats(tree, dtype):
  return jax.tree.map(
      lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def with_compute_dtype(model: functional.ModelFns, dtype) -> functional.ModelFns:
  """``model`` computing in ``dtype`` with float32 parameters, outputs and state.

  Args:
    model: the model's pure functions.
    dtype: the compute dtype, a key of ``COMPUTE_DTYPES`` or a JAX dtype.
  """
  if isinstance(dtype, str):
    if dtype not in COMPUTE_DTYPES:
      raise ValueError(f"Unknown compute dtype {dtype!r}; choose one of "
                       f"{sorted(COMPUTE_DTYPES)}.")
    dtype = COMPUTE_DTYPES[dtype]
  if jnp.dtype(dtype) == jnp.float32:
    return model

  def apply(params, state, x, *, train, key=None):
    out, new_state = model.apply(_cast_floats(params, dtype), _cast_floats(state, dtype),
                                 _cast_floats(x, dtype), train=train, key=key)
    return _cast_floats(out, jnp.float32), _cast_floats(new_state, jnp.float32)

  return functional.ModelFns(model.init, apply, model.norm)
