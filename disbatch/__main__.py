"""`python -m disbatch` is the `disbatch` command."""

from disbatch.cli import main

if __name__ == '__main__':
    raise SystemExit(main())
