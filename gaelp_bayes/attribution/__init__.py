"""Multi-touch attribution: classic baselines and helpers of the additive-hazard model (issue 6)."""
