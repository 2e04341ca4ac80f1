"""Covalent's helper nodes are told from the user's electrons (the whole workflow through a
server: ``tests/e2e/test_helper_nodes.py``)."""

from __future__ import annotations

from functools import partial
from typing import Any

import covalent as ct
from covalent import TransportableObject
from covalent.executor.utils.wrappers import wrapper_fn

from covalent_braket_plugin import helper_nodes


@ct.electron
def pair(n: int) -> tuple[int, int]:
    return n, n + 1


@ct.electron
def f(i: int) -> complex:
    return complex(i * i)


@ct.electron
def total(values: list, named: dict) -> float:
    return sum(values) + sum(named.values())


@ct.lattice
def workflow(n: int) -> float:
    a, b = pair(n)  # two __getitem__ nodes
    z = f(n).real  # a __getattr__ node
    return total([f(a), f(b)], {"z": z})  # :electron_list: and :electron_dict: nodes


def as_covalent_hands_it(function: TransportableObject, hooks: list | None = None) -> Any:
    """What Covalent's runner passes an executor's ``run``."""
    return partial(wrapper_fn, function, hooks or [], [])


def nodes() -> dict[int, tuple[str, TransportableObject]]:
    workflow.build_graph(3)
    graph = workflow.transport_graph
    return {
        node: (graph.get_node_value(node, "name"), graph.get_node_value(node, "function"))
        for node in graph._graph.nodes
        if not graph.get_node_value(node, "name").startswith((":parameter:", ":postprocess:"))
    }


def test_covalents_helpers_are_recognised_and_the_users_electrons_are_not() -> None:
    told = {name: helper_nodes.helper_of(as_covalent_hands_it(fn)) for name, fn in nodes().values()}
    assert told == {
        "pair": None,
        "f": None,
        "total": None,
        ":pair()[0]": "get_item",
        ":pair()[1]": "get_item",
        ":f.__getattr__": "get_attr",
        ":electron_list:": "_auto_list_node",
        ":electron_dict:": "_auto_dict_node",
    }


def get_item(e: Any, key: Any) -> Any:  # named as Covalent's helper, but the user's
    return e[key]


def test_a_users_function_named_as_a_helper_is_the_users() -> None:
    mimic = TransportableObject(get_item)
    assert helper_nodes.helper_of(as_covalent_hands_it(mimic)) is None
    renamed = TransportableObject(get_item)
    renamed._header["attrs"]["name"] = ":pair()[0]"  # even under a helper's node name
    assert helper_nodes.helper_of(as_covalent_hands_it(renamed)) is None


def test_anything_but_covalents_wrapper_is_not_a_helper() -> None:
    assert helper_nodes.helper_of(get_item) is None
    assert helper_nodes.helper_of(partial(get_item, [1], 0)) is None


def test_a_helper_runs_here_without_the_hooks_it_copied() -> None:
    ran: list[str] = []

    def hook() -> None:  # the neighbour's call_before: not the server's to run
        ran.append("hook")

    [(_, item)] = [(n, fn) for n, fn in nodes().values() if n == ":pair()[1]"]
    hooks = [(*(TransportableObject(x) for x in (hook, [], {})), None)]
    function = as_covalent_hands_it(item, hooks)
    assert helper_nodes.helper_of(function) == "get_item"
    value = helper_nodes.run(function, [TransportableObject((3, 4)), TransportableObject(1)], {})
    assert value.get_deserialized() == 4
    assert ran == []
