"""`prefcli analyze`: what a trained preference model has learned, as figures and tables.

- ``tokens``: each preference token's nearest vocabulary tokens (the paper's table 7);
- ``attention``: attention between a target image's tokens and the preference
  tokens, per user, over several history orders (figure 3);
- ``clusters``: users clustered by the final-token embedding of one fixed
  target (table 5), checked against the true taste groups on a synthetic world;
- ``history``: accuracy against N_ref and the seen/unseen gap (figures 5 and 6)
  from ``prefcli bench`` results.

Every command writes one JSON document of the shape ``report.envelope``
builds, plus its figure (PNG/PDF/SVG) and tables (Markdown/LaTeX/CSV).
Nothing here is imported by ``prefcli --help``.
"""
