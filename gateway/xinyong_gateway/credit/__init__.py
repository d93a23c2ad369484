"""The credit engine: policy as data (and, next, the projector that applies it)."""
