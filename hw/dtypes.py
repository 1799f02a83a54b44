"""Element types of tensors and weights: their integer values and their hardware codes.

Every tensor element in nomul has a *value* (the integer the arithmetic uses, e.g. -1 or +1 for
a bipolar element) and a *code* (the unsigned bit pattern the hardware carries on a stream).
This module is the one place where the two are related.

=========== ================================ ============================================
encoding    values                           code (LSB first)
=========== ================================ ============================================
bipolar     {-1, +1}                         1 bit: 1 means +1, 0 means -1
uint n      0 .. 2^n - 1                     n bits
int n       -2^(n-1) .. 2^(n-1) - 1          n bits, two's complement
            (narrow: without -2^(n-1))
ternary     {-1, 0, +1}                      2 bits, two's complement (same as narrow int 2)
onehot n    {0} ∪ {±2^e : 0 <= e < n}        exponent (max(1, clog2 n) bits), then a non-zero
            (unsigned: without the minus)    bit, then (if signed) a sign bit
=========== ================================ ============================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ENCODINGS", "DType", "bits_for_range", "signed_width", "clog2", "pack_words", "unpack_words"]

ENCODINGS = ("bipolar", "uint", "int", "ternary", "onehot")


def clog2(n: int) -> int:
    """Smallest k with 2**k >= n (0 for n <= 1)."""
    return max(0, int(n - 1).bit_length())


def bits_for_range(lo: int, hi: int) -> tuple[int, bool]:
    """Width and signedness of the narrowest two's complement type holding [lo, hi].

    Returns ``(width, signed)``; an all-non-negative range is unsigned. A width is at least 1.
    """
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"Empty range [{lo}, {hi}]")
    if lo >= 0:
        return max(1, hi.bit_length()), False
    # signed: need -2^(w-1) <= lo and hi <= 2^(w-1) - 1
    return signed_width(lo, hi), True


def signed_width(lo: int, hi: int) -> int:
    """Width of the narrowest signed two's complement type holding [lo, hi]."""
    return max((-int(lo) - 1).bit_length() if lo < 0 else 0, int(hi).bit_length()) + 1


