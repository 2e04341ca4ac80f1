"""``covalent-braket setup`` and ``covalent-braket doctor`` against the emulator.

``setup`` makes what is missing and nothing else: a second run sends no request that
creates or changes anything. ``doctor`` passes the setup ``setup`` makes, and finds each of a
dozen broken ones, naming the check and how to fix it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from covalent_braket_plugin import aws as aws_module
from covalent_braket_plugin import doctor, policies, provisioning
from covalent_braket_plugin.config import InvalidSettingError
from covalent_braket_plugin.provisioning.bucket import TASK_RESULTS_RULE_ID

pytestmark = pytest.mark.timeout(180)

ACCOUNT = "123456789012"

BUCKET = f"amazon-braket-covalent-us-east-1-{ACCOUNT}"
ROLE = "covalent-braket-setup-job"  # not the one the aws fixture provisions
PYTHON = "{}.{}".format(*sys.version_info[:2])
#: Requests that create or change something.
WRITES = ("Create", "Put", "Update", "Attach", "Delete", "Tag")


@pytest.fixture
def conf_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COVALENT_CONFIG_DIR", str(tmp_path))
    return tmp_path


def write_conf(conf_dir: Path, section: dict[str, Any]) -> None:
    lines = ["[executors.braket]"] + [f"{k} = {json.dumps(v)}" for k, v in section.items()]
    (conf_dir / "covalent.conf").write_text("\n".join(lines) + "\n")


def set_up(**options: Any) -> provisioning.Outcome:
    aws_module.reset_cache()
    return provisioning.run(provisioning.Options(**{"role_name": ROLE, **options}))


def writes(aws: Any) -> list[str]:
    return [
        f"{entry['service']}:{entry['operation']}"
        for entry in aws.control.journal()
        if str(entry.get("operation") or "").startswith(WRITES)
    ]


def test_setup_is_idempotent_the_second_run_creates_nothing(aws: Any) -> None:
    aws.control.clear_journal()
    first = set_up()
    made = {(step.resource, step.name) for step in first.steps if step.changed}
    assert ("bucket", BUCKET) in made and ("role", ROLE) in made
    assert writes(aws), "the first run creates the resources"
    assert first.section["s3_bucket_name"] == BUCKET

    aws.control.clear_journal()
    second = set_up()
    assert [step.action for step in second.steps] == ["found"] * len(second.steps)
    assert writes(aws) == []
    assert second.section == first.section


def test_setup_makes_a_private_encrypted_bucket_and_a_least_privilege_role(aws: Any) -> None:
    outcome = set_up(expiry_days=7)
    s3, iam = aws.s3, aws.control.client("iam")
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rule, tasks = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rule["Filter"]["Prefix"] == "covalent-braket/" and rule["Expiration"]["Days"] == 7
    assert tasks["Filter"]["Prefix"] == "jobs/cov-" and tasks["Expiration"]["Days"] == 7
    role = iam.get_role(RoleName=ROLE)["Role"]
    assert policies.trusts_braket(role["AssumeRolePolicyDocument"])
    document = iam.get_role_policy(RoleName=ROLE, PolicyName=policies.JOB_ROLE_POLICY_NAME)
    statements = document["PolicyDocument"]["Statement"]
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert "s3:PutObject" in actions and not any(a.startswith("kms:") for a in actions)
    assert outcome.section["ecr_image_uri"].endswith("/covalent-braket:latest")  # emulator


def test_setup_with_a_kms_key_grants_exactly_that_key(aws: Any) -> None:
    key = aws.control.client("kms").create_key()["KeyMetadata"]["Arn"]
    outcome = set_up(kms_key_id=key)
    document = aws.control.client("iam").get_role_policy(
        RoleName=ROLE, PolicyName=policies.JOB_ROLE_POLICY_NAME
    )["PolicyDocument"]
    kms = [s for s in document["Statement"] if str(s["Action"]).startswith("['kms")]
    assert kms and kms[0]["Resource"] == key
    assert sorted(kms[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    rules = aws.s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]
    assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key
    assert outcome.section["kms_key_id"] == key
    assert any(s.get("Resource") == key for s in outcome.submitter_policy["Statement"])


def test_setup_dry_run_only_looks(aws: Any) -> None:
    aws.control.clear_journal()
    outcome = set_up(dry_run=True)
    actions = {(step.resource, step.name): step.action for step in outcome.steps}
    assert actions[("bucket", BUCKET)] == "would create"
    assert actions[("role", ROLE)] == "would create"
    assert actions[("role", f"inline policy {policies.JOB_ROLE_POLICY_NAME}")] == "would set"
    assert writes(aws) == []
    assert BUCKET not in [b["Name"] for b in aws.s3.list_buckets()["Buckets"]]
    # What S3 gives every new bucket is said so, and the real run then finds it: the dry run
    # says what the real run will do, no more.
    defaults = [("bucket", "encryption SSE-S3"), ("bucket", "public access blocked")]
    assert [actions[step] for step in defaults] == ["S3's default for a new bucket"] * 2
    real = {(step.resource, step.name): step.action for step in set_up().steps}
    assert [real[step] for step in defaults] == ["found", "found"]


def test_setup_keeps_the_users_own_lifecycle_rules(aws: Any) -> None:
    aws.s3.create_bucket(Bucket=BUCKET)
    theirs = {
        "ID": "theirs",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 3},
    }
    aws.s3.put_bucket_lifecycle_configuration(
        Bucket=BUCKET,
        LifecycleConfiguration={"Rules": [theirs]},
        TransitionDefaultMinimumObjectSize="varies_by_storage_class",  # not S3's default
    )
    set_up()
    found = aws.s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)
    ids = [r["ID"] for r in found["Rules"]]
    assert ids == ["theirs", provisioning.LIFECYCLE_RULE_ID, TASK_RESULTS_RULE_ID]
    assert found["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"


def test_setup_expires_the_results_of_its_jobs_quantum_tasks_too(aws: Any) -> None:
    """The quantum tasks a job creates write their results under ``jobs/<job>/tasks/`` of the
    job's output bucket: those of the executor's jobs (``cov-...``) expire as its own objects."""
    set_up()
    rules = aws.s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    prefixes = {rule["ID"]: rule["Filter"]["Prefix"] for rule in rules}
    assert prefixes[provisioning.LIFECYCLE_RULE_ID] == "covalent-braket/"
    assert prefixes[TASK_RESULTS_RULE_ID] == "jobs/cov-"
    assert all(rule["Expiration"]["Days"] == rules[0]["Expiration"]["Days"] for rule in rules)


def test_setup_refuses_a_role_braket_cannot_assume_and_changes_nothing(aws: Any) -> None:
    iam = aws.control.client("iam")
    ec2_trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(ec2_trust))
    with pytest.raises(InvalidSettingError) as info:
        set_up()
    assert info.value.setting == "braket_job_execution_role_name"
    assert "braket.amazonaws.com" in str(info.value)
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == []


def covalents_own_conf(conf_dir: Path) -> Path:
    """covalent.conf as Covalent leaves it once the plugin is installed: its own sections and
    the plugin's defaults in ``[executors.braket]``."""
    import toml

    from covalent_braket_plugin.config import DEFAULTS

    conf = conf_dir / "covalent.conf"
    data = {"dispatcher": {"address": "localhost"}, "executors": {"braket": dict(DEFAULTS)}}
    conf.write_text(toml.dumps(data))
    return conf


