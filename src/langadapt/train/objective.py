"""The MLM training objective as one module, with LangSAMP's language and script embeddings.

LangSAMP (§3.1-3.2): learnable language embeddings ``E^Lang`` (one row per language variety of the
inventory) and script embeddings ``E^Script`` (one row per ISO 15924 script) are added to the last hidden
states of the encoder, ``o_i = h_i + E^Lang_l + E^Script_s``, and only ``o_i`` at the masked positions is
fed to the MLM head. The backbone (token embeddings + transformer blocks) never sees a language id, so after
pretraining it is an ordinary encoder: the model directory loads with ``AutoModel.from_pretrained`` and no
custom code, and the two tables are saved beside it (``langsamp.safetensors`` + ``langsamp.json``, the id
maps) for analysis (PCA, donor-language selection).

Variants (the paper's ablation, §5.1 Table 3): ``none`` (the Glot500-m-style baseline), ``language``,
``script``, ``both``. The script table is indexed by *script* ids (the reference implementation indexes it
with language ids; not copied).

:class:`MLMObjective` wraps the whole loss computation in ``forward`` so that DistributedDataParallel can
wrap it; the vocabulary projection runs only at the masked positions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang

log = logging.getLogger(__name__)

#: variant -> (language table, script table); LangSAMP §5.1 ablation variants a)-d)
LANGSAMP_VARIANTS: dict[str, tuple[bool, bool]] = {
    "none": (False, False),
    "language": (True, False),
    "script": (False, True),
    "both": (True, True),
}
TABLES_FILE = "langsamp.safetensors"
MAPS_FILE = "langsamp.json"


@dataclass(frozen=True)
class IdMaps:
    """Row ids of the language table (``lang_Script`` varieties) and of the script table (ISO 15924)."""

    languages: tuple[str, ...]
    scripts: tuple[str, ...]

    @classmethod
    def from_inventory(cls, inventory: Sequence[str], where: str = "LangSAMP inventory") -> IdMaps:
        """Languages in the given order (duplicates dropped); scripts sorted."""
        if not inventory:
            raise ConfigError(f"{where}: the language inventory is empty")
        langs = tuple(dict.fromkeys(inventory))
        scripts = sorted({parse_lang(code, where=where).script for code in langs})
        return cls(langs, tuple(scripts))

    def language_id(self, code: str) -> int:
        try:
            return self.languages.index(code)
        except ValueError:
            raise ConfigError(f"language {code!r} is not in the LangSAMP inventory {list(self.languages)}") from None

    def script_id(self, code: str) -> int:
        script = parse_lang(code, where="LangSAMP").script
        try:
            return self.scripts.index(script)
        except ValueError:
            raise ConfigError(f"script {script!r} of {code} is not in the LangSAMP scripts {list(self.scripts)}") from None

    def to_json(self) -> dict[str, Any]:
        return {"languages": {c: i for i, c in enumerate(self.languages)},
                "scripts": {s: i for i, s in enumerate(self.scripts)}}


class DecoderCrossEntropy(torch.autograd.Function):
    """``sum_i CE(x_i W^T + b, y_i)`` of the vocabulary projection and the loss in one autograd node.

    Autograd's own path (``F.linear`` + ``F.cross_entropy``) keeps the logits, the log-softmax output and
    two more ``[n, V]`` gradient buffers (copy + zero fill), and hands the decoder weight its gradient as a
    transposed view, which the sparse gradient of a tied input embedding cannot be added to in place: one
    copy of the whole ``[V, d]`` matrix per step (112 ms of a 2.4 s step at XLM-R's 250k vocabulary on CPU,
    issue 21). Here the logits are the only ``[n, V]`` buffer (plus one temporary for the log-sum-exp);
    backward turns them into the softmax gradient in place and returns the weight gradient as a contiguous
    ``[V, d]`` matrix (``g^T x``). The same values as autograd's path to float rounding. Backward runs once
    (it consumes the saved logits): a second backward through the same graph raises.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor) -> torch.Tensor:
        logits = torch.addmm(bias, x, weight.t()) if bias is not None else x.mm(weight.t())
        top = logits.amax(dim=1, keepdim=True)
        lse = (logits - top).exp_().sum(dim=1, keepdim=True).log_().add_(top)
        total = (lse.squeeze(1) - logits.gather(1, targets[:, None]).squeeze(1)).sum()
        ctx.save_for_backward(x, weight, logits, lse, targets)
        ctx.has_bias, ctx.consumed = bias is not None, False
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.consumed:
            raise RuntimeError("DecoderCrossEntropy: backward ran twice through the same graph")
        ctx.consumed = True
        x, weight, logits, lse, targets = ctx.saved_tensors
        g = logits.sub_(lse).exp_()  # softmax, in the logits' buffer
        g[torch.arange(len(targets), device=g.device), targets] -= 1.0
        g.mul_(grad)
        gx = g.mm(weight) if ctx.needs_input_grad[0] else None
        gw = g.t().mm(x) if ctx.needs_input_grad[1] else None  # contiguous [V, d]
        gb = g.sum(dim=0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


def mlm_head(model: nn.Module) -> nn.Module | None:
    """The MLM head of a BERT (``cls``) or RoBERTa/XLM-R (``lm_head``) model, else None."""
    for name in ("lm_head", "cls"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    return None


class MLMObjective(nn.Module):
    """Masked-LM loss of a ``*ForMaskedLM`` model, optionally with LangSAMP language/script embeddings.

    ``forward(input_ids, attention_mask, labels, lang_ids, script_ids, denominator)`` returns the summed
    cross-entropy over the selected positions divided by `denominator` (default: their number), so that
    data-parallel ranks can normalise by the number of masked tokens of the *global* batch.
    """

    def __init__(self, model: nn.Module, variant: str = "none", maps: IdMaps | None = None,
                 init_std: float | None = None, seed: int = 0) -> None:
        super().__init__()
        if variant not in LANGSAMP_VARIANTS:
            raise ConfigError(f"unknown LangSAMP variant {variant!r}; known: {sorted(LANGSAMP_VARIANTS)}")
        use_lang, use_script = LANGSAMP_VARIANTS[variant]
        if (use_lang or use_script) and maps is None:
            raise ConfigError(f"LangSAMP variant {variant!r} needs a language inventory")
        self.model = model
        self.fused_loss = True  # DecoderCrossEntropy for the vocabulary projection (fp32); False: autograd's path
        self.variant = variant
        self.maps = maps
        self.head = mlm_head(model)
        if self.head is None:
            raise ConfigError(f"{type(model).__name__} has no MLM head (lm_head or cls)")
        d = int(model.config.hidden_size)
        std = float(init_std if init_std is not None else getattr(model.config, "initializer_range", 0.02))
        gen = torch.Generator().manual_seed(seed)
        # LangSAMP §4.1: "randomly initialized"; N(0, initializer_range) like every other HF weight
        self.language_embeddings = (nn.Parameter(torch.randn(len(maps.languages), d, generator=gen) * std)
                                    if use_lang and maps else None)
        self.script_embeddings = (nn.Parameter(torch.randn(len(maps.scripts), d, generator=gen) * std)
                                  if use_script and maps else None)

    def sparse_embedding_gradients(self) -> bool:
        """Let the input embedding lookup return a sparse gradient when the input matrix is tied to the MLM
        decoder (single process only; not under DDP).

        Not with the fused loss (:class:`DecoderCrossEntropy`, the fp32 default): autograd adds a sparse
        gradient to the decoder's dense one out of place, a copy of the whole ``[V, d]`` matrix (112 ms of a
        2.4 s step at 250k pieces on CPU), while the fused loss's contiguous decoder gradient takes the dense
        lookup gradient in place (issue 21). With autograd's own loss path the sparse rows saved ~8% of a
        step. Same values either way. Returns whether it was enabled.
        """
        if self.fused_loss:
            return False
        emb, out = self.model.get_input_embeddings(), self.model.get_output_embeddings()
        if isinstance(emb, nn.Embedding) and out is not None and out.weight is emb.weight:
            emb.sparse = True
            return True
        return False

    @property
    def backbone(self) -> nn.Module:
        """The encoder without head (``model.base_model``): what downstream tasks load."""
        return self.model.base_model

    def head_inputs(self, hidden: torch.Tensor, rows: torch.Tensor, lang_ids: torch.Tensor | None,
                    script_ids: torch.Tensor | None) -> torch.Tensor:
        """``h + E^Lang[lang] + E^Script[script]`` for selected hidden states `hidden` [n, d] whose
        sequence (batch row) indices are `rows` [n]; `lang_ids`/`script_ids` are per batch row."""
        out = hidden
        if self.language_embeddings is not None:
            if lang_ids is None:
                raise ValueError("LangSAMP language embeddings need lang_ids")
            out = out + self.language_embeddings[lang_ids[rows]].to(out.dtype)
        if self.script_embeddings is not None:
            if script_ids is None:
                raise ValueError("LangSAMP script embeddings need script_ids")
            out = out + self.script_embeddings[script_ids[rows]].to(out.dtype)
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                lang_ids: torch.Tensor | None = None, script_ids: torch.Tensor | None = None,
                denominator: float | None = None) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        selected = labels != -100
        rows = selected.nonzero()[:, 0]
        inputs = self.head_inputs(hidden[selected], rows, lang_ids, script_ids)
        decoder = self._decoder_path()
        if decoder is not None and not torch.is_autocast_enabled(inputs.device.type) and inputs.dtype == torch.float32:
            parent, name, linear = decoder
            setattr(parent, name, nn.Identity())  # the head up to the vocabulary projection
            try:
                transformed = self.head(inputs)
            finally:
                setattr(parent, name, linear)
            total = DecoderCrossEntropy.apply(transformed, linear.weight, linear.bias, labels[selected])
        else:  # bf16 autocast, or a head without a plain Linear decoder: autograd's path
            total = F.cross_entropy(self.head(inputs).float(), labels[selected], reduction="sum")
        n = float(denominator) if denominator is not None else float(max(int(selected.sum()), 1))
        return total / n

    def _decoder_path(self) -> tuple[nn.Module, str, nn.Linear] | None:
        """(parent module, attribute, Linear) of the head's vocabulary projection, when it is the model's
        output embedding and a plain ``nn.Linear`` (BERT ``cls.predictions.decoder``, XLM-R ``lm_head.decoder``);
        else None. With ``fused_loss = False`` always None (autograd's path, for comparisons)."""
        if not self.fused_loss:
            return None
        if getattr(self, "_decoder", None) is None:  # looked up once (the head does not change)
            self._decoder = (self._find_decoder(),)
        return self._decoder[0]

    def _find_decoder(self) -> tuple[nn.Module, str, nn.Linear] | None:
        out = self.model.get_output_embeddings()
        if type(out) is not nn.Linear:
            return None
        for name, module in self.head.named_modules():
            if module is out and name:
                parent = self.head.get_submodule(name.rpartition(".")[0]) if "." in name else self.head
                return parent, name.rpartition(".")[2], out
        return None

    # --------------------------------------------------------------------------------- persistence
    def tables(self) -> dict[str, torch.Tensor]:
        out = {}
        if self.language_embeddings is not None:
            out["language_embeddings"] = self.language_embeddings.detach().float().cpu().contiguous()
        if self.script_embeddings is not None:
            out["script_embeddings"] = self.script_embeddings.detach().float().cpu().contiguous()
        return out

    def save_tables(self, directory: Path) -> None:
        """Write ``langsamp.safetensors`` + ``langsamp.json`` into a model directory (variant != none)."""
        if self.variant == "none" or self.maps is None:
            return
        from safetensors.torch import save_file

        save_file(self.tables(), str(Path(directory) / TABLES_FILE))
        meta = {"variant": self.variant, "hidden_size": int(self.model.config.hidden_size), **self.maps.to_json()}
        (Path(directory) / MAPS_FILE).write_text(json.dumps(meta, indent=1) + "\n")

    def load_tables_from(self, model_dir: Path) -> dict[str, int]:
        """Copy rows of previously trained tables in `model_dir` (matched by language / script code).

        A recipe that continues LangSAMP pretraining from a LangSAMP model keeps what was learnt; codes not
        in the saved tables keep their fresh initialisation. Returns the number of rows copied per table.
        """
        saved = read_tables(model_dir)
        copied = {"language_embeddings": 0, "script_embeddings": 0}
        if saved is None or self.maps is None:
            return copied
        tables, meta = saved
        with torch.no_grad():
            for name, key, ours in (("language_embeddings", "languages", self.maps.languages),
                                    ("script_embeddings", "scripts", self.maps.scripts)):
                param = getattr(self, name)
                if param is None or name not in tables:
                    continue
                if tables[name].shape[1] != param.shape[1]:
                    raise DataError(f"{model_dir / TABLES_FILE}: {name} have dimension {tables[name].shape[1]}, "
                                    f"the model {param.shape[1]}")
                for i, code in enumerate(ours):
                    j = meta[key].get(code)
                    if j is not None:
                        param[i] = tables[name][j]
                        copied[name] += 1
        return copied


def read_tables(model_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """(tables, id maps) saved by LangSAMP pretraining in a model directory, or None."""
    model_dir = Path(model_dir)
    if not (model_dir / TABLES_FILE).is_file():
        return None
    from safetensors.torch import load_file

    try:
        meta = json.loads((model_dir / MAPS_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{model_dir / MAPS_FILE}: cannot read the LangSAMP id maps: {e}") from None
    return load_file(str(model_dir / TABLES_FILE)), meta
