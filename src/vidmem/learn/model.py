"""The reference model "v2.1": an LSTM whose initial state is computed from the input."""

from __future__ import annotations

import torch
from torch import nn


class MemorabilityLSTM(nn.Module):
    """LSTM regressor over per-frame features, [batch, frames, features] → [batch] scores.

    As in the reference report, two separate fully-connected layers produce the initial hidden
    state h0 and cell state c0 ([num_layers, batch, hidden]) from the input, instead of zeros or
    noise. They read the mean over frames, so any sequence length ≥ 1 works with one set of
    weights. The score comes from a linear head on the last frame's output.
    """

    def __init__(self, input_size: int, hidden_size: int = 1024, num_layers: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.init_h = nn.Linear(input_size, num_layers * hidden_size)
        self.init_c = nn.Linear(input_size, num_layers * hidden_size)
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, 1)

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        summary = x.mean(dim=1)
        shape = (x.shape[0], self.num_layers, self.hidden_size)
        h0 = self.init_h(summary).view(shape).transpose(0, 1).contiguous()
        c0 = self.init_c(summary).view(shape).transpose(0, 1).contiguous()
        return h0, c0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] != self.input_size:
            raise ValueError(f"expected [batch, frames>=1, {self.input_size}], got {list(x.shape)}")
        output, _ = self.lstm(x, self.initial_state(x))
        return self.head(output[:, -1]).squeeze(-1)
