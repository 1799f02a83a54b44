"""Loading and validation of network files: every rejected input, and round trips.

Each rejection is checked by an anchored regex on the ``path: message`` string of
:class:`gen.errors.NetworkError`: the messages are part of the interface.
"""

from __future__ import annotations

import copy
import io
import zipfile

import numpy as np
import pytest
import yaml

from gen.errors import NetworkError
from gen.load import load_network, network_from_dict
from gen.netfile import save_npz, write_network
from sim import golden
from sim.randnet import random_network


def mlp():
    """A valid 8-4-3 binary MLP ending in argmax, and its arrays."""
    rng = np.random.default_rng(0)
    doc = {"version": 1, "name": "t", "input": {"shape": [8], "encoding": "bipolar"},
           "layers": [
               {"type": "dense", "mac": "xnor", "weights": {"key": "w0", "encoding": "bipolar"},
                "bias": "b0", "activation": {"type": "multithreshold", "thresholds": "t0",
                                             "bipolar": True}},
               {"type": "dense", "mac": "xnor", "weights": {"key": "w1", "encoding": "bipolar"},
                "activation": {"type": "requant", "multiplier": "m1", "shift": 1, "clip": [-4, 3]}},
               {"type": "argmax"}]}
    arrays = {"w0": rng.choice([-1, 1], size=(4, 8)), "b0": np.arange(4), "t0": np.zeros((4, 1), int),
              "w1": rng.choice([-1, 1], size=(3, 4)), "m1": np.array([1, 2, 3])}
    return doc, arrays


def cnn():
    """A valid conv → pool → dense network with uint inputs."""
    rng = np.random.default_rng(1)
    doc = {"version": 1, "input": {"shape": [2, 6, 6], "encoding": "uint", "bits": 2},
           "layers": [
               {"type": "conv2d", "mac": "ternary", "weights": {"key": "w0", "encoding": "ternary"},
                "kernel": 3, "padding": 1,
                "activation": {"type": "multithreshold", "thresholds": "t0"}},
               {"type": "maxpool2d", "kernel": 2},
               {"type": "dense", "mac": "int", "weights": {"key": "w1", "encoding": "int", "bits": 3}}]}
    arrays = {"w0": rng.integers(-1, 2, size=(4, 2, 3, 3)), "t0": np.array([[-2, 0, 2]]),
              "w1": rng.integers(-4, 4, size=(5, 4 * 3 * 3))}
    return doc, arrays


def rejects(doc, arrays, pattern):
    with pytest.raises(NetworkError, match=pattern) as info:
        network_from_dict(doc, arrays=arrays)
    return info.value


def mutate(make, edit):
    doc, arrays = make()
    doc, arrays = copy.deepcopy(doc), dict(arrays)
    edit(doc, arrays)
    return doc, arrays


def test_valid_networks_load():
    doc, arrays = mlp()
    net = network_from_dict(doc, arrays=arrays)
    assert [layer.kind for layer in net.layers] == ["dense", "dense", "argmax"]
    assert net.layers[0].out_dtype.encoding == "bipolar"
    net = network_from_dict(cnn()[0], arrays=cnn()[1])
    assert net.layers[0].out_shape == (4, 6, 6) and net.layers[1].out_shape == (4, 3, 3)


# -- structure: keys, types, required fields ---------------------------------------------------
def _set(path, value):
    def edit(doc, arrays):
        node = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return edit


def _del(path):
    def edit(doc, arrays):
        node = doc
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
    return edit


