"""The worker request protocol: every API call a worker makes to the driver, its payload and its reply.

Code running in a worker calls the same `runtime` API as the driver; the worker's
`WorkerClient` turns each call into one ``(REQUEST, req_id, op, payload)`` message
(`runtime.real.protocol.request`) and blocks for ``(REPLY, req_id, ok, value)``; on the
driver, the node's request table maps `op` to its handler, run on the loop thread with
the worker's own core `Owner`. ``req_id`` 0 means no reply is wanted (the batched
reference bookkeeping the worker sends ahead of its next message).

The ops are the string constants below; `OPS` describes each one: its payload (a plain
tuple, laid out as `Op.fields` says, or a single value when `Op.fields` is one name in
angle brackets), and what the reply carries. Payloads stay plain tuples on the wire:
they are pickled per call on the nested-submission path, where a tuple is the cheapest.
Both sides name ops through these constants, and a test checks that the node's request
table answers exactly the ops listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ASSIGNED",
    "BORROW",
    "CALL_ACTOR",
    "CANCEL",
    "CREATE_ACTOR",
    "GET",
    "GET_ACTOR",
    "INFO",
    "INSPECT",
    "KILL_ACTOR",
    "LEND",
    "LOGS",
    "RESUME",
    "SUBMIT_AS",
    "CALL_AS",
    "OPS",
    "PG_CREATE",
    "PG_CURRENT",
    "PG_READY",
    "PG_REMOVE",
    "PG_ROWS",
    "PUT",
    "PUT_RESERVE",
    "PUT_SEAL",
    "REGISTER",
    "RELEASE",
    "SHARED",
    "STREAM_DROP",
    "STREAM_NEXT",
    "SUBMIT",
    "UNPIN",
    "UNWAIT",
    "WAIT",
    "Op",
]


@dataclass(frozen=True, slots=True)
class Op:
    """One request op: its wire name, payload layout, reply and meaning."""

    name: str
    """The op string sent in the REQUEST message."""
    fields: tuple[str, ...]
    """The payload tuple's fields in order; a single ``"<name>"``: the payload is that value."""
    reply: str
    """What the REPLY's value is (``-``: none is sent, the worker passes req_id 0)."""
    doc: str
    """What the driver does."""


# -- functions and tasks --------------------------------------------------------------------

REGISTER = "register"
SUBMIT = "submit"
CANCEL = "cancel"
# -- objects ----------------------------------------------------------------------------------
PUT = "put"
PUT_RESERVE = "put_reserve"
PUT_SEAL = "put_seal"
GET = "get"
WAIT = "wait"
UNWAIT = "unwait"
RELEASE = "release"
BORROW = "borrow"
LEND = "lend"
UNPIN = "unpin"
# -- actors -----------------------------------------------------------------------------------
CREATE_ACTOR = "create_actor"
CALL_ACTOR = "call_actor"
GET_ACTOR = "get_actor"
KILL_ACTOR = "kill_actor"
# -- generators -------------------------------------------------------------------------------
STREAM_NEXT = "stream_next"
STREAM_DROP = "stream_drop"
# -- placement groups -------------------------------------------------------------------------
PG_CREATE = "pg_create"
PG_REMOVE = "pg_remove"
PG_READY = "pg_ready"
PG_ROWS = "pg_rows"
PG_CURRENT = "pg_current"
# -- introspection ----------------------------------------------------------------------------
INFO = "info"
ASSIGNED = "assigned"
INSPECT = "inspect"
SHARED = "shared"
LOGS = "logs"
RESUME = "resume"
SUBMIT_AS = "submit_as"
CALL_AS = "call_as"


