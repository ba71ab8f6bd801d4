"""The ``bandit`` service: its model and its methods.

Started from ``bandit_serv.tmpl.py``, which jenerator writes from bandit.idl:
copy it to ``bandit_serv.py``, fill in the methods, and run
``python bandit_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import bandit_types as types
from runtime.server_base import ServerBase


class BanditServ(ServerBase):
    """Multi-armed bandits, one set of arms per player."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def register_arm(self, arm_id: str) -> bool:
        """Add an arm for every player."""
        raise NotImplementedError("bandit.register_arm")

    def delete_arm(self, arm_id: str) -> bool:
        """Remove an arm."""
        raise NotImplementedError("bandit.delete_arm")

    def select_arm(self, player_id: str) -> str:
        """The arm the player should pull next."""
        raise NotImplementedError("bandit.select_arm")

    def register_reward(self, player_id: str, arm_id: str, reward: float) -> bool:
        """Record a reward the player got from an arm."""
        raise NotImplementedError("bandit.register_reward")

    def get_registered_rewards(self, player_id: str) -> dict[str, types.RegisteredReward]:
        """The ``get_registered_rewards`` method of ``bandit``."""
        raise NotImplementedError("bandit.get_registered_rewards")

    def reset(self, player_id: str) -> bool:
        """Forget a player's history."""
        raise NotImplementedError("bandit.reset")

    def clear(self) -> bool:
        """The ``clear`` method of ``bandit``."""
        raise NotImplementedError("bandit.clear")

    # Hooks the framework calls; see runtime.server_base.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("bandit: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("bandit: load")
