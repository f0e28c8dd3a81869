"""Registry entry of the ``net`` subsystem, kept outside ``simuwsgi.net`` on purpose.

Every instance asks each registered subsystem whether it is enabled; importing
``simuwsgi.net`` to ask would import trio for every simulation, and - worse - after
the simulation's clock patch is installed, so that trio would bind the *virtual*
``perf_counter`` for the rest of the process. This shim answers for the common case
(``network='none'``) without importing anything; ``Simulation(network='real')``
imports ``simuwsgi.net`` (and trio) in its constructor, before any patch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..server.master import Instance

__all__ = ["Net"]


class Net:
    """Factory for :class:`simuwsgi.net.Net` (see the module doc)."""

    @classmethod
    def create(cls, inst: Instance) -> Any:
        network = getattr(inst, "network", None)
        if network == "virtual":  # a cluster's node (simuwsgi.network)
            from ..network._remote import VirtualNet

            return VirtualNet.create(inst)
        if network != "real":
            return None
        from ..net._subsystem import Net as RealNet

        return RealNet.create(inst)
