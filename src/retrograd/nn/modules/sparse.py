"""Embedding: a lookup table of num_embeddings rows of embedding_dim (torch's arguments and
state_dict key `weight`; initialized N(0, 1), the padding_idx row zero)."""

from __future__ import annotations

from ...backend import INTEGER_TYPES, as_dtype
from ...backend import host as _host
from ...grad_mode import no_grad
from ...tensor import Parameter, Tensor, get_default_dtype
from .. import functional as F
from .. import init
from ..module import Module


class Embedding(Module):
    """weight[indices]; the padding_idx row is looked up but never receives a gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, device=None, dtype=None):
        super().__init__()
        for name, n in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(n, INTEGER_TYPES) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"Embedding: {name} must be a positive integer, got {n!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"[{-num_embeddings}, {num_embeddings})")
            padding_idx = int(padding_idx) % num_embeddings
        if scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: scale_grad_by_freq and sparse are not "
                                      "supported")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        dtype = as_dtype(dtype) if dtype is not None else get_default_dtype()
        shape = (self.num_embeddings, self.embedding_dim)
        if _weight is None:
            self.weight = Parameter(_host.empty(shape, dtype=dtype), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            data = _weight.cpu().numpy() if isinstance(_weight, Tensor) else \
                _host.asarray(_weight)
            if data.shape != shape:
                raise ValueError(f"Embedding: _weight has shape {data.shape}, expected {shape}")
            self.weight = Parameter(data.astype(data.dtype if data.dtype.kind == "f" else dtype),
                                    requires_grad=not _freeze)
        if device is not None:  # made (and initialized) on the host, then moved: one seed
            self.to(device)     # gives the same weights on every device

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0

    def forward(self, input) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, sparse: bool = False) -> Embedding:
        """An Embedding holding a copy of the 2-D `embeddings` (frozen unless freeze=False)."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        rows, dim = embeddings.shape
        data = _host.array(embeddings.cpu().numpy() if isinstance(embeddings, Tensor)
                           else embeddings)
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=data, _freeze=freeze)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        return text
