"""Facts of the Amazon Braket service, written once: states, limits, names and formats.

Every module that needs one of these imports it from here: the executor, which must respect
them, and Braket-in-a-box, which plays the service (it keeps its own request validators, but
the service's numbers and names come from this page). Sources: the botocore service model
``braket/2019-09-01`` and the Amazon Braket developer guide.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone

#: Job and quantum-task states after which nothing changes any more.
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
#: ``stoppingCondition.maxRuntimeInSeconds``: 1 to 5 days, and the default when it is absent.
MAX_RUNTIME_SECONDS = 432_000
#: ``jobName``: 1 to 50 characters of ``[a-zA-Z0-9-]``, starting with a letter or digit.
JOB_NAME_MAX = 50
JOB_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,50}$"
#: The CloudWatch Logs group every hybrid job writes to; a job's streams start
#: ``<jobName>/<job id>/`` (see :func:`log_stream_prefix`).
LOG_GROUP = "/aws/braket/jobs"
#: The Regions that have Braket.
REGIONS = ("us-east-1", "us-west-1", "us-west-2", "eu-west-2", "eu-north-1")
#: Amazon's managed hybrid-job images: one registry (account) for every Region.
MANAGED_IMAGE_REGISTRY = "292282985366"
MANAGED_IMAGE_REPOSITORIES = (
    "amazon-braket-base-jobs",
    "amazon-braket-pytorch-jobs",
    "amazon-braket-tensorflow-jobs",
    "amazon-braket-cudaq-jobs",
)
#: The managed state-vector simulator, the devices' default.
SV1_ARN = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
#: The most tags on one Braket resource (a job, a quantum task).
MAX_TAGS_PER_RESOURCE = 50
#: The most results a search page (``SearchJobs``, ``SearchQuantumTasks``, ...) returns.
SEARCH_PAGE_MAX = 100


#: Request quotas of the Braket API, per account and Region: operation -> (requests per second,
#: burst). The burst is the most requests that may go at once; the rate refills it. Source:
#: "Amazon Braket Quotas" in the Amazon Braket developer guide (also "Amazon Braket endpoints
#: and quotas" in the AWS general reference), December 2026. Rates can be raised (to at most
#: twice these); bursts cannot. Operations not listed count only against :data:`API_QUOTA`.
QUOTAS: dict[str, tuple[float, int]] = {
    "CreateQuantumTask": (20.0, 40),
    "GetQuantumTask": (100.0, 500),
    "SearchQuantumTasks": (5.0, 50),
    "CancelQuantumTask": (2.0, 20),
    "GetDevice": (5.0, 50),
    "SearchDevices": (5.0, 50),
    "CreateJob": (1.0, 5),
    "GetJob": (5.0, 25),
    "SearchJobs": (5.0, 50),
    "CancelJob": (2.0, 5),
}
#: Every Braket request of an account in a Region counts against this too.
API_QUOTA: tuple[float, int] = (140.0, 600)
#: What a throttled request is told (the model's words for ``ThrottlingException``).
THROTTLED_MESSAGE = "The API throttling rate limit is exceeded."


def managed_image_uri(repository: str, region: str, tag: str = "latest") -> str:
    """The URI of one of Amazon's managed job images in a Region."""
    return f"{MANAGED_IMAGE_REGISTRY}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"


def log_stream_prefix(job_name: str, job_arn: str) -> str:
    """The prefix of a job's log streams in :data:`LOG_GROUP`: its name and the id that ends
    its ARN (``job/<id>``), as the Braket SDK reads them."""
    return f"{job_name}/{job_arn.rsplit('/', 1)[-1]}/"


def arn_region(arn: str) -> str:
    """The Region an ARN names (its fourth field); empty when it names none, as the managed
    simulators' and IAM's ARNs do, or when ``arn`` is not an ARN."""
    parts = str(arn).split(":")
    return parts[3] if len(parts) >= 6 else ""


def iso_time(moment: object) -> str | None:
    """A time as our own records write it (``usage.json``, ``covalent-braket jobs --json``):
    ISO 8601 in UTC; text is kept as it is, and nothing stays None."""
    if isinstance(moment, datetime):
        return moment.astimezone(timezone.utc).isoformat()
    return str(moment) if moment else None


def timestamp(moment: datetime) -> str:
    """A time as the service writes it in requests and answers: UTC, milliseconds, ``Z``
    (``2026-12-02T06:08:28.123Z``)."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=1)
def instance_types() -> tuple[str, ...]:
    """The ``instanceConfig.instanceType`` values the service accepts (the model's enum)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("braket")
    return tuple(model.shape_for("InstanceType").enum)
