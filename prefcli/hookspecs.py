"""Every hook a prefcli plugin can implement.

Hooks are named `register_<thing>(register)` and receive a callback, so a
plugin never touches prefcli's registries directly. Hooks only ever gain
parameters; an implementation may accept any subset of them.
"""

import pluggy

hookspec = pluggy.HookspecMarker("prefcli")
hookimpl = pluggy.HookimplMarker("prefcli")


@hookspec
def register_scorers(register):
    """Register scorers: call `register(ScorerSpec(...))` once per scorer.

    The spec names a lazy "module:Class" factory; import nothing heavy
    (torch, transformers) at module level, so `prefcli --help` stays fast.
    """
