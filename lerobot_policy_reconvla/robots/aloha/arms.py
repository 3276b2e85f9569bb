"""Two Dynamixel arms seen as one 14-joint device: what the real ALOHA follower (``robots/aloha``,
two ViperX 300 6-DoF) and leader (``teleoperators/aloha_leader``, two WidowX 250) share, one U2D2
serial port per arm, on LeRobot's ``DynamixelMotorsBus``.

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

Joints are read as ``left_waist`` ... ``right_gripper`` (``aloha_joints.JOINT_NAMES``) in radians (0 at
the Interbotix zero pose), grippers 0 closed .. 1 open, normalised by each gripper's own calibrated
closed/open positions, so leader -> follower is the identity (ACT's master/puppet mapping).

Calibration (``lerobot-calibrate``) is stored like LeRobot's other robots, as
``<calibration_dir>/<id>.json`` of ``MotorCalibration`` per motor (prefixed ``left_``/``right_``).

Safety: a failing motor never keeps the others powered (``_torque_off_and_close``), and devices still
connected at interpreter exit get their torque disabled (``POWERED_DEVICES``).
"""

from __future__ import annotations

import atexit
import logging
import math
import weakref

from lerobot.motors import Motor, MotorCalibration, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus, OperatingMode, TorqueMode

from ...embodiment.aloha import ARM_JOINTS, JOINT_NAMES, SIDES

logger = logging.getLogger(__name__)

SHADOWS = {"shoulder_shadow": "shoulder", "elbow_shadow": "elbow"}
MOTOR_IDS = {
    "waist": 1,
    "shoulder": 2,
    "shoulder_shadow": 3,
    "elbow": 4,
    "elbow_shadow": 5,
    "forearm_roll": 6,
    "wrist_angle": 7,
    "wrist_rotate": 8,
    "gripper": 9,
}
FOLLOWER_MODELS = dict.fromkeys(MOTOR_IDS, "xm540-w270") | {
    "wrist_rotate": "xm430-w350",
    "gripper": "xm430-w350",
}
LEADER_MODELS = dict.fromkeys(MOTOR_IDS, "xm430-w350") | {
    "wrist_rotate": "xl430-w250",
    "gripper": "xc430-w150",
}

# Joint calibration range: the half-turn homing puts the zero pose at tick 2047, and LeRobot's DEGREES
# mode measures from the middle of [range_min, range_max], so [0, 4094] makes the zero pose 0 rad.
JOINT_RANGE = (0, 4094)
MIN_GRIPPER_TRAVEL = 50  # ticks between closed and open; less means the gripper did not move


def make_arm_bus(
    port: str, models: dict[str, str], calibration: dict[str, MotorCalibration]
) -> DynamixelMotorsBus:
    motors = {
        name: Motor(
            MOTOR_IDS[name], model, MotorNormMode.RANGE_0_100 if name == "gripper" else MotorNormMode.DEGREES
        )
        for name, model in models.items()
    }
    arm_calibration = {name: cal for name, cal in calibration.items() if name in motors}
    return DynamixelMotorsBus(port=port, motors=motors, calibration=arm_calibration)


def to_bus_units(joint: str, value: float) -> float:
    """Action units -> the bus's normalised units: rad -> degrees; gripper fraction -> 0..100."""
    return value * 100.0 if joint == "gripper" else math.degrees(value)


def from_bus_units(joint: str, value: float) -> float:
    return value / 100.0 if joint == "gripper" else math.radians(value)


class TwoArms:
    """Two Dynamixel buses seen as one 14-motor device (shared by the follower and the leader)."""

    buses: dict[str, DynamixelMotorsBus]
    calibration: dict[str, MotorCalibration]

    def _make_buses(self, left_port: str, right_port: str, models: dict[str, str]) -> None:
        ports = {"left": left_port, "right": right_port}
        # The calibration file holds both arms, keyed "left_waist", ...; each bus sees its own names.
        self.buses = {side: make_arm_bus(ports[side], models, self._arm_calibration(side)) for side in SIDES}

    def _arm_calibration(self, side: str) -> dict[str, MotorCalibration]:
        prefix = f"{side}_"
        return {k.removeprefix(prefix): v for k, v in self.calibration.items() if k.startswith(prefix)}

    @property
    def _motors_ft(self) -> dict[str, type]:
        return {f"{name}.pos": float for name in JOINT_NAMES}

    @property
    def _buses_connected(self) -> bool:
        return all(bus.is_connected for bus in self.buses.values())

    def _connect_buses(self) -> None:
        for side, bus in self.buses.items():
            try:
                bus.connect()
            except Exception as e:
                self._torque_off_and_close()
                raise ConnectionError(
                    f"{self}: could not connect the {side} arm on port '{bus.port}': {e}"
                ) from e

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
                f"Press ENTER to use the calibration file of {who} id '{self.id}', or type 'c' and press "
                "ENTER to calibrate again: "
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
        closed = {
            side: bus.read("Present_Position", "gripper", normalize=False) for side, bus in self.buses.items()
        }
        input("Open both grippers fully and press ENTER...")
        opened = {
            side: bus.read("Present_Position", "gripper", normalize=False) for side, bus in self.buses.items()
        }

        calibration = {}
        for side, bus in self.buses.items():
            if opened[side] - closed[side] < MIN_GRIPPER_TRAVEL:
                raise ValueError(
                    f"{side} gripper: open reads {opened[side]} and closed {closed[side]} ticks; it must "
                    f"open towards higher ticks by at least {MIN_GRIPPER_TRAVEL}. Did the gripper move? "
                    "(If it is mounted reversed, set its Drive_Mode bit 0 with the Dynamixel Wizard first.)"
                )
            drive_modes = bus.sync_read(
                "Drive_Mode", normalize=False
            )  # keep the hardware's (shadows reversed)
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
POWERED_DEVICES: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def torque_off_at_exit() -> None:
    for device in list(POWERED_DEVICES):
        try:
            if device._buses_connected:
                device._torque_off_and_close()
        except Exception:  # noqa: BLE001, S110 - nothing else can be done at exit
            pass
