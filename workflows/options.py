"""Activity timeouts, retry policies and other workflow tunables, as named constants."""

from datetime import timedelta

from temporalio.common import RetryPolicy, SearchAttributeKey

LLM_ACTIVITY = "call_llm"
"""Activity name of :meth:`activities.llm.LlmActivities.call_llm` (referenced by name so that
workflow code never imports litellm)."""

LLM_START_TO_CLOSE = timedelta(seconds=120)
LLM_SCHEDULE_TO_CLOSE = timedelta(minutes=30)
LLM_HEARTBEAT = timedelta(seconds=15)
"""The LLM activities heartbeat every few seconds while the model is thinking, so a worker that
dies mid-call is noticed within this, not after the 120 s start-to-close timeout."""
LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=[
        "InvalidPromptTemplate",
        "AuthenticationError",
        "PermissionDeniedError",
        "BadRequestError",
        "NotFoundError",
        "UnsupportedParamsError",
        "ContextWindowExceededError",
    ],
)

JUDGE_ACTIVITY = "judge_llm"
"""Activity name of :meth:`activities.llm.LlmActivities.judge_llm`: one LLM judge evaluation.
Same timeouts and retry policy as :data:`LLM_ACTIVITY`."""

TASK_WORKFLOW = "TaskWorkflow"
"""Workflow type of :class:`workflows.task.TaskWorkflow` (started by name below the client)."""
PIPELINE_WORKFLOW = "PipelineWorkflow"
"""Workflow type of :class:`workflows.pipeline.PipelineWorkflow`."""
PIPELINE_DESCRIBE_QUERY = "describe"
"""Query name of :meth:`workflows.pipeline.PipelineWorkflow.describe`."""

BULK_EVALUATE_WORKFLOW = "BulkEvaluate"
"""Workflow type of :class:`workflows.bulk_evaluate.BulkEvaluateWorkflow`."""
BULK_EVALUATE_ACTIVITY = "evaluate_chunk"
"""Activity name of :meth:`activities.evaluate.EvaluateActivities.evaluate_chunk`."""

PIPELINE_PROJECT_ACTIVITY = "project_pipeline"
"""Activity name of :meth:`activities.pipeline.PipelineActivities.project_pipeline`."""
SWEEP_ACTIVITY = "sweep_pipeline_tasks"
"""Activity name of :meth:`activities.pipeline.PipelineActivities.sweep_tasks`: one round of a
pipeline's pause or resume fan-out."""
COMPLETION_CHECK_ACTIVITY = "pipeline_completion_status"
FIRE_COMPLETION_CHAINS_ACTIVITY = "fire_completion_chains"
FIRE_TASK_CHAINS_ACTIVITY = "fire_task_chains"
"""Activity name for ``on_task_completion`` chains, run by a task as it finishes."""
CHAIN_START_TO_CLOSE = timedelta(seconds=60)
CHAIN_RETRY = RetryPolicy(
    # A target that is Draft or Completed takes no tasks yet: keep trying, so the chain fires
    # soon after it is activated. Mistakes that waiting cannot fix fail at once (non-retryable).
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,
)
PIPELINE_RECHECK = 60.0
"""Seconds between a Paused pipeline's re-check rounds (and completion-chain checks)."""
SWEEP_START_TO_CLOSE = timedelta(minutes=10)
SWEEP_HEARTBEAT = timedelta(seconds=30)
PIPELINE_ACTIVITY_TIMEOUT = timedelta(seconds=60)
PIPELINE_ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)

PROJECT_ACTIVITY = "project_task"
"""Activity name of :meth:`activities.store.StoreActivities.project_task`."""
PROJECT_START_TO_CLOSE = timedelta(seconds=30)
PROJECT_RETRY = RetryPolicy(
    # The store may be down for a while (a restart, a failover): keep trying, never give up.
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)

DEFAULT_TASK_QUEUE = "conveyor"

# Search attributes, registered at start-up (see conveyor/devserver.py and docker-compose.yml).
SA_PIPELINE = SearchAttributeKey.for_keyword("ConveyorPipeline")
SA_STATUS = SearchAttributeKey.for_keyword("ConveyorStatus")
SA_NODES = SearchAttributeKey.for_keyword_list("ConveyorNodes")
SA_ASSIGNEES = SearchAttributeKey.for_keyword_list("ConveyorAssignees")
SA_TAGS = SearchAttributeKey.for_keyword_list("ConveyorTags")
SEARCH_ATTRIBUTES = (SA_PIPELINE, SA_STATUS, SA_NODES, SA_ASSIGNEES, SA_TAGS)


def pipeline_workflow_id(pipeline: str) -> str:
    """The PipelineWorkflow's id (``:`` never occurs in a pipeline name, so no task id clashes)."""
    return f"pipeline:{pipeline}"


def task_workflow_id(pipeline: str, task_key: str) -> str:
    """The workflow id of a task: the same pipeline and key always give the same id."""
    return f"{pipeline}/{task_key}"


RESERVE_CLAIM_ACTIVITY = "reserve_claim"
"""Local activity of :class:`activities.claims.ClaimActivities`: reserve a claim within its claim
limit under the contributor's lock in the store."""
DROP_RESERVATION_ACTIVITY = "drop_claim_reservation"
"""Local activity: drop a reservation whose claim the task refused after all."""
RESERVATION_START_TO_CLOSE = timedelta(seconds=10)
RESERVATION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=50),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=5,
)
"""A store that stays unreachable fails the claim (the contributor tries again), rather than
holding the claim update open."""
