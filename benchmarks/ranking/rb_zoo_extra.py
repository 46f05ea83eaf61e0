"""The rest of the offline zoo for the ranking benchmark v2, built from `../shared/assets` at run time (nothing of it is
copied into the repository):

- the 7 uint8-quantized TFLite MobileNets (google-coral/test_data), loaded through the product's ``local:`` route;
- the 4 CIFAR-10 ResNets (akamaster/pytorch_resnet_cifar10 checkpoints): the architecture is defined here from the
  paper (He et al. 2016, CIFAR variant with option-A shortcuts), the checkpoint read with ``weights_only=True``, and
  exported once to ONNX under the benchmark cache, which the product then loads through ``local:`` (features = the
  64-d pooled layer, logits = the CIFAR-10 head);
- Google's speech_embedding (openWakeWord's two ONNX graphs: mel front end, embedding CNN), wrapped here as a
  product `LoadedModel` (mean and max of the per-window 96-d embeddings: 192-d), the way a user with a custom model
  would pass one to `advisor.features.extract_features`.

Published ImageNet top-1 for the MobileNets (the prior baseline) is the figure of the float checkpoint of the same
architecture in the TF-slim tables (tensorflow/models research/slim/nets/mobilenet_v1.md and mobilenet/README.md);
the quantized files score about one point lower. The iNaturalist models and the CIFAR ResNets have no ImageNet figure.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

CORAL = (
    ("mobilenet_v1_0.25_128_quant", "imagenet_labels.txt", 41.5, 0.47e6),
    ("mobilenet_v1_0.5_160_quant", "imagenet_labels.txt", 59.1, 1.34e6),
    ("mobilenet_v1_0.75_192_quant", "imagenet_labels.txt", 67.2, 2.59e6),
    ("mobilenet_v1_1.0_224_quant_embedding_extractor", None, 70.9, 3.2e6),
    ("mobilenet_v2_1.0_224_quant", "imagenet_labels.txt", 71.8, 3.49e6),
    ("tf2_mobilenet_v2_1.0_224_ptq", "imagenet_labels.txt", 71.8, 3.49e6),
    ("mobilenet_v2_1.0_224_inat_bird_quant", "inat_bird_labels.txt", None, 3.49e6),
    ("mobilenet_v2_1.0_224_inat_insect_quant", "inat_insect_labels.txt", None, 3.49e6),
)
CORAL_PRIOR_SOURCE = (
    "TF-slim table, float checkpoint of the same architecture (tensorflow/models research/slim/nets/"
    "mobilenet_v1.md, mobilenet/README.md); the uint8 file scores ~1 point lower"
)
CIFAR_DEPTHS = (20, 32, 44, 56)
CIFAR_FILES = {
    20: "resnet20-12fca82f.th",
    32: "resnet32-d509ac18.th",
    44: "resnet44-014dd654.th",
    56: "resnet56-4bfd9763.th",
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def coral_key(stem: str) -> str:
    return f"coral:{stem}"


def cifar_key(depth: int) -> str:
    return f"cifar:resnet{depth}"


def coral_model_id(assets: Path, stem: str, labels: str | None) -> str:
    """The product's ``local:`` id of one TFLite MobileNet (labels name its source head's classes)."""
    d = assets / "image" / "coral_tflite"
    mid = f"local:{d / (stem + '.tflite')}"
    return f"{mid}?labels={d / labels}" if labels else mid


# ------------------------------------------------------------------------------------------------ CIFAR ResNets
def _cifar_resnet(depth: int):
    """He et al.'s CIFAR ResNet-`depth` (6n+2 layers; 16/32/64 channels; option-A zero-padded shortcuts),
    returning (pooled 64-d features, CIFAR-10 logits)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.pad = cout // 4 if (stride != 1 or cin != cout) else 0

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.pad else x
            return F.relu(y + s)

    class Net(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            chans, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for i in range(n):
                    blocks.append(Block(cin, cout, stride if i == 0 else 1))
                    cin = cout
                chans.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = chans
            self.linear = nn.Linear(64, 10)

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.layer3(self.layer2(self.layer1(y)))
            f = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
            return f, self.linear(f)

    assert (depth - 2) % 6 == 0, depth
    return Net((depth - 2) // 6)


def cifar_onnx(assets: Path, depth: int, cache: Path) -> Path:
    """The CIFAR ResNet-`depth` checkpoint exported to ONNX under the cache (once; keyed by the checkpoint's bytes).

    The checkpoint is read with ``torch.load(weights_only=True)`` (tensors and numbers only), keys un-prefixed from
    ``module.``, and loaded strictly; the export is checked against eager on a random batch (max abs diff < 1e-4).
    """
    import torch

    src = assets / "image" / "cifar_resnet" / CIFAR_FILES[depth]
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out_dir = cache / "ranking" / "cifar_onnx"
    out = out_dir / f"resnet{depth}-{digest}.onnx"
    labels = out_dir / "cifar10_labels.txt"
    if out.exists() and labels.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    ck = torch.load(src, map_location="cpu", weights_only=True)
    sd = {k.removeprefix("module."): v for k, v in ck["state_dict"].items()}
    net = _cifar_resnet(depth).eval()
    net.load_state_dict(sd, strict=True)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tmp = out.with_suffix(f".{os.getpid()}.tmp.onnx")
    torch.onnx.export(
        net, (x,), str(tmp), dynamo=False, input_names=["pixel_values"], output_names=["features", "logits"],
        dynamic_axes={"pixel_values": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
    )  # fmt: skip
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    f_ort, l_ort = sess.run(None, {"pixel_values": x.numpy()})
    with torch.inference_mode():
        f_ref, l_ref = net(x)
    diff = max(np.abs(f_ort - f_ref.numpy()).max(), np.abs(l_ort - l_ref.numpy()).max())
    if diff > 1e-4:
        tmp.unlink()
        raise RuntimeError(f"ONNX export of resnet{depth} differs from eager by {diff:.2e}")
    os.replace(tmp, out)
    labels.write_text("\n".join(CIFAR10_CLASSES) + "\n")
    return out


def cifar_model_id(assets: Path, depth: int, cache: Path) -> str:
    """The ``local:`` id of the exported CIFAR ResNet: 32x32 input, no crop, the repository's normalisation."""
    path = cifar_onnx(assets, depth, cache)
    return (
        f"local:{path}?input_size=32&crop_pct=1.0&interpolation=bilinear&mean=0.485,0.456,0.406"
        f"&std=0.229,0.224,0.225&output=features&logits_output=logits&labels={path.parent / 'cifar10_labels.txt'}"
    )


# ------------------------------------------------------------------------------------------------ speech_embedding
def speech_embedding_model(assets: Path):
    """Google's speech_embedding (openWakeWord ONNX graphs) as a product `LoadedModel` (audio, 16 kHz, 192-d).

    Front end: int16-scale audio → mel frames (melspectrogram.onnx), scaled ``x / 10 + 2`` as openWakeWord does;
    windows of 76 frames, hop 8, through embedding_model.onnx → 96-d each; the clip's vector is the mean and the max
    over windows (clips shorter than one window are zero-padded to 76 frames).
    """
    import onnxruntime as ort
    import torch

    from advisor.models.base import ExampleSpec, LoadedModel, ModelOutput

    d = assets / "audio" / "google_speech_embedding"
    files = [d / "melspectrogram.onnx", d / "embedding_model.onnx"]
    opt = ort.SessionOptions()
    opt.intra_op_num_threads = 1
    mel_s, emb_s = (ort.InferenceSession(str(f), opt, providers=["CPUExecutionProvider"]) for f in files)
    mel_in, emb_in = mel_s.get_inputs()[0].name, emb_s.get_inputs()[0].name
    revision = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]

    def embed(wave: np.ndarray) -> np.ndarray:
        x = (np.asarray(wave, np.float32) * 32767.0)[None]
        mel = mel_s.run(None, {mel_in: x})[0].squeeze() / 10.0 + 2.0  # (frames, 32)
        if mel.ndim == 1:
            mel = mel[None]
        if len(mel) < 76:
            mel = np.concatenate([mel, np.zeros((76 - len(mel), mel.shape[1]), np.float32)])
        wins = np.stack([mel[i : i + 76] for i in range(0, len(mel) - 75, 8)])[..., None]
        e = emb_s.run(None, {emb_in: wins.astype(np.float32)})[0].reshape(len(wins), -1)
        return np.concatenate([e.mean(0), e.max(0)])

    def preprocess(items: list) -> tuple:
        waves = [np.asarray(w, np.float32).reshape(-1) for w in items]
        lengths = torch.tensor([len(w) for w in waves])
        padded = torch.zeros(len(waves), int(lengths.max()) if waves else 0)
        for i, w in enumerate(waves):
            padded[i, : len(w)] = torch.from_numpy(w)
        return padded, lengths

    def forward(batch: tuple) -> ModelOutput:
        padded, lengths = batch
        rows = [embed(padded[i, : int(n)].cpu().numpy()) for i, n in enumerate(lengths)]
        return ModelOutput(features=torch.from_numpy(np.stack(rows)), logits=None)

    return LoadedModel(
        model_id="bench:google-speech-embedding",
        modality="audio",
        feature_dim=192,
        preprocess_fn=preprocess,
        signature={"front_end": "openWakeWord mel x/10+2, 76-frame windows hop 8, mean+max"},
        example=ExampleSpec(sample_rate=16000),
        forward_fn=forward,
        revision=revision,
        runtime="onnx",
        sample_rate=16000,
        info={"source": "benchmark", "files": [str(f) for f in files]},
    )
