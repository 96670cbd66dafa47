"""Every name the automation gives to a condition, a reason, or a decision, in one place.

Labels name nodes of the condition trees: Dagster shows them in the UI's condition tree, and the
audit (`audit.py`) and the status (`status.py`) find nodes by them, never by their position.
"""

# The top-level condition of an automated asset: one trigger AND its guards.
ON_CHANGE = "on_change"
"""Rebuild as soon as the asset is stale."""
ON_CRON = "on_cron"
"""Rebuild at the first tick after each cron time, when stale (or always)."""
POLICY_MODES = (ON_CHANGE, ON_CRON)
OFF = "off"
"""The `autopilot/automation` tag of an asset without automation."""

# Triggers: the operand of the top-level AND that says the asset should be built. Exactly one per
# automated asset; the `_or_expired` forms add the TTL trigger of a `freshness` policy.
STALE = "stale"
STALE_OR_EXPIRED = "stale_or_expired"
CRON = "cron"
CRON_OR_EXPIRED = "cron_or_expired"
TRIGGERS = (STALE, STALE_OR_EXPIRED, CRON, CRON_OR_EXPIRED)

# Reasons: the nodes inside a trigger whose truth says why the asset was requested. They become the
# run tag `autopilot/reason`, in this order.
MISSING = "missing"
CODE_CHANGED = "code_changed"
DEPS_UPDATED = "deps_updated"
EXPIRED = "expired"
REASONS = (MISSING, CODE_CHANGED, DEPS_UPDATED, CRON, EXPIRED)

# Nodes inside triggers that are not reasons of their own.
UPSTREAM_UPDATED = "upstream_updated"
HANDLED = "handled"
FAILED_REQUEST = "failed_request"
"""A cron request whose run failed, asked for again: reported as the reason `cron`."""
REASON_OF = {**{reason: reason for reason in REASONS}, FAILED_REQUEST: CRON}
"""The reason each labelled trigger node stands for, when true."""

# Guards: the other operands of the top-level AND, in evaluation order (`conditions.guards_for`).
# A triggered asset is held back by the first guard that is false.
NOT_BUSY = "not_busy"
PARENTS_PRESENT = "parents_present"
OUTSIDE_QUIET_HOURS = "outside_quiet_hours"
BACKOFF_ALLOWS = "backoff_allows"
GUARDS = (NOT_BUSY, PARENTS_PRESENT, OUTSIDE_QUIET_HOURS, BACKOFF_ALLOWS)

# Decisions: what the audit reports for a triggered asset on a tick.
REQUESTED = "requested"
PAUSED = "paused"
"""Held by the backoff guard after `max_failures` consecutive failures."""
HELD_BY = {
    NOT_BUSY: "skipped_in_progress",
    PARENTS_PRESENT: "waiting_for_parents",
    OUTSIDE_QUIET_HOURS: "quiet_hours",
    BACKOFF_ALLOWS: "backed_off",
}
"""The decision for a triggered asset that a guard holds back, by the guard's label."""
COUNTERS = (REQUESTED, "skipped_in_progress", "backed_off", PAUSED, "quiet_hours")
"""The outcomes every tick's summary counts, zeros included."""
