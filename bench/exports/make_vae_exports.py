"""Tiny FLUX-structured VAE decoders (diffusers AutoencoderKL) exported to ONNX model-zoo folders.

usage: python3 bench/exports/make_vae_exports.py OUT_DIR
       (diffusers sources on sys.path: ANCHOR_SRC, default /tmp/anchor, unpacked from
       ../shared/baselines/anchor_py.tar.xz)

Writes OUT_DIR/vae/<name>/ for each exporter: model.onnx (weights inlined), test_data_set_0/input_0.pb
(the latent z, already scaled: what `vae.decode` receives), output_0.pb (PyTorch's fp32
`vae.decode(z).sample`, eager, no_grad), vae_config.json (scaling_factor, shift_factor, the
AutoencoderKL config), and OUT_DIR/vae/manifest.json (onnxruntime's max abs diff to PyTorch, ops).
The model is diffusers' own AutoencoderKL with FLUX.1-dev's VAE structure (16 latent channels, no
quant convs, mid-block attention, scaling 0.3611 and shift 0.1159) at a tiny width: only the
decoder is exported, wrapped in a Module whose forward is `vae.decode(z).sample`.
"""
import json
import os
import sys

import numpy as np
import torch
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.environ.get("ANCHOR_SRC", "/tmp/anchor"))
import transformers.utils as _tu  # diffusers 0.34 expects names that transformers 5 dropped

for _n, _v in (("FLAX_WEIGHTS_NAME", "flax_model.msgpack"), ("WEIGHTS_NAME", "pytorch_model.bin")):
    if not hasattr(_tu, _n):
        setattr(_tu, _n, _v)
from diffusers import AutoencoderKL  # noqa: E402

SEED = 1501
LATENT_HW = (8, 8)
# FLUX.1-dev's VAE config with tiny widths: two up blocks (one 2x nearest upsample), so an 8x8 latent
# decodes to a 16x16 RGB image.
CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(32, 32),
    layers_per_block=1,
    act_fn="silu",
    latent_channels=16,
    norm_num_groups=8,
    sample_size=16,
    scaling_factor=0.3611,
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
    mid_block_add_attention=True,
)


class Decode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


def build():
    torch.manual_seed(SEED)
    vae = AutoencoderKL(**CONFIG).eval()
    # GroupNorm starts at weight 1, bias 0: perturb every norm so a wrong gamma/beta wiring shows.
    with torch.no_grad():
        for m in vae.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.add_(0.1 * torch.randn_like(m.weight))
                m.bias.add_(0.1 * torch.randn_like(m.bias))
    model = Decode(vae).eval()
    gen = torch.Generator().manual_seed(SEED + 1)
    z = torch.randn(1, CONFIG["latent_channels"], *LATENT_HW, generator=gen)
    return model, z


def strip_metadata(m):
    for n in m.graph.node:
        n.doc_string = ""
        del n.metadata_props[:]
    return m


def export(model, z, path, dynamo):
    tmp = path + ".tmp"
    if dynamo:
        prog = torch.onnx.export(model, (z,), dynamo=True, opset_version=18, input_names=["z"], output_names=["sample"])
        prog.save(tmp)
    else:
        torch.onnx.export(model, (z,), tmp, dynamo=False, opset_version=17, input_names=["z"], output_names=["sample"], do_constant_folding=True)
    m = onnx.load(tmp)  # pulls in external data if the exporter wrote any
    d = os.path.dirname(path)
    for f in os.listdir(d):
        if f.endswith(".tmp") or f.endswith(".tmp.data"):
            os.remove(os.path.join(d, f))
    onnx.save(strip_metadata(m), path)
    return m


def write_case(root, name, model, z, dynamo):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    with torch.no_grad():
        ref = model(z).numpy()
    m = export(model, z, os.path.join(d, "model.onnx"), dynamo)
    assert [i.name for i in m.graph.input] == ["z"], [i.name for i in m.graph.input]
    with open(os.path.join(d, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(z.numpy(), "z").SerializeToString())
    with open(os.path.join(d, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(ref, m.graph.output[0].name).SerializeToString())
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in CONFIG.items()}
    with open(os.path.join(d, "vae_config.json"), "w") as f:
        json.dump({"scaling_factor": CONFIG["scaling_factor"], "shift_factor": CONFIG["shift_factor"], "autoencoder_kl": cfg}, f, indent=1)
    import onnxruntime as ort

    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"z": z.numpy()})[0]
    info = {
        "name": name,
        "ort_max_abs_diff": float(np.abs(got - ref).max()),
        "output_shape": list(ref.shape),
        "output_abs_max": float(np.abs(ref).max()),
        "bytes": os.path.getsize(os.path.join(d, "model.onnx")),
        "nodes": len(m.graph.node),
        "ops": sorted({n.op_type for n in m.graph.node}),
    }
    print(json.dumps(info), flush=True)
    return info


def main():
    root = os.path.join(sys.argv[1], "vae")
    os.makedirs(root, exist_ok=True)
    model, z = build()
    print("decoder params", sum(p.numel() for p in model.vae.decoder.parameters()), flush=True)
    cases = [write_case(root, "flux_vae_tiny_dynamo", model, z, True), write_case(root, "flux_vae_tiny_ts", model, z, False)]
    import diffusers

    with open(os.path.join(root, "manifest.json"), "w") as f:
        meta = {"torch": torch.__version__, "onnx": onnx.__version__, "diffusers": diffusers.__version__, "seed": SEED}
        json.dump({**meta, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
