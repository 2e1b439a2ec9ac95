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


class DecoderBuffers:
    """Buffers the fused loss keeps across steps in a single-process run (issue 21): the logits and the
    decoder weight's gradient.

    A fresh ``[V, d]`` gradient and ``[V, n]`` logits every step cost, besides the writes, the kernel's first
    touch of ~0.5 GB of new pages on CPU (``free`` returns allocations this large to the system: ~260k minor
    page faults per step at XLM-R's 250k vocabulary). Here the decoder's gradient is written straight into
    ``weight.grad`` (the buffer when the gradient is unset, i.e. the first micro-batch after ``zero_grad``;
    added in place otherwise) and the sparse rows of a tied input lookup are then added to it in place by
    autograd. The logits buffer is lent to one graph at a time: a forward while the previous graph's
    logits still wait for their backward gets fresh memory.
    """

    def __init__(self) -> None:
        self.grad: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None
        self.lent = False

    def logits(self, vocab: int, n: int, like: torch.Tensor) -> torch.Tensor:
        """A contiguous ``[vocab, n]`` tensor to write logits into: the kept buffer's memory when it is free."""
        if self.lent:
            return like.new_empty(vocab, n)
        buf = self._logits
        if buf is None or buf.numel() < vocab * n or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._logits = like.new_empty(vocab * max(n, 256))
        self.lent = True
        return buf[:vocab * n].view(vocab, n)

    def release(self) -> None:
        self.lent = False

    def accumulate(self, weight: torch.Tensor, g_t: torch.Tensor, x: torch.Tensor) -> None:
        """``weight.grad += g_t x`` (g_t: ``[V, n]``), into the kept buffer when ``weight.grad`` is unset."""
        if weight.grad is None:
            if self.grad is None or self.grad.shape != weight.shape or self.grad.dtype != weight.dtype \
                    or self.grad.device != weight.device:
                self.grad = torch.empty_like(weight, memory_format=torch.contiguous_format)
            torch.mm(g_t, x, out=self.grad)
            weight.grad = self.grad
        else:
            weight.grad.addmm_(g_t, x)


#: vocabulary rows per block of the fused loss's forward (4096 x n logits stay in cache for their
#: log-sum-exp; measured on 2 cores at V = 250k, n = 148: 247 ms vs 2,048 rows 264, 8,192 261, 32,768 289)
LOGIT_BLOCK = 4096


def _logits_and_lse(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    out: torch.Tensor) -> torch.Tensor:
    """Fill `out` (``[V, n]``) with ``W x^T + b`` block by block and return ``logsumexp`` over V, ``[1, n]``
    (online: running maximum and rescaled sum, each block reduced while it is in cache)."""
    n = x.shape[0]
    top = x.new_full((1, n), float("-inf"))
    total = x.new_zeros(1, n)
    xt = x.t()
    for start in range(0, weight.shape[0], LOGIT_BLOCK):
        block = out[start:start + LOGIT_BLOCK]
        w = weight[start:start + LOGIT_BLOCK]
        if bias is not None:
            torch.addmm(bias[start:start + LOGIT_BLOCK, None], w, xt, out=block)
        else:
            torch.mm(w, xt, out=block)
        new_top = torch.maximum(top, block.amax(dim=0, keepdim=True))
        total = total.mul_((top - new_top).exp_()).add_((block - new_top).exp_().sum(dim=0, keepdim=True))
        top = new_top
    return total.log_().add_(top)


class DecoderCrossEntropy(torch.autograd.Function):
    """``sum_i CE(x_i W^T + b, y_i)`` of the vocabulary projection and the loss in one autograd node.

    Autograd's own path (``F.linear`` + ``F.cross_entropy``) keeps the logits, the log-softmax output and
    two more ``[n, V]`` gradient buffers (copy + zero fill), and hands the decoder weight its gradient as a
    transposed view, which the sparse gradient of a tied input embedding cannot be added to in place: one
    copy of the whole ``[V, d]`` matrix per step (112 ms of a 2.4 s step at XLM-R's 250k vocabulary on CPU,
    issue 21). Here the logits are the only ``[V, n]`` buffer, laid out vocabulary-major (``W x^T``: the
    projection runs at 133 GFLOP/s where ``x W^T`` ran at 98 on 2 cores) and reduced to the log-sum-exp
    block by block while in cache; backward turns them into the softmax gradient in place and gives the
    weight gradient as a contiguous ``[V, d]`` matrix. With `buffers` (:class:`DecoderBuffers`, single
    process) the logits reuse a kept buffer and the weight gradient goes straight into ``weight.grad``
    (autograd gets None for it). The same values as autograd's path to float rounding. Backward runs once
    (it consumes the saved logits): a second backward through the same graph raises.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor, buffers: DecoderBuffers | None = None) -> torch.Tensor:
        vocab, n = weight.shape[0], x.shape[0]
        out = buffers.logits(vocab, n, x) if buffers is not None else x.new_empty(vocab, n)
        lse = _logits_and_lse(x, weight, bias, out)
        cols = torch.arange(n, device=x.device)
        total = (lse.squeeze(0) - out[targets, cols]).sum()
        ctx.save_for_backward(x, weight, out, lse, targets)
        ctx.has_bias, ctx.consumed, ctx.buffers = bias is not None, False, buffers
        ctx.weight = weight if buffers is not None else None  # the Parameter whose .grad is written
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.consumed:
            raise RuntimeError("DecoderCrossEntropy: backward ran twice through the same graph")
        ctx.consumed = True
        x, weight, logits, lse, targets = ctx.saved_tensors
        g = logits.sub_(lse).exp_()  # softmax [V, n], in the logits' buffer
        g[targets, torch.arange(len(targets), device=g.device)] -= 1.0
        g.mul_(grad)
        gx = g.t().mm(weight) if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            if ctx.buffers is not None:
                ctx.buffers.accumulate(ctx.weight, g, x)
            else:
                gw = g.mm(x)  # contiguous [V, d]
        gb = g.sum(dim=1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        if ctx.buffers is not None:
            ctx.buffers.release()
        return gx, gw, gb, None, None


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
        self._decoder_buffers: DecoderBuffers | None = None  # set by single_process_gradients (single process)
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

    def single_process_gradients(self) -> bool:
        """Gradient paths for a single process (not under DDP, whose hooks expect every gradient from
        autograd): the input embedding lookup returns sparse rows when its matrix is tied to the MLM decoder, and the fused loss
        (:class:`DecoderCrossEntropy`, fp32) writes the decoder's gradient straight into ``weight.grad`` through
        buffers kept across steps (:class:`DecoderBuffers`); autograd then adds the sparse rows to it in place.

        Issue 21, at XLM-R's 250k vocabulary on CPU: a dense lookup gradient is a zero fill and an add of the
        whole ``[V, d]`` matrix per step, autograd adds a sparse one to a dense decoder gradient it got back
        out of place (a copy: 112 ms of a 2.4 s step), and fresh ``[V, d]`` / ``[n, V]`` buffers cost ~260k
        page faults per step. Same values either way. Returns whether the sparse lookup was enabled.
        """
        if self.fused_loss:
            self._decoder_buffers = DecoderBuffers()
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
            buffers = self._decoder_buffers if torch.is_grad_enabled() else None
            total = DecoderCrossEntropy.apply(transformed, linear.weight, linear.bias, labels[selected], buffers)
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
