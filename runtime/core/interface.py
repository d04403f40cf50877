"""The public interface of each core component: what hosts may read or call, by name.

Hosts (``sim/``, ``runtime/real/``, ``runtime/util/``, the API) drive a component through
``handle`` and read it only through the names listed here: queries that return copies or
immutable views, and a few documented counters. Everything else is the component's own
state and may change shape at any time; ``tests/core/test_host_boundary.py`` fails when
host code reads an attribute not listed.
"""

from __future__ import annotations

RAYLET = frozenset(
    {
        "handle", "start", "check",
        "node", "addr", "gcs_addr", "gs_addr", "config",  # identity and wiring
        "spilled", "dispatched",  # counters (tasks spilled, dispatched)
        "explain", "flush_task_events", "running_tasks", "victim", "is_blocked",
        "actor_spec", "actor_hold", "total_resources", "available_resources", "backlog",
        "wait_seconds", "stored_objects", "store_usage", "task_state",
        "tasks_held",  # a node rejoining a restarted head tells owners there what it holds
    }
)  # fmt: skip
GCS = frozenset(
    {
        "handle", "addr",
        "actor_record", "actor_named", "placement_group_named", "actor_table",
        "task_table", "node_table", "object_table", "placement_group_table",
        "enable_persistence", "snapshot", "restore", "rejoining",  # the head can restart
    }
)  # fmt: skip
OWNER = frozenset(
    {
        "handle", "start", "addr", "node",
        # the program's calls
        "submit", "remove_ref", "new_task_id", "new_put_id", "put", "borrow", "contain",
        "cancel", "watch_free", "create_actor", "attach_actor", "actor_state",
        "kill_actor", "lookup_actor", "create_placement_group", "remove_placement_group",
        "placement_group_ready", "drop_stream", "stream_state", "flush_task_events",
        "retries", "replays",  # counters (tasks resubmitted; actor calls replayed)
        "speculator",  # speculative execution's counters (`launched`, `won`); None: unused
        # queries
        "object_entry", "object_table", "pending_task", "pending_tasks", "waiting_arguments",
        "explain",
    }
)  # fmt: skip
GLOBAL_SCHEDULER = frozenset({"handle", "start", "addr", "node_count", "node_available"})

PUBLIC: dict[str, frozenset[str]] = {
    "Raylet": RAYLET,
    "Gcs": GCS,
    "Owner": OWNER,
    "GlobalScheduler": GLOBAL_SCHEDULER,
}
"""Component class name -> the attribute names hosts may use."""
