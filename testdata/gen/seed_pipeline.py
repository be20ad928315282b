#!/usr/bin/python3
"""The seed document's staging pipeline, the reference for `whisper-bench
stage`: onnx.load the whole model, numpy arrays of every initializer,
torch.bfloat16 conversion (transposing the MatMul weights), torch.save.

  /usr/bin/python3 testdata/gen/seed_pipeline.py MODEL.onnx OUT.pt
"""
import sys

import onnx
import torch
from onnx import numpy_helper


def main(src, out):
    model = onnx.load(src)
    matmul_weights = {n.input[1] for n in model.graph.node if n.op_type == "MatMul"}
    tensors = {}
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        t = torch.from_numpy(a.copy())
        if init.name in matmul_weights:
            t = t.t().contiguous()
        tensors[init.name] = t.to(torch.bfloat16)
    torch.save(tensors, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
