"""The PyTorch side of APU-Codec: config, networks, residual vector quantizer, losses, training, checkpoints.

Everything here imports torch; the deployed runtime never imports this package.
"""
