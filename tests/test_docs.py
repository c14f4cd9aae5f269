"""The examples in docs/jobs.md run, against real Redis and a real worker."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "jobs.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.django_db(transaction=True)
def test_the_python_api_examples_run(worker):
    blocks = examples()
    assert len(blocks) >= 6
    namespace: dict = {}
    # The first block declares a job type; the worker knows it from tests/jobapp, which
    # declares the same example, so both processes agree on it.
    for number, block in enumerate(blocks[1:], start=2):
        try:
            exec(compile(block, f"docs/jobs.md block {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/jobs.md example {number} failed: {exc!r}") from exc
