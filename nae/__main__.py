"""``python -m nae`` and the ``nae`` command: the command line of :mod:`nae.cli`."""
import os
import sys


def main(argv=None) -> int:
    """Runs the command line after setting ``OMP_WAIT_POLICY=PASSIVE`` (unless it is set).

    Idle OpenMP threads then sleep instead of spinning: on a shared 2-core machine spinning
    threads made small-batch passes up to 15x slower (``benchmarks/bench_step.py``).  OpenMP
    reads the variable once, when torch loads it, so it is set here, before anything
    imports torch (``import nae`` does not); in your own scripts set it in the environment.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
