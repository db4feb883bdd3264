from zoo_cli import main

raise SystemExit(main())
