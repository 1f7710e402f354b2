"""The `--mon` monitor: a full-screen view of a live run and its engines (`python -m disbatch.monitor`).

`model` (pure: snapshot -> lines and rows), `source` (the run's KVS: snapshots in, commands out), `screen` (curses).
"""
