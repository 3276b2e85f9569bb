"""The real ALOHA follower on LeRobot's ``DynamixelMotorsBus``: :class:`Aloha`, two ViperX 300 6-DoF
arms with grippers and up to four cameras (``--robot.type=aloha``).

Features: ``left_waist.pos`` ... ``right_gripper.pos`` (14, the order of LeRobot's ALOHA datasets),
joints in radians (0 at the Interbotix zero pose), grippers 0 closed .. 1 open; cameras ``cam_high``,
``cam_left_wrist``, ``cam_right_wrist`` (optional ``cam_low``) as (H, W, 3) images. Motors, shadows,
calibration and units: ``arms.py`` (shared with the ``aloha_leader`` teleoperator).

Safety: torque off on disconnect, on any error while connecting, reading or writing, and at
interpreter exit if still connected; goals capped by ``max_relative_target``; a goal is written equal
to the present position before torque is enabled, so nothing jumps to a stale goal.
"""

from __future__ import annotations

import logging
from functools import cached_property

from lerobot.cameras import make_cameras_from_configs
from lerobot.lerobot_types import RobotAction, RobotObservation
from lerobot.motors.dynamixel import OperatingMode
from lerobot.robots.robot import Robot
from lerobot.utils.decorators import check_if_already_connected, check_if_not_connected

from ...embodiment.aloha import cap_joint_goals, joint_goals
from .arms import FOLLOWER_MODELS, POWERED_DEVICES, TwoArms, to_bus_units
from .config_aloha import AlohaConfig

logger = logging.getLogger(__name__)


class Aloha(TwoArms, Robot):
    """Two ViperX 300 6-DoF followers with grippers and up to four cameras."""

    config_class = AlohaConfig
    name = "aloha"

    def __init__(self, config: AlohaConfig):
        super().__init__(config)
        self.config = config
        self._make_buses(config.left_arm_port, config.right_arm_port, FOLLOWER_MODELS)
        self.cameras = make_cameras_from_configs(config.cameras)
        self._fault: str | None = None  # set once torque was cut after an error; cleared by connect()

    @property
    def _cameras_ft(self) -> dict[str, tuple]:
        return {name: (cfg.height, cfg.width, 3) for name, cfg in self.config.cameras.items()}

    @cached_property
    def observation_features(self) -> dict[str, type | tuple]:
        return {**self._motors_ft, **self._cameras_ft}

    @cached_property
    def action_features(self) -> dict[str, type]:
        return self._motors_ft

    @property
    def is_connected(self) -> bool:
        return self._buses_connected and all(cam.is_connected for cam in self.cameras.values())

    @check_if_already_connected
    def connect(self, calibrate: bool = True) -> None:
        self._connect_buses()
        POWERED_DEVICES.add(self)
        self._fault = None
        try:
            if not self.is_calibrated and calibrate:
                logger.info("%s: no calibration file, or it differs from the motors: calibrating", self)
                self.calibrate()
            for name, cam in self.cameras.items():
                try:
                    cam.connect()
                except Exception as e:
                    raise ConnectionError(f"{self}: camera '{name}' could not be opened: {e}") from e
            self.configure()
        except BaseException:
            self._abort()
            raise
        logger.info("%s connected.", self)

    def _abort(self) -> None:
        """Torque off, ports closed, cameras released: the state after any failure in connect."""
        self._torque_off_and_close()
        for cam in self.cameras.values():
            if cam.is_connected:
                cam.disconnect()
        POWERED_DEVICES.discard(self)

    def calibrate(self) -> None:
        self._run_calibration("the ALOHA followers")

    def configure(self) -> None:
        for bus in self.buses.values():
            bus.disable_torque()  # EEPROM (modes, limits, ids) is writable only with torque off
            bus.configure_motors()  # Return_Delay_Time 0
            self._set_shadows(bus)
            for motor in bus.motors:
                if motor != "gripper":
                    bus.write("Operating_Mode", motor, OperatingMode.EXTENDED_POSITION.value)
                    if self.config.velocity_limit is not None:
                        bus.write("Velocity_Limit", motor, self.config.velocity_limit)
            # Current-based position control: the gripper squeezes an object without burning its motor.
            bus.write("Operating_Mode", "gripper", OperatingMode.CURRENT_POSITION.value)
            # Hold where the arm is: enabling torque drives every motor to its Goal_Position register.
            present = bus.sync_read("Present_Position", normalize=False)
            bus.sync_write("Goal_Position", present, normalize=False)
            bus.enable_torque()

    @check_if_not_connected
    def get_observation(self) -> RobotObservation:
        try:
            obs: RobotObservation = {f"{k}.pos": v for k, v in self._read_positions().items()}
        except Exception as e:
            self._fault = f"reading the arms failed: {e}"
            self._torque_off_and_close(close=False)
            raise
        for name, cam in self.cameras.items():
            obs[name] = cam.read_latest()
        return obs

    @check_if_not_connected
    def send_action(self, action: RobotAction) -> RobotAction:
        """Send joint goals (rad, grippers 0..1); returns what was sent after ``max_relative_target``.

        Any failure on the buses disables torque on both arms before the error propagates.
        """
        if self._fault:
            # Torque was cut after an error: re-enabling it must be a deliberate reconnect, not the next step.
            raise ConnectionError(
                f"{self}: torque is off after an error ({self._fault}); disconnect and reconnect"
            )
        goal = joint_goals(action, self)
        try:
            if self.config.max_relative_target is not None:
                goal = cap_joint_goals(goal, self._read_positions(), self.config.max_relative_target)
            for side, bus in self.buses.items():
                prefix = f"{side}_"
                arm_goal = {
                    k.removeprefix(prefix): to_bus_units(k.removeprefix(prefix), v)
                    for k, v in goal.items()
                    if k.startswith(prefix)
                }
                if arm_goal:
                    bus.sync_write("Goal_Position", arm_goal)
        except Exception as e:
            self._fault = f"sending an action failed: {e}"
            failures = self._torque_off_and_close(close=False)
            note = "torque disabled on both arms" if not failures else f"torque-off FAILED on {failures}"
            raise ConnectionError(f"{self}: sending the action failed ({note}): {e}") from e
        return {f"{k}.pos": v for k, v in goal.items()}

    @check_if_not_connected
    def disconnect(self) -> None:
        try:
            if self.config.disable_torque_on_disconnect:
                self._torque_off_and_close()
            else:
                for bus in self.buses.values():
                    bus.port_handler.closePort()
        finally:
            for cam in self.cameras.values():
                if cam.is_connected:
                    cam.disconnect()
            POWERED_DEVICES.discard(self)
        logger.info("%s disconnected.", self)