@dataclass(frozen=True)
class DType:
    """The element type of a tensor or a weight array.

    Parameters
    ----------
    encoding : str
        One of :data:`ENCODINGS`.
    bits : int
        Width for ``uint``, ``int`` (value bits) and ``onehot`` (number of exponents);
        1 for ``bipolar`` and 2 for ``ternary``.
    narrow : bool
        ``int`` only: the most negative value is excluded (symmetric range).
    signed : bool
        ``onehot`` only: negative powers of two are allowed.
    """

    encoding: str
    bits: int = 1
    narrow: bool = False
    signed: bool = False

    def __post_init__(self):
        if self.encoding not in ENCODINGS:
            raise ValueError(f"Encoding must be one of {', '.join(ENCODINGS)}, not {self.encoding!r}")
        if self.encoding == "bipolar" and self.bits != 1:
            raise ValueError(f"A bipolar type has 1 bit, not {self.bits}")
        if self.encoding == "ternary" and self.bits != 2:
            raise ValueError(f"A ternary type has 2 bits, not {self.bits}")
        if self.encoding == "int" and not 2 <= self.bits <= 32:
            raise ValueError(f"An int type has 2 to 32 bits, not {self.bits}")
        if self.encoding == "uint" and not 1 <= self.bits <= 32:
            raise ValueError(f"A uint type has 1 to 32 bits, not {self.bits}")
        if self.encoding == "onehot" and not 1 <= self.bits <= 32:
            raise ValueError(f"A onehot type has 1 to 32 exponents, not {self.bits}")
        if self.narrow and self.encoding != "int":
            raise ValueError("Only an int type can be narrow")
        if self.signed and self.encoding != "onehot":
            raise ValueError("Only a onehot type takes 'signed' (int is always signed)")

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def bipolar(cls) -> DType:
        return cls("bipolar")

    @classmethod
    def ternary(cls) -> DType:
        return cls("ternary", 2)

    @classmethod
    def uint(cls, bits: int) -> DType:
        return cls("uint", bits)

    @classmethod
    def int(cls, bits: int, *, narrow: bool = False) -> DType:
        return cls("int", bits, narrow=narrow)

    @classmethod
    def onehot(cls, bits: int, *, signed: bool = False) -> DType:
        return cls("onehot", bits, signed=signed)

    @classmethod
    def for_range(cls, lo: int, hi: int) -> DType:
        """The narrowest ``uint`` or ``int`` type holding every integer of [lo, hi]."""
        width, signed = bits_for_range(lo, hi)
        if signed:
            return cls.int(max(2, width))
        return cls.uint(width)

    # -- values --------------------------------------------------------------------------------
    @property
    def min(self) -> int:
        e = self.encoding
        if e in ("bipolar", "ternary"):
            return -1
        if e == "uint":
            return 0
        if e == "int":
            return -(1 << (self.bits - 1)) + (1 if self.narrow else 0)
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        e = self.encoding
        if e in ("bipolar", "ternary"):
            return 1
        if e == "uint":
            return (1 << self.bits) - 1
        if e == "int":
            return (1 << (self.bits - 1)) - 1
        return 1 << (self.bits - 1)

    def values(self) -> np.ndarray:
        """Every legal value, ascending (only for types of at most 2^16 values)."""
        if self.encoding == "bipolar":
            return np.array([-1, 1], dtype=np.int64)
        if self.encoding == "onehot":
            pos = [1 << e for e in range(self.bits)]
            neg = [-p for p in reversed(pos)] if self.signed else []
            return np.array(neg + [0] + pos, dtype=np.int64)
        if self.max - self.min > 1 << 16:
            raise ValueError(f"{self} has too many values to list")
        return np.arange(self.min, self.max + 1, dtype=np.int64)

    def contains(self, values) -> np.ndarray:
        """Boolean mask: which of ``values`` (an integer array) are legal values of this type."""
        v = np.asarray(values)
        if self.encoding == "bipolar":
            return (v == -1) | (v == 1)
        inrange = (v >= self.min) & (v <= self.max)
        if self.encoding != "onehot":
            return inrange
        a = np.abs(v.astype(np.int64))
        return inrange & ((a & (a - 1)) == 0)

    # -- codes ---------------------------------------------------------------------------------
    @property
    def exp_bits(self) -> int:
        """Width of the exponent field of a onehot code."""
        return max(1, clog2(self.bits))

    @property
    def code_width(self) -> int:
        """Width in bits of one element on a hardware stream."""
        if self.encoding == "onehot":
            return self.exp_bits + 1 + (1 if self.signed else 0)
        return self.bits

    def encode(self, values) -> np.ndarray:
        """Hardware codes (uint64) of an array of legal values."""
        v = np.asarray(values, dtype=np.int64)
        if self.encoding == "bipolar":
            return (v > 0).astype(np.uint64)
        if self.encoding == "onehot":
            a = np.abs(v)
            nz = a != 0
            exp = np.zeros(v.shape, dtype=np.int64)
            exp[nz] = np.log2(a[nz]).round().astype(np.int64)
            code = exp | (nz.astype(np.int64) << self.exp_bits)
            if self.signed:
                code |= (v < 0).astype(np.int64) << (self.exp_bits + 1)
            return code.astype(np.uint64)
        mask = (1 << self.bits) - 1
        return (v & mask).astype(np.uint64)

    def decode(self, codes) -> np.ndarray:
        """Values (int64) of an array of hardware codes."""
        c = np.asarray(codes).astype(np.int64)
        if self.encoding == "bipolar":
            return np.where(c & 1, 1, -1).astype(np.int64)
        if self.encoding == "onehot":
            exp = c & ((1 << self.exp_bits) - 1)
            nz = (c >> self.exp_bits) & 1
            mag = np.where(nz == 1, np.left_shift(1, exp), 0)
            if self.signed:
                neg = (c >> (self.exp_bits + 1)) & 1
                mag = np.where(neg == 1, -mag, mag)
            return mag.astype(np.int64)
        c = c & ((1 << self.bits) - 1)
        if self.encoding in ("int", "ternary"):
            c = np.where(c >> (self.bits - 1), c - (1 << self.bits), c)
        return c.astype(np.int64)

    def __str__(self) -> str:
        if self.encoding in ("bipolar", "ternary"):
            return self.encoding
        if self.encoding == "onehot":
            return f"{'s' if self.signed else ''}onehot{self.bits}"
        return f"{self.encoding}{self.bits}{'n' if self.narrow else ''}"


def pack_words(codes, width: int) -> list[int]:
    """Rows of element codes (beats, elements) packed into one integer per row, element 0 in
    the least significant bits, ``width`` bits each: the payload words of a stream."""
    codes = np.asarray(codes, dtype=np.uint64)
    codes = codes.reshape(codes.shape[0], -1) if codes.ndim != 2 else codes
    n, k = codes.shape
    if n == 0:
        return []
    bits = ((codes[..., None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    bits = bits.reshape(n, k * width)
    nbytes = max(1, (k * width + 7) // 8)
    pad = nbytes * 8 - k * width
    if pad:
        bits = np.concatenate([bits, np.zeros((n, pad), np.uint8)], axis=1)
    raw = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(raw[i].tobytes(), "little") for i in range(n)]


def unpack_words(words, width: int, elems: int) -> np.ndarray:
    """Payload words back to element codes: (len(words), elems) uint64 (the inverse of
    :func:`pack_words`; bits above ``elems · width`` are ignored)."""
    words = [int(w) for w in words]
    nbytes = max(1, (elems * width + 7) // 8)
    mask = (1 << (elems * width)) - 1
    if not words:
        return np.zeros((0, elems), dtype=np.uint64)
    raw = np.frombuffer(b"".join((w & mask).to_bytes(nbytes, "little") for w in words), np.uint8)
    bits = np.unpackbits(raw.reshape(len(words), nbytes), axis=1, bitorder="little")[:, :elems * width]
    bits = bits.reshape(len(words), elems, width).astype(np.uint64)
    return (bits << np.arange(width, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)
