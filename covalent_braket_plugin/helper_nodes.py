"""Covalent's helper nodes: recognised, and run in the server at once, never as a job.

Covalent adds nodes of its own to a workflow, and each takes the executor of the electron it
feeds (covalent 0.240, ``covalent/_workflow/electron.py``):

- a list, tuple or set argument becomes an ``:electron_list:`` node (``_auto_list_node``), a
  dict argument an ``:electron_dict:`` node (``_auto_dict_node``);
- unpacking, indexing or reading an attribute of an electron's result (``a, b = f(x)``,
  ``f(x)[0]``, ``f(x).y``) makes a ``__getitem__`` or ``__getattr__`` node (``get_item``,
  ``get_attr``).

They only rearrange values the server already holds, so a Braket job for one (a minute to
start on AWS, its instance billed) is pure waste. Covalent's runner hands an executor its
wrapper around the serialized function (``functools.partial(wrapper_fn, function,
call_before, call_after)``); a helper is told by the serialized function's name and, to be
sure, by the function itself: defined in Covalent's electron module, under one of the four
names above. Anything else is the user's electron, and runs as a job.

A helper runs without the hooks (``call_before``/``call_after``) it copied from its
neighbour's metadata: they prepare the neighbour's environment (packages, files, the user's
own calls) and are not the server's to run.
"""

from __future__ import annotations

from typing import Any

from .electron_call import is_wrapped

#: Where Covalent defines its helpers, and the names it defines them under.
COVALENT_ELECTRON_MODULE = "covalent._workflow.electron"
HELPERS = frozenset({"_auto_list_node", "_auto_dict_node", "get_item", "get_attr"})


def helper_of(function: Any) -> str | None:
    """The name of Covalent's helper that ``function`` runs; None for anything else.

    Args:
        function: what Covalent's runner passed to the executor's ``run``.
    """
    if not is_wrapped(function):
        return None
    serialized = function.args[0]
    if not hasattr(serialized, "get_deserialized"):
        return None
    name = str((getattr(serialized, "attrs", None) or {}).get("name") or "")
    if not (name in HELPERS or name.startswith(":")):  # cheap: most electrons stop here
        return None
    helper = serialized.get_deserialized()
    code = getattr(helper, "__code__", None)
    if getattr(helper, "__module__", None) != COVALENT_ELECTRON_MODULE or code is None:
        return None
    return code.co_name if code.co_name in HELPERS else None


def run(function: Any, args: list, kwargs: dict) -> Any:
    """Run a helper recognised by :func:`helper_of` here, without its copied hooks; what it
    returns is what Covalent's wrapper returns (the value, made transportable). Blocking.

    Args:
        function: what Covalent's runner passed to the executor's ``run``.
        args: its positional arguments.
        kwargs: its keyword arguments.
    """
    wrapper, serialized = function.func, function.args[0]
    return wrapper(serialized, [], [], *args, **kwargs)