STRUCTURE = [
    # unknown keys
    ("top level", _set(["colour"], "red"), r"^colour: unknown key$"),
    ("in input", _set(["input", "signedness"], 1), r"^input\.signedness: unknown key$"),
    ("in a layer", _set(["layers", 1, "folding"], 2), r"^layers\[1\]\.folding: unknown key$"),
    ("in argmax", _set(["layers", 2, "axis"], 0), r"^layers\[2\]\.axis: unknown key$"),
    ("in weights", _set(["layers", 0, "weights", "scale"], 0.5),
     r"^layers\[0\]\.weights\.scale: unknown key$"),
    ("in activation", _set(["layers", 0, "activation", "scale"], 2),
     r"^layers\[0\]\.activation\.scale: unknown key$"),
    ("in requant", _set(["layers", 1, "activation", "offset"], 2),
     r"^layers\[1\]\.activation\.offset: unknown key$"),
    # wrong types
    ("version string", _set(["version"], "1"), r"^version: must be an integer \(1 or 2\), got '1'$"),
    ("version float", _set(["version"], 1.0), r"^version: must be an integer \(1 or 2\), got 1.0$"),
    ("version bool", _set(["version"], True), r"^version: must be an integer \(1 or 2\), got True$"),
    ("version 3", _set(["version"], 3), r"^version: input should be 1 or 2, got 3$"),
    ("layers not a list", _set(["layers"], {"type": "argmax"}), r"^layers: input should be a valid list"),
    ("shape of strings", _set(["input", "shape"], ["8"]),
     r"^input\.shape\[0\]: input should be a valid integer, got '8'$"),
    ("bool for int", _set(["layers", 1, "activation", "shift"], True),
     r"^layers\[1\]\.activation\.shift: input should be a valid integer, got True$"),
    ("float for int", _set(["layers", 1, "activation", "shift"], 1.0),
     r"^layers\[1\]\.activation\.shift: input should be a valid integer, got 1\.0$"),
    ("int for bool", _set(["layers", 0, "activation", "bipolar"], 1),
     r"^layers\[0\]\.activation\.bipolar: input should be a valid boolean, got 1$"),
    ("unknown layer type", _set(["layers", 1, "type"], "linear"),
     r"^layers\[1\]: input tag 'linear' found using 'type' does not match any of the expected tags"),
    ("unknown mac", _set(["layers", 0, "mac"], "mul"),
     r"^layers\[0\]\.mac: input should be 'xnor', 'and', 'ternary', 'onehot', 'int' or 'adder', "
     r"got 'mul'$"),
    ("unknown encoding", _set(["input", "encoding"], "float"),
     r"^input\.encoding: input should be 'bipolar', 'uint', 'int', 'ternary' or 'onehot', got 'float'$"),
    ("unknown activation", _set(["layers", 0, "activation", "type"], "relu"),
     r"^layers\[0\]\.activation: input tag 'relu' found using 'type' does not match"),
    ("unknown rounding", _set(["layers", 1, "activation", "rounding"], "nearest"),
     r"^layers\[1\]\.activation\.rounding: input should be 'floor', 'ceil', 'half-up' or 'half-even', "
     r"got 'nearest'$"),
    ("ram_style", _set(["layers", 0, "ram_style"], "ultra"),
     r"^layers\[0\]\.ram_style: input should be 'block', 'distributed' or 'logic', got 'ultra'$"),
    # missing required fields
    ("no version", _del(["version"]), r"^version: required field is missing$"),
    ("no input", _del(["input"]), r"^input: required field is missing$"),
    ("no layers", _del(["layers"]), r"^layers: required field is missing$"),
    ("empty layers", _set(["layers"], []), r"^layers: list should have at least 1 item after validation"),
    ("no shape", _del(["input", "shape"]), r"^input\.shape: required field is missing$"),
    ("no encoding", _del(["input", "encoding"]), r"^input\.encoding: required field is missing$"),
    ("no mac", _del(["layers", 0, "mac"]), r"^layers\[0\]\.mac: required field is missing$"),
    ("no weights", _del(["layers", 0, "weights"]), r"^layers\[0\]\.weights: required field is missing$"),
    ("no weight key", _del(["layers", 0, "weights", "key"]),
     r"^layers\[0\]\.weights\.key: required field is missing$"),
    ("no thresholds", _del(["layers", 0, "activation", "thresholds"]),
     r"^layers\[0\]\.activation\.thresholds: required field is missing$"),
    ("no clip", _del(["layers", 1, "activation", "clip"]),
     r"^layers\[1\]\.activation\.clip: required field is missing$"),
    ("no layer type", _del(["layers", 1, "type"]),
     r"^layers\[1\]: unable to extract tag using discriminator 'type'"),
    ("int bits missing", _set(["input"], {"shape": [8], "encoding": "int"}),
     r"^input\.bits: required for encoding 'int'$"),
    # absurd sizes and bounds
    ("huge shape", _set(["input", "shape"], [1 << 20]),
     r"^input\.shape\[0\]: input should be less than or equal to 65536, got 1048576$"),
    ("zero shape", _set(["input", "shape"], [0]),
     r"^input\.shape\[0\]: input should be greater than or equal to 1, got 0$"),
    ("too many input elements", _set(["input", "shape"], [64, 1024, 1024]),
     r"^input\.shape: 67108864 elements, more than the limit of 4194304$"),
    ("4-d input", _set(["input", "shape"], [1, 2, 2, 2]),
     r"^input\.shape: list should have at most 3 items after validation, not 4$"),
    ("2-d input", _set(["input", "shape"], [2, 4]),
     r"^input\.shape: expected a vector \[N\] or an image \[C, H, W\], found 2 dimensions$"),
    ("bits 64", _set(["input"], {"shape": [8], "encoding": "int", "bits": 64}),
     r"^input\.bits: input should be less than or equal to 32, got 64$"),
    ("int 1 bit", _set(["input"], {"shape": [8], "encoding": "int", "bits": 1}),
     r"^input: an int type has 2 to 32 bits, not 1$"),
    ("bipolar 2 bits", _set(["input", "bits"], 2), r"^input: a bipolar type has 1 bit, not 2$"),
    ("narrow uint", _set(["input"], {"shape": [8], "encoding": "uint", "bits": 2, "narrow": True}),
     r"^input: only an int type can be narrow$"),
    ("shift 99", _set(["layers", 1, "activation", "shift"], 99),
     r"^layers\[1\]\.activation\.shift: input should be less than or equal to 62, got 99$"),
    ("negative pe", _set(["layers", 0, "pe"], 0),
     r"^layers\[0\]\.pe: input should be greater than or equal to 1, got 0$"),
    ("long name", _set(["name"], "x" * 300), r"^name: string should have at most 256 characters"),
    # activation options that exclude each other
    ("levels and offset", _set(["layers", 0, "activation"], {
        "type": "multithreshold", "thresholds": "t0", "levels": [0, 1], "offset": 1}),
     r"^layers\[0\]\.activation: levels cannot be combined with offset or bipolar"),
    ("bipolar and offset", _set(["layers", 0, "activation", "offset"], -1),
     r"^layers\[0\]\.activation: bipolar cannot be combined with offset"),
    # shapes and layer order
    ("argmax not last", lambda d, a: d["layers"].insert(1, {"type": "argmax"}),
     r"^layers\[1\]: argmax must be the last layer$"),
    ("pool after dense", lambda d, a: d["layers"].insert(1, {"type": "maxpool2d", "kernel": 2}),
     r"^layers\[1\]: maxpool2d needs a C×H×W input, found shape \(4,\)$"),
    ("conv after dense", lambda d, a: d["layers"].insert(1, {
        "type": "conv2d", "mac": "xnor", "kernel": 1, "weights": {"key": "w1", "encoding": "bipolar"}}),
     r"^layers\[1\]: conv2d needs a C×H×W input, found shape \(4,\)$"),
]


