"""One recipe module per family: hyperparameters as dataclasses, train_and_evaluate(recipe, workdir)."""
