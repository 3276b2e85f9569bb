"""A fake Dynamixel bus that speaks Dynamixel Protocol 2.0 on the wire, and tests of the fake itself.

The fake replaces only the hardware: dynamixel_sdk's ``PortHandler`` opens its pyserial port as usual,
but ports named ``fakedxl://<name>`` get a :class:`FakeSerial` instead of a tty. Every byte LeRobot's
``DynamixelMotorsBus`` sends is parsed as a real instruction packet (header FF FF FD 00, id, length,
instruction, parameters, CRC-16, byte stuffing) and answered with real status packets by
:class:`FakeMotor` control tables (X-series addresses, model numbers of the XM430/XM540/XL430/XC430).

    bus = FakeDynamixelBus("left", {1: "xm540-w270", 2: "xm430-w350"})
    install_fake_serial(monkeypatch)           # dynamixel_sdk's PortHandler now resolves fakedxl://
    DynamixelMotorsBus("fakedxl://left", motors).connect()

Ideal servos: with torque on, a goal position is reached at once; with torque off the joint stays
where the test (the "hand") put it: ``bus.motors[1].set_position(...)``. EEPROM writes (addresses <
64) with torque on are refused with an Access Error, like the real firmware.

Faults: ``bus.fail_next_write(...)`` makes the serial write of the next matching instruction come up
short (the SDK reports COMM_TX_FAIL, LeRobot raises ConnectionError); ``bus.unplugged = True``
silences every motor (timeouts). Other test modules import these classes from here.
"""

from __future__ import annotations

import struct
import threading
import types
from dataclasses import dataclass, field

import pytest
import serial

# --- Protocol 2.0 constants (ROBOTIS e-Manual, "Protocol 2.0") ----------------------------------------
HEADER = bytes([0xFF, 0xFF, 0xFD, 0x00])
BROADCAST_ID = 0xFE
INST_PING, INST_READ, INST_WRITE = 0x01, 0x02, 0x03
INST_SYNC_READ, INST_SYNC_WRITE, INST_STATUS = 0x82, 0x83, 0x55
ERR_INSTRUCTION, ERR_CRC, ERR_DATA_RANGE, ERR_ACCESS = 0x02, 0x03, 0x04, 0x07

MODEL_NUMBERS = {"xm430-w350": 1020, "xm540-w270": 1120, "xl430-w250": 1060, "xc430-w150": 1070}
ADDR_MODEL_NUMBER, ADDR_ID, ADDR_BAUD, ADDR_RETURN_DELAY = 0, 7, 8, 9
ADDR_DRIVE_MODE, ADDR_OPERATING_MODE, ADDR_SECONDARY_ID = 10, 11, 12
ADDR_HOMING_OFFSET, ADDR_MAX_POS, ADDR_MIN_POS = 20, 48, 52
ADDR_TORQUE_ENABLE, ADDR_GOAL_POSITION, ADDR_PRESENT_POSITION = 64, 116, 132
EEPROM_END = 64  # addresses below are EEPROM: writable only with torque off


def crc16(data: bytes | list[int]) -> int:
    """CRC-16 of Dynamixel Protocol 2.0 (polynomial 0x8005, initial 0, MSB first).

    >>> hex(crc16(bytes([0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01])))   # PING id 1
    '0x4e19'
    """
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def stuff(payload: bytes) -> bytes:
    """Byte stuffing: FF FF FD inside instruction+parameters becomes FF FF FD FD."""
    return payload.replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")


def unstuff(payload: bytes) -> bytes:
    return payload.replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")


def status_packet(motor_id: int, error: int = 0, params: bytes = b"") -> bytes:
    body = stuff(bytes([INST_STATUS, error]) + params)
    head = HEADER + bytes([motor_id]) + struct.pack("<H", len(body) + 2)
    packet = head + body
    return packet + struct.pack("<H", crc16(packet))


