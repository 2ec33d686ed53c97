"""Differentiable operations, grouped as a reader learns them: elementwise, reductions, shapes,
matrix products, convolution, pooling, the neural-network ops (dropout, embedding, norms,
cross-entropy), and segment ops (per-node sums, maxima and softmaxes: message passing). Each
file holds Functions (forward + backward) and the lowercase wrappers."""
