"""``input_data``: files the electron reads, as the job's input channels, through a real
Covalent server onto Braket-in-a-box: a local directory (uploaded once per content, shared by
every electron that names it) and an ``s3://`` prefix, found at
``$AMZN_BRAKET_INPUT_DIR/<channel>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import covalent as ct
import pytest

from covalent_braket_plugin.braket import BraketExecutor
from covalent_braket_plugin.config import InvalidSettingError
from covalent_braket_plugin.testing import covalent_server_settings

pytestmark = pytest.mark.timeout(240)


def read_channels() -> dict:
    import os

    root = os.environ["AMZN_BRAKET_INPUT_DIR"]
    found = {}
    for channel in sorted(os.listdir(root)):
        for directory, _, files in os.walk(os.path.join(root, channel)):
            for name in files:
                path = os.path.join(directory, name)
                with open(path) as handle:
                    found[os.path.relpath(path, root)] = handle.read()
    return found


def test_local_and_s3_input_data_reach_the_electron(
    covalent_server: Any, braket_emulator: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    (data / "angles.csv").write_text("0.1,0.2\n")
    (data / "nested" / "more.txt").write_text("deeper\n")
    bucket = covalent_server.settings["s3_bucket_name"]
    s3 = braket_emulator.client("s3")
    s3.put_object(Bucket=bucket, Key="datasets/run1/values.txt", Body=b"42\n")
    executor = BraketExecutor(
        **covalent_server_settings(),
        pack=False,
        input_data={"local": str(data), "remote": f"s3://{bucket}/datasets/run1/"},
    )
    same_data = BraketExecutor(**covalent_server_settings(), pack=False, input_data=str(data))
    first = ct.electron(read_channels, executor=executor)
    second = ct.electron(read_channels, executor=same_data)

    @ct.lattice
    def both() -> list:
        return [first(), second()]

    result = covalent_server.run(both)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == [
        {
            "local/angles.csv": "0.1,0.2\n",
            "local/nested/more.txt": "deeper\n",
            "remote/values.txt": "42\n",
        },
        {"input/angles.csv": "0.1,0.2\n", "input/nested/more.txt": "deeper\n"},
    ]
    # The directory's content went up once, for both electrons.
    uploads = [
        entry
        for entry in braket_emulator.journal(service="s3", operation="PutObject")
        if "input-data/" in entry.get("path", "") and entry["path"].endswith("angles.csv")
    ]
    assert len(uploads) == 1, uploads


def test_input_data_that_is_not_there_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettingError, match=r"input_data.*no such file or directory"):
        BraketExecutor(**covalent_server_settings(), input_data=str(tmp_path / "missing"))
    with pytest.raises(InvalidSettingError, match="input_data"):
        BraketExecutor(**covalent_server_settings(), input_data={"bad channel!": str(tmp_path)})