def instruction_packet(motor_id: int, instruction: int, params: bytes = b"") -> bytes:
    """What a host sends (used to test the fake against dynamixel_sdk's own encoder)."""
    body = stuff(bytes([instruction]) + params)
    packet = HEADER + bytes([motor_id]) + struct.pack("<H", len(body) + 2) + body
    return packet + struct.pack("<H", crc16(packet))


# --- motors ------------------------------------------------------------------------------------------


class FakeMotor:
    """One servo: a 256-byte X-series control table and an ideal position servo."""

    def __init__(self, motor_id: int, model: str, position: int = 2048):
        self.model = model
        self.table = bytearray(256)
        self._set(ADDR_MODEL_NUMBER, 2, MODEL_NUMBERS[model])
        self._set(6, 1, 46)  # firmware version
        self._set(ADDR_ID, 1, motor_id)
        self._set(ADDR_BAUD, 1, 3)  # 1 Mbps
        self._set(ADDR_RETURN_DELAY, 1, 250)  # factory default 500 us
        self._set(ADDR_OPERATING_MODE, 1, 3)  # position mode
        self._set(ADDR_SECONDARY_ID, 1, 255)  # 255 = no secondary id
        self._set(ADDR_MAX_POS, 4, 4095)
        self._set(ADDR_MIN_POS, 4, 0)
        self.actual = position  # encoder ticks, before the homing offset
        self._refresh_present()
        self._set(ADDR_GOAL_POSITION, 4, 0)  # a stale goal: enabling torque without a fresh goal jumps

    @property
    def id(self) -> int:
        return self.table[ADDR_ID]

    def get(self, addr: int, length: int, signed: bool = False) -> int:
        raw = bytes(self.table[addr : addr + length])
        return int.from_bytes(raw, "little", signed=signed)

    def _set(self, addr: int, length: int, value: int) -> None:
        self.table[addr : addr + length] = (value & ((1 << (8 * length)) - 1)).to_bytes(length, "little")

    @property
    def torque(self) -> bool:
        return bool(self.table[ADDR_TORQUE_ENABLE])

    @property
    def homing_offset(self) -> int:
        return self.get(ADDR_HOMING_OFFSET, 4, signed=True)

    @property
    def present(self) -> int:
        return self.get(ADDR_PRESENT_POSITION, 4, signed=True)

    @property
    def goal(self) -> int:
        return self.get(ADDR_GOAL_POSITION, 4, signed=True)

    def set_position(self, actual: int) -> None:
        """Move the joint by hand (only sensible with torque off)."""
        self.actual = actual
        self._refresh_present()

    def _refresh_present(self) -> None:
        # X-series: Present_Position = Actual_Position + Homing_Offset.
        self._set(ADDR_PRESENT_POSITION, 4, self.actual + self.homing_offset)

    def write(self, addr: int, data: bytes) -> int:
        """Apply a WRITE; returns the status error byte."""
        if addr + len(data) > len(self.table):
            return ERR_DATA_RANGE
        if addr < EEPROM_END and self.torque:
            return ERR_ACCESS
        self.table[addr : addr + len(data)] = data
        if addr <= ADDR_HOMING_OFFSET < addr + len(data):
            self._refresh_present()
        touched = range(addr, addr + len(data))
        if self.torque and (ADDR_GOAL_POSITION in touched or ADDR_TORQUE_ENABLE in touched):
            self.actual = self.goal - self.homing_offset  # ideal servo: at the goal as soon as torque is on
            self._refresh_present()
        return 0


# --- bus -----------------------------------------------------------------------------------------


@dataclass
class PacketLog:
    instruction: int
    motor_id: int
    params: bytes


@dataclass
class _Fault:
    instruction: int | None
    address: int | None
    count: int


