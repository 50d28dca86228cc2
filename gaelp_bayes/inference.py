"""Running NumPyro inference with one :class:`~gaelp_bayes.config.SamplerConfig`.

JAX must learn how many host devices to use before it starts, so chains run
in parallel on the available cores. :func:`setup_jax` does that once, and every
entry point calls it before importing ``jax``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class WarmStart:
    """What a finished NUTS run learned, to start a run on similar data cheaply.

    Multiple imputation fits the same model once per identity draw; the
    posteriors differ little, so the later fits reuse the first fit's step
    size and (diagonal) inverse mass matrix, start every chain at the first
    fit's last draw of that chain, and need only a short warm-up that adapts
    the step size (:func:`imputation_sampler`).
    """

    step_size: float
    inverse_mass_matrix: Any  # numpyro's {sites: (D,)} (chain average)
    z: dict[str, Any]  # unconstrained values per site, leading chain axis

    @classmethod
    def from_mcmc(cls, mcmc: Any) -> WarmStart:
        import jax
        import jax.numpy as jnp

        st = mcmc.last_state
        many = mcmc.num_chains > 1  # then every leaf has a leading chain axis
        imm = jax.tree_util.tree_map(
            lambda x: jnp.mean(x, axis=0) if many else x, st.adapt_state.inverse_mass_matrix
        )
        ss = float(jnp.mean(st.adapt_state.step_size))
        z = st.z if many else jax.tree_util.tree_map(lambda x: x[None], st.z)
        return cls(ss, imm, dict(z))


def _fits(warm: WarmStart, model: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
    """Whether ``model`` has exactly the latent sites (and shapes) of ``warm``."""
    import numpy as np
    from numpyro import handlers

    tr = handlers.trace(handlers.seed(model, 0)).get_trace(**kwargs)
    latent = {
        k: np.shape(v["value"])
        for k, v in tr.items()
        if v["type"] == "sample" and not v["is_observed"]
    }
    return latent == {k: tuple(np.shape(v)[1:]) for k, v in warm.z.items()}


def pooled_normal(name: str, mu: Any, sigma: Any, shape: list[int], centered: bool, z_name: str):
    """Partial pooling of ``name ~ Normal(mu, sigma)`` (NumPyro), centred or not.

    Centred: ``name`` is sampled. Non-centred: ``z_name ~ Normal(0, 1)`` is
    sampled and ``name = mu + sigma * z`` recorded. Centred suits groups
    whose data pin their value; non-centred groups with little data (funnel).
    """
    import numpyro
    import numpyro.distributions as dist

    n = len(shape)
    if centered:
        return numpyro.sample(name, dist.Normal(mu, sigma).expand(shape).to_event(n))
    z = numpyro.sample(z_name, dist.Normal(0.0, 1.0).expand(shape).to_event(n))
    return numpyro.deterministic(name, mu + sigma * z)


def merge_independent(first, second, prefix: str):
    """One InferenceData from two runs whose posteriors are independent.

    When a model's parameters split into two groups that share nothing (no
    parameter, no prior, no likelihood term), its posterior is the product of
    the groups' posteriors, so draws of the two runs may be paired by chain
    and draw index. The posterior, log-likelihood and observed data are
    merged; the second run's sampler statistics are kept under ``prefix``
    (e.g. ``ctr_diverging``). :func:`gaelp_bayes.diagnostics.diagnose` counts
    the divergences of both.
    """
    import xarray as xr

    a, b = first.posterior, second.posterior
    if (a.sizes["chain"], a.sizes["draw"]) != (b.sizes["chain"], b.sizes["draw"]):
        raise ValueError(
            "merge_independent needs the same chains and draws in both runs, got "
            f"{a.sizes['chain']}x{a.sizes['draw']} and {b.sizes['chain']}x{b.sizes['draw']}"
        )
    out = first.copy()
    out.posterior = xr.merge([a, b.assign_coords(chain=a.chain, draw=a.draw)])
    for group in ("log_likelihood", "observed_data"):
        parts = [getattr(x, group) for x in (first, second) if hasattr(x, group)]
        if len(parts) == 2:
            setattr(out, group, xr.merge(parts))
        elif parts and not hasattr(out, group):
            out.add_groups({group: parts[0]})
    if hasattr(second, "sample_stats"):
        st = second.sample_stats.assign_coords(chain=a.chain, draw=a.draw)
        renamed = st.rename({v: prefix + v for v in st.data_vars})
        if hasattr(first, "sample_stats"):
            out.sample_stats = xr.merge([first.sample_stats, renamed])
        else:
            out.add_groups({"sample_stats": renamed})
    return out


def imputation_sampler(sampler: SamplerConfig, k: int, n: int) -> SamplerConfig:
    """Sampler settings of imputation fit ``k`` of ``n`` (multiple imputation).

    The pooled posterior keeps about ``draws`` per chain in all: each fit
    draws ``ceil(draws / n)`` (at least ``min(draws, 250)``); fit 0 warms up
    fully, later fits start from fit 0 (:class:`WarmStart`) with a warm-up of
    ``max(100, tune // 5)`` (at most ``tune``). Seeds are ``seed + k``.
    """
    import dataclasses
    import math

    draws = max(math.ceil(sampler.draws / n), min(sampler.draws, 250))
    tune = sampler.tune if k == 0 else min(sampler.tune, max(100, sampler.tune // 5))
    return dataclasses.replace(sampler, draws=draws, tune=tune, seed=sampler.seed + k)


def run_nuts(
    model: Callable[..., Any],
    sampler: SamplerConfig,
    *,
    model_kwargs: dict[str, Any] | None = None,
    coords: dict[str, Any] | None = None,
    dims: dict[str, list[str]] | None = None,
    init_values: dict[str, Any] | None = None,
    warm_start: WarmStart | None = None,
    state_out: list | None = None,
):
    """Sample ``model`` with NUTS and return an ArviZ ``InferenceData``.

    Chains run in parallel when there are enough host devices, else
    sequentially (same draws either way, for a given seed). With
    ``warm_start`` the run starts from it (step size re-adapted, mass matrix
    kept); a :class:`WarmStart` of this run is appended to ``state_out``.
    """
    setup_jax()
    import arviz as az
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_median, init_to_value

    init = init_to_value(values=init_values) if init_values else init_to_median()
    kw: dict[str, Any] = {}
    if warm_start is not None and not _fits(warm_start, model, model_kwargs or {}):
        warm_start = None  # other latent sites (e.g. a data-dependent parametrization)
    if warm_start is not None:
        kw = {
            "step_size": warm_start.step_size,
            "inverse_mass_matrix": warm_start.inverse_mass_matrix,
            "adapt_mass_matrix": False,
        }
    kernel = NUTS(model, target_accept_prob=sampler.target_accept, init_strategy=init, **kw)
    method = "parallel" if jax.local_device_count() >= sampler.chains else "sequential"
    mcmc = MCMC(
        kernel,
        num_warmup=sampler.tune,
        num_samples=sampler.draws,
        num_chains=sampler.chains,
        chain_method=method,
        progress_bar=sampler.progress,
    )
    init_params = None
    if warm_start is not None:
        init_params = warm_start.z
        if sampler.chains == 1:
            init_params = {k: v[0] for k, v in init_params.items()}
    mcmc.run(jax.random.PRNGKey(sampler.seed), init_params=init_params, **(model_kwargs or {}))
    if state_out is not None:
        state_out.append(WarmStart.from_mcmc(mcmc))
    return az.from_numpyro(mcmc, coords=coords, dims=dims)
