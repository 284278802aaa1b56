"""Sparse input layer, CSR batching and the row-sparse optimizers against dense references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pharmafl.model import (
    LabelBatcher,
    RowSparseAdam,
    RowSparseAdamW,
    RowSparseSGD,
    SparseInputBatcher,
    SparseLinear,
    gather_csr_rows,
    load_prepared,
    synthetic_x,
)


def _x(n: int = 40, f: int = 300, seed: int = 0, counts: bool = False) -> sp.csr_matrix:
    x = synthetic_x(n, f, 12.0, np.random.default_rng(seed))
    if counts:
        x.data = np.random.default_rng(seed).integers(1, 5, size=x.nnz).astype(np.float32)
    return x


def test_gather_csr_rows_matches_scipy_row_slicing() -> None:
    x = _x()
    rows = np.array([5, 0, 17, 5, 39])
    pos, indptr = gather_csr_rows(x.indptr.astype(np.int64), rows)
    got = sp.csr_matrix((x.data[pos], x.indices[pos], indptr), shape=(len(rows), x.shape[1]))
    assert (got != x[rows]).nnz == 0


@pytest.mark.parametrize("transform", ["none", "binarize", "log1p"])
def test_sparse_batch_layouts_and_transforms(transform: str) -> None:
    x = _x(counts=True)
    rows = np.array([3, 1, 30, 7])
    batch = SparseInputBatcher(x, transform)(rows)  # type: ignore[arg-type]
    dense = x[rows].toarray()
    expect = {"none": dense, "binarize": (dense != 0) * 1.0, "log1p": np.log1p(dense)}[transform]
    # Row-major layout rebuilds the rows.
    w = np.ones(len(batch.indices)) if batch.weights is None else batch.weights.numpy()
    offsets = np.r_[batch.offsets.numpy(), len(batch.indices)]
    rebuilt = np.zeros_like(dense)
    for r in range(len(rows)):
        sl = slice(offsets[r], offsets[r + 1])
        rebuilt[r, batch.indices.numpy()[sl]] = w[sl]
    np.testing.assert_allclose(rebuilt, expect, rtol=1e-6)
    # Column-major layout: distinct columns ascending, rows of each column ascending.
    cols = batch.columns.numpy()
    assert np.array_equal(cols, np.unique(np.nonzero(dense)[1]))
    t_off = np.r_[batch.t_offsets.numpy(), len(batch.t_indices)]
    tw = np.ones(len(batch.t_indices)) if batch.t_weights is None else batch.t_weights.numpy()
    for k, c in enumerate(cols):
        sl = slice(t_off[k], t_off[k + 1])
        r = batch.t_indices.numpy()[sl]
        assert np.array_equal(r, np.nonzero(dense[:, c])[0])
        np.testing.assert_allclose(tw[sl], expect[r, c], rtol=1e-6)


def test_sparse_linear_matches_dense_forward_and_gradient() -> None:
    torch.manual_seed(0)
    x = _x(counts=True)
    rows = np.arange(0, 40, 3)
    layer = SparseLinear(x.shape[1], 7)
    batch = SparseInputBatcher(x, "none")(rows)
    out = layer(batch)
    dense_x = torch.from_numpy(x[rows].toarray())
    ref_w = layer.weight.detach().clone().requires_grad_(True)
    ref = dense_x @ ref_w + layer.bias
    torch.testing.assert_close(out, ref)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    grad = layer.weight.grad
    assert grad is not None and grad.is_sparse
    # Only the columns present in the batch carry gradient rows.
    assert torch.equal(grad.coalesce().indices()[0], batch.columns)
    assert ref_w.grad is not None
    torch.testing.assert_close(grad.to_dense(), ref_w.grad)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (RowSparseAdam, dict(lr=0.05, weight_decay=0.1)),
        (RowSparseAdamW, dict(lr=0.05, weight_decay=0.1)),
        (RowSparseSGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ],
)
@pytest.mark.parametrize("chunk_elements", [None, 7 * 5])  # one chunk / 7-row chunks
@pytest.mark.parametrize("prox_mu", [0.0, 0.5])
def test_row_sparse_optimizers_equal_the_dense_update(
    cls: type, kwargs: dict, chunk_elements: int | None, prox_mu: float, monkeypatch
) -> None:
    if chunk_elements is not None:
        monkeypatch.setattr("pharmafl.model.optim.CHUNK_ELEMENTS", chunk_elements)
    dense_cls = {RowSparseAdam: torch.optim.Adam, RowSparseAdamW: torch.optim.AdamW}.get(
        cls, torch.optim.SGD
    )
    torch.manual_seed(1)
    x = _x(seed=2)
    layer = SparseLinear(x.shape[1], 5)
    ref_w = torch.nn.Parameter(layer.weight.detach().clone())
    opt = cls([layer.weight], **kwargs)
    ref_opt = dense_cls([ref_w], foreach=False, **kwargs)
    batcher = SparseInputBatcher(x, "binarize")
    anchor = torch.randn_like(ref_w) * 0.1
    opt.set_proximal(prox_mu, [(layer.weight, anchor)])
    for step in range(4):
        rows = np.arange(step, 40, 4) if step < 3 else np.array([0])
        batch = batcher(rows)
        target = torch.randn(len(rows), 5)
        before = layer.weight.detach().clone()
        loss = ((layer(batch) - layer.bias - target) ** 2).sum()
        loss.backward()
        dense = torch.from_numpy(x[rows].toarray()).clamp(max=1.0)
        ref_loss = ((dense @ ref_w - target) ** 2).sum()
        ref_loss = ref_loss + prox_mu / 2 * (ref_w - anchor).pow(2).sum()
        ref_loss.backward()
        opt.step()
        ref_opt.step()
        opt.zero_grad(set_to_none=True)
        ref_opt.zero_grad(set_to_none=True)
        torch.testing.assert_close(layer.weight.detach(), ref_w.detach(), rtol=1e-5, atol=1e-6)
    # Rows absent from the last batch still moved (momentum, decay): not "lazy" Adam.
    absent = np.setdiff1d(np.unique(x.indices[x.indptr[0] : x.indptr[40]]), batch.columns.numpy())
    moved = (layer.weight.detach() - before)[torch.from_numpy(absent)].abs().amax(dim=1)
    assert bool(torch.all(moved > 0))


def test_label_batcher_masks_and_normalizes(small_prepared) -> None:
    data = load_prepared(small_prepared / "prepared")
    rows = np.array([4, 2, 9])
    mean = np.full(data.n_reg_tasks, 6.0, dtype=np.float32)
    std = np.full(data.n_reg_tasks, 2.0, dtype=np.float32)
    lb = LabelBatcher(data, mean, std)(rows)
    y = data.y_cls[rows].toarray()
    assert np.array_equal(lb.cls_mask.numpy(), (y != 0).astype(np.float32))
    assert np.array_equal(lb.cls_y.numpy(), (y > 0).astype(np.float32))
    reg = data.y_reg[rows]
    mask = np.zeros(reg.shape, dtype=bool)
    mask[np.repeat(np.arange(3), np.diff(reg.indptr)), reg.indices] = True
    assert np.array_equal(lb.reg_mask.numpy() > 0, mask)
    np.testing.assert_allclose(lb.reg_y.numpy()[mask], (reg.toarray()[mask] - 6.0) / 2.0)
    assert np.all(lb.reg_y.numpy()[~mask] == 0)
    np.testing.assert_array_equal(lb.reg_censor.numpy()[mask], data.censor[rows].toarray()[mask])