@dataclass
class FakeDynamixelBus:
    """Motors on one serial line. `models`: {id: model name}."""

    name: str
    models: dict[int, str]
    positions: dict[int, int] = field(default_factory=dict)

    def __post_init__(self):
        self.motors = {i: FakeMotor(i, m, self.positions.get(i, 2048)) for i, m in self.models.items()}
        self.log: list[PacketLog] = []
        self.unplugged = False
        self._faults: list[_Fault] = []
        self._rx = bytearray()  # bytes from the host not yet parsed
        _REGISTRY[self.name] = self

    # faults ------------------------------------------------------------------------------------------
    def fail_next_write(self, instruction: int | None = INST_SYNC_WRITE, address: int | None = None, count=1):
        """The next `count` host packets with this instruction (and start address) fail to go out."""
        self._faults.append(_Fault(instruction, address, count))

    def _should_fail(self, packet: bytes) -> bool:
        instruction = packet[7]
        address = struct.unpack("<H", packet[8:10])[0] if len(packet) >= 12 else None
        for fault in self._faults:
            if fault.count > 0 and fault.instruction in (None, instruction) and fault.address in (None, address):
                fault.count -= 1
                return True
        return False

    # wire --------------------------------------------------------------------------------------------
    def host_write(self, data: bytes) -> tuple[int, bytes]:
        """Bytes written by the host; returns (bytes accepted, reply bytes)."""
        if len(data) >= 10 and data[:4] == HEADER and self._should_fail(bytes(data)):
            return len(data) // 2, b""  # a short write: the SDK reports COMM_TX_FAIL
        self._rx += data
        reply = bytearray()
        while True:
            packet = self._next_packet()
            if packet is None:
                break
            reply += self._handle(packet)
        return len(data), bytes(reply)

    def _next_packet(self) -> bytes | None:
        start = self._rx.find(HEADER)
        if start < 0:
            del self._rx[: max(0, len(self._rx) - 3)]
            return None
        del self._rx[:start]
        if len(self._rx) < 7:
            return None
        length = struct.unpack("<H", self._rx[5:7])[0]
        if len(self._rx) < 7 + length:
            return None
        packet = bytes(self._rx[: 7 + length])
        del self._rx[: 7 + length]
        return packet

    def _handle(self, packet: bytes) -> bytes:
        motor_id = packet[4]
        if crc16(packet[:-2]) != struct.unpack("<H", packet[-2:])[0]:
            return b"" if motor_id == BROADCAST_ID else status_packet(motor_id, ERR_CRC)
        body = unstuff(packet[7:-2])
        instruction, params = body[0], body[1:]
        self.log.append(PacketLog(instruction, motor_id, params))
        if self.unplugged:
            return b""
        if instruction == INST_PING:
            targets = sorted(self.motors.values(), key=lambda m: m.id) if motor_id == BROADCAST_ID else self._by_id(motor_id)
            return b"".join(status_packet(m.id, 0, struct.pack("<HB", m.get(0, 2), m.get(6, 1))) for m in targets)
        if instruction == INST_READ:
            addr, length = struct.unpack("<HH", params[:4])
            return b"".join(status_packet(m.id, 0, bytes(m.table[addr : addr + length])) for m in self._by_id(motor_id))
        if instruction == INST_WRITE:
            addr = struct.unpack("<H", params[:2])[0]
            replies = b""
            for motor in self._receivers(motor_id):
                error = motor.write(addr, params[2:])
                if motor.id == motor_id:  # secondary-id receivers and broadcasts send no status
                    replies += status_packet(motor.id, error)
            return replies
        if instruction == INST_SYNC_READ:
            addr, length = struct.unpack("<HH", params[:4])
            replies = b""
            for target in params[4:]:
                for motor in self._by_id(target):
                    replies += status_packet(motor.id, 0, bytes(motor.table[addr : addr + length]))
            return replies
        if instruction == INST_SYNC_WRITE:
            addr, length = struct.unpack("<HH", params[:4])
            data = params[4:]
            for i in range(0, len(data), 1 + length):
                for motor in self._receivers(data[i]):
                    motor.write(addr, data[i + 1 : i + 1 + length])
            return b""
        return b"" if motor_id == BROADCAST_ID else status_packet(motor_id, ERR_INSTRUCTION)

    def _by_id(self, motor_id: int) -> list[FakeMotor]:
        return [m for m in self.motors.values() if m.id == motor_id]

    def _receivers(self, motor_id: int) -> list[FakeMotor]:
        """Motors that execute a packet for `motor_id`: itself and those using it as Secondary_ID."""
        if motor_id == BROADCAST_ID:
            return list(self.motors.values())
        return [m for m in self.motors.values() if m.id == motor_id or m.get(ADDR_SECONDARY_ID, 1) == motor_id]

    # assertions helpers ------------------------------------------------------------------------------
    def torques(self) -> dict[int, bool]:
        return {i: m.torque for i, m in self.motors.items()}

    def sent(self, instruction: int, address: int | None = None) -> list[PacketLog]:
        return [
            p
            for p in self.log
            if p.instruction == instruction and (address is None or struct.unpack("<H", p.params[:2])[0] == address)
        ]


