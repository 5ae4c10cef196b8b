"""One module per experiment of the paper: data, generator and scorers wired to the consensus optimizers."""
