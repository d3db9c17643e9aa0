// Decoding .apc codes in the browser with onnxruntime-web, under the runtime's step contract
// (apucodec/runtime/stepper.py's Stepper, decoder side): latent frames go through the FP32 decoder step graph S
// frames at a time with the graph's state carried from step to step and bounds = [frames consumed so far,
// frames left] clamped to the graph's horizon (frames left = horizon while input is still coming); the first
// `delay_samples` outputs are dropped; after the last frame, zero steps flush the lookahead until frames * hop
// samples came out, which are trimmed to the original length. Every number comes from the model's manifest.

import * as ort from './ort/ort.webgpu.bundle.min.mjs';
import { dequantize, parseApc, parseNpy } from './apc.js';

const pageBase = new URL('.', document.baseURI);
ort.env.wasm.wasmPaths = { wasm: new URL('ort/ort-wasm-simd-threaded.asyncify.wasm', pageBase).href };
// Threads need cross-origin isolation (apucodec listen sends COOP/COEP; a plain static server does not).
// ?threads=N in the page's URL overrides the count (WASM reads it once, before the first session opens).
const askedThreads = Number(new URLSearchParams(location.search).get('threads'));
ort.env.wasm.numThreads = !self.crossOriginIsolated ? 1
  : askedThreads >= 1 ? askedThreads : Math.min(4, navigator.hardwareConcurrency || 1);

