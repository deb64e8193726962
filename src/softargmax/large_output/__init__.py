"""Output layers for huge numbers of classes: hierarchical, sampled, NCE, negative sampling."""
