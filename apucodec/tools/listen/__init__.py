"""`apucodec listen`: a local listening page (original vs decoded audio, spectrograms, blind A/B/X, quality
numbers) whose browser view decodes the .apc codes itself with onnxruntime-web, under the runtime's step contract.

server.py serves it on loopback behind a token; export.py writes the same page as a static folder; inputs.py
prepares each input (encode, decode at 1..N codebooks, metrics); images.py draws the PNGs; web/ holds the page and
the vendored onnxruntime-web files (vendor.py says which, and how they are shipped).
"""
