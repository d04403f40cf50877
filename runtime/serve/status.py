"""``serve.status()``'s answer: Ray Serve's ServeStatus, ApplicationStatusOverview and
DeploymentStatusOverview, the statuses as Ray's `str` enums (equal to their names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ApplicationStatus(str, Enum):  # noqa: UP042 (str() is "ApplicationStatus.X", as Ray)
    """An application's status, as Ray Serve's (`ray.serve.schema.ApplicationStatus`)."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


class DeploymentStatus(str, Enum):  # noqa: UP042 (not StrEnum: Ray's str())
    """A deployment's status, as Ray Serve's (`ray.serve._private.common.DeploymentStatus`)."""

    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"


@dataclass
class DeploymentStatusOverview:
    """A deployment's status (UPDATING, HEALTHY, UNHEALTHY, DEPLOY_FAILED), replica counts by
    state, and a message (the last constructor error when it is not healthy)."""

    status: DeploymentStatus
    replica_states: dict[str, int] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        self.status = DeploymentStatus(self.status)


@dataclass
class ApplicationStatusOverview:
    """An app's status (DEPLOYING, RUNNING, DEPLOY_FAILED, UNHEALTHY, DELETING) and its
    deployments by name."""

    status: ApplicationStatus
    message: str = ""
    last_deployed_time_s: float = 0.0
    deployments: dict[str, DeploymentStatusOverview] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = ApplicationStatus(self.status)


@dataclass
class ServeStatus:
    """Every app's status by name (empty before Serve starts)."""

    applications: dict[str, ApplicationStatusOverview] = field(default_factory=dict)
