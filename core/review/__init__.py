"""Human review: the queue, verdicts and edits, undo, bulk actions, audit trail, judge–human agreement.

* `filters`   — QueueFilter and the SQL it becomes;
* `queue`     — pages, keyset windows, the QueueCursor;
* `counts`    — queue counts: one scan (`queue_summary`), or kept in step from the change logs;
* `items`     — one example as the review screen shows it (`review_view`: all the page draws);
* `decisions` — single verdicts and bulk actions, with versions and the audit log;
* `undo`      — undo one action as a unit (tombstones), the audit trail;
* `agreement` — judge vs human tables, Cohen's kappa and Fleiss' kappa;
* `assign`    — who reviews which example, with overlap;
* `responses` — every reviewer's own response, an example's team status, adjudication, blind view;
* `people`    — agreement between people, per-reviewer progress and speed;
* `comments`  — comments on an example (add, list, delete; audited);
* `views`     — saved named views of the queue (filters + sort; personal or shared; audited);
* `effective` — the verdict that counts (human over judge);
* `options`   — headless status and the filter widgets' values.

Every write goes through `Store.write()`. The views it reads (`latest_judgments`,
`review_effective`, `reviews`) are created by the frozen SQL migrations in core/migrations/.
"""
from core.review.agreement import agreement, cell_filter, fleiss_kappa, kappa_from_counts
from core.review.assign import (
    AssignResult,
    assign,
    assign_examples,
    assignees,
    has_assignments,
    needed,
    overlap_summary,
)
from core.review.comments import MAX_COMMENT_CHARS, add_comment, comments_for, delete_comment, list_comments
from core.review.common import (
    DECISION_ACTIONS,
    JUDGE_CHOICES,
    QUICK_REASONS,
    SORTS,
    STATUS_CHOICES,
    UNDO_MARKER,
    VERDICTS,
    NothingToUndo,
    StaleReview,
)
from core.review.decisions import BulkPreview, BulkResult, bulk_decide, bulk_preview, decide, version_for
from core.review.effective import effective_verdict_sql, effective_verdicts
from core.review.filters import TEAM_STATUSES, QueueFilter
from core.review.guidelines import (
    ALL_TASKS,
    MAX_GUIDELINE_CHARS,
    StaleGuidelines,
    check_scope,
    current_guidelines,
    guideline_history,
    guideline_scopes,
    latest_version,
    scope_title,
    set_guidelines,
)
from core.review.items import (
    current_version,
    generation_count,
    generation_exists,
    get_item,
    get_review,
    prefilter_stop,
    review_view,
    stop_reasons,
)
from core.review.options import filter_options, review_status
from core.review.people import people_agreement, progress
from core.review.queue import (
    QueueCursor,
    first_in_queue,
    matches,
    neighbour,
    queue_count,
    queue_ids,
    queue_page,
    queue_rows,
    queue_summary,
    queue_window,
)
from core.review.responses import (
    adjudicate,
    conflict_ids,
    example_status,
    is_overlap,
    responses,
    status_counts,
    team_view,
    visible_responses,
)
from core.review.undo import UndoResult, audit_trail, last_action, recent_actions, undo_action, undo_last
from core.review.views import (
    MAX_VIEW_NAME,
    delete_view,
    get_view,
    list_views,
    resolve_view,
    save_view,
    view_label,
    visible_view,
)

__all__ = [
    "DECISION_ACTIONS", "JUDGE_CHOICES", "QUICK_REASONS", "SORTS", "STATUS_CHOICES", "UNDO_MARKER", "VERDICTS",
    "NothingToUndo", "StaleReview", "QueueFilter", "QueueCursor", "BulkPreview", "BulkResult", "UndoResult",
    "agreement", "audit_trail", "bulk_decide", "bulk_preview", "cell_filter", "current_version", "decide",
    "effective_verdict_sql", "effective_verdicts", "filter_options", "first_in_queue", "generation_count",
    "generation_exists", "get_item", "get_review", "prefilter_stop",
    "kappa_from_counts", "last_action", "matches", "neighbour", "queue_count", "queue_ids",
    "queue_page", "queue_rows", "queue_summary", "queue_window", "recent_actions", "review_status",
    "undo_action", "undo_last",
    "TEAM_STATUSES", "AssignResult", "adjudicate", "assign", "assign_examples", "assignees", "conflict_ids", "example_status",
    "fleiss_kappa", "has_assignments", "is_overlap", "needed", "overlap_summary", "people_agreement", "progress",
    "responses", "review_view", "status_counts", "stop_reasons", "team_view", "version_for", "visible_responses",
    "MAX_COMMENT_CHARS", "add_comment", "comments_for", "delete_comment", "list_comments",
    "ALL_TASKS", "MAX_GUIDELINE_CHARS", "StaleGuidelines", "check_scope", "current_guidelines", "guideline_history",
    "guideline_scopes", "latest_version", "scope_title", "set_guidelines",
    "MAX_VIEW_NAME", "delete_view", "get_view", "list_views", "resolve_view", "save_view", "view_label", "visible_view",
]
