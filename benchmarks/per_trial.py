"""What each trial's slot spent beyond training, from finished searches' evidence
(`evidence.utilisation.per_trial` of recommendation.json): per search the trials, the seconds beyond
training (min, median, max) and the trial with the most (its span and its training seconds).

    .venv/bin/python benchmarks/per_trial.py OUT [OUT ...]   (search output folders)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    print(f"{'search':<40} {'trials':>6} {'min s':>6} {'median s':>9} {'max s':>6}  longest (span s / trained s)")
    for out in sys.argv[1:]:
        trials = json.loads((Path(out) / "recommendation.json").read_text())["evidence"]["utilisation"]["per_trial"]
        beyond = sorted((t["beyond_training_s"], key) for key, t in trials.items() if t["beyond_training_s"] is not None)
        top = trials[beyond[-1][1]]
        print(f"{out[-40:]:<40} {len(trials):>6} {beyond[0][0]:>6.2f} {beyond[len(beyond) // 2][0]:>9.2f} "
              f"{beyond[-1][0]:>6.2f}  {beyond[-1][1]} ({top['span_s']:.2f} / {top['trained_s']:.2f})")


if __name__ == "__main__":
    main()