def test_setup_writes_its_settings_into_the_section_covalent_wrote(
    aws: Any, conf_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import toml

    from covalent_braket_plugin import cli

    conf = covalents_own_conf(conf_dir)
    before = conf.read_text()
    aws_module.reset_cache()
    assert cli.main(["setup", "--role-name", ROLE]) == 0
    out = capsys.readouterr().out
    data = toml.loads(conf.read_text())  # one section: the file still parses
    braket = data["executors"]["braket"]
    assert braket["s3_bucket_name"] == BUCKET and braket["braket_job_execution_role_name"] == ROLE
    assert braket["poll_freq"] == 30 and data["dispatcher"] == {"address": "localhost"}
    assert f'+s3_bucket_name = "{BUCKET}"' in out and "-s3_bucket_name = " in out
    (backup,) = conf_dir.glob("covalent.conf.*.bak")
    assert backup.read_text() == before and str(backup) in out

    aws_module.reset_cache()
    assert cli.main(["setup", "--role-name", ROLE]) == 0
    assert "already has these settings" in capsys.readouterr().out
    assert len(list(conf_dir.glob("covalent.conf.*.bak"))) == 1


def test_setup_print_writes_nothing_and_a_broken_conf_stops_it_before_anything_is_made(
    aws: Any, conf_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from covalent_braket_plugin import cli

    conf = covalents_own_conf(conf_dir)
    before = conf.read_text()
    aws_module.reset_cache()
    assert cli.main(["setup", "--role-name", ROLE, "--print"]) == 0
    out = capsys.readouterr().out
    assert conf.read_text() == before and "Nothing was written to" in out
    assert f's3_bucket_name = "{BUCKET}"' in out.split("[executors.braket]\n", 1)[1]

    aws.control.reset()
    conf.write_text(before + '\n[executors.braket]\ns3_bucket_name = "pasted-twice"\n')
    aws.control.clear_journal()
    aws_module.reset_cache()
    assert cli.main(["setup", "--role-name", ROLE]) == 1
    err = capsys.readouterr().err
    assert "is not valid TOML" in err and "a second [executors.braket] section" in err
    assert writes(aws) == []  # refused before anything was made


def test_setup_for_a_second_bucket_keeps_the_first_in_the_roles_policy(aws: Any) -> None:
    first, second = BUCKET, "amazon-braket-covalent-second"
    set_up(bucket=first)
    set_up(bucket=second)
    iam = aws.control.client("iam")
    document = iam.get_role_policy(RoleName=ROLE, PolicyName=policies.JOB_ROLE_POLICY_NAME)
    granted = document["PolicyDocument"]
    assert policies.granted_buckets(granted) == [first, second]
    text = json.dumps(granted)
    for bucket in (first, second):
        assert f"arn:aws:s3:::{bucket}/covalent-braket/*" in text
    aws.control.clear_journal()
    set_up(bucket=second)
    assert writes(aws) == []  # the same buckets: nothing to change


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"role_name": "no spaces allowed"}, "braket_job_execution_role_name"),
        ({"bucket": "amazon-braket-Upper_Case"}, "s3_bucket_name"),
        ({"devices": ("sv1",)}, "quantum_device"),
    ],
)
def test_setup_checks_every_name_as_the_executor_does_before_anything_is_made(
    aws: Any, options: dict[str, Any], setting: str
) -> None:
    aws.control.clear_journal()
    with pytest.raises(InvalidSettingError) as info:
        set_up(**options)
    assert info.value.setting == setting
    assert writes(aws) == []


