"""The ``bandit`` service: its model and its methods.

Started from ``bandit_serv.tmpl.py``, which jenerator writes from bandit.idl:
copy it to ``bandit_serv.py``, fill in the methods, and run
``python bandit_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import bandit_types as types
from runtime import ServerBase


class BanditServ(ServerBase):
    """Multi-armed bandits: each player picks among the same arms and reports rewards."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def register_arm(self, arm_id: str) -> bool:
        """Add the arm ``arm_id`` for every player; true when it was added."""
        raise NotImplementedError("bandit.register_arm")

    def delete_arm(self, arm_id: str) -> bool:
        """Remove the arm ``arm_id``; true when it was removed."""
        raise NotImplementedError("bandit.delete_arm")

    def select_arm(self, player_id: str) -> str:
        """The arm the player should pull next, by the configured strategy."""
        raise NotImplementedError("bandit.select_arm")

    def register_reward(self, player_id: str, arm_id: str, reward: float) -> bool:
        """Record that pulling ``arm_id`` paid ``reward`` to the player."""
        raise NotImplementedError("bandit.register_reward")

    def get_arm_info(self, player_id: str) -> dict[str, types.ArmInfo]:
        """Every arm's trial count and weight for the player, by arm id."""
        raise NotImplementedError("bandit.get_arm_info")

    def reset(self, player_id: str) -> bool:
        """Forget what the player has pulled and earned."""
        raise NotImplementedError("bandit.reset")

    def clear(self) -> bool:
        """Forget every arm and every player."""
        raise NotImplementedError("bandit.clear")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("bandit: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("bandit: load")

    # Optional: implement export_rows, import_rows and delete_rows (runtime.ServerBase) and
    # proxies copy a replica's keys back to it when it restarts empty or joins, and hand
    # a departed server's keys on (docs/operating.md, "Replicas").
