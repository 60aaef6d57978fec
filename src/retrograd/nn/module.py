"""Module: parameters and submodules registered by attribute assignment, torch's state_dict keys."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator

from .. import backend
from ..backend import dtypes
from ..grad_mode import no_grad
from ..tensor import Parameter, Tensor, parse_to

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model: subclass, assign Parameters and Modules as
    attributes in __init__, and define forward()."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # Parameters, buffers and submodules live in their registries *and* as plain attributes,
    # so reading `self.weight` in forward() is an ordinary (fast) attribute lookup.
    def __setattr__(self, name: str, value) -> None:
        """Register Parameters and Modules under `name` (keeping the place of a name assigned
        again), as torch does; None keeps a registered name registered."""
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"cannot assign {name!r} before Module.__init__() was called")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in params or name in modules:
            if value is not None:
                kind = "parameter" if name in params else "module"
                raise TypeError(f"cannot assign {type(value).__name__} as {kind} {name!r} "
                                f"({'Parameter' if kind == 'parameter' else 'Module'} or None "
                                "expected)")
            (params if name in params else modules)[name] = None
        elif name in buffers:
            buffers[name] = value
        elif value is None and name in getattr(type(self), "_optional_parameters", ()):
            params[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None")
        setattr(self, name, param)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that belongs to the module's state (saved in state_dict) but is not learned."""
        object.__setattr__(self, name, tensor)
        self._buffers[name] = tensor
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        setattr(self, name, module)
        self._modules[name] = module

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", memo: set | None = None
                      ) -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix: str = "", recurse: bool = True
                         ) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) in definition order; a parameter shared by two modules comes once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for mod_prefix, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{mod_prefix}.{name}" if mod_prefix else name), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    # ------------------------------------------------------------------ modes and dtypes
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad._data[...] = 0

    def to(self, *args, **kwargs) -> Module:
        """to(device), to(dtype), to(device, dtype), to(tensor): move and/or cast the
        parameters and buffers in place (the Parameter objects stay the same, so an optimizer
        built before keeps working); only floating ones change dtype, as in torch. Returns
        self."""
        dev, dtype = parse_to(args, kwargs)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to: expected a floating dtype, got {dtype}")
        if dev is not None:
            backend.for_device(dev)  # a device that cannot be reached fails before any change
        for t in list(self.parameters()) + list(self.buffers()):
            _convert(t, dev, dtype)
            if t.grad is not None:
                _convert(t.grad, dev, dtype)
        return self

    def cpu(self) -> Module:
        """Move every parameter and buffer to the host."""
        return self.to("cpu")

    def cuda(self, device=None) -> Module:
        """Move every parameter and buffer to a CUDA device (the current one by default)."""
        dev = backend.as_device("cuda" if device is None else device)
        if dev.type != "cuda":
            raise ValueError(f"cuda: expected a CUDA device, got {dev}")
        return self.to(dev)

    def double(self) -> Module:
        return self.to(dtypes.float64)

    def float(self) -> Module:
        return self.to(dtypes.float32)

    def apply(self, fn) -> Module:
        """Call fn on every submodule (children first) and on self, as torch's Module.apply."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers under torch's key names ("0.weight", "fc.bias").
        The tensors share memory with the module (detached), as in torch. A submodule used in
        two places appears under both names, as in torch."""
        state = OrderedDict()
        self._collect_state(state, "")
        return state

    def _collect_state(self, state: OrderedDict, prefix: str) -> None:
        skip = self.__dict__.get("_non_persistent", set())
        for registry in (self._parameters, self._buffers):
            for name, t in registry.items():
                if t is not None and name not in skip:
                    state[prefix + name] = t.detach()
        for name, child in self._modules.items():
            if child is not None:
                child._collect_state(state, f"{prefix}{name}.")

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (ndarrays, retrograd or torch tensors) into the existing parameters,
        casting to their dtype. Everything is validated before anything is copied: a missing,
        unexpected (strict) or wrongly shaped key raises and leaves the module unchanged."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing keys: " + ", ".join(repr(k) for k in missing))
            if unexpected:
                parts.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + "; ".join(parts))
        arrays = {}
        for key, value in state_dict.items():
            if key not in own:
                continue
            array = _to_array(value)
            if array.shape != own[key].shape:
                raise ValueError(f"load_state_dict: {key!r} has shape {array.shape}, "
                                 f"the module expects {own[key].shape}")
            if array.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict: {key!r} has non-numeric dtype {array.dtype}")
            arrays[key] = array
        with no_grad():
            for key, array in arrays.items():
                own[key].copy_(array)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _convert(t: Tensor, dev, dtype) -> None:
    """Move and cast t's array in place (floating dtypes only), bumping its version."""
    data = t._data
    if dev is not None and t.device != backend.for_device(dev).resolve(dev):
        data = backend.move(data, dev)
    if dtype is not None and data.dtype.kind == "f" and data.dtype != dtype:
        data = data.astype(dtype)
    if data is not t._data:
        t._data = data
        t._vc[0] += 1


def _to_array(value):
    """A state_dict value as an array (on its own device; copy_ moves it): a tensor's array,
    a torch tensor's values, or array-like data."""
    if isinstance(value, Tensor):
        value = value._data
    elif hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if not backend.is_array(value):
        value = backend.host.asarray(value)
    return value
