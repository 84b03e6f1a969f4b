"""Which models the sequential products describe: a chain of Conv2d/Linear layers with ReLU,
non-overlapping max-pooling and Flatten between them, read from what forward() does."""

from torch import nn

__all__ = ["UnsupportedModel", "pair", "plan"]


class UnsupportedModel(ValueError):
    """A model this operator cannot handle (use HessianOperator)."""


def plan(model: nn.Module) -> tuple[list[nn.Module], list[tuple[nn.Module, list[nn.Module]]]]:
    """(ops before the first affine layer, [(affine module, ops after it)]) or UnsupportedModel.

    The layers are read from what forward() does (traced by torch.fx), not only from the
    modules the model holds: forward must apply its leaf modules to its one input as a chain,
    each once, in the order they are registered, every parameter trainable and none shared."""
    leaves = [m for m in model.modules() if not list(m.children())]
    prefix, layers = [], []
    for module in leaves:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if isinstance(module, nn.Conv2d) and (
                module.groups != 1
                or module.stride != (1, 1)
                or module.dilation != (1, 1)
                or module.padding_mode != "zeros"
                or isinstance(module.padding, str)
            ):
                raise UnsupportedModel(f"{module}: only plain stride-1 convolutions")
            layers.append((module, []))
        elif isinstance(module, (nn.ReLU, nn.MaxPool2d, nn.Flatten)):
            if isinstance(module, nn.MaxPool2d) and not _plain_pool(module):
                raise UnsupportedModel(f"{module}: only non-overlapping max-pooling")
            if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) != (1, -1):
                raise UnsupportedModel(f"{module}: only Flatten(1, -1)")
            (layers[-1][1] if layers else prefix).append(module)
        elif not isinstance(module, (nn.Identity, nn.Dropout)):  # both the identity in eval mode
            raise UnsupportedModel(f"{type(module).__name__} layers are not supported")
    if not layers:
        raise UnsupportedModel("no Conv2d or Linear layer")
    _check_chain(model, leaves)
    return prefix, layers


def _check_chain(model, leaves):
    """UnsupportedModel unless forward() is the chain of `leaves` (see plan)."""
    params = list(model.parameters())
    if any(not p.requires_grad for p in params):
        raise UnsupportedModel("frozen parameters (requires_grad=False)")
    if sum(1 for m in leaves for _ in m.parameters(recurse=False)) != len(params):
        raise UnsupportedModel("parameters shared between layers, or held outside them")
    from torch import fx

    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as err:  # any forward torch.fx cannot follow is simply not a chain
        raise UnsupportedModel(f"forward() cannot be traced ({type(err).__name__})") from None
    skip = (nn.Identity, nn.Dropout)
    names = {id(m): name for name, m in model.named_modules()}
    expected = [names[id(m)] for m in leaves if not isinstance(m, skip)]
    called, previous = [], None
    for node in graph.nodes:
        if node.op == "placeholder" and previous is None:
            previous = node
        elif node.op == "call_module" and node.args == (previous,) and not node.kwargs:
            previous = node
            if not isinstance(model.get_submodule(node.target), skip):
                called.append(node.target)
        elif node.op == "output" and node.args == (previous,):
            break
        else:
            raise UnsupportedModel(f"forward() does more than chain its layers ({node.op} {node.target})")
    if called != expected:
        raise UnsupportedModel("forward() does not apply each layer once, in the order they are registered")


def pair(v: int | tuple[int, ...]) -> tuple[int, ...]:
    """An int or pair of ints as a pair."""
    return (v, v) if isinstance(v, int) else tuple(v)


def _plain_pool(m):
    return (
        pair(m.kernel_size) == pair(m.stride or m.kernel_size)
        and pair(m.padding) == (0, 0)
        and pair(m.dilation) == (1, 1)
        and not m.ceil_mode
        and not m.return_indices
    )
