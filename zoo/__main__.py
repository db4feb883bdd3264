"""``python -m zoo``: the command line, which lives in ``zoo_cli`` above zoo, training and serving."""
from zoo_cli import main

raise SystemExit(main())
