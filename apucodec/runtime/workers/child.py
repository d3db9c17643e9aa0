"""A stage worker: one ONNX Runtime session in its own process, possibly under another Python and onnxruntime.

Self-contained on purpose: the parent runs this file's source with `python -E -c`, so the worker's environment
needs only numpy and onnxruntime (AMD's Ryzen AI venv, say), never apucodec, soundfile or click. Protocol, one JSON
object per line:

  parent -> worker (stdin):  {"cmd": "open", "candidates": [...], "settings": {...}, "shm": PATH}
                             a candidate: {"ep", "path", "options", "severity", "compiling", "plugin", ...}
                             {"cmd": "run"}            inputs are already in shared memory
                             {"cmd": "run", "shapes": {input: shape}}   a whole-sequence graph: this call's sizes
                             {"cmd": "close"} or EOF   exit
  worker -> parent (the original stdout; fd 1 is pointed at stderr so nothing else can write there):
                             {"ok": true, ...} or {"ok": false, "error": "one line"}

Steps travel through one shared-memory file (PATH, in /dev/shm) that the worker sizes and maps after opening the
session: every input, then every output, each at a 64-byte aligned offset reported in the "open" reply.
A whole-sequence graph (a pooled-norm model offline) has a named time axis: "open" then carries "dims" (sizes to
probe the session with) and "capacity" (the largest sizes one call may take, which size the buffer), each "run"
names its inputs' shapes and the reply names its outputs'.
"""

import json
import mmap
import os
import signal
import sys
import tempfile

CPU = "CPUExecutionProvider"
ALIGN = 64


def plugin_device(ort, ep, plugin):
    """(device, None) for a plugin EP with a device in this environment, else (None, why not).

    `plugin` is [module that ships the library, name to register it under], sent by the parent with the candidate
    (None for an EP that is not a plugin), so the names are spelled once, on the parent's side.
    """
    if not plugin:
        return None, "not in this onnxruntime build"
    module, name = plugin
    if not hasattr(ort, "register_execution_provider_library"):
        return None, f"onnxruntime {ort.__version__} cannot load plugin EPs"
    try:
        library = __import__(module).get_library_path()
    except ImportError:
        return None, f"plugin {module} not installed in this environment"
    try:
        ort.register_execution_provider_library(name, library)
    except Exception as exc:  # a second registration in one process is refused; the first one's devices remain
        if "already registered" not in str(exc):
            return None, f"onnxruntime refused {library}: {first_line(exc)}"
    devices = [d for d in ort.get_ep_devices() if d.ep_name == ep]
    devices.sort(key=lambda d: "GPU" not in str(d.device.type))  # a GPU before anything else the plugin offers
    return (devices[0], None) if devices else (None, "no device (no usable adapter)")


def first_line(exc):
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__).replace("[ONNXRuntimeError] : ", "")


def session_options(ort, settings, strict_ep, profile_dir, severity, compiling):
    so = ort.SessionOptions()
    so.log_severity_level = severity
    so.enable_cpu_mem_arena = bool(settings.get("arena"))  # a whole-sequence graph: as in runtime/ort_options.py
    if settings.get("arena"):
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": 1}))
        so.add_session_config_entry("session.use_env_allocators", "1")
    if settings.get("threads"):
        so.intra_op_num_threads = settings["threads"]
        so.inter_op_num_threads = 1
    if not settings.get("spin"):
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if strict_ep:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in ((settings.get("ep_context") or {}) if compiling else {}).items():
        so.add_session_config_entry(key, value)
    if profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile_dir, "placement")
    return so


def node_counts(session, shapes, profile_dir, np):
    counts = {}
    if profile_dir is None:
        for subgraph in session.get_provider_graph_assignment_info():
            counts[subgraph.ep_name] = counts.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())
        return counts
    session.run(None, {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()})
    path = session.end_profiling()
    try:
        with open(path) as fh:
            events = json.load(fh)
    finally:
        os.unlink(path)
    seen = {}
    for event in events:
        provider = event.get("args", {}).get("provider")
        if event.get("cat") == "Node" and provider:
            name = event["name"]
            for suffix in ("_kernel_time", "_fence_before", "_fence_after"):
                if name.endswith(suffix):
                    name = name[: -len(suffix)]
            seen[name] = provider
    for provider in seen.values():
        counts[provider] = counts.get(provider, 0) + 1
    return counts


