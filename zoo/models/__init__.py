"""Architecture families, one module each."""
