"""Pure JAX objectives ``loss(params, data) -> scalar``, one module per family."""
