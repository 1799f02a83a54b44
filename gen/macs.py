"""The MAC kinds: one registry of everything nomul knows about each way of multiplying.

A :class:`MacKind` says which weight and activation encodings a kind takes (the lanes' own rules,
:data:`hw.lanes.MAC_DTYPES`), how one term ``a·w`` (or ``-|a - (w << k)|``) is bounded, the dot
product of the golden model, the structural features of its lanes that the area model
multiplies, and the types a random or compared network of that kind uses. Schema, loader,
golden model, area model, random networks, ``--compare-kinds``, the importer and the quantizers
read this registry instead of keeping tables of their own.

Adding a MAC kind: its lane datapath in ``hw/lanes.py`` (and its encodings in
``hw.lanes.MAC_DTYPES``), its record here, and its area coefficients (``bench/calibrate_area.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hw.dtypes import DType
from hw.lanes import MAC_DTYPES

__all__ = ["MacKind", "MAC_KINDS", "get_mac", "mac_names", "acc_bounds", "dot", "check_types",
           "kind_for", "PREFERENCE"]

#: Elements per block of the adder kind's dot product (bounds the temporaries' memory).
_CHUNK_ELEMENTS = 1 << 23


def _product_terms(lo: int, hi: int, w: np.ndarray):
    return np.minimum(lo * w, hi * w), np.maximum(lo * w, hi * w)


def _adder_terms(lo: int, hi: int, ws: np.ndarray):
    return -np.maximum(np.abs(lo - ws), np.abs(hi - ws)), -np.maximum(0, np.maximum(lo - ws, ws - hi))


def _product_dot(a: np.ndarray, w: np.ndarray, shift: int, bound: int | None) -> np.ndarray:
    """``a @ w.T`` exactly; float BLAS where ``bound`` (on Σ|a·w|) says it cannot round."""
    if bound is None:
        bound = int(np.abs(a).max(initial=0)) * int(np.abs(w).sum(axis=1).max(initial=0))
    if bound < 1 << 24:
        return (a.astype(np.float32) @ w.T.astype(np.float32)).astype(np.int64)
    if bound < 1 << 53:
        return (a.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    return a @ w.T


def _adder_dot(a: np.ndarray, w: np.ndarray, shift: int, bound: int | None) -> np.ndarray:
    """``-Σ|a - (w << shift)|`` for every pair of rows, in blocks."""
    ws = w << shift
    out = np.empty((a.shape[0], w.shape[0]), dtype=np.int64)
    small = np.abs(a).max(initial=0) + np.abs(ws).max(initial=0) < 1 << 30
    if small and w.shape[1] * (np.abs(a).max(initial=0) + np.abs(ws).max(initial=0)) < 1 << 31:
        a, ws = a.astype(np.int32), ws.astype(np.int32)
    step = max(1, _CHUNK_ELEMENTS // max(1, w.size))
    for s in range(0, a.shape[0], step):
        d = np.abs(a[s:s + step, None, :] - ws[None, :, :])
        out[s:s + step] = -d.sum(axis=2, dtype=np.int64)
    return out


# -- area features of a matrix-vector unit's lanes (p: gen.area.mvu_params) ----------------------
def _popcount_features(per_pe: int, shared: int = 0):
    def f(p):
        return {"popcount": (per_pe * p["pe"] + shared) * p["simd"]}
    return f


def _ternary_features(p):
    if p["a_max_abs"] <= 1:          # STTN: two popcounts per lane
        return {"popcount": 2 * p["pe"] * p["simd"]}
    return {"ternary": p["pe"] * p["simd"] * p["term_bits"]}


def _onehot_features(p):
    # a shifter per term; the exponent decoding shared by the PEs
    per = p["term_bits"] * p["shift_bits"]
    return {"onehot": p["pe"] * p["simd"] * per, "onehot_shared": p["simd"] * per}


def _int_features(p):
    # an array multiplier: its partial-product bits, reduced in about log2(width) adder levels
    pp = p["a_bits"] * p["w_bits"]
    levels = math.log2(max(2, min(p["a_bits"], p["w_bits"])))
    return {"int": p["pe"] * p["simd"] * (pp + p["term_bits"]),
            "int_levels": p["pe"] * p["simd"] * pp * levels}


def _adder_features(p):
    return {"adder": p["pe"] * p["simd"] * p["term_bits"]}


def _onehot_shift_bits(w_dtype: DType, a_dtype: DType) -> int:
    top = (w_dtype.bits - 1) + (a_dtype.bits - 1 if a_dtype.encoding == "onehot" else 0)
    return max(1, top.bit_length())


@dataclass(frozen=True)
class MacKind:
    """One MAC kind.

    ``terms(lo, hi, w)`` gives element-wise bounds of one term for activations in
    ``[lo, hi]`` and (shifted) weights ``w``; ``dot(a, w, shift, bound)`` the golden model's
    dot products of rows; ``area_features(p)`` the lanes' features of an MVU with parameters
    ``p``; ``random_types`` and ``compare_types`` the (weight, activation) type specs of random
    test networks and of ``estimate --compare-kinds`` (the 8-bit class of the calibration).
    """

    name: str
    title: str
    weights: frozenset
    activations: frozenset
    terms: Callable
    dot: Callable
    area_features: Callable
    random_types: tuple[dict, dict]
    compare_types: tuple[dict, dict]
    weight_shift: bool = False
    shift_bits: Callable | None = None

    def takes_activation(self, dt: DType) -> bool:
        name = "uint1" if (dt.encoding == "uint" and dt.bits == 1 and "uint1" in self.activations) \
            else dt.encoding
        return name in self.activations


def _kind(name, title, terms, dot_fn, features, random_types, compare_types, **kw) -> MacKind:
    w, a = MAC_DTYPES[name]
    return MacKind(name, title, frozenset(w), frozenset(a), terms, dot_fn, features, random_types,
                   compare_types, **kw)


_BIPOLAR = {"encoding": "bipolar"}
MAC_KINDS: dict[str, MacKind] = {k.name: k for k in (
    _kind("xnor", "±1 × ±1: XNOR and popcount (BNN)", _product_terms, _product_dot,
          _popcount_features(1), (_BIPOLAR, _BIPOLAR), (_BIPOLAR, _BIPOLAR)),
    _kind("and", "±1 × {0,1}: AND and popcount (SI-BNN)", _product_terms, _product_dot,
          _popcount_features(1, shared=1),
          (_BIPOLAR, {"encoding": "uint", "bits": 1}), (_BIPOLAR, {"encoding": "uint", "bits": 1})),
    _kind("ternary", "{-1,0,+1} × integer: add, subtract or skip (STTN)", _product_terms,
          _product_dot, _ternary_features,
          ({"encoding": "ternary"}, {"encoding": "uint", "bits": 2}),
          ({"encoding": "ternary"}, {"encoding": "uint", "bits": 8})),
    _kind("onehot", "±2^e × 2^e: exponent add and shift (one-hot)", _product_terms, _product_dot,
          _onehot_features,
          ({"encoding": "onehot", "bits": 4, "signed": True}, {"encoding": "onehot", "bits": 4}),
          ({"encoding": "onehot", "bits": 8, "signed": True}, {"encoding": "onehot", "bits": 8}),
          shift_bits=_onehot_shift_bits),
    _kind("int", "n-bit × m-bit: multiplier (the baseline)", _product_terms, _product_dot,
          _int_features,
          ({"encoding": "int", "bits": 4}, {"encoding": "uint", "bits": 4}),
          ({"encoding": "int", "bits": 8}, {"encoding": "uint", "bits": 8})),
    _kind("adder", "-Σ|a - (w << k)|: sum of absolute differences (AdderNet)", _adder_terms,
          _adder_dot, _adder_features,
          ({"encoding": "int", "bits": 4}, {"encoding": "uint", "bits": 4}),
          ({"encoding": "int", "bits": 8}, {"encoding": "uint", "bits": 8}), weight_shift=True),
)}


def mac_names() -> tuple[str, ...]:
    return tuple(MAC_KINDS)


def get_mac(name: str) -> MacKind:
    try:
        return MAC_KINDS[name]
    except KeyError:
        raise ValueError(f"MAC kind must be one of {', '.join(MAC_KINDS)}, not {name!r}") from None


#: The order in which :func:`kind_for` prefers the kinds: the cheapest datapath first. ``adder``
#: is never chosen by types: it computes another function (-Σ|a - w|), not Σ a·w.
PREFERENCE = ("xnor", "and", "ternary", "onehot", "int")


def kind_for(w_dtype: DType, a_dtype: DType) -> str | None:
    """The cheapest MAC kind whose dot product Σ a·w takes these weight and activation types
    (None if none does): the type rule the importer, the quantizers and the trainer share."""
    for name in PREFERENCE:
        k = MAC_KINDS[name]
        if w_dtype.encoding in k.weights and k.takes_activation(a_dtype):
            return name
    return None


def check_types(mac: str, w_dtype: DType, a_dtype: DType) -> str | None:
    """Why ``mac`` cannot take these weight and activation types (None if it can): the field
    (``weights`` or ``activations``) and a message."""
    k = get_mac(mac)
    if w_dtype.encoding not in k.weights:
        return "weights", f"MAC kind {mac!r} takes weights {' or '.join(sorted(k.weights))}, not {w_dtype.encoding}"
    if not k.takes_activation(a_dtype):
        return ("activations", f"MAC kind {mac!r} takes {' or '.join(sorted(k.activations))} "
                               f"activations, but its input is {a_dtype}")
    return None


def acc_bounds(mac: str, w: np.ndarray, lo: int, hi: int, shift: int = 0, bias=None):
    """Exact per-row minimum and maximum of the dot products of ``w`` (rows, K) with inputs in
    ``[lo, hi]`` (plus ``bias``); Python integers where int64 could overflow."""
    w = np.asarray(w)
    amag = max(abs(lo), abs(hi))
    wmag = int(np.abs(w).max(initial=0)) << shift
    if (amag + wmag) * max(amag, wmag, 1) * max(1, w.shape[1]) >= 1 << 62:
        w = w.astype(object)
    tmin, tmax = get_mac(mac).terms(lo, hi, w << shift if shift else w)
    amin, amax = tmin.sum(axis=1), tmax.sum(axis=1)
    if bias is not None:
        amin, amax = amin + bias, amax + bias
    return amin, amax


def dot(mac: str, a: np.ndarray, w: np.ndarray, *, shift: int = 0, bound: int | None = None) -> np.ndarray:
    """Dot products of every row of ``a`` (N, K) with every row of ``w`` (M, K): (N, M) int64,
    as MAC kind ``mac`` computes them (``bound``, on Σ|a·w|, lets exact float BLAS be used)."""
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    return get_mac(mac).dot(a, w, shift, bound)
