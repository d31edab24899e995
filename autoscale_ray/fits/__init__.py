"""Table-level fits: each law of `autoscale_ray.laws` applied to a runs table (or mixture files),
with the table's checks and the file named in every error. The verbs and the predictor call these;
they print nothing and import no Ray.

- `ddo`: the DDO optimum mixture of one budget's perturbation runs (AutoScale).
- `project`: DDO optima at >= 2 budgets projected to a target budget (AutoScale).
- `lr_law`: the LR-horizon law LR*(D) from LR sweeps (Bjorck et al.).
- `law`: L(N, D) / L(D) from checkpoints (Chinchilla approach 3, Epoch's refit).
- `regress`: a RegMix-style regression from mixture weights to a loss.
- `mixlaw`: a mixture x scale law (Data Mixing Laws' nested form or a joint L(w, N, D)) from runs at
  several model sizes and mixtures; per-domain losses at (N, D) and the optimal mixture.
"""
