"""The clinical engine: resources -> facts -> scores -> verdict and options. Pure, no I/O."""
