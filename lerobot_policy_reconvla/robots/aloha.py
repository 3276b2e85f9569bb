"""The real ALOHA on LeRobot's ``DynamixelMotorsBus``: :class:`Aloha` (two ViperX 300 6-DoF followers)
and :class:`AlohaLeader` (two WidowX 250 leaders), one U2D2 serial port per arm.

Motors per arm (Interbotix ids; facts from LeRobot's former ``AlohaRobotConfig``):

    id  name              follower (ViperX 300)   leader (WidowX 250)
    1   waist             xm540-w270              xm430-w350
    2   shoulder          xm540-w270              xm430-w350
    3   shoulder_shadow   xm540-w270              xm430-w350     (drives the same joint as id 2)
    4   elbow             xm540-w270              xm430-w350
    5   elbow_shadow      xm540-w270              xm430-w350     (drives the same joint as id 4)
    6   forearm_roll      xm540-w270              xm430-w350
    7   wrist_angle       xm540-w270              xm430-w350
    8   wrist_rotate      xm430-w350              xl430-w250
    9   gripper           xm430-w350              xc430-w150

A shadow motor gets its primary's id as ``Secondary_ID``, so it executes every command sent to the
primary and the pair never fight; only the seven primaries are read and named.

Features: ``left_waist.pos`` ... ``right_gripper.pos`` (14, the order of LeRobot's ALOHA datasets),
joints in radians (0 at the Interbotix zero pose), grippers 0 closed .. 1 open; cameras ``cam_high``,
``cam_left_wrist``, ``cam_right_wrist`` (optional ``cam_low``) as (H, W, 3) images. A leader's action
uses the follower's names and units, so leader -> follower is the identity, grippers included: each
gripper is normalised by its own calibrated closed/open positions (ACT's master/puppet mapping).

Calibration (``lerobot-calibrate``) is stored like LeRobot's other robots, as
``<calibration_dir>/<id>.json`` of ``MotorCalibration`` per motor (prefixed ``left_``/``right_``).

Safety: torque off on disconnect, on any error while connecting, reading or writing, and at
interpreter exit if still connected; goals capped by ``max_relative_target``; a goal is written equal
to the present position before torque is enabled, so nothing jumps to a stale goal.
"""

from __future__ import annotations

import atexit
import logging
import math
import weakref
from functools import cached_property

from lerobot.cameras import make_cameras_from_configs
from lerobot.lerobot_types import RobotAction, RobotObservation
from lerobot.motors import Motor, MotorCalibration, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus, OperatingMode, TorqueMode
from lerobot.robots.robot import Robot
from lerobot.robots.utils import ensure_safe_goal_position
from lerobot.teleoperators.teleoperator import Teleoperator
from lerobot.utils.decorators import check_if_already_connected, check_if_not_connected

from .config_aloha import ARM_JOINTS, MOTOR_NAMES, SIDES, AlohaConfig, AlohaLeaderConfig

logger = logging.getLogger(__name__)

SHADOWS = {"shoulder_shadow": "shoulder", "elbow_shadow": "elbow"}
MOTOR_IDS = {
    "waist": 1, "shoulder": 2, "shoulder_shadow": 3, "elbow": 4, "elbow_shadow": 5,
    "forearm_roll": 6, "wrist_angle": 7, "wrist_rotate": 8, "gripper": 9,
}  # fmt: skip
FOLLOWER_MODELS = {name: "xm540-w270" for name in MOTOR_IDS} | {"wrist_rotate": "xm430-w350", "gripper": "xm430-w350"}
LEADER_MODELS = {name: "xm430-w350" for name in MOTOR_IDS} | {"wrist_rotate": "xl430-w250", "gripper": "xc430-w150"}

# Joint calibration range: the half-turn homing puts the zero pose at tick 2047, and LeRobot's DEGREES
# mode measures from the middle of [range_min, range_max], so [0, 4094] makes the zero pose 0 rad.
JOINT_RANGE = (0, 4094)
MIN_GRIPPER_TRAVEL = 50  # ticks between closed and open; less means the gripper did not move


