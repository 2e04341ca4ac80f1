"""Every emulated account starts onboarded, as an account whose owner once opened Braket.

Opening Amazon Braket in the console onboards an account: it creates the role
``AmazonBraketJobsExecutionRole`` under the path ``/service-role/``, trusted by
``braket.amazonaws.com`` and with Amazon's managed policy ``AmazonBraketJobsExecutionPolicy``.
``AwsQuantumJob.create`` and ``@hybrid_job`` with no role find it by that name
(``AwsSession.get_default_jobs_role``), and Amazon's examples rely on it. The emulator makes it
in an account before a client of that account first calls IAM, STS, Braket or ECR, unless the
``onboarded_accounts`` setting is off (a bare account, for testing onboarding itself). The
policy is attached as the managed policy where moto has it, else put inline with the managed
policy's document (moto's copy of it).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ..settings import RuntimeSettings
from .own_clients import InternalClients
from .role_trust import BRAKET

#: The role onboarding makes, its path, and the managed policy it carries.
ROLE_NAME = "AmazonBraketJobsExecutionRole"
ROLE_PATH = "/service-role/"
POLICY_NAME = "AmazonBraketJobsExecutionPolicy"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": BRAKET},
            "Action": "sts:AssumeRole",
        }
    ],
}


def managed_policy_document() -> dict[str, Any]:
    """``AmazonBraketJobsExecutionPolicy``'s document, as moto carries it."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return dict(json.loads(aws_managed_policies_data)[POLICY_NAME]["Document"])


class Onboarding:
    """Onboards accounts on demand, once each per reset.

    Args:
        clients: The emulator's own clients.
        settings: ``onboarded_accounts``, read at each account's first call.
    """

    def __init__(self, clients: InternalClients, settings: RuntimeSettings) -> None:
        self.clients = clients
        self.settings = settings
        self._lock = threading.Lock()
        self._done: set[str] = set()

    def ensure(self, account: str) -> None:
        """Make sure ``account`` is onboarded (when accounts start onboarded)."""
        if account in self._done or not self.settings.onboarded_accounts:
            return
        with self._lock:
            if account in self._done:
                return
            self._onboard(account)
            self._done.add(account)

    def forget(self) -> None:
        """After a reset: onboard again at the next call."""
        with self._lock:
            self._done.clear()

    def _onboard(self, account: str) -> None:
        iam = self.clients.get("iam", "us-east-1", account=account)
        try:
            iam.create_role(
                RoleName=ROLE_NAME,
                Path=ROLE_PATH,
                AssumeRolePolicyDocument=json.dumps(TRUST),
                Description="Amazon Braket's default role for hybrid jobs (onboarding)",
            )
        except iam.exceptions.EntityAlreadyExistsException:
            return  # made before (by the user, or an earlier run): left as it is
        try:
            iam.attach_role_policy(
                RoleName=ROLE_NAME, PolicyArn=f"arn:aws:iam::aws:policy/{POLICY_NAME}"
            )
        except iam.exceptions.NoSuchEntityException:  # moto without Amazon's policies loaded
            iam.put_role_policy(
                RoleName=ROLE_NAME,
                PolicyName=POLICY_NAME,
                PolicyDocument=json.dumps(managed_policy_document()),
            )
