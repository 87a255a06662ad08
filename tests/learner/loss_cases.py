"""Small hand-built inputs shared by the loss tests."""
import math

import torch


def peaked_row(vocab, winner, sharpness):
    row = torch.zeros(vocab)
    row[winner] = sharpness
    return row


def forking_sequence(sampled_is_top1=True):
    """One sequence of 5 tokens, V=4. Tokens 0-3 are peaked (low entropy); token 4 is near-uniform
    (highest entropy) and is the only one above the 0.8-quantile: tau = h3 + 0.2 (h4 - h3).
    Returns logits [1,5,4], tokens [1,5] where each sampled token is its row's argmax unless
    sampled_is_top1 is False for the forking token."""
    rows = [peaked_row(4, 1, 4.0), peaked_row(4, 2, 5.0), peaked_row(4, 0, 6.0), peaked_row(4, 3, 3.0),
            torch.tensor([0.3, 0.2, 0.1, 0.0])]
    logits = torch.stack(rows)[None].clone()
    tokens = torch.tensor([[1, 2, 0, 3, 0 if sampled_is_top1 else 2]])
    return logits, tokens


def on_policy_old_logprobs(logits, tokens):
    return torch.log_softmax(logits.detach().double(), -1).gather(-1, tokens[..., None])[..., 0].float()


LN2 = math.log(2.0)
