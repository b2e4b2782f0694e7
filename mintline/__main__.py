from mintline.cli import main

raise SystemExit(main())
