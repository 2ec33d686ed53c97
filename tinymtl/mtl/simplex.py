"""The small problems gradient surgery solves over the simplex Δ = {w ≥ 0, Σ_i w_i = 1}, solved
exactly: MGDA's min-norm point and CAGrad's conflict-averse weights.

Both depend on the T task gradients g_i (flattened, d numbers each) only through their inner
products, so they are T × T problems. They are reduced without losing precision: with
Gᵀ = Q R (a QR factorisation of the d × T matrix of gradients), g_i = Q r_i, hence

    ‖Σ_i w_i g_i‖ = ‖R w‖   and   g_i · g_j = r_i · r_j,

and everything below works on the T columns r_i of R. (The Gram matrix G Gᵀ would do too, but
it squares the condition number: gradients whose norms differ by 10⁶ would lose 12 digits.)

Exactly, not approximately: a convex problem over Δ has its minimiser in the relative interior
of some face of Δ, a subset S of the tasks, where it also minimises over the affine hull of S,
which is a small linear least-squares problem. Trying every face (2^T − 1 of them: 7 for three
tasks, 1023 for ten) and keeping the best feasible answer gives the exact optimum, whatever the
scales, angles or degeneracies. Each answer can be checked by its certificate
(``min_norm_gap``, ``conflict_averse_gap``: the Frank-Wolfe duality gap, ≥ F(w) − F*).
"""

import itertools

import numpy as np

MAX_EXACT_TASKS = 12  # MGDA beyond it (4095 faces): an iteration stopped on its certificate
# (CAGrad always tries every face: fine to a dozen tasks, slow well beyond; gradient surgery
# with that many tasks is rare, and its answer stays exact)


def reduced(grads):
    """The T × T (or d × T when d < T) matrix R whose columns reproduce the gradients' inner
    products: Gᵀ = Q R."""
    G = np.stack([np.asarray(g, dtype=np.float64).ravel() for g in grads])
    return np.linalg.qr(G.T, mode="r")


def faces(count):
    """Every non-empty subset of range(count), smallest first (ties prefer small supports)."""
    for size in range(1, count + 1):
        yield from itertools.combinations(range(count), size)


def _on_face(weights_on_face, face, count):
    """Full weights from a face's (clip tiny negatives from rounding, renormalise), or None
    when nothing positive is left."""
    w = np.zeros(count)
    w[list(face)] = np.maximum(weights_on_face, 0.0)
    total = w.sum()
    return w / total if total > 0 else None


# -- MGDA: the min-norm point of the gradients' convex hull ---------------------------------------
def affine_min_norm(points):
    """Weights summing to 1 (any sign) that minimise ‖points @ w‖: with p_0 the first column
    and D = [p_j − p_0], w = (1 − Σ z, z) where z = argmin ‖p_0 + D z‖ (least squares)."""
    first = points[:, 0]
    if points.shape[1] == 1:
        return np.ones(1)
    z = np.linalg.lstsq(points[:, 1:] - first[:, None], -first, rcond=None)[0]
    return np.concatenate([[1.0 - z.sum()], z])


def min_norm_gap(R, w):
    """The certificate of w for min_{w ∈ Δ} ‖R w‖²: with u = R w, ‖u‖² − min_i r_i · u ≥ 0, and
    0 exactly at the optimum (there every r_i · u ≥ ‖u‖²)."""
    u = R @ w
    return float(u @ u - (R.T @ u).min())


def min_norm_point(R):
    """argmin_{w ∈ Δ} ‖R w‖², exactly (module docstring): every face's affine minimiser, the
    feasible one of smallest norm."""
    count = R.shape[1]
    if count > MAX_EXACT_TASKS:
        return _min_norm_iterative(R)
    best, best_value = None, np.inf
    for face in faces(count):
        on_face = affine_min_norm(R[:, face])
        if on_face.min() < -1e-9:
            continue  # the affine minimiser lies outside this face of the simplex
        w = _on_face(on_face, face, count)
        if w is None:
            continue
        u = R @ w
        value = float(u @ u)
        if value < best_value:  # ties keep the smaller face (faces come smallest first)
            best, best_value = w, value
    return best