def declared_shapes(nodes, what):
    """Each tensor's shape as the graph declares it: ints, a named axis as its name, anything else None."""
    shapes = {}
    for node in nodes:
        if node.type != "tensor(float)":
            raise ValueError(f"{what} {node.name!r} is {node.type}; workers exchange float32 tensors only")
        shapes[node.name] = tuple(d if (isinstance(d, int) and d > 0) or isinstance(d, str) else None
                                  for d in node.shape)
    return shapes


def sized(shapes, dims):
    """`shapes` with named axes replaced by their sizes in `dims` (names not there become None)."""
    return {name: tuple(dims.get(d) if isinstance(d, str) else d for d in shape) for name, shape in shapes.items()}


def is_static(shapes):
    return all(isinstance(d, int) for shape in shapes.values() for d in shape)


def open_session(request, np, ort):
    settings = request["settings"]
    available = ort.get_available_providers()
    strict = settings.get("strict", False)
    failures, hardware_failed = [], False
    for cand in request["candidates"]:
        ep = cand["ep"]
        device = None
        if ep != CPU and ep not in available:
            device, why = plugin_device(ort, ep, cand.get("plugin"))
            if device is None:
                failures.append([ep, why + cand.get("hint", "")])
                continue
        strict_ep = strict and ep != CPU
        needs_profiler = not hasattr(ort.InferenceSession, "get_provider_graph_assignment_info")
        with tempfile.TemporaryDirectory(prefix="apucodec-worker-") as tmp:
            profile_dir = tmp if needs_profiler else None
            severity = cand.get("severity", 3)
            try:
                so = session_options(ort, settings, strict_ep, profile_dir, severity, cand.get("compiling", False))
                if device is not None:
                    so.add_provider_for_devices([device], cand["options"])
                    session = ort.InferenceSession(cand["path"], so)
                else:
                    providers = [(ep, cand["options"]) if cand["options"] else ep]
                    if ep != CPU and not strict_ep:
                        providers.append(CPU)
                    session = ort.InferenceSession(cand["path"], so, providers=providers)
                if ep != CPU and ep not in session.get_providers():
                    raise RuntimeError(f"onnxruntime did not enable {ep}")
                declared = declared_shapes(session.get_inputs(), "input")
                inputs = sized(declared, request.get("dims") or {})
                if not is_static(inputs):
                    raise ValueError(f"symbolic input shape {declared}; the runtime needs static shapes")
                counts = node_counts(session, inputs, profile_dir, np)
            except Exception as exc:  # onnxruntime's errors share no base class
                failures.append([ep, "session creation failed: " + first_line(exc)])
                hardware_failed = hardware_failed or ep != CPU
                continue
        if ep != CPU and counts and counts.get(ep, 0) == 0:
            failures.append([ep, "it took none of the graph's nodes"])
            hardware_failed = True
            continue
        capacity = request.get("capacity")
        outputs = declared_shapes(session.get_outputs(), "output")
        if capacity:  # a whole-sequence graph: the buffer holds the largest call
            inputs, outputs = sized(declared, capacity), sized(outputs, capacity)
            if not (is_static(inputs) and is_static(outputs)):
                raise ValueError(f"a time axis of {declared} or {outputs} is not among {sorted(capacity)}")
        elif not is_static(outputs):  # learn them from one run
            zeros = {name: np.zeros(shape, dtype=np.float32) for name, shape in inputs.items()}
            outputs = {o: tuple(a.shape) for o, a in zip(outputs, session.run(list(outputs), zeros), strict=True)}
        placement = {"ran_on": ep, "candidate": cand.get("index"), "path": cand["path"],
                     "graph_reason": cand.get("graph_reason", ""), "options": cand["options"], "node_counts": counts,
                     "node_source": "profiled" if needs_profiler else "assigned",
                     "failures": failures, "hardware_failed": hardware_failed}
        return session, inputs, outputs, placement
    raise LookupError(json.dumps({"failures": failures, "hardware_failed": hardware_failed}))


