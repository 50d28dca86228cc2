"""Posterior-sampled journey simulator in JAX and its Gymnasium environment (issue 8)."""