def _min_norm_iterative(R, tolerance=1e-12, iterations=200_000):
    """Many tasks: projected gradient with Nesterov momentum, stopped when the certificate
    ``min_norm_gap`` is below ``tolerance`` × max_i ‖r_i‖²."""
    count = R.shape[1]
    gram = R.T @ R
    scale = max(float(np.diag(gram).max()), 1e-300)
    step = 1.0 / (2 * np.linalg.eigvalsh(gram)[-1] + 1e-300)
    w = momentum = np.full(count, 1 / count)
    t = 1.0
    for _ in range(iterations):
        previous = w
        w = project_to_simplex(momentum - step * 2 * (gram @ momentum))
        if min_norm_gap(R, w) <= tolerance * scale:
            break
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        momentum = w + (t - 1) / t_next * (w - previous)
        t = t_next
    return w


def project_to_simplex(v):
    """The Euclidean projection of v onto Δ."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1
    k = np.nonzero(u - cumulative / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - cumulative[k] / (k + 1), 0)


# -- CAGrad: the conflict-averse weights ----------------------------------------------------------
def conflict_averse_objective(R, b, c, w):
    """F(w) = b · w + c ‖R w‖."""
    return float(b @ w + c * np.linalg.norm(R @ w))


def conflict_averse_gap(R, b, c, w):
    """The certificate of w for min_{w ∈ Δ} F(w): the Frank-Wolfe gap
    g · w − min_i g_i ≥ F(w) − F* for a subgradient g of F at w (F is convex), 0 at the
    optimum. Where R w ≠ 0, g = ∇F = b + c Rᵀ R w / ‖R w‖. Where R w = 0 (0 is in the hull),
    the subgradients are b + c Rᵀ y with ‖y‖ ≤ 1, and w is optimal when one of them is equal on
    w's support and no smaller elsewhere: ``_kink_certificate`` looks for it (inf if none)."""
    v = R @ w
    norm = np.linalg.norm(v)
    if norm > 1e-10 * max(float(np.sqrt((R * R).sum(0).max())), 1e-300):
        gradient = b + c * (R.T @ v) / norm
        return float(gradient @ w - gradient.min())
    return _kink_certificate(R, b, c, w)


def _kink_certificate(R, b, c, w):
    """At R w = 0: the least-norm y that makes g = b + c Rᵀ y equal to λ on the support S of w
    and on a set A of other tasks (every A tried), with g_i ≥ λ for the rest; the gap
    g · w − min_i g_i of the first such y with ‖y‖ ≤ 1, or inf."""
    support = list(np.nonzero(w > 1e-12)[0])  # (weights of rounding size are not support)
    others = [i for i in range(len(b)) if i not in support]
    scale = max(float(np.abs(b).max()), 1e-300)
    for extra in [()] + list(faces(len(others))):
        tight = support + [others[k] for k in extra]
        first, rest = tight[0], tight[1:]
        if rest:
            differences = c * (R[:, rest] - R[:, [first]]).T
            y = np.linalg.lstsq(differences, b[first] - b[rest], rcond=None)[0]
        else:
            y = np.zeros(R.shape[0])
        gradient = b + c * (R.T @ y)
        if np.linalg.norm(y) <= 1 + 1e-9 and \
                gradient.min() >= gradient[first] - 1e-9 * scale:
            return max(0.0, float(gradient @ w - gradient.min()))
    return np.inf


