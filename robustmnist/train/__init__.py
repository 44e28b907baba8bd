"""Training the zoo's architectures: ``loop.train`` (behind ``robustmnist train``, ``zoo`` and the
demo) returns a ``run.TrainRun``.

Modules: ``options`` (choices and callback types), ``batches`` (validation split, pixel
scaling), ``augment`` (shift-catalog augmentation), ``checks`` (argument checks and the sanity
guards), ``loop`` (the epochs), ``run`` (the finished run and how it is saved), ``export``
(TorchScript). This file imports nothing: ``robustmnist --help`` reads ``options`` without
loading torch.
"""
