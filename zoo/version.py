"""The zoo's version, in a module of its own: preset folders record it and the Hub tags carry it, and every
zoo module can read it without importing the package root."""
__version__ = "0.1.0"
