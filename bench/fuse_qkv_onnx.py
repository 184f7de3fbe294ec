#!/usr/bin/env python3
"""Rewrite a BERT-style ONNX model so each layer's Q, K and V projections are one MatMul.

Measures the Q/K/V fusion (docs/perf.md, "GEMM ceiling") before a compiler pass is built:
for every group of MatMuls that share their input A and have constant weights of the same
K, each followed by an Add of a constant bias, the weights are concatenated along N
(offline, so the result is a different model: hot-swapping the original Q/K/V weights by
name does not apply to it), the biases likewise, and a Split along the last axis gives back
the three original outputs under their original names. Everything else is unchanged, so
the two models compute the same function and can be timed against each other.

    /usr/bin/python3 bench/fuse_qkv_onnx.py IN.onnx OUT.onnx [--suffixes query,key,value]

--suffixes names the projections by the end of their MatMul node names (HF BertModel
exports: /layers.N/attention/{query,key,value}/MatMul).
"""
import argparse
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def find_groups(graph, inits, suffixes):
    groups = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        if any(node.name.endswith(f"{s}/MatMul") for s in suffixes):
            groups.setdefault(node.input[0], []).append(node)
    return {a: mms for a, mms in groups.items() if len(mms) == len(suffixes)}


def bias_add(consumers, inits, matmul):
    users = consumers.get(matmul.output[0], [])
    if len(users) != 1 or users[0].op_type != "Add":
        return None, None
    add = users[0]
    other = add.input[1] if add.input[0] == matmul.output[0] else add.input[0]
    return (add, other) if other in inits else (None, None)


def fuse(model, suffixes):
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced, dropped = {}, set()
    for a, matmuls in find_groups(graph, inits, suffixes).items():
        adds = [bias_add(consumers, inits, mm) for mm in matmuls]
        weights = [numpy_helper.to_array(inits[mm.input[1]]) for mm in matmuls]
        if any(add is None for add, _ in adds) or len({w.shape[0] for w in weights}) != 1:
            continue
        biases = [numpy_helper.to_array(inits[b]) for _, b in adds]
        prefix = matmuls[0].name.rsplit("/", 2)[0] + "/qkv"
        widths = np.array([w.shape[1] for w in weights], np.int64)
        graph.initializer.extend([
            numpy_helper.from_array(np.concatenate(weights, 1), prefix + ".weight"),
            numpy_helper.from_array(np.concatenate(biases), prefix + ".bias"),
            numpy_helper.from_array(widths, prefix + ".split"),
        ])
        replaced[id(matmuls[0])] = [
            helper.make_node("MatMul", [a, prefix + ".weight"], [prefix + "/MatMul_out"],
                             name=prefix + "/MatMul"),
            helper.make_node("Add", [prefix + "/MatMul_out", prefix + ".bias"],
                             [prefix + "/Add_out"], name=prefix + "/Add"),
            helper.make_node("Split", [prefix + "/Add_out", prefix + ".split"],
                             [add.output[0] for add, _ in adds], name=prefix + "/Split", axis=-1),
        ]
        dropped.update(id(n) for n in matmuls + [add for add, _ in adds])
    nodes = []
    for node in graph.node:
        nodes.extend(replaced.get(id(node), []))
        if id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return len(replaced)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--suffixes", default="query,key,value")
    args = ap.parse_args()
    model = onnx.load(args.input)
    count = fuse(model, args.suffixes.split(","))
    if count == 0:
        sys.exit(f"{args.input}: no MatMul group with the suffixes {args.suffixes} found")
    onnx.checker.check_model(model)
    onnx.save(model, args.output)
    print(f"{args.output}: {count} Q/K/V groups fused")


if __name__ == "__main__":
    main()
