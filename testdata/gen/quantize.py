"""Quantized variants of an fp32 Whisper-encoder ONNX graph, built with the
onnx helpers in the layouts ONNX Runtime's quantizers emit (its quantizer is
not installable here):

* dynamic int8/uint8 (onnxruntime.quantization.quantize_dynamic):
  DynamicQuantizeLinear on the activation, MatMulInteger / ConvInteger on
  `<W>_quantized` with `<W>_zero_point`, Cast to float, Mul by
  (activation scale × `<W>_scale`), conv bias Reshape'd and Added;
* 4-bit (MatMul4BitsQuantizer): com.microsoft::MatMulNBits with B
  `<W>_Q4` packed [N][K/32][16] (low nibble first), `<W>_scales` [N·K/32],
  optional `<W>_zero_points` packed nibbles; implicit zero point 8.

Each function returns the new model and {initializer name: dequantized fp32
weight in the source layout}, the reference the stager must reproduce.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _inits(model):
    return {i.name: i for i in model.graph.initializer}


def quantize_weight(w, qtype):
    """ORT's quantize_data for a whole tensor (per_channel=False)."""
    w = w.astype(np.float32)
    if qtype == TensorProto.INT8:  # symmetric, qmin/qmax ±127
        absmax = float(np.abs(w).max())
        scale = np.float32(absmax / 127.0 if absmax > 0 else 1.0)
        zp = 0
        q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        return q, scale, np.int8(zp)
    rmin = min(float(w.min()), 0.0)
    rmax = max(float(w.max()), 0.0)
    scale = np.float32((rmax - rmin) / 255.0 if rmax > rmin else 1.0)
    zp = int(np.clip(np.round(0 - rmin / scale), 0, 255))
    q = np.clip(np.round(w / scale) + zp, 0, 255).astype(np.uint8)
    return q, scale, np.uint8(zp)


def dequant(q, scale, zp):
    return ((q.astype(np.int32) - int(zp)).astype(np.float32) * np.float32(scale)).astype(np.float32)


