"""`python -m synapse_tui.server`: the same as `synapse-tui serve`."""

from __future__ import annotations

import argparse
import sys

from synapse_tui.server.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synapse-tui serve", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
