"""Serving: the binary wire protocol, the model backends (in-process or TorchServe) and the
TorchServe archives, versions and processes."""
