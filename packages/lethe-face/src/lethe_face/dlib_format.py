"""Reader of dlib's binary serialisation (the ``.dat`` files of ``dlib::serialize``), pure Python and numpy.

The encodings, as dlib writes them (``dlib/serialize.h``, ``dlib/float_details.h``, ``dlib/dnn/tensor.h``):

* integers: one control byte (low nibble: number of value bytes; bit 7: negative) then the magnitude's
  bytes, least significant first (``pack_int``/``unpack_int``);
* ``bool``: one character, ``'1'`` or ``'0'``;
* ``float``/``double``: two integers, a 64-bit mantissa and a 16-bit exponent, value ``mantissa * 2**exponent``
  (``float_details``; exponents 32000/32001/32002 stand for +inf, -inf, NaN);
* ``std::string``: its length as an integer, then its bytes;
* ``tensor``/``resizable_tensor``: version 2, ``num_samples, k, nr, nc`` as integers, then the values as
  little-endian IEEE float32 in ``(n, k, nr, nc)`` order;
* ``alias_tensor``: version 1 and its four dimensions (no data).

Every failure (truncated file, wrong version string, impossible size) is one ``CheckpointError`` naming
the file and the byte offset.
"""

from __future__ import annotations

import math

import numpy as np

from lethe.errors import CheckpointError

#: float_details' exponents of the special values (dlib/float_details.h)
_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
#: a tensor bigger than this is taken for corruption, not a network
_MAX_TENSOR_VALUES = 1 << 28


class DlibReader:
    """Sequential reader over the bytes of one dlib-serialised object; ``source`` names it in errors."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = memoryview(data)
        self.source = source
        self.pos = 0

    def error(self, what: str) -> CheckpointError:
        """The error to raise for ``what`` at the current offset."""
        return CheckpointError(f"{self.source} is not a valid dlib model file: {what} at byte {self.pos}")

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"file ends inside {what} (truncated)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self, what: str = "an integer", max_bytes: int = 8) -> int:
        """dlib's variable-length integer (``unpack_int``)."""
        control = self._take(1, what)[0]
        size = control & 0x0F
        if size > max_bytes or control & 0x70:
            raise self.error(f"bad control byte {control:#04x} for {what}")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def count(self, what: str) -> int:
        """A non-negative integer (a size or dimension)."""
        value = self.integer(what)
        if value < 0:
            raise self.error(f"negative {what} ({value})")
        return value

    def boolean(self, what: str = "a bool") -> bool:
        """A bool, stored as the character ``'1'`` or ``'0'``."""
        char = bytes(self._take(1, what))
        if char not in (b"0", b"1"):
            raise self.error(f"bad byte {char!r} for {what}")
        return char == b"1"

    def real(self, what: str = "a float") -> float:
        """A float or double (``float_details``: mantissa and exponent)."""
        mantissa = self.integer(what)
        exponent = self.integer(what, max_bytes=2)
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.error(f"out-of-range {what}") from None

    def string(self, what: str = "a string", max_len: int = 256) -> str:
        """A ``std::string`` (length, then bytes); longer than ``max_len`` is taken for corruption."""
        n = self.count(what)
        if n > max_len:
            raise self.error(f"implausible length {n} of {what}")
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"non-text bytes in {what}") from None

    def expect_string(self, expected: str, what: str) -> None:
        """A version string that must equal ``expected`` (dlib writes one at the start of each layer)."""
        start = self.pos
        try:
            found = self.string(what)
        except CheckpointError:
            self.pos = start
            raise self.error(f"expected {what} {expected!r}") from None
        if found != expected:
            self.pos = start
            raise self.error(f"expected {what} {expected!r}, found {found!r}")

    def version(self, expected: int, what: str) -> None:
        """An ``int`` version number that must equal ``expected``."""
        start = self.pos
        found = self.integer(f"the version of {what}")
        if found != expected:
            self.pos = start
            raise self.error(f"{what} has version {found}, expected {expected}")

    def tensor(self, what: str = "a tensor") -> np.ndarray:
        """A ``tensor``/``resizable_tensor`` as float32 ``[n, k, nr, nc]``."""
        self.version(2, what)
        shape = tuple(self.count(f"a dimension of {what}") for _ in range(4))
        size = math.prod(shape)
        if size > _MAX_TENSOR_VALUES:
            raise self.error(f"implausible size {shape} of {what}")
        return np.frombuffer(self._take(4 * size, what), dtype="<f4").reshape(shape).astype(np.float32)

    def alias_tensor(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        """An ``alias_tensor``'s dimensions ``(n, k, nr, nc)``."""
        self.version(1, what)
        n, k, nr, nc = (self.count(f"a dimension of {what}") for _ in range(4))
        return n, k, nr, nc

    def empty_tensor(self, what: str) -> None:
        """A tensor that dlib stores but a trained network leaves empty (gradients, cached outputs)."""
        self.tensor(what)  # its size is not checked: a network saved mid-training keeps these

    def at_end(self) -> bool:
        return self.pos == len(self.data)