@pytest.mark.parametrize("edit,pattern", [c[1:] for c in STRUCTURE], ids=[c[0] for c in STRUCTURE])
def test_rejects_structure(edit, pattern):
    rejects(*mutate(mlp, edit), pattern)


def test_rejects_non_mapping():
    with pytest.raises(NetworkError, match=r"^expected a mapping at the top level, found list$"):
        network_from_dict([1, 2])
    with pytest.raises(NetworkError, match=r"^layers\[0\]: input should be a valid dictionary"):
        network_from_dict({"version": 1, "input": {"shape": [2], "encoding": "bipolar"},
                           "layers": ["dense"]})


# -- arrays ------------------------------------------------------------------------------------
def _arr(key, value):
    def edit(doc, arrays):
        arrays[key] = value
    return edit


def _both(*edits):
    def edit(doc, arrays):
        for e in edits:
            e(doc, arrays)
    return edit


ARRAYS = [
    ("missing key", _set(["layers", 0, "weights", "key"], "nope"),
     r"^layers\[0\]\.weights: array 'nope' not found in the arrays$"),
    ("missing bias key", _set(["layers", 0, "bias"], "nope"),
     r"^layers\[0\]\.bias: array 'nope' not found in the arrays$"),
    ("float weights", _arr("w0", np.ones((4, 8))),
     r"^layers\[0\]\.weights: array 'w0' must hold integers, not float64$"),
    ("bool weights", _arr("w0", np.ones((4, 8), bool)),
     r"^layers\[0\]\.weights: array 'w0' must hold integers, not bool$"),
    ("float thresholds", _arr("t0", np.zeros((4, 1), np.float32)),
     r"^layers\[0\]\.activation\.thresholds: array 't0' must hold integers, not float32$"),
    ("huge uint64", _arr("b0", np.array([0, 0, 0, 2**64 - 1], np.uint64)),
     r"^layers\[0\]\.bias: array 'b0' has values beyond the int64 range$"),
    # shapes
    ("weights rows x cols", _arr("w0", np.ones((4, 7), int)),
     r"^layers\[0\]\.weights: expected shape \(MH, 8\), found \(4, 7\)$"),
    ("weights 1-d", _arr("w0", np.ones(8, int)),
     r"^layers\[0\]\.weights: expected shape \(MH, 8\), found \(8,\)$"),
    ("inconsistent layers", _arr("w1", np.ones((3, 5), int)),
     r"^layers\[1\]\.weights: expected shape \(MH, 4\), found \(3, 5\)$"),
    ("bias shape", _arr("b0", np.arange(5)),
     r"^layers\[0\]\.bias: expected shape \(4,\) \(one per output channel\), found \(5,\)$"),
    ("thresholds rows", _arr("t0", np.zeros((3, 1), int)),
     r"^layers\[0\]\.activation\.thresholds: expected shape \(4, T\) or \(1, T\) with 1 <= T <= 65536, "
     r"found \(3, 1\)$"),
    ("thresholds 3-d", _arr("t0", np.zeros((4, 1, 1), int)),
     r"^layers\[0\]\.activation\.thresholds: expected shape \(4, T\) or \(1, T\) with 1 <= T <= 65536, "
     r"found \(4, 1, 1\)$"),
    ("multiplier shape", _arr("m1", np.array([1, 2])),
     r"^layers\[1\]\.activation\.multiplier: expected shape \(3,\) \(one multiplier per output channel\), "
     r"found \(2,\)$"),
    ("mask shape", _both(_set(["layers", 0, "mask"], "k"), _arr("k", np.ones(3, int))),
     r"^layers\[0\]\.mask: expected shape \(4,\) \(one per output channel\), found \(3,\)$"),
    ("mask values", _both(_set(["layers", 0, "mask"], "k"), _arr("k", np.array([1, 2, 1, 1]))),
     r"^layers\[0\]\.mask: expected values in \{0, 1\}$"),
    ("mask removes all", _both(_set(["layers", 0, "mask"], "k"), _arr("k", np.zeros(4, bool))),
     r"^layers\[0\]\.mask: the mask removes every output channel$"),
    ("mask before argmax", _both(_set(["layers", 1, "mask"], "k"), _arr("k", np.array([1, 0, 1]))),
     r"^layers\[1\]\.mask: a mask needs a dense or conv2d layer after it \(it would change the "
     r"network's outputs\)$"),
    # values outside the declared encoding
    ("2 in xnor weights", _arr("w0", np.where(np.arange(32).reshape(4, 8) == 9, 2, 1)),
     r"^layers\[0\]\.weights: expected values in \{-1, \+1\}, found 2 at index \[1, 1\]$"),
    ("0 in xnor weights", _arr("w0", np.where(np.arange(32).reshape(4, 8) == 3, 0, -1)),
     r"^layers\[0\]\.weights: expected values in \{-1, \+1\}, found 0 at index \[0, 3\]$"),
    # thresholds
    ("unsorted thresholds", _both(_arr("t0", np.array([[0, 1, 3], [0, 2, 1], [0, 0, 0], [5, 5, 5]])),
                                  _set(["layers", 0, "activation"], {"type": "multithreshold",
                                                                     "thresholds": "t0"})),
     r"^layers\[0\]\.activation\.thresholds: row 1 is not sorted \(thresholds must be non-decreasing\)$"),
    ("bipolar with 2 thresholds", _arr("t0", np.zeros((4, 2), int)),
     r"^layers\[0\]\.activation\.bipolar: a bipolar output needs exactly 1 threshold per channel, "
     r"found 2$"),
    ("levels length", _set(["layers", 0, "activation"], {"type": "multithreshold", "thresholds": "t0",
                                                          "levels": [-1, 0, 1]}),
     r"^layers\[0\]\.activation\.levels: expected 2 levels for 1 thresholds, found 3$"),
    ("levels unsorted", _set(["layers", 0, "activation"], {"type": "multithreshold", "thresholds": "t0",
                                                           "levels": [1, -1]}),
     r"^layers\[0\]\.activation\.levels: levels must be non-decreasing$"),
    ("bipolar levels", _set(["layers", 0, "activation"], {"type": "multithreshold", "thresholds": "t0",
                                                          "levels": [0, 1], "encoding": "bipolar"}),
     r"^layers\[0\]\.activation\.encoding: bipolar output needs levels in \{-1, \+1\}$"),
    ("onehot levels", _set(["layers", 0, "activation"], {"type": "multithreshold", "thresholds": "t0",
                                                         "levels": [0, 3], "encoding": "onehot"}),
     r"^layers\[0\]\.activation\.levels: onehot output needs levels that are 0 or ±2\^e$"),
    ("uint negative level", _set(["layers", 0, "activation"], {
        "type": "multithreshold", "thresholds": "t0", "offset": -1, "encoding": "uint"}),
     r"^layers\[0\]\.activation\.encoding: uint output cannot hold level -1$"),
    # requant
    ("clip lo > hi", _set(["layers", 1, "activation", "clip"], [3, -4]),
     r"^layers\[1\]\.activation\.clip: lower bound 3 is above upper bound -4$"),
    ("clip of 3", _set(["layers", 1, "activation", "clip"], [1, 2, 3]),
     r"^layers\[1\]\.activation\.clip: tuple should have at most 2 items after validation, not 3$"),
    ("multiplier overflow", _arr("m1", np.array([1, 1, 2**60])),
     r"^layers\[1\]\.activation\.multiplier: accumulator × multiplier needs 64 bits, more than 63$"),
    # MAC kind vs types
    ("xnor on uint", _set(["input"], {"shape": [8], "encoding": "uint", "bits": 2}),
     r"^layers\[0\]\.mac: MAC kind 'xnor' takes bipolar activations, but its input is uint2$"),
    ("and on bipolar", _set(["layers", 0, "mac"], "and"),
     r"^layers\[0\]\.mac: MAC kind 'and' takes uint1 activations, but its input is bipolar$"),
    ("xnor int weights", _set(["layers", 0, "weights"], {"key": "w0", "encoding": "int", "bits": 2}),
     r"^layers\[0\]\.weights\.encoding: MAC kind 'xnor' takes weights bipolar, not int$"),
    ("shift on xnor", _set(["layers", 0, "weights", "shift"], 1),
     r"^layers\[0\]\.weights\.shift: only adder layers take a weight shift$"),
    # folding
    # (a PE or SIMD that does not divide is padded: tests/test_fold_padding.py)
    ("pe", _set(["layers", 0, "pe"], 9),
     r"^layers\[0\]\.pe: expected at most 8 \(twice the 4 output channels\), found 9$"),
    ("simd", _set(["layers", 0, "simd"], 17),
     r"^layers\[0\]\.simd: expected at most 16 \(twice the 8 inputs per dot product\), found 17$"),
    ("pe after mask", _both(_set(["layers", 0, "mask"], "k"), _arr("k", np.array([1, 1, 1, 0])),
                            _set(["layers", 0, "pe"], 7)),
     r"^layers\[0\]\.pe: expected at most 6 \(twice the 3 output channels\), found 7$"),
    # accumulator size
    ("bias too big", _arr("b0", np.array([0, 0, 0, 2**50])),
     r"^layers\[0\]\.bias: bias magnitude above 2\^40: 1125899906842624$"),
]


