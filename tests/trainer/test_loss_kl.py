"""The k3 KL term's gradient is grad KL(pi_ref || pi) in expectation (trainer/loss.py docstring)."""

import torch

from trainer.loss import pg_loss


def test_k3_gradient_is_the_gradient_of_kl_ref_to_pi():
    theta = torch.tensor([0.3, -1.0, 0.8, 0.1], requires_grad=True)
    ref = torch.log_softmax(torch.tensor([0.0, 0.5, -0.2, 0.4]), -1)
    logp = torch.log_softmax(theta, -1)
    pi = logp.exp().detach()
    # Expectation over y ~ pi of the loss on one token y (advantage 0: only the KL term).
    expected = sum(pi[y] * pg_loss(logp[y].view(1, 1), torch.ones(1, 1), torch.zeros(1), group_size=2,
                                   n_prompts=1, ref_logp=ref[y].view(1, 1), kl_beta=1.0) for y in range(4))
    (g_k3,) = torch.autograd.grad(expected, theta)
    kl_ref_pi = (ref.exp() * (ref - torch.log_softmax(theta, -1))).sum()
    (g_rev,) = torch.autograd.grad(kl_ref_pi, theta)
    kl_pi_ref = (torch.softmax(theta, -1) * (torch.log_softmax(theta, -1) - ref)).sum()
    (g_fwd,) = torch.autograd.grad(kl_pi_ref, theta)
    assert torch.allclose(g_k3, g_rev, atol=1e-6)
    assert not torch.allclose(g_k3, g_fwd, atol=1e-3)  # not the gradient of the KL it estimates
