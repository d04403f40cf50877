"""``serve.status()``'s answer: Ray Serve's ServeStatus, ApplicationStatusOverview and
DeploymentStatusOverview, with the status names as strings."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DeploymentStatusOverview:
    """A deployment's status (UPDATING, HEALTHY, UNHEALTHY, DEPLOY_FAILED), replica counts by
    state, and a message (the last constructor error when it is not healthy)."""

    status: str
    replica_states: dict[str, int] = field(default_factory=dict)
    message: str = ""


@dataclass
class ApplicationStatusOverview:
    """An app's status (DEPLOYING, RUNNING, DEPLOY_FAILED, UNHEALTHY, DELETING) and its
    deployments by name."""

    status: str
    message: str = ""
    last_deployed_time_s: float = 0.0
    deployments: dict[str, DeploymentStatusOverview] = field(default_factory=dict)


@dataclass
class ServeStatus:
    """Every app's status by name (empty before Serve starts)."""

    applications: dict[str, ApplicationStatusOverview] = field(default_factory=dict)
