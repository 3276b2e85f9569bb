"""Tests of the fake Dynamixel bus itself (tests/fixtures/fake_dynamixel.py): CRC, byte stuffing, and
dynamixel_sdk / LeRobot's DynamixelMotorsBus running unchanged over it."""

import struct

import pytest

from tests.fixtures.fake_dynamixel import (
    _REGISTRY,
    ADDR_GOAL_POSITION,
    ADDR_OPERATING_MODE,
    ADDR_PRESENT_POSITION,
    ADDR_SECONDARY_ID,
    ADDR_TORQUE_ENABLE,
    ERR_ACCESS,
    INST_READ,
    INST_SYNC_WRITE,
    FakeDynamixelBus,
    crc16,
    install_fake_serial,
    instruction_packet,
    stuff,
    unstuff,
)


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
    motors = {
        "waist": Motor(1, "xm540-w270", MotorNormMode.DEGREES),
        "gripper": Motor(9, "xm430-w350", MotorNormMode.RANGE_0_100),
    }
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
