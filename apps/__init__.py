"""The command lines of batchenv (the application layer).

==========  =====================================================================================
train       ``python train.py`` / ``batchenv-train``: train an RL scheduler with Stable-Baselines3
evaluate    ``python evaluate.py`` / ``batchenv-evaluate``: compare schedulers on scenarios
verify      ``python verify.py`` / ``batchenv-verify``: model checking of the batching system
tune        ``python -m apps.tune`` / ``batchenv-tune``: grid search of the timeout baselines
optimal     ``python -m apps.optimal`` / ``batchenv-optimal``: the exact SMDP optimum for several rates
==========  =====================================================================================

Library packages (``batchenv``, ``agents``, ``execution``, ``evaluation``, ``formal``) never import
this package.
"""