@pytest.mark.parametrize("edit,pattern", [c[1:] for c in ARRAYS], ids=[c[0] for c in ARRAYS])
def test_rejects_arrays(edit, pattern):
    rejects(*mutate(mlp, edit), pattern)


def _in_cnn(spec, w, mac):
    """Put weights of a given type into the dense layer (index 2) of the CNN."""
    def edit(doc, arrays):
        doc["layers"][2]["weights"] = {"key": "w1", **spec}
        doc["layers"][2]["mac"] = mac
        arrays["w1"] = w
    return edit


W1 = np.zeros((5, 36), int)
IDX = np.arange(W1.size).reshape(W1.shape)
CNN_VALUES = [
    ("3 in ternary", _in_cnn({"encoding": "ternary"}, np.where(IDX == 40, 3, 0), "ternary"),
     r"^layers\[2\]\.weights: expected values in \{-1, 0, \+1\}, found 3 at index \[1, 4\]$"),
    ("non power of two in onehot", _in_cnn({"encoding": "onehot", "bits": 4, "signed": True},
                                           np.where(IDX == 7, -6, 4), "onehot"),
     r"^layers\[2\]\.weights: expected values in \{0, ±2\^e for 0 <= e < 4\}, found -6 at index \[0, 7\]$"),
    ("onehot exponent too big", _in_cnn({"encoding": "onehot", "bits": 3}, np.where(IDX == 0, 8, 1),
                                        "onehot"),
     r"^layers\[2\]\.weights: expected values in \{0, 2\^e for 0 <= e < 3\}, found 8 at index \[0, 0\]$"),
    ("negative unsigned onehot", _in_cnn({"encoding": "onehot", "bits": 3}, np.where(IDX == 1, -2, 1),
                                         "onehot"),
     r"^layers\[2\]\.weights: expected values in \{0, 2\^e for 0 <= e < 3\}, found -2 at index \[0, 1\]$"),
    ("int too wide", _in_cnn({"encoding": "int", "bits": 3}, np.where(IDX == 2, 4, 0), "int"),
     r"^layers\[2\]\.weights: expected values in \[-4, 3\] \(int3\), found 4 at index \[0, 2\]$"),
    ("narrow int", _in_cnn({"encoding": "int", "bits": 3, "narrow": True}, np.where(IDX == 3, -4, 0),
                           "int"),
     r"^layers\[2\]\.weights: expected values in \[-3, 3\] \(int3n\), found -4 at index \[0, 3\]$"),
    ("uint negative", _in_cnn({"encoding": "uint", "bits": 2}, np.where(IDX == 5, -1, 0), "adder"),
     r"^layers\[2\]\.weights: expected values in \[0, 3\] \(uint2\), found -1 at index \[0, 5\]$"),
    ("xnor ternary weights", _in_cnn({"encoding": "ternary"}, W1, "xnor"),
     r"^layers\[2\]\.weights\.encoding: MAC kind 'xnor' takes weights bipolar, not ternary$"),
    ("adder ternary weights", _in_cnn({"encoding": "ternary"}, W1, "adder"),
     r"^layers\[2\]\.weights\.encoding: MAC kind 'adder' takes weights int or uint, not ternary$"),
    ("dense after pool: columns", _in_cnn({"encoding": "int", "bits": 3}, np.zeros((5, 35), int), "int"),
     r"^layers\[2\]\.weights: expected shape \(MH, 36\), found \(5, 35\)$"),
]


