"""The no-op Python function of bench-handler, served with the SDK."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))
import kontinuum  # noqa: E402


@kontinuum.function("bench.noop")
def noop(x):
    return x


if __name__ == "__main__":
    kontinuum.serve()
