"""One package per experiment of the papers: its data, generator and scorers, wired to one consensus optimizer.
Each package's docstring names its notebooks, the paper table it reproduces and the optimizer file behind it;
no task imports another."""