def test_setup_refuses_a_region_without_braket(aws: Any) -> None:
    with pytest.raises(InvalidSettingError, match="ap-south-1"):
        set_up(region="ap-south-1")


# ---------------------------------------------------------------------------- doctor
def diagnose(**overrides: Any) -> dict[str, doctor.Check]:
    aws_module.reset_cache()
    checks = doctor.Doctor(overrides).run()
    return {check.name: check for check in checks}


def problems(checks: dict[str, doctor.Check]) -> dict[str, str]:
    return {name: check.detail for name, check in checks.items() if check.status == doctor.PROBLEM}


@pytest.fixture
def good(aws: Any, conf_dir: Path) -> dict[str, Any]:
    """A good setup: what ``setup`` makes, its section in covalent.conf."""
    aws.settings(managed_image_python=PYTHON)
    section = set_up().section
    write_conf(conf_dir, section)
    return section


def test_doctor_passes_a_good_setup(good: dict[str, Any]) -> None:
    checks = diagnose()
    assert problems(checks) == {}
    for name in (
        "covalent.conf",
        "credentials",
        "region",
        "bucket",
        "bucket encryption",
        "bucket access",
        "job role",
        "job role trust",
        "job role permissions",
        "permissions",
        "image",
        "device",
        "versions",
    ):
        assert checks[name].status == doctor.OK, (name, checks[name])


def test_doctor_on_the_managed_image_checks_its_python(
    aws: Any, conf_dir: Path, good: dict[str, Any]
) -> None:
    write_conf(conf_dir, {**good, "ecr_image_uri": ""})
    checks = diagnose()
    assert checks["image python"].status == doctor.OK
    assert problems(checks) == {}


