"""Training side of the zoo: simulators, recipes and evaluation metrics."""
