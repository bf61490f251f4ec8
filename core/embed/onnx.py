"""The fast embedding backend: a sentence-transformers model run by ONNX Runtime with int8 weights.

Only the transformer is exported (once, then cached under ``$SHOAL_CACHE_DIR``, default
``~/.cache/shoal``) and quantized with ONNX Runtime dynamic quantization (per channel);
tokenization, pooling and the optional Normalize step are redone here as the model defines them.
Mean cosine to the PyTorch vectors is about 0.993 for all-MiniLM-L6-v2; whether it is the
default is measured per model by core.embed.choice.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from core.errors import MissingDependency, ShoalError
from core.paths import cache_dir


class OnnxInt8Encoder:
    """A sentence-transformers model run by ONNX Runtime with int8 weights.

    Only the transformer is exported; tokenization (same max_seq_length), pooling (mean
    or CLS) and the optional Normalize step are redone here exactly as the model defines them.
    """

    def __init__(self, st_model, source: str):
        try:
            import onnx  # noqa: F401  (needed by the exporter and the quantizer)
            import onnxruntime as ort
        except ImportError:
            raise MissingDependency("The fast embedding backend", "onnxruntime onnx") from None
        modules = [type(m).__name__ for m in st_model]
        pooling = st_model[1] if len(st_model) > 1 else None
        mode = getattr(pooling, "pooling_mode", None) or (
            "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else
            "cls" if getattr(pooling, "pooling_mode_cls_token", False) else None)
        if modules[:2] != ["Transformer", "Pooling"] or mode not in ("mean", "cls") or \
                any(m not in ("Normalize",) for m in modules[2:]):
            raise ShoalError(f"The fast backend handles Transformer + mean/CLS Pooling (+ Normalize) models; "
                             f"this one is {' + '.join(modules)}: use --backend torch.")
        self.tokenizer = st_model.tokenizer
        self.max_seq_length = st_model.max_seq_length
        self.pooling, self.normalize = mode, "Normalize" in modules[2:]
        self.dim = st_model.get_embedding_dimension()
        path = self._exported(st_model, source)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("SHOAL_ONNX_THREADS", "0"))
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # spinning threads stall a shared CPU
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def _exported(self, st_model, source: str) -> Path:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        stamp = hashlib.sha256(f"{Path(source).resolve() if Path(source).exists() else source}|"
                               f"{self.max_seq_length}".encode()).hexdigest()[:16]
        folder = cache_dir() / "onnx" / stamp
        final = folder / "model-int8.onnx"
        if final.exists():
            return final
        folder.mkdir(parents=True, exist_ok=True)
        bert = st_model[0].auto_model.eval()

        class Wrapped(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        enc = self.tokenizer(["def f(x):\n    return x", "a"], padding=True, return_tensors="pt")
        tti = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
        fp32 = folder / f"model-fp32-{os.getpid()}.onnx"
        axes = {k: {0: "batch", 1: "tokens"} for k in ("input_ids", "attention_mask", "token_type_ids",
                                                       "last_hidden_state")}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(Wrapped(bert), (enc["input_ids"], enc["attention_mask"], tti), str(fp32),
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                              dynamo=False)
            tmp = folder / f"model-int8-{os.getpid()}.onnx"
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": 1})
        os.replace(tmp, final)  # atomic: a half-written file is never picked up
        fp32.unlink(missing_ok=True)
        return final

    def encode(self, texts: Sequence[str], batch_size: int = 32, **_ignored) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for s in range(0, len(texts), batch_size):
            idx = order[s:s + batch_size]
            enc = self.tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                                 max_length=self.max_seq_length, return_tensors="np")
            feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in self.inputs}
            if "token_type_ids" in self.inputs and "token_type_ids" not in feed:
                feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            hidden = self.session.run(None, feed)[0]
            if self.pooling == "cls":
                emb = hidden[:, 0]
            else:
                mask = enc["attention_mask"][..., None].astype(np.float32)
                emb = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            if self.normalize:
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            out[idx] = emb
        return out


