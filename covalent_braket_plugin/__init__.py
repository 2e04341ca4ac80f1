"""Covalent executor plugin that runs electrons as Amazon Braket hybrid jobs.

The executor lives in :mod:`covalent_braket_plugin.braket`; the local Braket emulator in
:mod:`covalent_braket_plugin.emulator`. This module imports neither, so that importing the
package stays cheap.
"""

__version__ = "0.14.0.dev0"
