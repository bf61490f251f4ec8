"""Generation jobs: planned items persisted in DuckDB, an async runner, pause/cancel/resume/retry.

* `plan`: an item is idempotent on snippet × task × target language × prompt version × models
  (`item_key`); the task mix, target languages and the cost estimate.
* `records`: jobs and their items in the database (an item that already succeeded in another job
  is planned as `skipped`), control through `jobs.status`, summaries and the pages' reads.
* `runner`: `JobRunner` keeps up to C items in flight; `writer`: the one thread that writes their results.
* `workers`: background threads for the app; `registry`: which jobs run in this process.
* `start`: `start_job`, the one way the Generate page and `shoal generate` create and start (or queue) a job.
* `batch`: batch mode (`create_job(..., batch=True)`): the calls go through the provider's Batch API in rounds;
  `batch_plan` plans a round, `batch_rows` holds its tables' reads and writes, `batch_report` what the rounds did.
"""
# the mode-aware run_job / cancel_job (batch-mode jobs go through core.generate.jobs.batch)
from core.generate.jobs.batch import cancel_job, cancel_provider_batches, run_batch_job, run_job
from core.generate.jobs.batch_report import batch_status
from core.generate.jobs.plan import (
    DEFAULT_TARGETS,
    JobPlan,
    assign_tasks,
    choose_target,
    estimate_job_cost,
    item_key,
    plan_items,
)
from core.generate.jobs.records import (
    DONE_STATUSES,
    STALE_AFTER_S,
    create_job,
    failed_items,
    failure_reasons,
    get_job,
    is_interrupted,
    job_counts,
    job_summary,
    latest_examples,
    list_jobs,
    pause_job,
    prefilter_counts,
    record_stop_reason,
    retry_failed,
    set_job_status,
)
from core.generate.jobs.registry import _RUNNING, _WORKERS, _WORKERS_LOCK, worker_alive
from core.generate.jobs.runner import HEARTBEAT_S, JobRunner, _make_clients
from core.generate.jobs.workers import JobWorker, start_worker, wait_for_worker

__all__ = [
    "DEFAULT_TARGETS", "JobPlan", "assign_tasks", "choose_target", "estimate_job_cost", "item_key", "plan_items",
    "DONE_STATUSES", "STALE_AFTER_S", "cancel_job", "create_job", "failed_items", "failure_reasons", "get_job",
    "is_interrupted", "job_counts", "job_summary", "latest_examples", "list_jobs", "pause_job",
    "prefilter_counts", "record_stop_reason", "retry_failed", "set_job_status",
    "worker_alive", "HEARTBEAT_S", "JobRunner", "run_job", "JobWorker", "start_worker", "wait_for_worker",
    "_RUNNING", "_WORKERS", "_WORKERS_LOCK", "_make_clients",
    "batch_status", "cancel_provider_batches", "run_batch_job",
]
