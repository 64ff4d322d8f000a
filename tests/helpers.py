"""A tiny backend for tests, loaded the way users load their own: `kind: helpers:MeanColour`."""

import numpy as np
import torch

from vidmem.backends.base import Backend


class MeanColour(Backend):
    """Features = per-channel mean and max of the values fed to the 'network'."""

    feature_dim = 6
    weights = "none (test backend)"
    expected_range = (0.0, 1.0)

    def _extract(self, frames: np.ndarray) -> np.ndarray:
        x = self.spec.to_network_values(torch.from_numpy(frames))
        self.record_range(x.min().item(), x.max().item())
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1).numpy()
