"""The run's KVS keys: where the driver publishes its snapshot, where the monitor puts its commands, and the
reference's task-source protocol (a task source signs in with four keys, then puts its tasks on the key it named).

Nothing else spells a KVS key: the driver, the monitor, the web page and `DisBatcher` import them from here.
"""

from __future__ import annotations

# The run's snapshot, `Snapshot.to_json()` as JSON (the reference's key).
STATUS_KEY = 'DisBatch status'
# The monitor's commands, each `control.ControlCommand.to_json()` as JSON.
CONTROL_KEY = 'DisBatch control'

# A task source signs in with these four (the reference's names); the driver waits for all of them.
TASK_SOURCE_NAME = 'task source name'  # the name of the run's task stream, as a task file's
TASK_SOURCE_DONE_TASK = 'task source done task'  # the item that ends the stream
TASK_SOURCE_RESULT_KEY = 'task source result key'  # the key on which the driver puts each finished task
TASK_SOURCE_TASK_KEY = 'task source task key'  # the key on which the source puts its tasks
TASK_SOURCE_SIGN_IN = (TASK_SOURCE_NAME, TASK_SOURCE_DONE_TASK, TASK_SOURCE_RESULT_KEY, TASK_SOURCE_TASK_KEY)
