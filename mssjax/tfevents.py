"""TensorBoard scalar summaries written without TensorFlow.

A TensorBoard event file is a sequence of TFRecords (length, masked CRC32C of
the length, data, masked CRC32C of the data), each holding one ``Event``
protocol buffer. Scalars need only four fields (wall_time, step, file_version,
summary.value{tag, simple_value}), so they are encoded by hand here and the
project needs neither TensorFlow nor tensorboardX. ``tensorboard --logdir
WORKDIR`` reads the files; `read_scalars` reads them back (for tests).
"""

import pathlib
import socket
import struct
import time

_CRC_TABLE = []
for _i in range(256):
  _c = _i
  for _ in range(8):
    _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
  _CRC_TABLE.append(_c)


def crc32c(data):
  """CRC-32C (Castagnoli) of ``data`` bytes."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data):
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value):
  out = bytearray()
  value &= (1 << 64) - 1
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field_bytes(number, payload):
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(step, *, wall_time, values=None, file_version=None):
  """Serialises an ``Event`` with a scalar ``Summary`` (or the file-version header)."""
  out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3) + _varint(int(step))
  if file_version is not None:
    out += _field_bytes(3, file_version.encode())
  if values:
    summary = b"".join(
        _field_bytes(1, _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", float(v)))
        for tag, v in values.items())
    out += _field_bytes(5, summary)
  return out


def _record(data):
  header = struct.pack("<Q", len(data))
  return header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data))


class SummaryWriter:
  """Appends scalar summaries to ``logdir/events.out.tfevents.<time>.<host>``.

  Args:
    logdir: the folder (created if needed); point TensorBoard at it.
  """

  def __init__(self, logdir):
    self.logdir = pathlib.Path(logdir)
    self.logdir.mkdir(parents=True, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
    self.path = self.logdir / name
    self._file = open(self.path, "ab")  # pylint: disable=consider-using-with
    self._file.write(_record(_event(0, wall_time=time.time(), file_version="brain.Event:2")))
    self._file.flush()

  def scalars(self, step, values):
    """Writes ``{tag: float}`` at ``step``."""
    self._file.write(_record(_event(step, wall_time=time.time(), values=values)))
    self._file.flush()

  def close(self):
    self._file.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _read_varint(data, pos):
  shift = result = 0
  while True:
    byte = data[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    shift += 7
    if not byte & 0x80:
      return result, pos


def _fields(data):
  """Yields ``(number, wire_type, value)`` of a protobuf message (the types used here)."""
  pos = 0
  while pos < len(data):
    key, pos = _read_varint(data, pos)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _read_varint(data, pos)
    elif wire == 1:
      value, pos = data[pos:pos + 8], pos + 8
    elif wire == 5:
      value, pos = data[pos:pos + 4], pos + 4
    elif wire == 2:
      length, pos = _read_varint(data, pos)
      value, pos = data[pos:pos + length], pos + length
    else:
      raise ValueError(f"unsupported protobuf wire type {wire}")
    yield number, wire, value


def read_scalars(path):
  """Reads an event file back: list of ``(step, tag, value)``; checks every CRC."""
  data = pathlib.Path(path).read_bytes()
  pos, out = 0, []
  while pos < len(data):
    header = data[pos:pos + 8]
    (length,) = struct.unpack("<Q", header)
    if struct.unpack("<I", data[pos + 8:pos + 12])[0] != _masked_crc(header):
      raise ValueError(f"{path}: bad length CRC at byte {pos}")
    body = data[pos + 12:pos + 12 + length]
    if struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] != _masked_crc(body):
      raise ValueError(f"{path}: bad data CRC at byte {pos}")
    pos += 16 + length
    event = list(_fields(body))
    step = next((v for n, _, v in event if n == 2), 0)
    for n, _, summary in event:
      if n == 5:
        for _, _, value in _fields(summary):
          parts = {num: v for num, _, v in _fields(value)}
          out.append((step, parts[1].decode(), struct.unpack("<f", parts[2])[0]))
  return out
