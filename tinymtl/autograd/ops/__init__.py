"""Differentiable operations, grouped as a reader learns them: elementwise, reductions, shapes,
matrix products, convolution, pooling, and the neural-network ops (dropout, embedding, norms,
cross-entropy). Each file holds Functions (forward + backward) and the lowercase wrappers."""
