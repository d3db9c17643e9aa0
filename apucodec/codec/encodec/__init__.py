"""The EnCodec family (torch): SEANet encoder/decoder with LSTMs, RVQ, and the `encodec` package's state dicts."""
