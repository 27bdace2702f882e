"""The collaboration game of one DA-GRPO step, as pure functions of numpy arrays.

A prompt belongs to a difficulty class k (probability weights[k]); the local model answers it
correctly with probability p[k]. The policy is a softmax over two actions per class, logits (K, 2):
action 0 answers locally, action 1 asks for help. Independently of the action a response breaks
the step format with probability f. Rewards and costs are paper eq. 13/14 (alpha_a = 1,
alpha_f = 0.1, alpha_c = 1):

  format broken          r = -0.1, c = 0
  asks, format ok        c = 1, r = 1 if the cloud is right (one cloud answer per prompt, shared
                         by the group's help requests, right with probability cloud_accuracy)
  answers locally, ok    c = 0, r = 1 with probability p[k]

The expected shaped reward of asking minus answering locally in class k is
(1 - f) * (cloud_accuracy - lambda - p[k]), so the best response asks iff
cloud_accuracy - lambda > p[k], and J_c(theta*(lambda)) = (1 - f) * sum_k weights[k] * [p[k] < acc - lambda].
"""

from __future__ import annotations

import numpy as np

ALPHA_F = 0.1  # format penalty (paper table 4 / eq. 13)
LOCAL, ASK = 0, 1


def softmax(logits: np.ndarray) -> np.ndarray:
    """(K, 2) logits -> (K, 2) action probabilities."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def ask_logits(ask_prob) -> np.ndarray:
    """(K,) P(ask) -> (K, 2) logits [0, log(q / (1 - q))] with exactly that softmax."""
    q = np.asarray(ask_prob, dtype=np.float64)
    return np.stack([np.zeros_like(q), np.log(q) - np.log1p(-q)], axis=-1)


def sample_step(rng: np.random.Generator, ask_prob: np.ndarray, p: np.ndarray, weights: np.ndarray,
                batch: int, group: int, cloud_accuracy: float, format_fail: float) -> dict:
    """One step's B prompts x G responses -> classes (B,), asks/format_ok/correct (B, G), rewards, costs (B, G)."""
    classes = rng.choice(len(p), size=batch, p=weights)
    asks = rng.random((batch, group)) < ask_prob[classes][:, None]
    format_ok = rng.random((batch, group)) >= format_fail
    cloud_right = rng.random((batch, 1)) < cloud_accuracy  # one cloud answer per prompt
    local_right = rng.random((batch, group)) < p[classes][:, None]
    correct = format_ok & np.where(asks, cloud_right, local_right)
    rewards = np.where(format_ok, correct.astype(np.float64), -ALPHA_F)
    costs = (asks & format_ok).astype(np.float64)
    return {"classes": classes, "asks": asks, "format_ok": format_ok, "correct": correct,
            "rewards": rewards, "costs": costs}


def grpo_gradient(probs: np.ndarray, classes: np.ndarray, asks: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """The eq. 8 estimator, G/(G-1) * (1/B) * sum_b sum_i A_bi * grad log pi(a_bi | x_b), w.r.t. (K, 2) logits.

    grad_logits log softmax(logits)[a] = onehot(a) - softmax(logits): closed form. This is the
    ascent direction (trainer/loss.py minimises its negative).
    """
    batch, group = adv.shape
    onehot = np.stack([~asks, asks], axis=-1).astype(np.float64)  # (B, G, 2)
    score = onehot - probs[classes][:, None, :]  # (B, G, 2)
    per_prompt = (adv[..., None] * score).sum(axis=1)  # (B, 2)
    grad = np.zeros_like(probs)
    np.add.at(grad, classes, per_prompt)
    return grad * group / (group - 1) / batch


def expected_gradient(probs: np.ndarray, p: np.ndarray, weights: np.ndarray, lam: float,
                      cloud_accuracy: float, format_fail: float) -> np.ndarray:
    """The exact gradient of E[r - lam * c] per response w.r.t. the (K, 2) logits.

    grpo_gradient's mean is G times this: eq. 8 sums G terms (c_i - leave-one-out mean) * score,
    each unbiased for it.
    """
    q = probs[:, ASK]
    d = weights * (1 - format_fail) * (cloud_accuracy - lam - p) * q * (1 - q)  # d/d logit_ask
    return np.stack([-d, d], axis=-1)


def best_response(p: np.ndarray, lam: float, cloud_accuracy: float, temperature: float = 0.0) -> np.ndarray:
    """(K,) P(ask) maximising the shaped reward (temperature 0), or its entropy-smoothed version.

    With temperature T > 0 this maximises E[r - lam * c] + T * entropy per class: a logistic
    sigmoid((acc - lam - p) / T), which makes J_c(lambda) continuous, so an interior fixed point exists.
    """
    gain = cloud_accuracy - lam - np.asarray(p, dtype=np.float64)
    if temperature == 0:
        return (gain > 0).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-gain / temperature))


def expected_ratio(ask_prob: np.ndarray, weights: np.ndarray, format_fail: float) -> float:
    """J_c of a policy: the expected share of responses that ask with the format kept."""
    return float((1 - format_fail) * np.dot(weights, ask_prob))


def lambda_star(tau: float, p: np.ndarray, weights: np.ndarray, cloud_accuracy: float, format_fail: float,
                temperature: float, hi: float = 10.0) -> float:
    """The lambda* > 0 with J_c(best_response(lambda*)) = tau (bisection; J_c falls with lambda)."""
    def jc(lam):
        return expected_ratio(best_response(p, lam, cloud_accuracy, temperature), weights, format_fail)

    if jc(0.0) <= tau:
        raise ValueError(f"no interior fixed point: J_c(0) = {jc(0.0):.4f} <= tau = {tau}")
    lo = 0.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if jc(mid) > tau else (lo, mid)
    return (lo + hi) / 2