_REGISTRY: dict[str, FakeDynamixelBus] = {}


class FakeSerial:
    """The pyserial calls dynamixel_sdk's PortHandler makes, served by a FakeDynamixelBus."""

    def __init__(self, bus: FakeDynamixelBus, baudrate: int):
        self.bus = bus
        self.baudrate = baudrate
        self.is_open = True
        self._in = bytearray()
        self._lock = threading.Lock()

    @property
    def in_waiting(self) -> int:
        return len(self._in)

    def read(self, size: int = 1) -> bytes:
        with self._lock:
            out = bytes(self._in[:size])
            del self._in[:size]
            return out

    def write(self, data) -> int:
        accepted, reply = self.bus.host_write(bytes(data))
        with self._lock:
            self._in += reply
        return accepted

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self._in.clear()

    def close(self) -> None:
        self.is_open = False


def _open_serial(port=None, baudrate=9600, **kwargs):
    """Stand-in for ``serial.Serial`` inside dynamixel_sdk: fake buses by URL, real ports otherwise."""
    if port and port.startswith("fakedxl://"):
        name = port.removeprefix("fakedxl://")
        if name not in _REGISTRY:
            raise serial.SerialException(f"[Errno 2] could not open port {port}: no such fake bus")
        return FakeSerial(_REGISTRY[name], baudrate)
    return serial.Serial(port=port, baudrate=baudrate, **kwargs)


def install_fake_serial(monkeypatch) -> None:
    """Route dynamixel_sdk's ``serial.Serial(...)`` through :func:`_open_serial` for this test."""
    import dynamixel_sdk.port_handler as port_handler

    shim = types.SimpleNamespace(**{k: getattr(serial, k) for k in dir(serial) if not k.startswith("__")})
    shim.Serial = _open_serial
    monkeypatch.setattr(port_handler, "serial", shim)


# --- tests of the fake against dynamixel_sdk and LeRobot ---------------------------------------------


@pytest.fixture
def fake_serial(monkeypatch):
    install_fake_serial(monkeypatch)
    yield
    _REGISTRY.clear()


def test_crc_matches_dynamixel_sdk():
    from dynamixel_sdk import PacketHandler

    sdk = PacketHandler(2.0)
    packet = list(instruction_packet(7, INST_READ, struct.pack("<HH", 132, 4)))
    assert sdk.updateCRC(0, packet, len(packet) - 2) == crc16(packet[:-2])
    assert crc16(bytes([0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01])) == 0x4E19  # e-Manual PING example


def test_byte_stuffing_round_trip():
    payload = bytes([0x03, 0x74, 0x00, 0xFF, 0xFF, 0xFD, 0x00])
    assert stuff(payload) == bytes([0x03, 0x74, 0x00, 0xFF, 0xFF, 0xFD, 0xFD, 0x00])
    assert unstuff(stuff(payload)) == payload


