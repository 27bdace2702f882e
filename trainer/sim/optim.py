"""Optimizers on the simulator's logits: SGD and Adam with torch.optim.AdamW's arithmetic.

The real runs use AdamW (trainer/train.py); on a zero gradient Adam still moves the parameters on
its momentum, which is what `train.skip_zero_steps` avoids. Both minimise: pass the loss gradient.
"""

from __future__ import annotations

import numpy as np


class Sgd:
    def __init__(self, lr: float):
        self.lr = lr

    def step(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return params - self.lr * grad


class Adam:
    """torch.optim.AdamW defaults: betas (0.9, 0.999), eps 1e-8, decoupled weight decay, bias correction."""

    def __init__(self, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.wd, (self.b1, self.b2), self.eps = lr, weight_decay, betas, eps
        self.m = self.v = None
        self.t = 0

    def step(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.m is None:
            self.m, self.v = np.zeros_like(params), np.zeros_like(params)
        self.t += 1
        params = params * (1 - self.lr * self.wd)
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        return params - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def clip_grad_norm(grad: np.ndarray, max_norm: float) -> tuple[np.ndarray, float]:
    """torch.nn.utils.clip_grad_norm_: scale to max_norm when the norm exceeds it -> (grad, norm before)."""
    norm = float(np.sqrt((grad * grad).sum()))
    if norm > max_norm:
        grad = grad * (max_norm / (norm + 1e-6))
    return grad, norm