def _break(aws: Any, conf_dir: Path, good: dict[str, Any], how: str) -> None:
    iam = aws.control.client("iam")
    if how == "missing bucket":
        aws.s3.delete_bucket(Bucket=BUCKET)
    elif how == "wrong-Region bucket":
        west = aws.control.client("s3", region_name="us-west-2")
        west.create_bucket(
            Bucket="amazon-braket-covalent-west",
            CreateBucketConfiguration={"LocationConstraint": "us-west-2"},
        )
        write_conf(conf_dir, {**good, "s3_bucket_name": "amazon-braket-covalent-west"})
    elif how == "public bucket":
        aws.s3.delete_public_access_block(Bucket=BUCKET)
        aws.s3.put_bucket_acl(Bucket=BUCKET, ACL="public-read")
    elif how == "role without the Braket trust":
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(trust))
    elif how == "role without S3 access":
        name = policies.JOB_ROLE_POLICY_NAME
        document = iam.get_role_policy(RoleName=ROLE, PolicyName=name)["PolicyDocument"]
        document["Statement"] = [
            s for s in document["Statement"] if "s3:PutObject" not in s["Action"]
        ]
        iam.put_role_policy(RoleName=ROLE, PolicyName=name, PolicyDocument=json.dumps(document))
    elif how == "missing image":
        write_conf(
            conf_dir,
            {**good, "ecr_image_uri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/nowhere:1"},
        )
    elif how == "Python mismatch":
        aws.settings(managed_image_python="3.12" if PYTHON != "3.12" else "3.11")
        write_conf(conf_dir, {**good, "ecr_image_uri": ""})
    elif how == "OFFLINE device":
        (arn,) = aws.control.add_devices(
            [
                {
                    "arn": "arn:aws:braket:us-east-1::device/qpu/acme/Down",
                    "qubitCount": 2,
                    "status": "OFFLINE",
                }
            ]
        )
        write_conf(conf_dir, {**good, "quantum_device": arn})
    elif how == "bad covalent.conf value":
        write_conf(conf_dir, {**good, "poll_freq": "often"})
    elif how == "typo in covalent.conf":
        write_conf(conf_dir, {**good, "s3_bucket": "x"})
    elif how == "no covalent.conf section":
        (conf_dir / "covalent.conf").write_text('[dispatcher]\naddress = "127.0.0.1"\n')
    elif how == "caller without CreateJob":
        document = policies.documents(
            policies.Variables(
                "aws", "us-east-1", ACCOUNT, BUCKET, f"arn:aws:iam::{ACCOUNT}:role/{ROLE}", "*"
            )
        )[policies.SUBMITTER]
        document["Statement"] = [
            s for s in document["Statement"] if s["Sid"] != "CreateJobsOnDevices"
        ]
        aws.control.enforce_policy(document)
    else:
        raise AssertionError(how)


BROKEN = [
    ("missing bucket", "bucket", "an existing bucket"),
    ("wrong-Region bucket", "bucket", "us-west-2"),
    ("public bucket", "bucket access", "public"),
    ("role without the Braket trust", "job role trust", "braket.amazonaws.com"),
    ("role without S3 access", "job role permissions", "s3:PutObject"),
    ("missing image", "image", "nowhere"),
    ("Python mismatch", "image python", f"server Python {PYTHON}"),
    ("OFFLINE device", "device", "OFFLINE"),
    ("bad covalent.conf value", "covalent.conf", "poll_freq"),
    ("typo in covalent.conf", "covalent.conf", "s3_bucket"),
    ("no covalent.conf section", "covalent.conf", "no [executors.braket] section"),
    ("caller without CreateJob", "permissions", "braket:CreateJob"),
]


@pytest.mark.parametrize(("how", "check", "named"), BROKEN, ids=[b[0] for b in BROKEN])
def test_doctor_finds_a_broken_setup(
    aws: Any, conf_dir: Path, good: dict[str, Any], how: str, check: str, named: str
) -> None:
    _break(aws, conf_dir, good, how)
    checks = diagnose()
    assert check in problems(checks), (how, problems(checks))
    assert named in checks[check].detail
    assert checks[check].fix


