"""Results of tasks: the status record (`record`), its line format (`status_line`), output snippets (`snippet`), the
status file (`status_file`) and resume (`resume`). Import the module you need: engines load only `snippet`."""
