"""Conveyor's Python library: what a script needs, from one place.

```python
from conveyor import Claim, ConveyorClient, Submit, load_pipeline_file, new_request_id
```

- :class:`ConveyorClient` connects (``async with await ConveyorClient.connect() as conveyor``),
  creates tasks and pipelines, and hands out a :class:`TaskClient` per task for its commands.
- The commands a task takes (:data:`TASK_COMMANDS`: ``Claim``, ``Submit``, ``Review``, …) and
  what comes back (``CommandResult``, ``TaskView``), built directly or by name with
  :func:`task_command`.
- One error hierarchy: :class:`ConveyorError` and its four kinds, ``NotFound``, ``Invalid``,
  ``Conflict``, ``Unavailable``, each with a stable ``code``.

Everything else (the work queue, import and export, the HTTP API, the web app, the command line)
lives in its own module and imports from here down, never the other way.
"""

from conveyor.client import ConveyorClient, CreationTarget, TaskClient, new_request_id
from conveyor.commands import task_command
from conveyor.errors import (
    ClientClosed,
    CommandRejected,
    Conflict,
    ConveyorError,
    Invalid,
    InvalidSeedData,
    NotFound,
    NoWorkerResponded,
    PipelineCommandRejected,
    PipelineNotAccepting,
    Unavailable,
    UnknownPipeline,
)
from conveyor.pipelines import load_pipeline_file
from conveyor.settings import Settings
from workflows.messages import (
    TASK_COMMANDS,
    Activate,
    Claim,
    CommandResult,
    Deescalate,
    EditSubmission,
    Escalate,
    NodeStatus,
    Pause,
    QuarantineAction,
    Regenerate,
    Release,
    ReleaseClaim,
    ResolveQuarantine,
    Resume,
    RetryFailed,
    Review,
    SaveDraft,
    Submit,
    Tag,
    TaskStatus,
    TaskView,
    Untag,
    Verdict,
)

__all__ = [
    "TASK_COMMANDS",
    "Activate",
    "Claim",
    "ClientClosed",
    "CommandRejected",
    "CommandResult",
    "Conflict",
    "ConveyorClient",
    "ConveyorError",
    "CreationTarget",
    "Deescalate",
    "EditSubmission",
    "Escalate",
    "Invalid",
    "InvalidSeedData",
    "NoWorkerResponded",
    "NodeStatus",
    "NotFound",
    "Pause",
    "PipelineCommandRejected",
    "PipelineNotAccepting",
    "QuarantineAction",
    "Regenerate",
    "Release",
    "ReleaseClaim",
    "ResolveQuarantine",
    "Resume",
    "RetryFailed",
    "Review",
    "SaveDraft",
    "Settings",
    "Submit",
    "Tag",
    "TaskClient",
    "TaskStatus",
    "TaskView",
    "Unavailable",
    "UnknownPipeline",
    "Untag",
    "Verdict",
    "load_pipeline_file",
    "new_request_id",
    "task_command",
]
