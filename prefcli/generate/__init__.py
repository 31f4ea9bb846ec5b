"""Reward-guided generation: ReNO's initial-noise optimization towards one person's taste.

`pipelines` turns a diffusers one-step generator into a differentiable map
latent -> image in [0, 1]; `rewards` loads differentiable scorers as weighted
reward terms (personalized ones conditioned once on the history); `reno` runs
the optimization loop; `run` writes one prompt's outputs; `bench` is the
paper's HPSv2 table. Everything heavy (torch, diffusers) is imported inside.
"""
