"""Layer 1: one module per mathematical object (distances, divergences, Lipschitz constants)."""
