"""`python -m disbatch.contexts`: a context process (what `<stem>_dbUtil.sh [context flags]` runs)."""

import sys

from disbatch.contexts.context_process import main

if __name__ == '__main__':
    sys.exit(main())
