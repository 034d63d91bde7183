"""Test support for projects that test with finetune-safety, and for this project's own tests.

- ``fake_openai``: a scriptable OpenAI-compatible server on 127.0.0.1 (no network).
- ``doubles``: a target that answers from a dict, for tests that need no weights.
- ``plugin``: pytest fixtures (``fake_openai``); enable with
  ``pytest_plugins = ["finetune_safety.testing.plugin"]`` in a conftest.py.

Nothing here is imported by the library itself.
"""

__all__: list[str] = []
