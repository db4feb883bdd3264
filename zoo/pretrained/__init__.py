"""Shipped preset folders (data, not code): one folder per preset, in the Hugging Face repo layout."""