@pytest.mark.parametrize("edit,pattern", [c[1:] for c in CNN_VALUES], ids=[c[0] for c in CNN_VALUES])
def test_rejects_values(edit, pattern):
    rejects(*mutate(cnn, edit), pattern)


CONV = [
    ("conv weights shape", _arr("w0", np.zeros((4, 3, 3, 3), int)),
     r"^layers\[0\]\.weights: expected shape \(OC, 2, 3, 3\) \(OIHW\), found \(4, 3, 3, 3\)$"),
    ("conv weights 2-d", _arr("w0", np.zeros((4, 18), int)),
     r"^layers\[0\]\.weights: expected shape \(OC, 2, 3, 3\) \(OIHW\), found \(4, 18\)$"),
    ("kernel too big", _both(_set(["layers", 0, "kernel"], 9), _set(["layers", 0, "padding"], 1),
                             _arr("w0", np.zeros((4, 2, 9, 9), int))),
     r"^layers\[0\]\.kernel: kernel \(9, 9\) is larger than the padded input 8×8$"),
    ("pool too big", _set(["layers", 1, "kernel"], [7, 1]),
     r"^layers\[1\]\.kernel: kernel \(7, 1\) is larger than the input 6×6$"),
    ("pad value not a value", _set(["layers", 0, "pad_value"], 4),
     r"^layers\[0\]\.pad_value: 4 is not a value of the input type uint2 \(\[0, 3\] \(uint2\)\)$"),
    ("offset too big", _set(["layers", 0, "activation", "offset"], 2**40),
     r"^layers\[0\]\.activation\.offset: the output range \[1099511627776, 1099511627779\] needs 41 "
     r"bits, more than the 32 an element can have$"),
    ("levels too big", _set(["layers", 0, "activation"], {"type": "multithreshold", "thresholds": "t0",
                                                          "levels": [0, 1, 2, 2**70]}),
     r"^layers\[0\]\.activation\.levels: the range of the levels \[0, 1180591620717411303424\] needs "
     r"71 bits, more than the 32 an element can have$"),
    ("clip too wide", _set(["layers", 0, "activation"], {"type": "requant", "multiplier": 1,
                                                         "clip": [-(2**40), 0]}),
     r"^layers\[0\]\.activation\.clip: the output range \[-1099511627776, 0\] needs 41 bits, more "
     r"than the 32 an element can have$"),
    ("accumulator output too wide", _both(_arr("w1", np.full((5, 36), 2**31 - 1)),
                                          _set(["layers", 2, "weights", "bits"], 32)),
     r"^layers\[2\]\.activation: the accumulator range \[0, 231928233876\] needs 38 bits, more than "
     r"the 32 an element can have; add a requant or multithreshold activation$"),
    ("pad value wrong type", _set(["layers", 0, "pad_value"], 0.5),
     r"^layers\[0\]\.pad_value: input should be a valid integer, got 0\.5$"),
    ("padding negative", _set(["layers", 0, "padding"], -1),
     r"^layers\[0\]\.padding: input should be greater than or equal to 0, got -1$"),
    ("stride zero", _set(["layers", 0, "stride"], [1, 0]),
     r"^layers\[0\]\.stride\[1\]: input should be greater than or equal to 1, got 0$"),
    ("kernel triple", _set(["layers", 0, "kernel"], [3, 3, 3]),
     r"^layers\[0\]\.kernel: tuple should have at most 2 items after validation, not 3$"),
    ("conv on vector", _set(["input", "shape"], [72]),
     r"^layers\[0\]: conv2d needs a C×H×W input, found shape \(72,\)$"),
    ("mask on pool-then-dense is fine but not before argmax", _both(
        _set(["layers", 2, "mask"], "k"), _arr("k", np.ones(5, int))),
     r"^layers\[2\]\.mask: a mask needs a dense or conv2d layer after it \(it would change the "
     r"network's outputs\)$"),
]