async function fetchBytes(route) {
  const response = await fetch(new URL(route, pageBase));
  if (!response.ok) throw new Error(`${route}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

let manifestPromise = null;
let codebooksPromise = null;
const sessions = new Map();

export function manifest() {
  manifestPromise ??= fetchBytes('model/manifest.json').then((b) => JSON.parse(new TextDecoder().decode(b)));
  return manifestPromise;
}

export async function codebooks() {
  const m = await manifest();
  const entry = Object.values(m.files).find((e) => e.role === 'codebooks');
  codebooksPromise ??= fetchBytes(`model/${entry.name}`).then(parseNpy);
  return codebooksPromise;
}

export async function decoderStepSizes() {
  const m = await manifest();
  return Object.values(m.files).filter((e) => e.stage === 'decoder' && e.precision === 'fp32')
    .map((e) => e.step_frames).sort((a, b) => a - b);
}

// Weight files a graph loads as ONNX external data, as its manifest entry names them (apucodec/tools/listen/site.py).
function externalDataNames(entry) {
  const value = entry.external_data ?? entry.weights;
  const items = Array.isArray(value) ? value : value ? [value] : [];
  return items.map((item) => (typeof item === 'object' && item !== null ? item.name : item))
    .filter((n) => typeof n === 'string' && n && !n.includes('/'));
}

export async function webgpuAvailable() {
  if (!navigator.gpu) return false;
  try { return (await navigator.gpu.requestAdapter()) !== null; } catch { return false; }
}

async function openSession(entry, backend) {
  const key = `${entry.name}|${backend}`;
  if (!sessions.has(key)) {
    const opening = (async () => {
      const model = new Uint8Array(await fetchBytes(`model/${entry.name}`));
      const externalData = [];
      for (const name of externalDataNames(entry)) {
        externalData.push({ path: name, data: new Uint8Array(await fetchBytes(`model/${name}`)) });
      }
      const options = { executionProviders: [backend], graphOptimizationLevel: 'all' };
      if (externalData.length) options.externalData = externalData;
      return ort.InferenceSession.create(model, options);
    })();
    sessions.set(key, opening);
    opening.catch(() => sessions.delete(key));
  }
  return sessions.get(key);
}

// backend: 'auto' (WebGPU where the browser has an adapter, else WASM), 'webgpu' or 'wasm'.
// -> {samples: Float32Array (originalLength), backend, stepMs: [...], steps, header, openMs}
export async function decodeApc(apcBuffer, { nCodebooks = null, stepFrames = null, backend = 'auto', onStep = null } = {}) {
  const m = await manifest();
  const { header, codes } = parseApc(apcBuffer);
  if (header.modelId !== m.model_id) throw new Error(`codes were made by model ${header.modelId}, not ${m.model_id}`);
  const hop = m.streaming.hop;
  if (header.hop !== hop) throw new Error(`codes use hop ${header.hop}, the model ${hop}`);
  const sizes = await decoderStepSizes();
  const S = stepFrames ?? sizes[sizes.length - 1];
  const entry = Object.values(m.files).find((e) => e.stage === 'decoder' && e.precision === 'fp32' && e.step_frames === S);
  if (!entry) throw new Error(`the model has no FP32 decoder step graph of ${S} frames`);
  const n = nCodebooks ?? header.nCodebooks;
  if (n < 1 || n > header.nCodebooks) throw new Error(`the file has ${header.nCodebooks} codebooks, asked for ${n}`);

  let chosen = backend;
  if (backend === 'auto') chosen = (await webgpuAvailable()) ? 'webgpu' : 'wasm';
  const opened = performance.now();
  let session;
  try {
    session = await openSession(entry, chosen);
  } catch (error) {
    if (backend !== 'auto' || chosen === 'wasm') throw error;
    chosen = 'wasm';  // an adapter that cannot run the graph: fall back, and say so in `backend`
    session = await openSession(entry, chosen);
  }
  const openMs = performance.now() - opened;

  const books = await codebooks();
  const frames = header.frames;
  const dim = books.shape[2];
  const latent = dequantize(codes, frames, n, books);
  const [latentName, stateName, boundsName] = entry.inputs.map((i) => i.name);
  const [audioName, nextStateName] = entry.outputs.map((o) => o.name);
  const horizon = entry.horizon_frames;
  const facts = m.streaming.decoder;
  const clamp = (v) => Math.max(-horizon, Math.min(horizon, v));

  let state = new ort.Tensor('float32', new Float32Array(facts.state_size), [1, facts.state_size]);
  const target = frames * hop;
  const out = new Float32Array(target);
  let produced = 0;
  let toDrop = facts.delay_samples;
  let framesIn = 0;
  const stepMs = [];
  const fullSteps = Math.floor(frames / S);
  // Steps while input is coming (frames left unknown: the horizon), then the flush (frames left known).
  for (let k = 0; produced < target; k++) {
    const chunk = new Float32Array(dim * S);
    for (let d = 0; d < dim; d++) {
      const from = d * frames + framesIn;
      const take = Math.max(0, Math.min(S, frames - framesIn));
      chunk.set(latent.subarray(from, from + take), d * S);
    }
    const left = k < fullSteps ? horizon : clamp(frames - framesIn);
    const feeds = {
      [latentName]: new ort.Tensor('float32', chunk, [1, dim, S]),
      [stateName]: state,
      [boundsName]: new ort.Tensor('float32', new Float32Array([clamp(framesIn), left]), [2]),
    };
    const started = performance.now();
    const result = await session.run(feeds);
    const audio = await result[audioName].getData();
    const elapsed = performance.now() - started;
    stepMs.push(elapsed);
    state = new ort.Tensor('float32', new Float32Array(await result[nextStateName].getData()), [1, facts.state_size]);
    for (const name of Object.keys(result)) result[name].dispose?.();
    framesIn += S;
    let piece = audio;
    if (toDrop) {
      const cut = Math.min(toDrop, piece.length);
      piece = piece.subarray(cut);
      toDrop -= cut;
    }
    piece = piece.subarray(0, target - produced);
    out.set(piece, produced);
    produced += piece.length;
    if (onStep) onStep(stepMs.length, elapsed);
  }
  return { samples: out.subarray(0, header.originalLength), backend: chosen, stepMs, steps: stepMs.length, header,
           stepFrames: S, nCodebooks: n, openMs, threads: ort.env.wasm.numThreads };
}
