"""The Typer command line, one module per command (installed as ``gaelp_bayes.cli``)."""
