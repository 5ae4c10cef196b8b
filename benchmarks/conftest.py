import pytest

from pic.report import write_overhead


@pytest.fixture(scope="session")
def overhead_rows():
    """The overhead ratio of every optimizer family measured in this run; written to pic.report.OVERHEAD_FILE at the
    end (only when timed: `make bench`, not the smoke run of `make test`)."""
    rows = []
    yield rows
    if rows:
        path = write_overhead(rows)
        print(f"\noverhead ratios written to {path}")
