"""The policy-gradient loss (eq. 8): G/(G-1) factor, batch reduction, masking, PPO and KL options."""

import pytest
import torch

from trainer.batch import build_batch
from trainer.loss import pg_loss, token_logprobs


def _one_token_rows(seq_logps):
    """Rows whose single masked token has the given log-prob (so sum over local tokens = it)."""
    logp = torch.tensor([[lp, -7.0] for lp in seq_logps], requires_grad=True)
    mask = torch.tensor([[True, False]] * len(seq_logps))  # the -7 entries are prompt/padding
    return logp, mask


def test_g_over_g_minus_one_factor():
    # G=2: sum A*logp = 1*(-2) + (-1)*(-3) = 1 -> loss = -(2/1) * 1 = -2
    logp, mask = _one_token_rows([-2.0, -3.0])
    assert pg_loss(logp, mask, torch.tensor([1.0, -1.0]), group_size=2, n_prompts=1).item() == pytest.approx(-2.0)
    # G=4: sum = -.75 + .5 + .75 + 1 = 1.5 -> loss = -(4/3) * 1.5 = -2
    logp, mask = _one_token_rows([-1.0, -2.0, -3.0, -4.0])
    adv = torch.tensor([0.75, -0.25, -0.25, -0.25])
    assert pg_loss(logp, mask, adv, group_size=4, n_prompts=1).item() == pytest.approx(-2.0)
    # batch reduction: the mean over prompts of the per-prompt estimator
    assert pg_loss(logp, mask, adv, group_size=4, n_prompts=2).item() == pytest.approx(-1.0)


def test_gradient_is_minus_factor_times_advantage_on_local_tokens_only():
    logp = torch.zeros((2, 3), requires_grad=True)
    mask = torch.tensor([[False, True, True], [False, True, False]])
    pg_loss(logp, mask, torch.tensor([0.5, -0.5]), group_size=2, n_prompts=1).backward()
    # d/dlogp = -(G/(G-1)) * A / B on masked entries: -2 * 0.5 = -1, -2 * -0.5 = +1
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -1.0, -1.0], [0.0, 1.0, 0.0]]))


def test_sum_not_mean_over_tokens():
    mask = torch.tensor([[True, True, True, True]])
    logp = torch.full((1, 4), -1.0)
    # 4 tokens of -1 -> sequence log-prob -4, A = 1, G=2 -> -(2)*(-4) = 8
    assert pg_loss(logp, mask, torch.tensor([1.0]), group_size=2, n_prompts=1).item() == pytest.approx(8.0)


def test_ppo_at_ratio_one_matches_plain_and_clips_away_from_it():
    logp, mask = _one_token_rows([-1.0, -2.0])
    adv = torch.tensor([1.0, -1.0])
    plain = pg_loss(logp, mask, adv, group_size=2, n_prompts=1)
    g_plain = torch.autograd.grad(plain, logp)[0]
    ppo = pg_loss(logp, mask, adv, group_size=2, n_prompts=1, old_logp=logp.detach())
    g_ppo = torch.autograd.grad(ppo, logp)[0]
    torch.testing.assert_close(g_ppo, g_plain)
    # ratio e^1 > 1+eps with A > 0: clipped, no gradient for that token
    old = torch.tensor([[-2.0, -7.0], [-2.0, -7.0]])
    clipped = pg_loss(logp, mask, adv, group_size=2, n_prompts=1, old_logp=old, clip_eps=0.2)
    assert torch.autograd.grad(clipped, logp)[0][0, 0].item() == 0.0


def test_kl_term_is_zero_at_reference_and_positive_away():
    logp, mask = _one_token_rows([-1.0, -2.0])
    adv = torch.zeros(2)
    assert pg_loss(logp, mask, adv, group_size=2, n_prompts=1, ref_logp=logp.detach(), kl_beta=0.5).item() == 0.0
    # k3 at d = ref - logp = -1 (first row only): e^-1 + 1 - 1 = 0.3679; beta 0.5 -> 0.1839
    ref = torch.tensor([[-2.0, 0.0], [-2.0, 0.0]])
    val = pg_loss(logp, mask, adv, group_size=2, n_prompts=1, ref_logp=ref, kl_beta=0.5).item()
    assert val == pytest.approx(0.5 * (torch.exp(torch.tensor(-1.0)).item()), rel=1e-5)


def test_rejects_group_of_one():
    logp, mask = _one_token_rows([-1.0])
    with pytest.raises(ValueError, match="G >= 2"):
        pg_loss(logp, mask, torch.tensor([1.0]), group_size=1, n_prompts=1)


def test_token_logprobs_alignment():
    # logits favour token (position + 1) % 3; ids follow that pattern -> log-probs of the max
    logits = torch.full((1, 3, 3), -10.0)
    for t in range(3):
        logits[0, t, (t + 1) % 3] = 10.0
    ids = torch.tensor([[0, 1, 2]])
    lp = token_logprobs(logits, ids)
    assert lp.shape == (1, 2)
    assert torch.all(lp > -1e-6)


def test_build_batch_masks_exactly_the_completion():
    ids, attn, mask = build_batch([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 1, 2], [8, 3, 4, 9, 0]]
    assert attn.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    # mask[j] marks target ids[j+1]: row 0 targets 1,2 at j=2,3; row 1 targets 3,4,9 at j=0,1,2
    assert mask.tolist() == [[False, False, True, True], [True, True, True, False]]