def test_sdk_ping_read_write_sync_over_fake(fake_serial):
    import dynamixel_sdk as dxl

    bus = FakeDynamixelBus("sdk", {1: "xm540-w270", 2: "xm430-w350"}, positions={1: 1000, 2: 3000})
    port, ph = dxl.PortHandler("fakedxl://sdk"), dxl.PacketHandler(2.0)
    assert port.openPort()
    assert ph.ping(port, 1) == (1120, dxl.COMM_SUCCESS, 0)
    assert ph.ping(port, 2)[0] == 1020
    assert ph.ping(port, 9)[1] == dxl.COMM_RX_TIMEOUT  # nobody answers for a missing id
    assert ph.read4ByteTxRx(port, 1, ADDR_PRESENT_POSITION) == (1000, dxl.COMM_SUCCESS, 0)

    # EEPROM is locked while torque is on: Access Error, as on the real firmware.
    assert ph.write1ByteTxRx(port, 1, ADDR_TORQUE_ENABLE, 1) == (dxl.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 1, ADDR_OPERATING_MODE, 4) == (dxl.COMM_SUCCESS, ERR_ACCESS)

    writer = dxl.GroupSyncWrite(port, ph, ADDR_GOAL_POSITION, 4)
    writer.addParam(1, list(struct.pack("<i", 1500)))
    writer.addParam(2, list(struct.pack("<i", 2500)))
    assert writer.txPacket() == dxl.COMM_SUCCESS
    assert bus.motors[1].present == 1500  # torque on: the servo moved
    assert bus.motors[2].present == 3000  # torque off: it did not

    reader = dxl.GroupSyncRead(port, ph, ADDR_PRESENT_POSITION, 4)
    reader.addParam(1)
    reader.addParam(2)
    assert reader.txRxPacket() == dxl.COMM_SUCCESS
    assert reader.getData(1, ADDR_PRESENT_POSITION, 4) == 1500
    assert reader.getData(2, ADDR_PRESENT_POSITION, 4) == 3000

    bus.fail_next_write(INST_SYNC_WRITE)
    assert writer.txPacket() == dxl.COMM_TX_FAIL
    assert writer.txPacket() == dxl.COMM_SUCCESS  # the fault was one-shot


def test_secondary_id_shadow_follows_primary(fake_serial):
    import dynamixel_sdk as dxl

    bus = FakeDynamixelBus("shadow", {2: "xm540-w270", 3: "xm540-w270"})
    port, ph = dxl.PortHandler("fakedxl://shadow"), dxl.PacketHandler(2.0)
    port.openPort()
    assert ph.write1ByteTxRx(port, 3, ADDR_SECONDARY_ID, 2) == (dxl.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 2, ADDR_TORQUE_ENABLE, 1) == (dxl.COMM_SUCCESS, 0)  # both enabled
    assert bus.torques() == {2: True, 3: True}
    assert ph.write4ByteTxRx(port, 2, ADDR_GOAL_POSITION, 2100) == (dxl.COMM_SUCCESS, 0)
    assert bus.motors[3].goal == 2100


def test_lerobot_bus_runs_unchanged_on_fake(fake_serial):
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.dynamixel import DynamixelMotorsBus

    FakeDynamixelBus("lr", {1: "xm540-w270", 9: "xm430-w350"}, positions={1: 1234, 9: 2222})
    motors = {"waist": Motor(1, "xm540-w270", MotorNormMode.DEGREES), "gripper": Motor(9, "xm430-w350", MotorNormMode.RANGE_0_100)}
    bus = DynamixelMotorsBus("fakedxl://lr", motors)
    bus.connect()  # pings every id and checks the model numbers
    assert bus.sync_read("Present_Position", normalize=False) == {"waist": 1234, "gripper": 2222}
    bus.write("Homing_Offset", "waist", -234, normalize=False)
    assert bus.read("Present_Position", "waist", normalize=False) == 1000
    bus.disconnect(disable_torque=True)


def test_lerobot_bus_reports_wrong_model(fake_serial):
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.dynamixel import DynamixelMotorsBus

    FakeDynamixelBus("wrong", {1: "xl430-w250"})
    bus = DynamixelMotorsBus("fakedxl://wrong", {"waist": Motor(1, "xm540-w270", MotorNormMode.DEGREES)})
    with pytest.raises(RuntimeError, match="expected 1120, found 1060"):
        bus.connect()
