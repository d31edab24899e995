"""The search, in the order data flows (the Tune searchers themselves are in searchers/):

- `specs.py`: the trials each stage asks for (`TrialSpec`: LR sweeps, DDO perturbations).
- `refine.py`: DDO refinement rounds centred at the last optimum, and when to stop them.
- `contract.py`: what every trial of a search shares (`TrialContract`), built once from the config.
- `trial.py`: the Tune trainable: one suggestion + the contract -> one proxy run (`ProxyJob`).
- `progress.py`: progress lines and progress.json (a Tune callback).
- `layout.py`: the output store's names, readers and writers (done/, trained/, corpus/, ...).
- `folder.py`: the output folder as a search folder: marker, lock, what --restart may delete.
"""