@pytest.mark.parametrize("edit,pattern", [c[1:] for c in CONV], ids=[c[0] for c in CONV])
def test_rejects_conv(edit, pattern):
    rejects(*mutate(cnn, edit), pattern)


def test_rejects_bipolar_padding_without_pad_value():
    doc, arrays = mlp()
    doc = {"version": 1, "input": {"shape": [1, 4, 4], "encoding": "bipolar"},
           "layers": [{"type": "conv2d", "mac": "xnor", "kernel": 3, "padding": 1,
                       "weights": {"key": "w", "encoding": "bipolar"}}]}
    rejects(doc, {"w": np.ones((2, 1, 3, 3), int)},
            r"^layers\[0\]\.pad_value: required: 0 is not a value of the input type bipolar$")
    doc["layers"][0]["pad_value"] = 0
    rejects(doc, {"w": np.ones((2, 1, 3, 3), int)},
            r"^layers\[0\]\.pad_value: 0 is not a value of the input type bipolar \(\{-1, \+1\}\)$")


def test_rejects_input_quantizer():
    doc = {"version": 1, "input": {"shape": [4], "encoding": "uint", "bits": 2,
                                   "quantizer": {"threshold": 0.5}}, "layers": [{"type": "argmax"}]}
    rejects(doc, {}, r"^input\.quantizer\.threshold: a threshold quantizer needs bipolar inputs$")
    doc["input"]["quantizer"] = {"scale": 0.1, "clip": [0, 9]}
    rejects(doc, {}, r"^input\.quantizer\.clip: \[0, 9\] is not a range within \[0, 3\]$")
    doc["input"]["quantizer"] = {"scale": 0.0}
    rejects(doc, {}, r"^input\.quantizer\.scale: input should be greater than 0, got 0\.0$")
    doc["input"]["quantizer"] = {"scale": 1.0, "rounding": "up"}
    rejects(doc, {}, r"^input\.quantizer\.rounding: input should be 'half-even', 'half-up', 'floor' or "
                     r"'ceil', got 'up'$")
    doc["input"] = {"shape": [4], "encoding": "bipolar", "quantizer": {"scale": 1.0}}
    rejects(doc, {}, r"^input\.quantizer: an affine quantizer needs uint, int or ternary inputs, "
                     r"not bipolar$")


