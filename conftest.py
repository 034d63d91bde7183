"""Root conftest: kept tiny on purpose. The suite's plugin arrives through its ``pytest11``
entry point (``pip install -e .``), so nothing is registered here twice."""

collect_ignore = ["benchmarks"]
