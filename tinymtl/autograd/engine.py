"""Reverse-mode differentiation over the recorded graph.

1. Order: collect every tensor that leads to the outputs, parents before children.
2. Sweep that order backwards: each non-leaf hands its gradient to its Function's ``backward``,
   which returns one gradient per input; each is reduced to its input's shape (``sum_to``) and
   added to what that input already received.
3. Leaves (parameters and inputs created by the user) receive ``grad +=``.

``backward`` accumulates into ``.grad`` like PyTorch. ``grad`` returns the gradients of some
outputs with respect to chosen tensors *without* touching ``.grad`` — what multi-task methods
such as PCGrad need: one gradient per task loss, collected before any update.

The engine imports nothing of the rest of autograd (a Tensor is whatever has ``_ctx``,
``data`` and ``requires_grad``), so ``Tensor.backward`` can call it without an import cycle.
"""


def sum_to(grad, shape):
    """Sum ``grad`` over the axes that broadcasting expanded, so it gets ``shape`` back.

    If y = x + b with b of shape (C,) broadcast to (N, C), then dL/db = sum over N of dL/dy.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + k for k, size in enumerate(shape) if size == 1 and grad.shape[lead + k] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _topological_order(roots):
    """Tensors that require grad and lead to ``roots``, each after all of its inputs."""
    order, seen = [], set()
    stack = [(root, False) for root in roots]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        if tensor._ctx is not None:
            stack.extend((t, False) for t in tensor._ctx.inputs
                         if t.requires_grad and id(t) not in seen)
    return order


def graph_bytes(*outputs):
    """Bytes the graph recorded behind ``outputs`` keeps alive until backward runs: every op's
    result and the arrays it saved for its backward, but not the leaves' (weights and inputs,
    which exist anyway). This is a step's activation memory, the part that grows with the
    batch size."""
    order = _topological_order(outputs)
    leaves = {id(t.data) for tensor in order if tensor._ctx is not None
              for t in tensor._ctx.inputs if t._ctx is None}
    arrays = {}
    for tensor in order:
        if tensor._ctx is None:
            continue
        for array in (tensor.data,) + tuple(tensor._ctx.saved_tensors):
            owner = array if getattr(array, "base", None) is None else array.base
            if hasattr(array, "nbytes") and id(array) not in leaves and id(owner) not in leaves:
                arrays[id(owner)] = owner.nbytes
    return sum(arrays.values())


def _run(roots, root_grads, retain_graph, wanted=None):
    """The backward sweep. With ``wanted`` (ids), return their gradients instead of accumulating,
    and sweep only the tensors on a path to one of them (the gradient w.r.t. an intermediate
    result, e.g. a shared representation, stops there and costs only the layers above it)."""
    order = _topological_order(roots)
    if wanted is not None:  # only what leads to a wanted tensor needs its gradient
        needed = set()
        for tensor in order:  # inputs before the tensors made from them
            if id(tensor) in wanted or (tensor._ctx is not None and any(
                    id(t) in needed for t in tensor._ctx.inputs)):
                needed.add(id(tensor))
        if not retain_graph:  # what is skipped is freed all the same
            for tensor in order:
                if id(tensor) not in needed and tensor._ctx is not None:
                    tensor._ctx.release()
        order = [t for t in order if id(t) in needed]
    grads = {}
    for root, grad in zip(roots, root_grads):
        grads[id(root)] = grad if id(root) not in grads else grads[id(root)] + grad
    found = {}
    for tensor in reversed(order):
        grad = grads.pop(id(tensor), None)
        if grad is None:
            continue
        if wanted is not None and id(tensor) in wanted:
            found[id(tensor)] = grad
        ctx = tensor._ctx
        if ctx is None:
            if wanted is None:
                tensor._accumulate_grad(grad)
            continue
        if wanted is None and tensor._retains_grad:
            tensor._accumulate_grad(grad)
        if ctx.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time; pass retain_graph=True "
                "to the first backward() or grad() call")
        input_grads = ctx.backward(grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, parent_grad, needed in zip(ctx.inputs, input_grads, ctx.needs_input_grad):
            if not needed or parent_grad is None:
                continue
            parent_grad = sum_to(parent_grad, parent.data.shape)
            assert parent_grad.shape == parent.data.shape, (type(ctx).__name__, parent.shape)
            assert parent_grad.dtype == parent.data.dtype, (  # a float32 graph stays float32
                type(ctx).__name__, parent.data.dtype, parent_grad.dtype)
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
        if not retain_graph:
            ctx.release()
    return found


def backward(output, grad=None, retain_graph=False):
    """Accumulate d(output)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    if not output.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    _run([output], [_as_array(output, grad)], retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=False, allow_unused=False):
    """Gradients of sum(outputs) with respect to each of ``inputs``, as arrays; ``.grad`` untouched.

    ``allow_unused=True`` gives ``None`` for an input the outputs do not depend on (else error).
    """
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    seeds = [_as_array(out, g) for out, g in zip(outputs, grad_outputs)]
    found = _run(outputs, seeds, retain_graph, wanted={id(t) for t in inputs})
    result = []
    for index, tensor in enumerate(inputs):
        if id(tensor) not in found:
            if not allow_unused:
                raise RuntimeError(
                    f"input {index} (shape {tensor.shape}) was not used to compute the outputs; "
                    "pass allow_unused=True to get None for it")
            result.append(None)
        else:
            result.append(found[id(tensor)])
    return result


def _as_array(output, grad):
    """The seed gradient for ``output``: ones for a scalar, else the given Tensor's/array's values."""
    if grad is None:
        if output.data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs, got shape {output.shape}")
        return output.xp.ones_like(output.data)
    values = grad.data if type(grad).__name__ == "Tensor" else grad
    if values.shape != output.data.shape:
        raise RuntimeError(f"gradient shape {values.shape} does not match output {output.shape}")
    return values
