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
#: CreateJob's ``hyperParameters``: at most this many entries, each value at most 2500
#: characters (botocore model ``braket/2019-09-01``, ``HyperParameters``).
HYPERPARAMETERS_MAX = 100
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

#: Service Quotas' code for Braket (``servicequotas:GetServiceQuota`` / ``ListServiceQuotas``).
SERVICE_QUOTAS_CODE = "braket"
#: Hybrid jobs running at once per account and Region (QUEUED or RUNNING with an instance):
#: (quota code, default). Source: Service Quotas' defaults for service code ``braket``
#: ("Number of concurrent jobs", L-65BEB721: 5), as listed in the Service Quotas snapshot of
#: gruntwork-io/terraform-aws-utilities ``docs/quotas.md``; adjustable on request. Past it,
#: ``CreateJob`` answers ``ServiceQuotaExceededException`` (HTTP 402).
CONCURRENT_JOBS_QUOTA: tuple[str, int] = ("L-65BEB721", 5)
#: Instances of each type the account's hybrid jobs may use at once: type -> (quota code,
#: default), from the same source ("Maximum number of instances of <type> for jobs"). Types
#: the source does not list (newer ones) are taken as 0 until raised, as GPU types are.
INSTANCE_QUOTAS: dict[str, tuple[str, int]] = {
    "ml.m4.xlarge": ("L-A7DE49A7", 5),
    "ml.m4.2xlarge": ("L-35C855B5", 5),
    "ml.m4.4xlarge": ("L-E4856358", 2),
    "ml.m4.10xlarge": ("L-20DF4C21", 0),
    "ml.m4.16xlarge": ("L-15DC2286", 0),
    "ml.m5.large": ("L-D01386EB", 5),
    "ml.m5.xlarge": ("L-CEDB9365", 5),
    "ml.m5.2xlarge": ("L-B4BD4D05", 5),
    "ml.m5.4xlarge": ("L-935DC112", 5),
    "ml.m5.12xlarge": ("L-8EBDBB73", 0),
    "ml.m5.24xlarge": ("L-8F2E9AB0", 0),
    "ml.c4.xlarge": ("L-899E4166", 5),
    "ml.c4.2xlarge": ("L-BDA9BB2A", 5),
    "ml.c4.4xlarge": ("L-96E0F810", 5),
    "ml.c4.8xlarge": ("L-196E4F38", 5),
    "ml.c5.xlarge": ("L-6976A449", 5),
    "ml.c5.2xlarge": ("L-1DE68820", 5),
    "ml.c5.4xlarge": ("L-0454F2B6", 1),
    "ml.c5.9xlarge": ("L-6717BDE3", 1),
    "ml.c5.18xlarge": ("L-D76EFBC9", 0),
    "ml.c5n.xlarge": ("L-5A303583", 0),
    "ml.c5n.2xlarge": ("L-8B0E23AD", 0),
    "ml.c5n.4xlarge": ("L-C32F31F5", 0),
    "ml.c5n.9xlarge": ("L-F39A58EA", 0),
    "ml.c5n.18xlarge": ("L-9E03561A", 0),
    "ml.g4dn.xlarge": ("L-A95AE26D", 0),
    "ml.g4dn.2xlarge": ("L-05622A08", 0),
    "ml.g4dn.4xlarge": ("L-348592A9", 0),
    "ml.g4dn.8xlarge": ("L-C3A58F27", 0),
    "ml.g4dn.12xlarge": ("L-3A92FCE1", 0),
    "ml.g4dn.16xlarge": ("L-D0B25526", 0),
}
#: What ``CreateJob`` past a job quota is told (the service's words; a user's report:
#: amazon-braket-examples issue 181).
QUOTA_EXCEEDED_MESSAGE = "You have exceeded the service quota of {quota} ({limit}) in {region}"


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
