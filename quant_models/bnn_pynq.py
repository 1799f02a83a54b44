"""BNN-PYNQ's trained binary networks (LFC-w1a1 on MNIST, CNV-w1a1 on CIFAR-10), decoded from
their packed parameter files into nomul networks at BNN-PYNQ's own folding, and an independent
reference forward pass that works on the packed bits the way BNN-PYNQ's accelerator does.

The parameters (Xilinx/BNN-PYNQ @ d39c1c75, ``bnn/params``) are, per layer ``L`` and PE ``p``:
``L-p-weights.bin``, little-endian uint64 words, word ``f·S + s`` (``f`` the neuron fold, ``S =
MW / SIMD``) holding in bit ``j`` the weight of column ``s·SIMD + j`` of neuron ``f·PE + p`` (1
means +1); and ``L-p-thres.bin``, little-endian int64, entry ``f`` the threshold of neuron ``f·PE
+ p``. A binary layer outputs 1 where ``popcount(XNOR(w, x)) > threshold`` (finn-hlslib's
``ThresholdsActivation`` with ``std::less``). Convolution columns are in the sliding window's
order (kernel row, kernel column, channel), images in HWC order.

CNV's first layer takes ``ap_fixed<8, 1>`` pixels (``x = pixel/255·2 − 1`` rounded half up to
1/128 and saturated) and compares ``Σ x·w`` in ``ap_fixed<24, 16>`` with thresholds stored as
``ap_fixed<64, 56>`` (8 fractional bits): in integers, ``2·Σ q·w > raw``. Its last layer has 64
neurons of which the first 10 are the classes, read as popcounts; LFC's first layer reads the
784 input bits padded with zeros to 832 columns, which this decode folds into its thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CNV", "LFC", "Layer", "decode", "network_doc", "reference_forward", "cifar_record",
           "mnist_idx_image", "cnv_pixel_codes"]


@dataclass(frozen=True)
class Layer:
    """One BNN-PYNQ layer: its hardware matrix (MH × MW, padded as BNN-PYNQ stores it) and
    folding, the real sizes nomul uses, and for convolutions the kernel and input image."""

    simd: int
    pe: int
    mw: int                 # columns as stored (LFC's first layer: 832)
    mh: int                 # neurons as stored (the last layers: 64)
    in_ch: int = 0          # convolution: input channels, kernel, input size
    kernel: int = 0
    in_dim: int = 0
    real_mw: int | None = None
    real_mh: int | None = None
    pool_after: bool = False

    @property
    def conv(self) -> bool:
        return self.kernel > 0

    @property
    def used_mw(self) -> int:
        return self.real_mw or self.mw

    @property
    def used_mh(self) -> int:
        return self.real_mh or self.mh


#: bnn/params/mnist/lfcW1A1: 784-1024-1024-1024-10 (the shared models' README gives the layout).
LFC = (Layer(64, 32, 832, 1024, real_mw=784), Layer(32, 64, 1024, 1024),
       Layer(64, 32, 1024, 1024), Layer(8, 16, 1024, 64, real_mh=10))

#: bnn/params/cifar10/cnvW1A1, from bnn/src/network/cnvW1A1/hw/config.h and top.cpp.
CNV = (Layer(3, 16, 27, 64, 3, 3, 32), Layer(32, 32, 576, 64, 64, 3, 30, pool_after=True),
       Layer(32, 16, 576, 128, 64, 3, 14), Layer(32, 16, 1152, 128, 128, 3, 12, pool_after=True),
       Layer(32, 4, 1152, 256, 128, 3, 5), Layer(32, 1, 2304, 256, 256, 3, 3),
       Layer(4, 1, 256, 512), Layer(8, 1, 512, 512), Layer(1, 4, 512, 64, real_mh=10))


def _read(path: Path, dtype: str, count: int) -> np.ndarray:
    data = path.read_bytes()
    want = count * 8
    if len(data) != want:
        raise ValueError(f"{path}: expected {want} bytes ({count} words), found {len(data)}")
    return np.frombuffer(data, dtype=dtype)


def _weight_bits(folder: Path, index: int, layer: Layer) -> np.ndarray:
    """(MH, MW) weight bits of a layer as stored."""
    s, f = layer.mw // layer.simd, layer.mh // layer.pe
    bits = np.empty((layer.mh, layer.mw), dtype=np.uint8)
    shifts = np.arange(layer.simd, dtype=np.uint64)
    for p in range(layer.pe):
        words = _read(folder / f"{index}-{p}-weights.bin", "<u8", f * s)
        b = (words[:, None] >> shifts) & np.uint64(1)           # (F·S, SIMD), column s·SIMD + j
        bits[p::layer.pe] = b.reshape(f, s * layer.simd)
    return bits


def _thresholds(folder: Path, index: int, layer: Layer) -> np.ndarray:
    f = layer.mh // layer.pe
    t = np.empty(layer.mh, dtype=np.int64)
    for p in range(layer.pe):
        t[p::layer.pe] = _read(folder / f"{index}-{p}-thres.bin", "<i8", f)
    return t


def decode(folder, layers) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``[(weight bits (MH, MW) as stored, thresholds (MH,) or None for the last layer)]``."""
    folder = Path(folder)
    out = []
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        out.append((_weight_bits(folder, i, layer), None if last else _thresholds(folder, i, layer)))
    return out


