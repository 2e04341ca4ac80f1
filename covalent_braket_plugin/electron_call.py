"""The electron unwrapped in the server, so that the job needs nothing of Covalent's.

Covalent's runner hands an executor ``functools.partial(wrapper_fn, function, call_before,
call_after)`` and arguments that are ``TransportableObject``\\ s; ``wrapper_fn`` returns the
electron's value as a ``TransportableObject``. Pickled as it is, that needs covalent in the
job (covalent and its two dozen dependencies, installed at every start of Amazon's managed
image). :func:`unwrap` makes the same call out of plain values instead: the function and the
arguments deserialized here, the hooks made :class:`~covalent_braket_plugin.job.calls.Hook`\\ s
(Covalent's ``DepsPip`` and ``DepsBash`` as the job's own
:func:`~covalent_braket_plugin.job.calls.install_packages` and
:func:`~covalent_braket_plugin.job.calls.run_commands`), all in a
:class:`~covalent_braket_plugin.job.calls.ElectronCall` that travels by value. The job's
plain return value is made transportable again here (:meth:`Unwrapped.transportable`), as
Covalent's wrapper would have made it in the job.

Whatever else of Covalent's a hook calls (a ``FileTransfer``'s, say) still needs covalent in
the job: :attr:`Unwrapped.needs_covalent` says so, and the job then installs it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .job import calls

#: Covalent's wrapper around a serialized electron (what its runner hands an executor).
WRAPPER = ("covalent.executor.utils.wrappers", "wrapper_fn")
#: Covalent's hooks that the job does by itself, and what does them there.
_OWN_HOOKS = {
    ("covalent._workflow.depspip", "apply_pip_deps"): calls.install_packages,
    ("covalent._workflow.depsbash", "apply_bash_commands"): calls.run_commands,
}


@functools.cache
def _by_value() -> None:
    """The job's call module travels inside the pickle, not by its name (once per process)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(calls)


@dataclass(frozen=True)
class Unwrapped:
    """The electron's call as the job makes it."""

    function: Any
    args: list
    kwargs: dict
    #: Made from Covalent's wrapper: the job's value goes back to Covalent transportable.
    from_covalent: bool
    #: A hook calls Covalent's code in the job, so the job needs covalent installed.
    needs_covalent: bool

    def transportable(self, value: Any) -> Any:
        """What Covalent's wrapper would have returned for the job's ``value``."""
        if not self.from_covalent:
            return value
        from covalent._workflow.transport import TransportableObject

        return TransportableObject(value)


def is_wrapped(function: Any) -> bool:
    """Whether ``function`` is Covalent's wrapper around a serialized electron."""
    wrapper = getattr(function, "func", None)
    found = (getattr(wrapper, "__module__", None), getattr(wrapper, "__name__", None))
    return found == WRAPPER and len(getattr(function, "args", ())) == 3


def unwrap(function: Any, args: list, kwargs: dict) -> Unwrapped:
    """The call the job makes for what Covalent's runner handed the executor (anything else,
    a plain function, as it is). Blocking: it deserializes the electron and its arguments.

    Args:
        function: what Covalent's runner passed to the executor's ``run``.
        args: its positional arguments.
        kwargs: its keyword arguments.
    """
    if not is_wrapped(function):
        return Unwrapped(function, args, kwargs, False, False)
    from covalent._workflow.depscall import RESERVED_RETVAL_KEY__FILES

    _by_value()
    serialized, call_before, call_after = function.args
    before = [_hook(entry) for entry in call_before]
    after = [_hook(entry) for entry in call_after]
    call = calls.ElectronCall(
        serialized.get_deserialized(), before, after, RESERVED_RETVAL_KEY__FILES
    )
    return Unwrapped(
        call,
        [arg.get_deserialized() for arg in args],
        {name: value.get_deserialized() for name, value in kwargs.items()},
        True,
        any(_covalents(hook[0]) for hook in [*before, *after]),
    )


def _hook(entry: Any) -> calls.Hook:
    """One of Covalent's hooks (serialized function, arguments, keyword arguments, return
    key) as the job calls it."""
    serialized, serialized_args, serialized_kwargs, key = entry
    hook = serialized.get_deserialized()
    own = _OWN_HOOKS.get((getattr(hook, "__module__", None), getattr(hook, "__name__", None)))
    return (
        own or hook,
        serialized_args.get_deserialized(),
        serialized_kwargs.get_deserialized(),
        key or "",
    )


def _covalents(hook: Any) -> bool:
    module = getattr(hook, "__module__", None) or ""
    return module == "covalent" or module.startswith("covalent.")