def dynamic(model, qtype, conv):
    """quantize_dynamic: MatMul (and Conv when conv=True) with weights of qtype."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = _inits(m)
    out_nodes, new_inits, dq_done, ref = [], [], {}, {}

    def quant_input(x, nodes):
        if x not in dq_done:
            nodes.append(helper.make_node(
                "DynamicQuantizeLinear", [x], [x + "_quantized", x + "_scale", x + "_zero_point"],
                name=x + "_QuantizeLinear"))
            dq_done[x] = True
        return x + "_quantized", x + "_scale", x + "_zero_point"

    def quant_weight(name):
        w = numpy_helper.to_array(inits[name])
        q, scale, zp = quantize_weight(w, qtype)
        new_inits.extend([
            numpy_helper.from_array(q, name + "_quantized"),
            numpy_helper.from_array(np.array(scale, dtype=np.float32), name + "_scale"),
            numpy_helper.from_array(np.array(zp), name + "_zero_point"),
        ])
        ref[name] = dequant(q, scale, zp)
        return name + "_quantized", name + "_scale", name + "_zero_point"

    drop = set()
    for n in g.node:
        if n.op_type == "MatMul" and n.input[1] in inits:
            xq, xs, xz = quant_input(n.input[0], out_nodes)
            wq, ws, wz = quant_weight(n.input[1])
            drop.add(n.input[1])
            y = n.output[0]
            out_nodes += [
                helper.make_node("MatMulInteger", [xq, wq, xz, wz], [y + "_quantized"], name=n.name + "_quant"),
                helper.make_node("Cast", [y + "_quantized"], [y + "_quantized_cast_output"], name=n.name + "_quant_cast", to=TensorProto.FLOAT),
                helper.make_node("Mul", [xs, ws], [n.name + "_quant_scales_mul:0"], name=n.name + "_quant_scales_mul"),
                helper.make_node("Mul", [y + "_quantized_cast_output", n.name + "_quant_scales_mul:0"], [y], name=n.name + "_quant_output_scale_mul"),
            ]
        elif conv and n.op_type == "Conv" and n.input[1] in inits:
            xq, xs, xz = quant_input(n.input[0], out_nodes)
            wq, ws, wz = quant_weight(n.input[1])
            drop.add(n.input[1])
            y = n.output[0]
            out_nodes += [
                helper.make_node("ConvInteger", [xq, wq, xz, wz], [y + "_output_quantized"], name=n.name + "_quant", **{
                    a.name: helper.get_attribute_value(a) for a in n.attribute}),
                helper.make_node("Cast", [y + "_output_quantized"], [y + "_output_quantized_cast_output"], name=n.name + "_quant_cast", to=TensorProto.FLOAT),
                helper.make_node("Mul", [xs, ws], [n.name + "_quant_scales_mul:0"], name=n.name + "_quant_scales_mul"),
                helper.make_node("Mul", [y + "_output_quantized_cast_output", n.name + "_quant_scales_mul:0"], [y + "_scaled"], name=n.name + "_quant_output_scale_mul"),
            ]
            if len(n.input) > 2:
                b = n.input[2]
                new_inits.append(numpy_helper.from_array(np.array([1, -1, 1], dtype=np.int64), b + "_reshape_shape"))
                out_nodes += [
                    helper.make_node("Reshape", [b, b + "_reshape_shape"], [b + "_reshape_output"], name=b + "reshape"),
                    helper.make_node("Add", [y + "_scaled", b + "_reshape_output"], [y], name=n.name + "_bias_add"),
                ]
            else:
                out_nodes[-1].output[0] = y
        else:
            out_nodes.append(n)
    _replace(g, out_nodes, drop, new_inits)
    m.opset_import.extend([helper.make_opsetid("com.microsoft", 1)])
    return m, ref


def q4(model, zero_point_modules=()):
    """MatMul4BitsQuantizer: MatMulNBits, block 32; symmetric (no zero
    points, implicit 8) except for weights whose node name contains one of
    zero_point_modules, which get asymmetric blocks with explicit zero points."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = _inits(m)
    out_nodes, new_inits, drop, ref = [], [], set(), {}
    block = 32
    for n in g.node:
        if not (n.op_type == "MatMul" and n.input[1] in inits):
            out_nodes.append(n)
            continue
        name = n.input[1]
        w = numpy_helper.to_array(inits[name]).astype(np.float32)  # [K, N]
        K, N = w.shape
        nb = (K + block - 1) // block
        wt = np.zeros((N, nb * block), dtype=np.float32)
        wt[:, :K] = w.T
        blocks = wt.reshape(N, nb, block)
        asym = any(s in n.name for s in zero_point_modules)
        if asym:
            lo = np.minimum(blocks.min(axis=2), 0)
            hi = np.maximum(blocks.max(axis=2), 0)
            scale = ((hi - lo) / 15.0).astype(np.float32)
            scale[scale == 0] = 1
            zp = np.clip(np.round(-lo / scale), 0, 15).astype(np.uint8)
        else:  # symmetric around 8: the value of largest magnitude maps to -8
            idx = np.abs(blocks).argmax(axis=2)
            bmax = np.take_along_axis(blocks, idx[..., None], axis=2)[..., 0]
            scale = (bmax / -8.0).astype(np.float32)
            scale[scale == 0] = 1
            zp = np.full((N, nb), 8, dtype=np.uint8)
        q = np.clip(np.round(blocks / scale[..., None]) + zp[..., None], 0, 15).astype(np.uint8)
        packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)  # [N, nb, 16]
        deq = ((q.astype(np.float32) - zp[..., None]) * scale[..., None]).reshape(N, nb * block)[:, :K]
        ref[name] = deq.T.copy()  # [K, N], the source layout
        inputs = [n.input[0], name + "_Q4", name + "_scales"]
        new_inits += [numpy_helper.from_array(packed, name + "_Q4"),
                      numpy_helper.from_array(scale.reshape(-1), name + "_scales")]
        if asym:
            zpad = np.zeros((N, (nb + 1) // 2 * 2), dtype=np.uint8)
            zpad[:, :nb] = zp
            zpacked = (zpad[:, 0::2] | (zpad[:, 1::2] << 4)).astype(np.uint8).reshape(-1)
            new_inits.append(numpy_helper.from_array(zpacked, name + "_zero_points"))
            inputs.append(name + "_zero_points")
        drop.add(name)
        out_nodes.append(helper.make_node(
            "MatMulNBits", inputs, [n.output[0]], name=n.name + "_Q4", domain="com.microsoft",
            K=K, N=N, bits=4, block_size=block))
    _replace(g, out_nodes, drop, new_inits)
    m.opset_import.extend([helper.make_opsetid("com.microsoft", 1)])
    return m, ref


def fp16(model, typed=()):
    """FLOAT16 initializers (clamped to the fp16 range, lossy), each Cast back
    to float where it is used; initializers named in typed are stored in
    int32_data instead of raw_data. Returns the model and the fp32 values of
    the fp16 weights."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    ref, new_inits, casts = {}, [], []
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32:
            new_inits.append(init)
            continue
        h = np.clip(a, -65504, 65504).astype(np.float16)
        ref[init.name] = h.astype(np.float32)
        if init.name in typed:
            t = helper.make_tensor(init.name, TensorProto.FLOAT16, h.shape, h.flatten().tolist(), raw=False)
        else:
            t = numpy_helper.from_array(h, init.name)
        new_inits.append(t)
        casts.append(helper.make_node("Cast", [init.name], [init.name + "_fp32"], name=init.name + "_Cast", to=TensorProto.FLOAT))
    rename = {c.input[0]: c.output[0] for c in casts}
    for n in g.node:
        for i, x in enumerate(n.input):
            if x in rename:
                n.input[i] = rename[x]
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    return m, ref


def _replace(g, nodes, drop, new_inits):
    keep = [i for i in g.initializer if i.name not in drop]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    del g.node[:]
    g.node.extend(nodes)
