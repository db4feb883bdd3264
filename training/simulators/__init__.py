"""Physics data generators: seeded, vectorised numpy, units in each docstring.

Simulators import neither the zoo nor TensorFlow, so they can be used alone.
"""
