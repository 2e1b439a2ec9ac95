"""``python -m langadapt ...``: the ``langadapt`` command (:mod:`langadapt.dag.cli`)."""

from langadapt.dag.cli import main

raise SystemExit(main())
