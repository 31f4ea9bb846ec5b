"""The IDEFICS2 preference-model family: templates, label tokens, preference tokens, losses, cached scoring.

Shared by the preference-token model (training and its scorer), ViPer and
zero-shot IDEFICS2. Nothing heavy is imported here; import the submodules:

- ``prefcli.vlm.tokenizer``   the IDEFICS2 tokenizer (offline) and a tiny one
- ``prefcli.vlm.template``    history/target sequences, label tokens
- ``prefcli.vlm.preprocess``  images -> pixel tensors
- ``prefcli.vlm.model``       build_model / PrefVLM / VLMSpec
- ``prefcli.vlm.pref_tokens`` preference tokens P_v
- ``prefcli.vlm.losses``      L_base, L+, L-, L_CP, L_all
- ``prefcli.vlm.scoring``     condition / score_candidates (prefix KV cache)
- ``prefcli.vlm.scorer``      CachedVLMScorer: condition once, score many (preftoken, viper, idefics)
- ``prefcli.vlm.folders``     the model-folder lookup and the shipped tiny models
"""