def test_doctor_without_credentials_says_so_and_skips_what_needs_them(
    aws: Any, good: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    checks = diagnose()
    assert "credentials" in problems(checks)
    assert checks["bucket"].status == doctor.SKIPPED


def test_doctor_names_a_fastapi_that_breaks_covalent(
    good: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = doctor.metadata.version
    monkeypatch.setattr(
        doctor.metadata, "version", lambda name: "0.135.0" if name == "fastapi" else real(name)
    )
    checks = diagnose()
    assert "versions" in problems(checks) and "0.135.0" in checks["versions"].detail
    assert "fastapi<0.132" in checks["versions"].fix


def test_doctor_cli_exits_non_zero_on_a_problem_and_prints_json(
    aws: Any, conf_dir: Path, good: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from covalent_braket_plugin.cli import main

    aws_module.reset_cache()
    assert main(["doctor"]) == 0
    assert "No problems found" in capsys.readouterr().out
    write_conf(conf_dir, {**good, "poll_freq": "often"})
    aws_module.reset_cache()
    assert main(["doctor", "--json"]) == 1
    verdicts = {c["name"]: c["status"] for c in json.loads(capsys.readouterr().out)}
    assert verdicts["covalent.conf"] == "problem" and verdicts["device"] == "ok"


# ---------------------------------------------------------------------------- doctor's trust
def test_doctor_simulates_an_sso_callers_role_with_its_path(
    aws: Any, good: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SSO user's role lives under ``/aws-reserved/sso.amazonaws.com/``: IAM's simulator
    knows it only by its ARN with that path, which the session's ARN lacks."""
    iam = aws.control.client("iam")
    path, name = "/aws-reserved/sso.amazonaws.com/", "AWSReservedSSO_Admin_0123456789abcdef"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}  # fmt: skip
    arn = iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                  "Resource": "*"}]}  # fmt: skip
    iam.put_role_policy(RoleName=name, PolicyName="admin", PolicyDocument=json.dumps(everything))
    credentials = aws.control.client("sts").assume_role(RoleArn=arn, RoleSessionName="me")[
        "Credentials"
    ]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    checks = diagnose()
    assert checks["permissions"].status == doctor.OK, checks["permissions"]
    assert "not the bucket's or the KMS key's own policy" in checks["permissions"].detail


def test_a_look_up_the_caller_may_not_make_is_unknown_not_ok(
    aws: Any, good: dict[str, Any]
) -> None:
    aws.control.enforce_policy(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"},
                {"Effect": "Deny", "Action": "braket:GetDevice", "Resource": "*"},
            ],
        }
    )
    checks = diagnose()
    assert checks["device"].status == doctor.UNKNOWN, checks["device"]
    assert checks["device"].detail == "unknown (not allowed to look: braket:GetDevice)"


def test_doctor_resolves_a_kms_alias_to_its_key(aws: Any, conf_dir: Path) -> None:
    kms = aws.control.client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/covalent-braket", TargetKeyId=key)
    aws.settings(managed_image_python=PYTHON)
    section = set_up(kms_key_id=key).section
    write_conf(conf_dir, {**section, "kms_key_id": "alias/covalent-braket"})
    checks = diagnose()
    assert problems(checks) == {}
    assert checks["job role permissions"].status == doctor.OK


def test_an_explicit_deny_is_named_not_answered_with_grant_the_policies(
    aws: Any, good: dict[str, Any]
) -> None:
    deny = {"Version": "2012-10-17", "Statement": [{"Sid": "NoResults", "Effect": "Deny",
            "Action": "s3:PutObject", "Resource": "*"}]}  # fmt: skip
    aws.control.client("iam").put_role_policy(
        RoleName=ROLE, PolicyName="no-writes", PolicyDocument=json.dumps(deny)
    )
    checks = diagnose()
    found = checks["job role permissions"]
    assert found.status == doctor.PROBLEM and "s3:PutObject" in found.detail
    assert "explicit deny" in found.fix and "no-writes (role) denies s3:PutObject" in found.fix
    assert not found.fix.startswith("grant")


def test_setup_keeps_a_buckets_sse_kms_and_grants_its_key(aws: Any) -> None:
    key = aws.control.client("kms").create_key()["KeyMetadata"]["Arn"]
    aws.s3.create_bucket(Bucket=BUCKET)
    aws.s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                        "KMSMasterKeyID": key}}
            ]
        },
    )  # fmt: skip
    outcome = set_up()
    rules = aws.s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]
    default = rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}  # not SSE-S3
    assert outcome.section["kms_key_id"] == key
    document = aws.control.client("iam").get_role_policy(
        RoleName=ROLE, PolicyName=policies.JOB_ROLE_POLICY_NAME
    )["PolicyDocument"]
    assert any(statement.get("Resource") == key for statement in document["Statement"])
