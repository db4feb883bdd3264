"""``python -m zoo``: the command line, which lives in ``zoo_cli`` above zoo, training and serving."""
from zoo_cli import main

if __name__ == "__main__":  # worker processes spawned by a command re-import this module
    raise SystemExit(main())