def test_rejects_absurd_array():
    import gen.load as load
    doc, arrays = mlp()
    big = np.broadcast_to(np.int8(1), (load.MAX_ARRAY_ELEMENTS + 1,))
    arrays["b0"] = big
    rejects(doc, arrays, r"^layers\[0\]\.bias: array 'b0' has 4194305 elements, more than the limit "
                         r"of 4194304$")


def test_rejects_accumulator_too_wide():
    doc = {"version": 1, "input": {"shape": [4], "encoding": "int", "bits": 32},
           "layers": [{"type": "dense", "mac": "int", "weights": {"key": "w", "encoding": "int",
                                                                  "bits": 32}}]}
    rejects(doc, {"w": np.full((1, 4), -(2**31))},
            r"^layers\[0\]\.weights: the accumulator would need 66 bits, more than 62$")


def test_wide_accumulator_bounds_are_exact():
    # near the limit the bounds are computed with Python integers: no int64 wrap-around
    doc = {"version": 1, "input": {"shape": [3], "encoding": "int", "bits": 30},
           "layers": [{"type": "dense", "mac": "int", "weights": {"key": "w", "encoding": "int",
                                                                  "bits": 32},
                       "activation": {"type": "requant", "multiplier": 1, "shift": 58,
                                      "clip": [-8, 7]}}]}
    w = np.array([[2**30, -(2**30), 2**30]])
    layer = network_from_dict(doc, arrays={"w": w}).layers[0]
    lo, hi = -(2**29), 2**29 - 1
    assert layer.acc_lo.tolist() == [2 * 2**30 * lo - 2**30 * hi]
    assert layer.acc_hi.tolist() == [2 * 2**30 * hi - 2**30 * lo]
    assert layer.acc_width == 62


# -- files -------------------------------------------------------------------------------------
def write(tmp_path, doc, arrays, name="net"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    if arrays is not None:
        save_npz(tmp_path / f"{name}.npz", arrays)
    return path


def test_file_default_arrays_name(tmp_path):
    doc, arrays = mlp()
    net = load_network(write(tmp_path, doc, arrays))
    assert net.name == "t"


def test_rejects_missing_network_file(tmp_path):
    with pytest.raises(NetworkError, match=r"^network file not found: .*nothere\.yaml$"):
        load_network(tmp_path / "nothere.yaml")


def test_rejects_missing_arrays_file(tmp_path):
    doc, _ = mlp()
    with pytest.raises(NetworkError, match=r"^arrays: file not found: .*net\.npz$"):
        load_network(write(tmp_path, doc, None))
    doc["arrays"] = "sub/other.npz"
    with pytest.raises(NetworkError, match=r"^arrays: file not found: .*sub/other\.npz$"):
        load_network(write(tmp_path, doc, None))


def test_rejects_missing_array_key_in_file(tmp_path):
    doc, arrays = mlp()
    del arrays["t0"]
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.activation\.thresholds: array 't0' not found "
                                           r"in net\.npz$"):
        load_network(write(tmp_path, doc, arrays))