def conflict_averse_weights(R, g0, c):
    """argmin_{w ∈ Δ} F(w) = g_0 · (R w) + c ‖R w‖, exactly: CAGrad's inner problem (R:
    ``reduced``; g_0 the mean gradient in the same coordinates; c = √φ).

    F depends on w through v = R w only, F = g_0 · v + c ‖v‖, minimised over the hull of the
    columns r_i. On one face S (affinely independent r_S) the minimum over the affine hull has a
    closed form: write v = v_0 + U t, with v_0 the point of the hull nearest 0 (h = ‖v_0‖, and
    v_0 ⊥ U, U an orthonormal basis of the directions r_j − r_k); then
    F = g_0 · v_0 + a · t + c √(h² + ‖t‖²) with a = Uᵀ g_0. If ‖a‖ < c it is least at
    t* = −a h / √(c² − ‖a‖²) (setting its gradient a + c t / √(h² + ‖t‖²) to 0); if ‖a‖ ≥ c
    it decreases without bound along −a, so the face's minimum is on its boundary, a smaller
    face. The minimiser over the hull lies inside one such face (Carathéodory), so the best
    feasible face answer is the exact optimum; w is v*'s barycentric coordinates on the face."""
    count = R.shape[1]
    scale = max(float(np.sqrt((R * R).sum(0).max())), 1e-300)
    best, best_value = None, np.inf
    for face in faces(count):
        points = R[:, list(face)]
        first = points[:, 0]
        if len(face) == 1:
            v, on_face = first, np.ones(1)
        else:
            D = points[:, 1:] - first[:, None]
            if D.shape[1] > D.shape[0]:
                continue  # more points than the dimension allows: affinely dependent
            k = D.shape[1]
            Q, triangular = np.linalg.qr(np.hstack([D, first[:, None]]))
            if np.abs(np.diag(triangular)[:k]).min() <= 1e-12 * scale:
                continue  # affinely dependent: a smaller face holds the same points
            U = Q[:, :k]
            # v_0 = first minus its projection on the directions: the last QR column, which
            # keeps its precision when v_0 is tiny (where first − U Uᵀ first would cancel)
            v0 = Q[:, k] * triangular[k, k] if Q.shape[1] > k else np.zeros_like(first)
            a, h = U.T @ g0, float(np.linalg.norm(v0))
            norm_a = float(np.linalg.norm(a))
            if norm_a >= c:
                continue  # unbounded below on the affine hull: the minimum is on the boundary
            v = v0 - U @ a * (h / np.sqrt((c - norm_a) * (c + norm_a)))
            z = np.linalg.lstsq(D, v - first, rcond=None)[0]
            on_face = np.concatenate([[1.0 - z.sum()], z])
            if on_face.min() < -1e-9:
                continue  # the affine minimiser lies outside this face of the simplex
        w = _on_face(on_face, face, count)
        if w is None:
            continue
        value = conflict_averse_objective(R, R.T @ g0, c, w)
        if value < best_value:
            best, best_value = w, value
    return _newton_on_face(R, R.T @ g0, c, best)


def _newton_on_face(R, b, c, w, steps=8):
    """A few Newton steps on F restricted to w's face (Σ w = 1 kept, w ≥ 0 kept by
    backtracking), kept only while they lower the certificate: the closed form loses digits
    when ‖a‖ is close to c, which badly scaled gradients make happen.

    The steps move within the face's plane Σ x = 1 through its own coordinates, x + Z u with
    Z = [I; −1ᵀ] (each direction e_i − e_last), solving (Zᵀ H Z) u = −Zᵀ ∇F. (A KKT system
    with the constraint as a row would mix entries of 1 with curvatures of 10¹⁵ when gradient
    norms differ by 10⁸, and lose the constraint to rounding.)"""
    support = np.nonzero(w > 0)[0]
    if len(support) < 2 or np.linalg.norm(R @ w) == 0:
        return w
    P, size = R[:, support], len(support)
    best, best_gap = w, conflict_averse_gap(R, b, c, w)
    x = w[support].copy()
    for _ in range(steps):
        v = P @ x
        norm = float(np.linalg.norm(v))
        if norm == 0:
            break  # at the kink R w = 0: no Newton step there
        pv = P.T @ v
        gradient = b[support] + c * pv / norm
        hessian = c * (P.T @ P / norm - np.outer(pv, pv) / norm ** 3)
        Z = np.vstack([np.eye(size - 1), -np.ones((1, size - 1))])
        reduced_hessian = Z.T @ hessian @ Z
        scale = float(np.abs(reduced_hessian).max())
        if not scale > 0:
            break  # flat along the face: no Newton step
        with np.errstate(over="ignore", invalid="ignore"):
            step = Z @ np.linalg.lstsq(reduced_hessian / scale, -(Z.T @ gradient) / scale,
                                       rcond=None)[0]
        if not np.isfinite(step).all():
            break
        while step.size and (x + step).min() < 0:
            step = step / 2
            if np.abs(step).max() < 1e-18:
                return best
        x = x + step
        candidate = np.zeros(len(w))
        candidate[support] = x / x.sum()
        gap = conflict_averse_gap(R, b, c, candidate)
        if gap >= best_gap:
            break
        best, best_gap = candidate, gap
    return best
