"""DAC (descript-audio-codec) in our own torch code: its architecture, its factorized RVQ and its checkpoint format.

Module names follow DAC's (`encoder.block.N...`, `decoder.model.N...`, `quantizer.quantizers.N.in_proj`), so a
`DAC.save(path, package=False)` state dict loads key for key, and the reference package is never imported here.
"""
