"""Identity: blocking, comparison patterns, Bayesian Fellegi-Sunter linkage, clustering."""
