"""The pure task state machine: ``(state, command) -> (new state, result, events)``.

Every rule of a task's lifecycle lives here and nowhere else: claims and roles, forms, reviews
and rework routing, re-review limits, gates and joins, pause and resume, LLM results, admin
operations. The package imports no Temporal and does no I/O; the workflow (``task.py``) is a thin
shell that feeds it commands and performs what the resulting state asks for (run an LLM, arm a
claim timer, upsert search attributes).

Inputs that would need randomness or a clock (claim tokens, "now") come in through
:class:`Context`, so the same inputs always give the same outputs.

The package, by concern: ``dispatch`` (:func:`start_task`, :func:`apply` and the handler of each
command, :func:`record_rejection`, :func:`record_undecodable`, :func:`actor_of`), ``run``
(:class:`Context`, :class:`Outcome`, :class:`Rejected`, the limits on what a task remembers, and
``_Run``, the working copy every transition goes through), ``queries`` (what the workflow and
callers ask without changing anything: seed data, claim limits, the task's view and data, what
is claimable or ready to run, claim deadlines, who holds or answered a consensus item), and the
handlers by who sends the command: ``contributor`` (claim, release, draft, submit, review),
``consensus`` (a consensus item's places and answers, its merge, the adjudicate command),
``lifecycle`` (pause, resume, activate, claim timeout), ``llm`` (generations, drafts, judges)
and ``admin``. Imports go one way: ``queries`` < ``run`` < the handlers < ``dispatch``.
"""

from __future__ import annotations

from workflows.engine.dispatch import _HANDLERS as _HANDLERS
from workflows.engine.dispatch import actor_of as actor_of
from workflows.engine.dispatch import apply as apply
from workflows.engine.dispatch import record_rejection as record_rejection
from workflows.engine.dispatch import record_undecodable as record_undecodable
from workflows.engine.dispatch import start_task as start_task
from workflows.engine.queries import check_seed_data as check_seed_data
from workflows.engine.queries import claim_limit as claim_limit
from workflows.engine.queries import claimable as claimable
from workflows.engine.queries import consensus_people as consensus_people
from workflows.engine.queries import expired_claims as expired_claims
from workflows.engine.queries import inline_evaluations as inline_evaluations
from workflows.engine.queries import judges_ready as judges_ready
from workflows.engine.queries import llm_drafts_ready as llm_drafts_ready
from workflows.engine.queries import llm_nodes_ready as llm_nodes_ready
from workflows.engine.queries import next_claim_deadline as next_claim_deadline
from workflows.engine.queries import self_review_blocked as self_review_blocked
from workflows.engine.queries import start_ignores_data as start_ignores_data
from workflows.engine.queries import task_data as task_data
from workflows.engine.queries import task_view as task_view
from workflows.engine.queries import waits_only_for_people as waits_only_for_people
from workflows.engine.run import PIPELINE_ACTOR as PIPELINE_ACTOR
from workflows.engine.run import RESPONSES_KEPT as RESPONSES_KEPT
from workflows.engine.run import SYSTEM as SYSTEM
from workflows.engine.run import TIMELINE_KEPT as TIMELINE_KEPT
from workflows.engine.run import Context as Context
from workflows.engine.run import Outcome as Outcome
from workflows.engine.run import Rejected as Rejected
from workflows.messages import LLM_ACTOR_PREFIX as LLM_ACTOR_PREFIX

# Derived columns the store computes too: they live with the contract; these names stay.
from workflows.messages import assignees as assignees
from workflows.messages import current_nodes as current_nodes
