"""`disbatch report`: a finished run read back (`history`: from its status file or its `--json` events) and shown
(`render`: the summary, and the one-file HTML report built on the live page of `web/`)."""
