"""How runs start and what they must not overlap: the preloaded run launcher, the overlap guard."""
