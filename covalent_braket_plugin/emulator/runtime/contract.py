"""The job container's contract, on a local directory: the ``/opt`` tree the job sees, its
environment, its inputs staged from S3, its command, and its outputs uploaded to S3.

Each job gets a working directory laid out like the container's tree, a hyperparameters
file, the ``AMZN_BRAKET_*`` variables pointing into that directory, and every AWS endpoint
variable pointing back at the emulator. In script mode the process is
:mod:`covalent_braket_plugin.emulator.runtime.bootstrap` in the current Python environment.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..api.models import Job
from ..aws_services.identity import JOB_ACCESS_KEY, JOB_SECRET_KEY
from ..aws_services.own_clients import InternalClients
from ..aws_services.price_list import PATH as PRICE_LIST_PATH


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


class JobContainer:
    """One job's container, emulated in ``root``.

    Args:
        job: The job it runs.
        root: Its working directory (made afresh).
        clients: The emulator's own clients, for staging data.
    """

    def __init__(self, job: Job, root: Path, clients: InternalClients) -> None:
        self.job = job
        self.root = root
        self.clients = clients
        opt = root / "opt"
        self.code = opt / "braket" / "code" / "customer_code"
        self.input_config = opt / "braket" / "input" / "config"
        self.input_data = opt / "braket" / "input" / "data"
        self.model = opt / "braket" / "model"
        self.checkpoints = opt / "jobs" / "checkpoints"
        self.output = opt / "ml" / "output"
        self.hp_file = self.input_config / "hyperparameters.json"
        self.failure = self.output / "failure"

    def prepare(self) -> None:
        """Lay out the directory tree (private to its user) and write the hyperparameters
        file."""
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(mode=0o700, parents=True)
        self.root.chmod(0o700)  # the job's files are its user's alone, whatever the umask
        for path in (
            self.code,
            self.input_config,
            self.input_data,
            self.model,
            self.checkpoints,
            self.output,
        ):
            path.mkdir(parents=True, exist_ok=True)
        self.hp_file.write_text(json.dumps(self.job.request.get("hyperParameters") or {}))

    def stage_inputs(self) -> None:
        """Download the input channels and the checkpoints."""
        s3 = self.clients.get("s3", self.job.region)
        for channel in self.job.request.get("inputDataConfig") or []:
            uri = channel["dataSource"]["s3DataSource"]["s3Uri"]
            _download_prefix(s3, uri, self.input_data / channel["channelName"])
        checkpoint = (self.job.request.get("checkpointConfig") or {}).get("s3Uri")
        if checkpoint:
            _download_prefix(s3, checkpoint, self.checkpoints, directory=True)

    def upload_results(self) -> None:
        """Tar the results directory to ``{s3Path}/output/model.tar.gz`` (a completed job's)."""
        s3 = self.clients.get("s3", self.job.region)
        bucket, prefix = split_s3(self.job.request["outputDataConfig"]["s3Path"])
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for item in sorted(self.model.rglob("*")):
                tar.add(item, arcname=str(item.relative_to(self.model)), recursive=False)
        key = f"{prefix.rstrip('/')}/output/model.tar.gz".lstrip("/")
        s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())

    def upload_checkpoints(self) -> None:
        """Upload what the job left in its checkpoint directory."""
        checkpoint = (self.job.request.get("checkpointConfig") or {}).get("s3Uri")
        if not checkpoint:
            return
        s3 = self.clients.get("s3", self.job.region)
        bucket, prefix = split_s3(checkpoint)
        for item in self.checkpoints.rglob("*"):
            if item.is_file():
                relative = item.relative_to(self.checkpoints).as_posix()
                s3.upload_file(str(item), bucket, f"{prefix.rstrip('/')}/{relative}".lstrip("/"))

    def failure_text(self) -> str:
        """What the job wrote to its failure file, if anything."""
        if not self.failure.exists():
            return ""
        return self.failure.read_text(errors="replace").strip()

    def environment(self, endpoint_url: str) -> dict[str, str]:
        """The job process's environment: the container's variables, every AWS call sent
        back to the emulator with the job's credentials, none of the host's AWS settings."""
        request = self.job.request
        out_bucket, out_prefix = split_s3(request["outputDataConfig"]["s3Path"])
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "AMZN_BRAKET_", "BRAKET_", "SM_", "COVALENT_BRAKET_"))
        }
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                # Every AWS call from the job comes back to the emulator, never to AWS.
                "AWS_ENDPOINT_URL": endpoint_url,
                "BRAKET_ENDPOINT": endpoint_url,
                # braket.tracking.Tracker prices tasks from the emulator's price list.
                "BRAKET_PRICE_OFFERS_URL": endpoint_url + PRICE_LIST_PATH,
                "AWS_ACCESS_KEY_ID": JOB_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": JOB_SECRET_KEY,
                "AWS_REGION": self.job.region,
                "AWS_DEFAULT_REGION": self.job.region,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
                # As in a real job, the code's own AWS calls retry throttling and 5xx.
                "AWS_RETRY_MODE": "standard",
                "AWS_MAX_ATTEMPTS": "10",
                "AMZN_BRAKET_JOB_NAME": self.job.name,
                "AMZN_BRAKET_DEVICE_ARN": self.job.device,
                "AMZN_BRAKET_JOB_RESULTS_DIR": str(self.model),
                "AMZN_BRAKET_CHECKPOINT_DIR": str(self.checkpoints),
                "AMZN_BRAKET_HP_FILE": str(self.hp_file),
                "AMZN_BRAKET_INPUT_DIR": str(self.input_data),
                "AMZN_BRAKET_OUT_S3_BUCKET": out_bucket,
                "AMZN_BRAKET_TASK_RESULTS_S3_URI": f"s3://{out_bucket}/jobs/{self.job.name}/tasks",
                "AMZN_BRAKET_JOB_RESULTS_S3_PATH": f"{out_prefix.rstrip('/')}/output",
                "AMZN_BRAKET_JOB_TOKEN": self.job.token,
                "BRAKET_EMULATOR_JOB_ROOT": str(self.root),
                "BRAKET_EMULATOR_FAILURE_FILE": str(self.failure),
                "BRAKET_EMULATOR_CODE_DIR": str(self.code),
            }
        )
        script = request["algorithmSpecification"].get("scriptModeConfig")
        if script:
            env["AMZN_BRAKET_SCRIPT_S3_URI"] = script["s3Uri"]
            env["AMZN_BRAKET_SCRIPT_ENTRY_POINT"] = script["entryPoint"]
            env["AMZN_BRAKET_SCRIPT_COMPRESSION_TYPE"] = script.get("compressionType", "NONE")
        return env

    def command(
        self, env: dict[str, str], image_commands: dict[str, list[str]]
    ) -> list[str] | None:
        """The job's process: the bootstrap in script mode, the mapped command in image mode
        (None if no command is mapped to the image).

        In image mode the hyperparameters are also exported as ``SM_HP_<NAME>`` (and all of
        them as ``SM_HPS``), as the SageMaker training toolkit does.
        """
        algorithm = self.job.request["algorithmSpecification"]
        if algorithm.get("scriptModeConfig"):
            return [sys.executable, "-u", "-m", "covalent_braket_plugin.emulator.runtime.bootstrap"]
        command = image_commands.get(algorithm.get("containerImage", {}).get("uri", ""))
        if not command:
            return None
        hyperparameters = self.job.request.get("hyperParameters") or {}
        env["SM_HPS"] = json.dumps(hyperparameters)
        for name, value in hyperparameters.items():
            env[f"SM_HP_{re.sub(r'[^A-Za-z0-9_]', '_', name).upper()}"] = value
        return [str(part) for part in command]


def _download_prefix(s3: Any, uri: str, target: Path, directory: bool = False) -> None:
    """Stage what an S3 URI names into ``target``, as the service stages an input channel:
    a prefix that names one directory gives its contents; one that names a single object
    gives that file under its own name; otherwise every match keeps its path from the
    prefix's parent. A key that would land outside ``target`` (``../``) is left out."""
    bucket, prefix = split_s3(uri)
    try:
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        ]
    except Exception:  # a missing bucket or prefix leaves the channel empty, as on AWS
        return
    if not keys:
        return
    if directory or prefix.endswith("/") or all(k.startswith(prefix + "/") for k in keys):
        base = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        places = {key: key[len(base) :] for key in keys}
    elif len(keys) == 1:
        places = {keys[0]: os.path.basename(keys[0])}
    else:
        parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        places = {key: key[len(parent) :] for key in keys}
    root = target.resolve()
    for key, relative in places.items():
        destination = (root / relative).resolve()
        if not relative or not destination.is_relative_to(root) or destination == root:
            continue  # refused: it would land outside the job's directory
        destination.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(destination))