_OPS = (
    Op(
        REGISTER,
        ("<pickled function>",),
        "the function's id on the driver",
        "register a pickled remote function or actor class",
    ),
    Op(
        SUBMIT,
        (
            "fn_id",
            "args",  # (args tuple, kwargs dict), each value an oid or (VALUE_INLINE, bytes)
            "arg_refs",  # tuple of oids passed as arguments (resolved before the task runs)
            "held_refs",  # tuple of oids nested inside inline arguments (held until it ends)
            "resources",
            "num_returns",
            "max_retries",
            "retry_exceptions",
            "name",
            "strategy_options",  # `raw_options`: the scheduling strategy, before resolution
            "runtime_env",  # merged with the worker's own
            "generator",  # 0, or the generator mode (`runtime.core.task.GEN_*`)
            "speculation",  # the `_speculation` option's value (None: off)
        ),
        "the list of return oids (a generator task: its return 1 only)",
        "submit a task owned by the worker's owner",
    ),
    Op(CANCEL, ("oid", "force"), "None", "cancel the task producing oid"),
    Op(
        PUT,
        ("data", "nested"),  # nested: [(oid, owner address)] of refs pickled inside data
        "the new object's id",
        "store a value owned by the worker (inline, or copied into the arena)",
    ),
    Op(
        PUT_RESERVE,
        ("<size>",),
        "an arena offset of `size` bytes held for the caller, or None (too small: use PUT)",
        "a process that maps the arena puts in place: reserve the range it writes into",
    ),
    Op(
        PUT_SEAL,
        ("offset", "nested"),  # nested None: give the range back (the write failed)
        "the new object's id (None when given back)",
        "the reserved range at offset holds a serialized value: make it an object",
    ),
    Op(
        GET,
        ("<oids>",),
        "one (ok, value) per oid: value (VALUE_INLINE, bytes) or (VALUE_ARENA, offset, size) "
        "(pinned until UNPIN); not ok: (False, error kind, error)",
        "wait for objects; the worker's CPU is lent out while it waits",
    ),
    Op(
        WAIT,
        ("oids", "num_returns"),
        "the ready oids (at most num_returns)",
        "wait until num_returns of oids are ready",
    ),
    Op(
        UNWAIT,
        ("<req_id of the timed-out get or wait>",),
        "-",
        "a get or wait timed out in the worker: stop waiting, take the CPU back",
    ),
    Op(RELEASE, ("<oids>",), "-", "the worker dropped these references"),
    Op(
        BORROW,
        ("<[(oid, owner address)]>",),
        "-",
        "the worker unpickled these refs: its owner borrows them",
    ),
    Op(
        LEND,
        ("<[(oid, owner address, container oid)]>",),
        "-",
        "refs pickled into a value leaving the worker: held by that object (container), "
        "or by the driver (container 0)",
    ),
    Op(UNPIN, ("<arena offsets>",), "-", "values from a GET no longer alias these ranges"),
    Op(
        CREATE_ACTOR,
        (
            "fn_id",
            "args",
            "arg_refs",  # argument and nested oids together
            "demand",
            "hold",
            "class_name",
            "methods",  # {method name: num_returns}
            "name",
            "max_restarts",
            "get_if_exists",
            "collectable",  # dies with its handles (not named, not detached)
            "max_concurrency",
            "retry_options",  # (max_task_retries, per-method retries)
            "strategy_options",
            "runtime_env",
        ),
        "(actor_id, token oid or 0, retry_options)",
        "create an actor owned by the worker",
    ),
    Op(
        CALL_ACTOR,
        (
            "actor_id",
            "method",
            "args",
            "arg_refs",
            "held_refs",
            "num_returns",
            "name",
            "max_retries",
            "retry_exceptions",
            "generator",  # 0, or the generator mode
        ),
        "the list of return oids (a generator call: its return 1 only)",
        "submit a call of an actor's method owned by the worker's owner",
    ),
    Op(
        GET_ACTOR,
        ("<name>",),
        "(actor_id, class_name, methods, retry_options)",
        "look up a live named actor",
    ),
    Op(KILL_ACTOR, ("actor_id", "no_restart"), "None", "terminate an actor"),
    Op(
        STREAM_NEXT,
        ("task_id", "index", "block"),
        "('item', oid), ('end', failed), or None (not block and not there yet)",
        "the generator's item `index`, waiting for it if block",
    ),
    Op(
        STREAM_DROP,
        ("<[(task_id, items taken)]>",),
        "-",
        "generators dropped in the worker: their owner releases the items not taken",
    ),
    Op(
        PG_CREATE,
        ("bundles", "strategy", "name", "lifetime"),
        "the group's id",
        "create a placement group owned by the worker",
    ),
    Op(PG_REMOVE, ("<pg_id>",), "None", "remove a placement group"),
    Op(
        PG_READY,
        ("pg_id", "payload"),
        "the oid of a ref resolving to payload once the group is placed",
        "the ref behind `PlacementGroup.ready()`",
    ),
    Op(PG_ROWS, ("pg_id", "name"), "a list of row dicts", "snapshots of GCS group rows"),
    Op(
        PG_CURRENT,
        ("<None>",),
        "(pg_id, bundles, capture_child_tasks) or None",
        "the group of the task or actor the worker runs",
    ),
    Op(INFO, ("<None>",), "the `Node.runtime_info()` dict", "resources, node id, namespace"),
    Op(
        ASSIGNED,
        ("<None>",),
        "{resource: amount}",
        "the resources of the task or actor the worker runs",
    ),
    Op(
        SHARED,
        ("<None>",),
        "-",
        "a connected driver mapped this node's arena (same machine): send it offsets, not bytes",
    ),
    Op(
        LOGS,
        ("<None>",),
        "-",
        "a connected driver wants its cluster's worker output (`init(log_to_driver=True)`)",
    ),
    Op(
        SUBMIT_AS,
        ("task_id", "<submit payload>"),
        "the task's return oids",
        "a connected driver's `submit` under the task id it chose (sent again after a head "
        "restart: a task the owner has is not submitted twice)",
    ),
    Op(
        CALL_AS,
        ("task_id", "<call_actor payload>"),
        "(the call's return oids, its sequence number)",
        "a connected driver's `call_actor` under the task id it chose (as `submit_as`)",
    ),
    Op(
        RESUME,
        ("submits", "calls", "refs", "values", "borrowed", "next_task", "actor_seqs"),
        "-",
        "a driver back under its old owner index after the head restarted: its lineage "
        "(`runtime.real.driver_resume`)",
    ),
    Op(
        INSPECT,
        ("<read>",),
        "what read(view) returned",
        "the state API: run the pickled `read` over a `ClusterView` of the core's tables",
    ),
)

OPS: dict[str, Op] = {op.name: op for op in _OPS}
"""Every worker request op by name."""
