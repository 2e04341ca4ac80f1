"""Living with Covalent's plugin loader, which imports every executor plugin when covalent
itself is first imported.

If the plugin module is imported before covalent (``from covalent_braket_plugin.braket import
BraketExecutor`` at the top of a script), its own ``import covalent`` runs the loader while the
plugin module is still half-initialised: the loader warns that the module has no plugin class,
and skips it. The warning is hidden, and the plugin registered once its class exists.
Nothing here imports covalent at module level; no module of the plugin but ``braket`` does, so
importing any of them first cannot start the loader half-way through the plugin.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from types import ModuleType

#: The name of Covalent's application log (``covalent._shared_files.logger.app_log``).
_COVALENT_LOG = "covalent._shared_files.logger"
#: Covalent's application log: in the Covalent server, its log file and the UI's Logs page.
#: Taken by name, so that a module writing to it need not import covalent.
server_log = logging.getLogger(_COVALENT_LOG)


def covalent_is_loaded() -> bool:
    """Whether covalent's executors (and so its plugin loader) have been imported already."""
    return "covalent.executor" in sys.modules


class _HideHalfLoadedWarning(logging.Filter):
    def __init__(self, module_name: str) -> None:
        super().__init__()
        self._module_name = module_name

    def filter(self, record: logging.LogRecord) -> bool:
        return self._module_name not in record.getMessage()


@contextlib.contextmanager
def half_loaded_warning_hidden(module_name: str) -> Iterator[None]:
    """While open, covalent's log drops messages that name ``module_name``."""
    hide = _HideHalfLoadedWarning(module_name)
    server_log.addFilter(hide)
    try:
        yield
    finally:
        server_log.removeFilter(hide)


def register(module: ModuleType, plugin_name: str) -> None:
    """Register the plugin ``module`` with covalent, as its loader would have, if the loader
    skipped it: ``ct.executor.<plugin_name>`` and the ``[executors.<short name>]`` defaults."""
    import covalent.executor as executors

    if getattr(executors, plugin_name, None) is None:
        executors._executor_manager._populate_executor_map_from_module(module)
        setattr(executors, plugin_name, getattr(module, plugin_name))