def test_no_arrays_needed_for_arrayless_network(tmp_path):
    doc = {"version": 1, "input": {"shape": [4], "encoding": "uint", "bits": 2},
           "layers": [{"type": "argmax"}]}
    assert load_network(write(tmp_path, doc, None)).layers[0].kind == "argmax"


def test_rejects_no_arrays_given():
    doc, _ = mlp()
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.weights: no arrays file given$"):
        network_from_dict(doc)


def test_rejects_bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\ninput: {shape: [4]\nlayers: []\n")
    with pytest.raises(NetworkError, match=r"^bad\.yaml is not valid YAML at line \d+, column \d+$"):
        load_network(path)
    path.write_bytes(b"version: 1\n\xff\xfe\n")
    with pytest.raises(NetworkError, match=r"^bad\.yaml is not a text file$"):
        load_network(path)


@pytest.mark.parametrize("text,found", [("- 1\n- 2\n", "list"), ("42\n", "int"), ("", "NoneType"),
                                        ("just a string\n", "str")])
def test_rejects_non_mapping_file(tmp_path, text, found):
    path = tmp_path / "n.yaml"
    path.write_text(text)
    with pytest.raises(NetworkError, match=rf"^expected a mapping at the top level, found {found}$"):
        load_network(path)


def test_rejects_yaml_tags(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("version: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(NetworkError, match=r"^t\.yaml is not valid YAML at line 1, column 10$"):
        load_network(path)


def test_rejects_pickled_npz(tmp_path):
    """An .npz holding an object array must be refused without ever being unpickled."""
    doc, arrays = mlp()
    path = write(tmp_path, doc, arrays)
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    obj = np.empty(1, dtype=object)
    obj[0] = Trap()
    buf = io.BytesIO()
    np.lib.format.write_array(buf, obj, allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "net.npz", "a") as zf:
        zf.writestr("evil.npy", buf.getvalue())
    doc["layers"][0]["bias"] = "evil"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(NetworkError, match=r"^layers\[0\]\.bias: array 'evil' must hold integers, not "
                                           r"objects \(pickled data is never loaded\)$"):
        load_network(path)
    assert not marker.exists()


def test_rejects_corrupt_npz(tmp_path):
    doc, arrays = mlp()
    path = write(tmp_path, doc, arrays)
    (tmp_path / "net.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(NetworkError, match=r"^arrays: cannot read net\.npz: "):
        load_network(path)


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("macs,conv", [(["xnor", "xnor"], False), (["and", "ternary"], False),
                                       (["onehot", "int"], True), (["adder", "adder"], True)])
def test_write_network_round_trip(tmp_path, macs, conv):
    rng = np.random.default_rng(3)
    doc, arrays = random_network(rng, macs, conv=conv, argmax=True)
    doc["metadata"] = {"trained_on": "nothing", "accuracy": 0.5}
    path = write_network(tmp_path / "a.yaml", doc, arrays)
    assert path.with_suffix(".npz").is_file()
    a = load_network(path)
    b = network_from_dict(doc, arrays=arrays)
    assert a.metadata == doc["metadata"] and a.name == b.name
    for la, lb in zip(a.layers, b.layers):
        assert la.kind == lb.kind and la.out_shape == lb.out_shape
        if hasattr(la, "weights"):
            np.testing.assert_array_equal(la.weights, lb.weights)
            np.testing.assert_array_equal(la.acc_lo, lb.acc_lo)
    xs = rng.choice(a.input.dtype.values(), size=(5, *a.input.shape))
    np.testing.assert_array_equal(golden.run(a, xs).outputs, golden.run(b, xs).outputs)


def test_write_network_is_deterministic(tmp_path):
    doc, arrays = random_network(np.random.default_rng(4), ["int", "adder"], conv=True, argmax=True)
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    p1 = write_network(tmp_path / "1" / "n.yaml", doc, arrays)
    p2 = write_network(tmp_path / "2" / "n.yaml", doc, dict(reversed(list(arrays.items()))))
    assert p1.read_bytes() == p2.read_bytes()
    assert p1.with_suffix(".npz").read_bytes() == p2.with_suffix(".npz").read_bytes()


def test_ir_arrays_are_read_only():
    net = network_from_dict(mlp()[0], arrays=mlp()[1])
    with pytest.raises(ValueError):
        net.layers[0].weights[0, 0] = 1