# -- the reference: BNN-PYNQ's arithmetic on bits ---------------------------------------------------
def _popcount_xnor(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """popcount(XNOR(x, w)) of every row of ``x_bits`` (N, K) with every row of ``w_bits``."""
    x = x_bits.astype(np.float64)   # sums of at most 2^53 ones: exact, and BLAS-fast
    w = w_bits.astype(np.float64)
    return (x @ w.T + (1 - x) @ (1 - w).T).astype(np.int64)


def _windows_hwc(img: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W, C) -> (N, OH·OW, K·K·C) in (kernel row, kernel column, channel) order, stride 1."""
    n, h, w, c = img.shape
    oh, ow = h - k + 1, w - k + 1
    cols = [img[:, ky:ky + oh, kx:kx + ow, :] for ky in range(k) for kx in range(k)]
    return np.stack(cols, axis=3).reshape(n, oh * ow, k * k * c)


def _pool_or(bits: np.ndarray) -> np.ndarray:
    """2×2 max-pool of (N, H, W, C) bits (an OR), stride 2."""
    n, h, w, c = bits.shape
    return bits[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def reference_forward(params, layers, x) -> np.ndarray:
    """The classes' raw outputs (popcounts, N × 10) as BNN-PYNQ's accelerator computes them.

    ``x``: LFC, input bits (N, 784); CNV, ``ap_fixed<8,1>`` pixel codes as integers (N, 32, 32, 3)
    in HWC order."""
    a = np.asarray(x)
    for i, (layer, (wb, t)) in enumerate(zip(layers, params, strict=True)):
        if layer.conv:
            n = a.shape[0]
            dim = layer.in_dim - layer.kernel + 1
            win = _windows_hwc(a, layer.kernel).reshape(n * dim * dim, layer.mw)
            if i == 0:   # fixed-point pixels times ±1 weights
                acc = (win.astype(np.float64) @ (2 * wb.astype(np.float64) - 1).T).astype(np.int64)
                out = (2 * acc > t).astype(np.uint8)
            else:
                out = (_popcount_xnor(win, wb) > t).astype(np.uint8)
            a = out.reshape(n, dim, dim, layer.mh)
            if layer.pool_after:
                a = _pool_or(a)
            continue
        if a.ndim > 2:
            a = a.reshape(a.shape[0], -1)
        if a.shape[1] < layer.mw:   # LFC's input: padded with zero bits
            a = np.concatenate([a, np.zeros((a.shape[0], layer.mw - a.shape[1]), a.dtype)], axis=1)
        pop = _popcount_xnor(a, wb)
        a = pop if t is None else (pop > t).astype(np.uint8)
    return a[:, :layers[-1].used_mh]


# -- the nomul network --------------------------------------------------------------------------
def network_doc(name: str, params, layers, *, source: str) -> tuple[dict, dict]:
    """A nomul network (version 1) of the decoded parameters at BNN-PYNQ's folding, with its
    arrays: every layer xnor except CNV's first (8-bit pixels times ±1 weights)."""
    from gen.macs import kind_for
    from hw.dtypes import DType

    first = layers[0]
    arrays: dict[str, np.ndarray] = {}
    if first.conv:
        inp = {"shape": [first.in_ch, first.in_dim, first.in_dim], "encoding": "int", "bits": 8,
               # x = pixel/255·2 − 1 as ap_fixed<8,1,AP_RND,AP_SAT>: round(pixel·256/255) − 128
               "quantizer": {"scale": 255 / 256, "zero_point": -128, "rounding": "half-up"}}
    else:
        inp = {"shape": [first.used_mw], "encoding": "bipolar", "quantizer": {"threshold": 0.5}}
    doc = {"version": 1, "name": name, "source": source, "input": inp, "layers": []}
    for i, (layer, (wb, t)) in enumerate(zip(layers, params, strict=True)):
        w = 2 * wb[:layer.used_mh].astype(np.int8) - 1            # ±1, (MH, MW as stored)
        mw = layer.used_mw
        if i == 0 and first.conv:
            mac = kind_for(DType.bipolar(), DType.int(8))
            # 2·Σ q·w > raw  <=>  Σ q·w >= floor(raw / 2) + 1
            thr = np.floor_divide(t, 2) + 1
        else:
            mac = "xnor"
            if t is not None:
                # popcount > T over the stored columns <=> dot >= 2(T + 1) − MW, the stored
                # columns past the real inputs meeting input bit 0 (−1): their popcount share is
                # the number of −1 weights there
                pad_pop = (w[:, mw:] == -1).sum(axis=1) if layer.mw > mw else 0
                thr = 2 * (t[:layer.used_mh] - pad_pop + 1) - mw
        w = w[:, :mw]
        if layer.conv:
            c, k = layer.in_ch, layer.kernel
            w = w.reshape(-1, k, k, c).transpose(0, 3, 1, 2)        # columns (ky, kx, c) -> OIHW
        key = f"w{i}"
        arrays[key] = np.ascontiguousarray(w.astype(np.int8))
        spec = {"type": "conv2d" if layer.conv else "dense", "name": f"L{i}", "mac": mac,
                "weights": {"key": key, "encoding": "bipolar"}, "pe": layer.pe, "simd": layer.simd}
        if layer.conv:
            spec["kernel"] = layer.kernel
        if t is None:
            spec["activation"] = {"type": "none"}
        else:
            arrays[f"t{i}"] = thr.reshape(-1, 1).astype(np.int64)
            spec["activation"] = {"type": "multithreshold", "thresholds": f"t{i}", "bipolar": True}
        doc["layers"].append(spec)
        if layer.pool_after:
            doc["layers"].append({"type": "maxpool2d", "name": f"pool{i}", "kernel": 2})
    doc["layers"].append({"type": "argmax", "name": "argmax"})
    return doc, arrays


# -- test images --------------------------------------------------------------------------------
def mnist_idx_image(path) -> np.ndarray:
    """The (28, 28) uint8 pixels of a one-image idx3 file (16-byte header)."""
    data = Path(path).read_bytes()
    if len(data) != 16 + 784:
        raise ValueError(f"{path}: expected {16 + 784} bytes, found {len(data)}")
    return np.frombuffer(data[16:], dtype=np.uint8).reshape(28, 28)


def cifar_record(path) -> np.ndarray:
    """The (3, 32, 32) uint8 pixels (R, G, B planes) of a one-record CIFAR-10 binary file (a
    label byte, then the planes)."""
    data = Path(path).read_bytes()
    if len(data) != 1 + 3072:
        raise ValueError(f"{path}: expected 3073 bytes, found {len(data)}")
    return np.frombuffer(data[1:], dtype=np.uint8).reshape(3, 32, 32)


def cnv_pixel_codes(pixels: np.ndarray) -> np.ndarray:
    """``ap_fixed<8,1,AP_RND,AP_SAT>(pixel/255·2 − 1)`` as integers (units of 1/128)."""
    p = np.asarray(pixels, dtype=np.int64)
    q = (p * 256 * 2 + 255) // (2 * 255) - 128      # round half up of p·256/255, minus 128
    return np.clip(q, -128, 127)
