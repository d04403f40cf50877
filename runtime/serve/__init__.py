"""Ray Serve's API on twinray (``from runtime import serve``): deployments as actors, handles
routed by the core's power-of-two choices, ``@serve.batch`` by the core batcher, an HTTP proxy.

uvicorn and starlette (the ``serve`` extra) load only when the proxy starts or a replica
answers HTTP, so importing this module stays light.
"""

from runtime.serve import exceptions
from runtime.serve.api import (
    delete,
    get_app_handle,
    get_deployment_handle,
    run,
    shutdown,
    start,
    status,
)
from runtime.serve.batching import batch
from runtime.serve.deployment import Application, Deployment, deployment
from runtime.serve.handle import DeploymentHandle, DeploymentResponse
from runtime.serve.replica import get_replica_context
from runtime.serve.status import (
    ApplicationStatusOverview,
    DeploymentStatusOverview,
    ServeStatus,
)

__all__ = [
    "Application",
    "ApplicationStatusOverview",
    "Deployment",
    "DeploymentHandle",
    "DeploymentResponse",
    "DeploymentStatusOverview",
    "ServeStatus",
    "batch",
    "delete",
    "deployment",
    "exceptions",
    "get_app_handle",
    "get_deployment_handle",
    "get_replica_context",
    "run",
    "shutdown",
    "start",
    "status",
]
