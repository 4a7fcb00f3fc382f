"""``python -m mtst``: the same command line as ``mtst``."""

from mtst.cli import main

if __name__ == "__main__":
    main()