def make_arm_bus(port: str, models: dict[str, str], calibration: dict[str, MotorCalibration]) -> DynamixelMotorsBus:
    motors = {
        name: Motor(MOTOR_IDS[name], model, MotorNormMode.RANGE_0_100 if name == "gripper" else MotorNormMode.DEGREES)
        for name, model in models.items()
    }
    arm_calibration = {name: cal for name, cal in calibration.items() if name in motors}
    return DynamixelMotorsBus(port=port, motors=motors, calibration=arm_calibration)


def to_bus_units(joint: str, value: float) -> float:
    """Action units -> the bus's normalised units: rad -> degrees; gripper fraction -> 0..100."""
    return value * 100.0 if joint == "gripper" else math.degrees(value)


def from_bus_units(joint: str, value: float) -> float:
    return value / 100.0 if joint == "gripper" else math.radians(value)


class _TwoArms:
    """Two Dynamixel buses seen as one 14-motor device (shared by the follower and the leader)."""

    buses: dict[str, DynamixelMotorsBus]
    calibration: dict[str, MotorCalibration]

    def _make_buses(self, left_port: str, right_port: str, models: dict[str, str]) -> None:
        ports = {"left": left_port, "right": right_port}
        # The calibration file holds both arms, keyed "left_waist", ...; each bus sees its own names.
        self.buses = {
            side: make_arm_bus(ports[side], models, self._arm_calibration(side)) for side in SIDES
        }

    def _arm_calibration(self, side: str) -> dict[str, MotorCalibration]:
        prefix = f"{side}_"
        return {k.removeprefix(prefix): v for k, v in self.calibration.items() if k.startswith(prefix)}

    @property
    def _motors_ft(self) -> dict[str, type]:
        return {f"{name}.pos": float for name in MOTOR_NAMES}

    @property
    def _buses_connected(self) -> bool:
        return all(bus.is_connected for bus in self.buses.values())

    def _connect_buses(self) -> None:
        for side, bus in self.buses.items():
            try:
                bus.connect()
            except Exception as e:
                self._torque_off_and_close()
                raise ConnectionError(f"{self}: could not connect the {side} arm on port '{bus.port}': {e}") from e

    @property
    def is_calibrated(self) -> bool:
        return all(bus.is_calibrated for bus in self.buses.values())

    def _read_positions(self) -> dict[str, float]:
        """{'left_waist': rad, ..., 'right_gripper': 0..1} of the 14 primaries."""
        positions = {}
        for side, bus in self.buses.items():
            values = bus.sync_read("Present_Position", list(ARM_JOINTS))
            positions.update({f"{side}_{joint}": from_bus_units(joint, v) for joint, v in values.items()})
        return positions

    def _set_shadows(self, bus: DynamixelMotorsBus) -> None:
        for shadow, primary in SHADOWS.items():
            bus.write("Secondary_ID", shadow, MOTOR_IDS[primary])

    def _torque_off_and_close(self, close: bool = True) -> list[str]:
        """Best effort on every motor of both arms: a failing motor must not keep the others powered."""
        failures = []
        for side, bus in self.buses.items():
            if not bus.is_connected:
                continue
            bus.port_handler.is_using = False  # an interrupted transfer must not block these writes
            for motor in bus.motors:
                try:
                    bus.write("Torque_Enable", motor, TorqueMode.DISABLED.value, num_retry=3)
                except Exception as e:  # noqa: BLE001 - keep going, report below
                    failures.append(f"{side}_{motor}: {e}")
            if close:
                bus.port_handler.closePort()
        if failures:
            logger.error("%s: could not disable torque on %s", self, failures)
        return failures

    # --- calibration -------------------------------------------------------------------------------

    def _run_calibration(self, who: str) -> None:
        for bus in self.buses.values():
            bus.disable_torque()
        if self.calibration:
            user_input = input(
                f"Press ENTER to use the calibration file of {who} id '{self.id}', or type 'c' and press ENTER "
                "to calibrate again: "
            )
            if user_input.strip().lower() != "c":
                for side, bus in self.buses.items():
                    bus.write_calibration(self._arm_calibration(side))
                return
        for bus in self.buses.values():
            for motor in bus.motors:
                bus.write("Operating_Mode", motor, OperatingMode.EXTENDED_POSITION.value)

        input(
            f"Calibrating {who}. Move both arms to the Interbotix zero pose (upper arm vertical, forearm "
            "and gripper horizontal, pointing forward) and press ENTER..."
        )
        homings = {side: bus.set_half_turn_homings() for side, bus in self.buses.items()}
        input("Close both grippers fully and press ENTER...")
        closed = {side: bus.read("Present_Position", "gripper", normalize=False) for side, bus in self.buses.items()}
        input("Open both grippers fully and press ENTER...")
        opened = {side: bus.read("Present_Position", "gripper", normalize=False) for side, bus in self.buses.items()}

        calibration = {}
        for side, bus in self.buses.items():
            if opened[side] - closed[side] < MIN_GRIPPER_TRAVEL:
                raise ValueError(
                    f"{side} gripper: open reads {opened[side]} and closed {closed[side]} ticks; it must open "
                    f"towards higher ticks by at least {MIN_GRIPPER_TRAVEL}. Did the gripper move? (If it is "
                    "mounted reversed, set its Drive_Mode bit 0 with the Dynamixel Wizard first.)"
                )
            drive_modes = bus.sync_read("Drive_Mode", normalize=False)  # keep the hardware's (shadows reversed)
            for motor, m in bus.motors.items():
                low, high = (closed[side], opened[side]) if motor == "gripper" else JOINT_RANGE
                calibration[f"{side}_{motor}"] = MotorCalibration(
                    id=m.id,
                    drive_mode=int(drive_modes[motor]),
                    homing_offset=int(homings[side][motor]),
                    range_min=int(low),
                    range_max=int(high),
                )
        self.calibration = calibration
        for side, bus in self.buses.items():
            bus.write_calibration(self._arm_calibration(side))
        self._save_calibration()
        print(f"Calibration saved to {self.calibration_fpath}")


