"""FINN's folding configuration (``folding_config.json``) as a nomul folding.

FINN names its hardware layers by op type and index (``MVAU_hls_0``, ``Thresholding_rtl_0``,
``ConvolutionInputGenerator_rtl_1``, ``StreamingMaxPool_hls_0``, ``LabelSelect_hls_0``) and gives
each its ``PE`` / ``SIMD`` (and ``ram_style``, ``resType``). nomul's layers are mapped onto them in
order: the k-th ``MVAU`` / ``VVAU`` entry folds the k-th dense or conv2d layer (``PE`` → pe,
``SIMD`` → simd). The other entries have no folding of their own in nomul and are checked, not
used: thresholding is part of a layer's activation (or the host's input quantizer), the sliding
window of a convolution takes its layer's SIMD, max-pool and argmax are not folded. An entry of
any other op type, or one more MVAU than the network has layers, is an error naming the entry.
"""

from __future__ import annotations

import re

from .errors import NetworkError

__all__ = ["FinnFolding", "is_finn_folding"]

_NAME = re.compile(r"^(?P<op>[A-Za-z]+?)(_(hls|rtl))?_(?P<idx>\d+)$")
_COMPUTE = ("MVAU", "VVAU", "MatrixVectorActivation", "VectorVectorActivation")
_CHECKED = {  # FINN op -> the nomul layer type it goes with (None: no nomul layer)
    "Thresholding": None, "ConvolutionInputGenerator": "conv2d", "StreamingMaxPool": "maxpool2d",
    "LabelSelect": "argmax", "FMPadding": "conv2d", "StreamingDataWidthConverter": None,
    "StreamingFIFO": None,
}
_KEYS = {"PE", "SIMD", "ram_style", "resType", "mem_mode", "runtime_writeable_weights",
         "depth", "impl_style", "inFIFODepths", "outFIFODepths", "parallel_window"}


def is_finn_folding(data) -> bool:
    """Whether a parsed folding file is in FINN's format (a ``Defaults`` entry or FINN names)."""
    if not isinstance(data, dict) or not data:
        return False
    names = [k for k in data if k != "Defaults"]
    return "Defaults" in data or all(isinstance(k, str) and _NAME.match(k) and
                                     _NAME.match(k)["op"] in (*_COMPUTE, *_CHECKED) for k in names)


class FinnFolding(dict):
    """A FINN folding configuration, resolved against a network by :meth:`resolve`."""

    def resolve(self, net) -> dict[str, dict[str, int]]:
        """The nomul folding (layer name → ``{pe, simd}``) of ``net``.

        Raises
        ------
        NetworkError
            Naming the entry (``fold.MVAU_hls_4``) that does not map onto a layer.
        """
        names = [ly.name for ly in net.layers]
        from .ops import op_for

        compute = [ly for ly in net.layers if op_for(ly).foldable]
        kinds = {ly.kind for ly in net.layers}
        out: dict[str, dict[str, int]] = {}
        k = 0
        for name, spec in self.items():
            if name == "Defaults":
                continue
            path = f"fold.{name}"
            m = _NAME.match(str(name))
            if not isinstance(spec, dict):
                raise NetworkError(path, f"expected a mapping with PE and/or SIMD, found "
                                         f"{type(spec).__name__}")
            for key, v in spec.items():
                if key not in _KEYS:
                    raise NetworkError(f"{path}.{key}", "unknown key (expected PE, SIMD, ram_style "
                                                        "or another FINN folding attribute)")
                if key in ("PE", "SIMD") and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                    raise NetworkError(f"{path}.{key}", f"expected a positive integer, found {v!r}")
            op = m["op"] if m else None
            if op in _COMPUTE:
                if k >= len(compute):
                    raise NetworkError(path, f"no nomul layer to map to: the network has "
                                             f"{len(compute)} dense or conv2d layers ({', '.join(names)})")
                fold = {}
                if "PE" in spec:
                    fold["pe"] = spec["PE"]
                if "SIMD" in spec:
                    fold["simd"] = spec["SIMD"]
                out[compute[k].name] = fold
                k += 1
            elif op in _CHECKED:
                want = _CHECKED[op]
                if want is not None and want not in kinds:
                    raise NetworkError(path, f"no nomul layer to map to: the network has no "
                                             f"{want} layer ({', '.join(names)})")
            else:
                raise NetworkError(path, f"a FINN {op or name} layer does not map onto a nomul layer "
                                         f"(known: {', '.join((*_COMPUTE[:2], *_CHECKED))})")
        if k < len(compute):
            raise NetworkError("fold", f"FINN's folding has {k} MVAU/VVAU entries for "
                                       f"{len(compute)} dense or conv2d layers")
        return out
