"""The electron's call as the job makes it, with nothing of Covalent in it.

Covalent hands an executor its own wrapper around the electron (``wrapper_fn`` of
``covalent.executor.utils.wrappers``, with the function, its arguments and the hooks
``call_before``/``call_after`` as ``TransportableObject``\\ s): unpickling that in the job
needs covalent and its two dozen dependencies, which Amazon's managed image lacks and would
install at every job start. The executor unwraps it in the server instead
(:mod:`~covalent_braket_plugin.electron_call`) into an :class:`ElectronCall`, which does what
Covalent's wrapper does with plain values: the hooks before, their return values passed by
keyword, the function, the hooks after. Covalent's own two kinds of hook, packages
(``DepsPip``) and shell commands (``DepsBash``), become :func:`install_packages` and
:func:`run_commands` here, which do what Covalent's do.

This module is pickled *by value* with the call (cloudpickle's
``register_pickle_by_value``): the job needs neither this package nor covalent, only
cloudpickle and the standard library.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

#: A hook: its function, positional and keyword arguments, and the keyword under which its
#: return value goes to the electron ("" for none).
Hook = tuple[Callable[..., Any], Sequence[Any], dict[str, Any], str]


def install_packages(packages: Sequence[str] = (), requirements_content: str = "") -> None:
    """Covalent's ``DepsPip`` in the job: pip-install the packages (or the requirements
    file's text, which wins), in the job's own Python."""
    command = [sys.executable, "-m", "pip", "install", "--no-input"]
    if requirements_content:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write(requirements_content)
        try:
            subprocess.run(
                [*command, "-r", handle.name], stdin=subprocess.DEVNULL, check=True,
                capture_output=True,
            )  # fmt: skip
        finally:
            os.unlink(handle.name)
    elif packages:
        subprocess.run(
            [*command, *packages], stdin=subprocess.DEVNULL, check=True, capture_output=True
        )


def run_commands(commands: Sequence[str]) -> None:
    """Covalent's ``DepsBash`` in the job: each command in a shell, in order, each one's
    failure raised."""
    for command in commands:
        subprocess.run(
            command, stdin=subprocess.DEVNULL, shell=True, capture_output=True, check=True,
            text=True,
        )  # fmt: skip


class ElectronCall:
    """The electron's function with its hooks, called as Covalent's wrapper calls it.

    Args:
        function: the electron's function.
        before: the hooks run before it (``call_before``: packages, commands, the user's calls).
        after: the hooks run after it (``call_after``).
        list_key: the keyword whose values always go as a list (Covalent's files keyword).
    """

    def __init__(
        self,
        function: Callable[..., Any],
        before: Sequence[Hook] = (),
        after: Sequence[Hook] = (),
        list_key: str = "files",
    ) -> None:
        self.function = function
        self.before = list(before)
        self.after = list(after)
        self.list_key = list_key

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        returned: dict[str, list[Any]] = {}
        for hook, hook_args, hook_kwargs, key in self.before:
            value = hook(*hook_args, **hook_kwargs)
            if key:
                returned.setdefault(key, []).append(value)
        for key, values in returned.items():  # one value alone, but the files keyword's list
            kwargs[key] = values[0] if len(values) == 1 and key != self.list_key else values
        output = self.function(*args, **kwargs)
        for hook, hook_args, hook_kwargs, _ in self.after:
            hook(*hook_args, **hook_kwargs)
        return output

    def __repr__(self) -> str:
        name = getattr(self.function, "__qualname__", repr(self.function))
        return f"ElectronCall({name}, {len(self.before)} before, {len(self.after)} after)"