# Objects still connected at interpreter exit get their torque disabled (a crash after connect, e.g. a
# policy/robot mismatch raised by lerobot-rollout after robot.connect(), must not leave arms powered).
_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _torque_off_at_exit() -> None:
    for device in list(_LIVE):
        try:
            if device._buses_connected:
                device._torque_off_and_close()
        except Exception:  # noqa: BLE001, S110 - nothing else can be done at exit
            pass


class Aloha(_TwoArms, Robot):
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
        _LIVE.add(self)
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
        _LIVE.discard(self)

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

    def _goal_from_action(self, action: RobotAction) -> dict[str, float]:
        unknown = [k for k in action if k.removesuffix(".pos") not in MOTOR_NAMES or not k.endswith(".pos")]
        if unknown:
            raise ValueError(f"{self}: unknown action key(s) {unknown}; expected {list(self.action_features)}")
        goal = {k.removesuffix(".pos"): float(v) for k, v in action.items()}
        bad = {k: v for k, v in goal.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"{self}: non-finite action values {bad}; nothing was sent")
        return goal

    def _cap(self, goal: dict[str, float], present: dict[str, float]) -> dict[str, float]:
        cap = self.config.max_relative_target
        caps = {k: (cap.get(k, math.inf) if isinstance(cap, dict) else cap) for k in goal}
        return ensure_safe_goal_position({k: (g, present[k]) for k, g in goal.items()}, caps)

    @check_if_not_connected
    def send_action(self, action: RobotAction) -> RobotAction:
        """Send joint goals (rad, grippers 0..1); returns what was sent after ``max_relative_target``.

        Any failure on the buses disables torque on both arms before the error propagates.
        """
        if self._fault:
            # Torque was cut after an error: re-enabling it must be a deliberate reconnect, not the next step.
            raise ConnectionError(f"{self}: torque is off after an error ({self._fault}); disconnect and reconnect")
        goal = self._goal_from_action(action)
        try:
            if self.config.max_relative_target is not None:
                goal = self._cap(goal, self._read_positions())
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
            _LIVE.discard(self)
        logger.info("%s disconnected.", self)


class AlohaLeader(_TwoArms, Teleoperator):
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
        _LIVE.add(self)
        try:
            if not self.is_calibrated and calibrate:
                self.calibrate()
            self.configure()
        except BaseException:
            self._torque_off_and_close()
            _LIVE.discard(self)
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
            _LIVE.discard(self)
        logger.info("%s disconnected.", self)
