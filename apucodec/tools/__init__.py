"""About the engine, not part of it: `bench` (timing per stage and step), `doctor` (what this machine can run and
where a model's stages would go), the timeline picture, and the WebGPU/Vulkan adapter report.

Torch-free like the runtime they build on (arrows point down: cli -> tools -> runtime -> contract); nothing in
apucodec.runtime imports from here.
"""
