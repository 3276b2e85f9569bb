"""The real ALOHA leader on LeRobot's ``DynamixelMotorsBus``: :class:`AlohaLeader`, two WidowX 250
arms moved by hand (``--teleop.type=aloha_leader``).

A leader's action uses the follower's names and units, so leader -> follower is the identity, grippers
included: each gripper is normalised by its own calibrated closed/open positions (ACT's master/puppet
mapping). Motors, shadows, calibration and units: ``robots/aloha/arms.py`` (shared with the follower).
"""

from __future__ import annotations

import logging
from functools import cached_property

from lerobot.motors.dynamixel import OperatingMode
from lerobot.teleoperators.teleoperator import Teleoperator
from lerobot.utils.decorators import check_if_already_connected, check_if_not_connected

from ...robots.aloha.arms import LEADER_MODELS, POWERED_DEVICES, TwoArms
from .config_aloha_leader import AlohaLeaderConfig

logger = logging.getLogger(__name__)


class AlohaLeader(TwoArms, Teleoperator):
    """Two WidowX 250 leader arms; actions carry the follower's names and units."""

    config_class = AlohaLeaderConfig
    name = "aloha_leader"

    def __init__(self, config: AlohaLeaderConfig):
        super().__init__(config)
        self.config = config
        self._make_buses(config.left_arm_port, config.right_arm_port, LEADER_MODELS)

    @cached_property
    def action_features(self) -> dict[str, type]:
        return self._motors_ft

    @cached_property
    def feedback_features(self) -> dict[str, type]:
        return {}

    @property
    def is_connected(self) -> bool:
        return self._buses_connected

    @check_if_already_connected
    def connect(self, calibrate: bool = True) -> None:
        self._connect_buses()
        POWERED_DEVICES.add(self)
        try:
            if not self.is_calibrated and calibrate:
                self.calibrate()
            self.configure()
        except BaseException:
            self._torque_off_and_close()
            POWERED_DEVICES.discard(self)
            raise
        logger.info("%s connected.", self)

    def calibrate(self) -> None:
        self._run_calibration("the ALOHA leaders")

    def configure(self) -> None:
        # Leaders are moved by hand: torque stays off; shadows still get their secondary id.
        for bus in self.buses.values():
            bus.disable_torque()
            bus.configure_motors()
            self._set_shadows(bus)
            for motor in bus.motors:
                bus.write("Operating_Mode", motor, OperatingMode.EXTENDED_POSITION.value)

    @check_if_not_connected
    def get_action(self) -> dict[str, float]:
        return {f"{k}.pos": v for k, v in self._read_positions().items()}

    def send_feedback(self, feedback: dict[str, float]) -> None:
        raise NotImplementedError("the ALOHA leaders take no feedback (their motors stay unpowered)")

    @check_if_not_connected
    def disconnect(self) -> None:
        try:
            self._torque_off_and_close()
        finally:
            POWERED_DEVICES.discard(self)
        logger.info("%s disconnected.", self)
