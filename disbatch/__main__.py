"""`python -m disbatch` is the `disbatch` command."""

from disbatch.cli import entry

if __name__ == '__main__':
    entry()
