"""Training the preference-token model family: configs, data, the Accelerate loop, checkpoints, dry runs.

Nothing heavy is imported here; import the submodules:

- ``prefcli.train.config``      typed configs (YAML/TOML), the shipped ones by name
- ``prefcli.train.data``        training samples: a target pair + an N_ref history of the same user
- ``prefcli.train.loop``        ``train(cfg, ...)``: stages, losses, validation, metrics, resume
- ``prefcli.train.checkpoint``  safetensors checkpoints, atomic, last K kept; ``load_checkpoint``
- ``prefcli.train.dryrun``      full-size parameter counts and a GPU memory estimate, offline
- ``prefcli.train.pretrained``  trained tiny checkpoints shipped with the package
"""