def layout(inputs, outputs, np):
    offsets, offset = {}, 0
    for name, shape in list(inputs.items()) + list(outputs.items()):
        nbytes = int(np.prod(shape)) * 4
        offsets[name] = (offset, nbytes)
        offset += -(-nbytes // ALIGN) * ALIGN
    return offsets, max(offset, ALIGN)


def at(buffer, offsets, name, shape, np):
    """A float32 view of `shape` at `name`'s place in the buffer, refused past the room that place has."""
    offset, room = offsets[name]
    if 4 * int(np.prod(shape)) > room:
        raise ValueError(f"{name!r} of shape {list(shape)} is larger than the {room}-byte room the worker has")
    return np.ndarray(tuple(shape), np.float32, buffer, offset)


def run_sized(session, shapes, in_names, out_names, offsets, buffer, np, ort):
    """One call of a whole-sequence graph at this call's sizes, its arena shrunk after it (runtime/ort_options.py);
    the outputs' shapes, for the reply."""
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    results = session.run(out_names, {name: at(buffer, offsets, name, shapes[name], np) for name in in_names}, options)
    for name, value in zip(out_names, results, strict=True):
        at(buffer, offsets, name, value.shape, np)[...] = value
    return {name: list(value.shape) for name, value in zip(out_names, results, strict=True)}


def serve(reply_fd):
    reply = os.fdopen(reply_fd, "w", buffering=1)

    def send(**message):
        reply.write(json.dumps(message) + "\n")
        reply.flush()

    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as exc:
        send(ok=False, error=f"cannot import {exc.name} in {sys.executable}: {exc}")
        return 3
    runtime = {"onnxruntime": ort.__version__, "numpy": np.__version__, "python": sys.executable,
               "python_version": sys.version.split()[0], "pid": os.getpid(),
               "available_providers": list(ort.get_available_providers())}
    session = views = None
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request.get("cmd")
        if cmd == "close":
            break
        if cmd == "open":
            try:
                session, inputs, outputs, placement = open_session(request, np, ort)
            except LookupError as exc:
                send(ok=False, runtime=runtime, **json.loads(str(exc)))
                continue
            except Exception as exc:
                send(ok=False, runtime=runtime, error=first_line(exc))
                continue
            offsets, size = layout(inputs, outputs, np)
            with open(request["shm"], "r+b") as fh:
                fh.truncate(size)
                buffer = mmap.mmap(fh.fileno(), size)
            views = {name: np.ndarray(shape, np.float32, buffer, offsets[name][0])
                     for name, shape in list(inputs.items()) + list(outputs.items())}
            in_names, out_names = list(inputs), list(outputs)
            send(ok=True, runtime=runtime, placement=placement, size=size,
                 inputs={k: list(v) for k, v in inputs.items()}, outputs={k: list(v) for k, v in outputs.items()},
                 offsets={k: list(v) for k, v in offsets.items()})
        elif cmd == "run" and "shapes" in request:
            try:
                shapes = run_sized(session, request["shapes"], in_names, out_names, offsets, buffer, np, ort)
            except Exception as exc:
                send(ok=False, error=first_line(exc))
                continue
            send(ok=True, shapes=shapes)
        elif cmd == "run":
            try:
                results = session.run(out_names, {name: views[name] for name in in_names})
                for name, value in zip(out_names, results, strict=True):
                    if value.shape != views[name].shape:
                        raise ValueError(f"output {name!r} has shape {list(value.shape)}, "
                                         f"expected {list(views[name].shape)}")
                    views[name][...] = value
            except Exception as exc:
                send(ok=False, error=first_line(exc))
                continue
            send(ok=True)
        else:
            send(ok=False, error=f"unknown command {cmd!r}")
    return 0


def main():
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what an interrupt means and closes
    # this worker (or this worker sees EOF on stdin when the parent is gone).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol channel private: anything that prints (onnxruntime's Python wrapper does, on stdout) goes
    # to stderr instead, which the parent keeps for its error messages.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.exit(serve(reply_fd))


if __name__ == "__main__":
    main()
