"""Serve's exception types, with Ray Serve's names (`except serve.exceptions.X` ports over)."""

from __future__ import annotations

from runtime.exceptions import OptionNotSupportedError, RayError

__all__ = [
    "BackPressureError",
    "DeploymentUnavailableError",
    "RayServeException",
    "ReplicaDiedError",
    "ServeOptionNotSupportedError",
]


class RayServeException(RayError):
    """Base class of Serve's own errors (a bad app, an unknown name, Serve not running)."""


class BackPressureError(RayServeException):
    """A request found every replica at ``max_ongoing_requests`` and the queue at
    ``max_queued_requests``: it was dropped (HTTP 503), as Ray Serve drops it."""

    def __init__(self, num_queued_requests: int, max_queued_requests: int) -> None:
        super().__init__(num_queued_requests, max_queued_requests)
        self.num_queued_requests = num_queued_requests
        self.max_queued_requests = max_queued_requests

    def __str__(self) -> str:
        return (
            f"Request dropped due to backpressure (num_queued_requests="
            f"{self.num_queued_requests}, max_queued_requests={self.max_queued_requests})."
        )

    @property
    def message(self) -> str:
        """The same text as ``str()`` (Ray's property)."""
        return str(self)

    @property
    def status_code(self) -> int:
        """The HTTP status the proxy answers with: 503."""
        return 503


class DeploymentUnavailableError(RayServeException):
    """The deployment failed to deploy (its constructor kept raising): it takes no requests."""

    def __init__(self, deployment: str, reason: str = "") -> None:
        super().__init__(deployment, reason)
        self.deployment = deployment
        self.reason = reason

    def __str__(self) -> str:
        tail = f": {self.reason}" if self.reason else ""
        return f"{self.deployment} is unavailable because it failed to deploy{tail}"


class ReplicaDiedError(RayServeException):
    """The replica running the request died before answering (the request is not retried:
    it may have had effects); the replica is replaced. A request that had not reached the
    replica when it died is routed to another one instead, as Ray Serve retries it."""

    def __init__(self, replica_id: str, detail: str = "") -> None:
        super().__init__(replica_id, detail)
        self.replica_id = replica_id
        self.detail = detail

    def __str__(self) -> str:
        tail = f" ({self.detail})" if self.detail else ""
        return f"replica {self.replica_id} died while handling the request{tail}"


class ServeOptionNotSupportedError(RayServeException, OptionNotSupportedError):
    """A Ray Serve option or call twinray's Serve does not provide (autoscaling, placement
    group bundles, gRPC, ...): raised where it is passed, naming it."""
