"""Running NumPyro inference with one :class:`~gaelp_bayes.config.SamplerConfig`.

JAX must learn how many host devices to use before it starts, so chains run
in parallel on the available cores. :func:`setup_jax` does that once, and every
entry point calls it before importing ``jax``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gaelp_bayes.config import SamplerConfig

_CONFIGURED = False


def setup_jax(n_devices: int | None = None) -> None:
    """Run JAX on the CPU with one host device per core (idempotent, before JAX starts)."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    os.environ.setdefault("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu") or "cpu")
    n = n_devices or os.cpu_count() or 1
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
    import numpyro

    numpyro.enable_x64(False)
    _CONFIGURED = True


def run_nuts(
    model: Callable[..., Any],
    sampler: SamplerConfig,
    *,
    model_kwargs: dict[str, Any] | None = None,
    coords: dict[str, Any] | None = None,
    dims: dict[str, list[str]] | None = None,
    init_values: dict[str, Any] | None = None,
):
    """Sample ``model`` with NUTS and return an ArviZ ``InferenceData``.

    Chains run in parallel when there are enough host devices, else
    sequentially (same draws either way, for a given seed).
    """
    setup_jax()
    import arviz as az
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_median, init_to_value

    init = init_to_value(values=init_values) if init_values else init_to_median()
    kernel = NUTS(model, target_accept_prob=sampler.target_accept, init_strategy=init)
    method = "parallel" if jax.local_device_count() >= sampler.chains else "sequential"
    mcmc = MCMC(
        kernel,
        num_warmup=sampler.tune,
        num_samples=sampler.draws,
        num_chains=sampler.chains,
        chain_method=method,
        progress_bar=sampler.progress,
    )
    mcmc.run(jax.random.PRNGKey(sampler.seed), **(model_kwargs or {}))
    return az.from_numpyro(mcmc, coords=coords, dims=dims)
