"""Probabilistic programs, one module per model (installed as ``gaelp_bayes.models``)."""
