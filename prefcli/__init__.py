"""prefcli: personalized image-preference prediction.

Kept import-light on purpose: `prefcli --help` must not pull in torch.
"""

__version__ = "0.1.0"
