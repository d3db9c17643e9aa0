// The listening page: one section per input (players, pictures, scores, blind A/B/X, in-browser decode).
// Everything is fetched by relative URL, so the same page works behind `apucodec listen` and as an export.

import { decodeApc, decoderStepSizes, webgpuAvailable } from './decode.js';

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v; else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};
const fmt = (v, digits = 2) => (v === null || v === undefined ? '–' : Number(v).toFixed(digits));

async function getJson(route) {
  const response = await fetch(route);
  if (!response.ok) throw new Error(`${route}: HTTP ${response.status} ${(await response.text()).trim()}`);
  return response.json();
}

function wavBlob(samples, rate) {  // 32-bit float WAV, for the browser's own decode
  const buffer = new ArrayBuffer(44 + samples.length * 4);
  const v = new DataView(buffer);
  const text = (o, s) => [...s].forEach((c, i) => v.setUint8(o + i, c.charCodeAt(0)));
  text(0, 'RIFF'); v.setUint32(4, 36 + samples.length * 4, true); text(8, 'WAVE'); text(12, 'fmt ');
  v.setUint32(16, 16, true); v.setUint16(20, 3, true); v.setUint16(22, 1, true); v.setUint32(24, rate, true);
  v.setUint32(28, rate * 4, true); v.setUint16(32, 4, true); v.setUint16(34, 32, true); text(36, 'data');
  v.setUint32(40, samples.length * 4, true);
  new Float32Array(buffer, 44).set(samples);
  return new Blob([buffer], { type: 'audio/wav' });
}

function scoresTable(info, current) {
  const head = el('tr', {}, ...['codebooks', 'kbps', 'SI-SDR dB', 'mel distance', 'ViSQOL'].map((h) => el('th', {}, h)));
  const rows = info.levels.map((l) => el('tr', { class: l.n === current ? 'current' : '' },
    el('td', {}, String(l.n)), el('td', {}, fmt(l.kbps, 1)), el('td', {}, fmt(l.si_sdr)),
    el('td', {}, fmt(l.mel_distance, 3)), el('td', {}, l.visqol === undefined ? '–' : (l.visqol === null ? 'not installed' : fmt(l.visqol)))));
  return el('table', { class: 'scores' }, head, ...rows);
}

function abx(base, info, getN) {
  const box = el('div', { class: 'box' }, el('h3', {}, 'Blind A/B/X'));
  const status = el('span', {});
  const player = new Audio();
  let trial = null;
  const tally = { right: 0, total: 0 };
  const newTrial = () => {
    const decoded = `${base}decoded-${getN()}.wav`;
    const pair = Math.random() < 0.5 ? [`${base}original.wav`, decoded] : [decoded, `${base}original.wav`];
    trial = { A: pair[0], B: pair[1], x: Math.random() < 0.5 ? 'A' : 'B' };
    trial.X = trial[trial.x];
    status.textContent = `trial ${tally.total + 1} at ${getN()} codebooks: which one is X?`;
  };
  const play = (which) => { if (!trial) newTrial(); player.src = trial[which]; player.play(); };
  const answer = (guess) => {
    if (!trial) return;
    tally.total += 1; if (guess === trial.x) tally.right += 1;
    status.textContent = `X was ${trial.x}. Score ${tally.right}/${tally.total} (chance: half).`;
    trial = null;
  };
  box.append(el('div', { class: 'controls' },
    el('span', {}, el('button', { onclick: () => play('A') }, 'Play A'), el('button', { onclick: () => play('B') }, 'Play B'),
      el('button', { onclick: () => play('X') }, 'Play X')),
    el('span', {}, el('button', { onclick: () => answer('A') }, 'X is A'), el('button', { onclick: () => answer('B') }, 'X is B'),
      el('button', { onclick: () => { player.pause(); newTrial(); } }, 'New trial')), status));
  return box;
}

async function browserDecodeBox(index, base, info, getN) {
  const sizes = await decoderStepSizes();
  const stepSelect = el('select', {}, ...sizes.map((s) => el('option', { value: String(s) }, `${s} frames per step`)));
  stepSelect.value = String(sizes[sizes.length - 1]);
  const backendSelect = el('select', {}, el('option', { value: 'auto' }, 'auto (WebGPU if available)'),
    el('option', { value: 'wasm' }, 'WASM'), el('option', { value: 'webgpu' }, 'WebGPU'));
  const out = el('div', { class: 'result' });
  const audio = el('audio', { controls: '' });
  const run = async (options = {}) => {
    const n = options.n ?? getN();
    const stepFrames = options.step ?? Number(stepSelect.value);
    const backend = options.backend ?? backendSelect.value;
    out.classList.remove('error');
    out.textContent = `decoding ${n} codebooks in the browser…`;
    const apc = await (await fetch(`${base}codes.apc`)).arrayBuffer();
    const r = await decodeApc(apc, { nCodebooks: n, stepFrames, backend,
      onStep: (k, ms) => { out.textContent = `step ${k}: ${ms.toFixed(1)} ms`; } });
    const reference = new Float32Array(await (await fetch(`${base}decoded-${n}.f32`)).arrayBuffer());
    let maxAbs = reference.length === r.samples.length ? 0 : Infinity;
    for (let i = 0; i < Math.min(reference.length, r.samples.length); i++) maxAbs = Math.max(maxAbs, Math.abs(reference[i] - r.samples[i]));
    const ms = [...r.stepMs].sort((a, b) => a - b);
    const total = r.stepMs.reduce((a, b) => a + b, 0);
    const stepAudioMs = (r.stepFrames * r.header.hop * 1000) / r.header.sampleRate;
    out.textContent = `backend ${r.backend}${r.backend === 'wasm' ? ` (${r.threads} thread${r.threads > 1 ? 's' : ''})` : ''}, `
      + `${r.steps} steps of ${r.stepFrames} frames (${stepAudioMs.toFixed(1)} ms of audio each), session opened in ${r.openMs.toFixed(0)} ms\n`
      + `time per step: median ${ms[ms.length >> 1].toFixed(2)} ms, min ${ms[0].toFixed(2)}, max ${ms[ms.length - 1].toFixed(2)}; `
      + `total ${total.toFixed(0)} ms for ${(r.samples.length / r.header.sampleRate).toFixed(2)} s of audio\n`
      + `max |browser - server decode| = ${maxAbs.toExponential(2)}`;
    audio.src = URL.createObjectURL(wavBlob(r.samples, r.header.sampleRate));
    const record = { index, n, backend: r.backend, stepFrames: r.stepFrames, steps: r.steps, stepMs: r.stepMs, maxAbs,
      openMs: r.openMs, threads: r.threads, samples: r.samples };
    window.apucodecListen.decodes[index] = record;
    return record;
  };
  window.apucodecListen.decoders[index] = run;
  const go = el('button', { onclick: () => run().catch((e) => { out.classList.add('error'); out.textContent = `error: ${e.message}`; }) },
    'Decode in this browser');
  return el('div', { class: 'box' }, el('h3', {}, 'Decoded in this browser (onnxruntime-web, from the .apc codes)'),
    el('div', { class: 'controls' }, go, stepSelect, backendSelect, audio), out);
}

async function renderInput(item, container) {
  const base = `input/${item.index}/`;
  const section = el('section', { class: 'input', id: `input-${item.index}` }, el('h2', {}, item.name), el('p', {}, 'preparing…'));
  container.append(section);
  const info = await getJson(`${base}info.json`);
  let current = info.n_codebooks;
  const kbps = (n) => info.levels.find((l) => l.n === n).kbps;
  const select = el('select', {}, ...info.levels.map((l) => el('option', { value: String(l.n) }, `${l.n} codebooks (${fmt(l.kbps, 1)} kbps)`)));
  select.value = String(current);
  const tableHolder = el('div', {});
  const decodedLabel = el('div', { class: 'label' });
  const decodedAudio = el('audio', { controls: '', preload: 'none' });
  const decodedWave = el('img', { alt: 'decoded waveform', class: 'wave' });
  const decodedSpec = el('img', { alt: 'decoded spectrogram', class: 'spectrogram' });
  const diffSpec = el('img', { alt: 'difference spectrogram', class: 'spectrogram diff' });
  const originalSpec = el('img', { alt: 'original spectrogram', class: 'spectrogram' });
  const band = el('select', {}, el('option', { value: '' }, 'full band (0–22 kHz)'),
    el('option', { value: '-low' }, 'low band (0–2.8 kHz): the 86 Hz frame-rate comb'));
  band.addEventListener('change', () => update());
  const update = () => {
    const low = band.value;
    decodedLabel.textContent = `decoded, ${current} cb (${fmt(kbps(current), 1)} kbps)`;
    decodedAudio.src = `${base}decoded-${current}.wav`;
    decodedWave.src = `${base}decoded-${current}-wave.png`;
    decodedSpec.src = `${base}decoded-${current}-spec${low}.png`;
    if (info.has_original) {
      originalSpec.src = `${base}original-spec${low}.png`;
      diffSpec.src = `${base}diff-${current}${low}.png`;
    }
    tableHolder.replaceChildren(scoresTable(info, current));
  };
  select.addEventListener('change', () => { current = Number(select.value); update(); });
  const grid = el('div', { class: 'grid' }, el('div', {}), el('div', { class: 'label' }, 'waveform'), el('div', { class: 'label' }, 'spectrogram'));
  if (info.has_original) {
    grid.append(el('div', {}, el('div', { class: 'label' }, 'original'), el('audio', { controls: '', preload: 'none', src: `${base}original.wav` })),
      el('img', { alt: 'original waveform', class: 'wave', src: `${base}original-wave.png` }),
      originalSpec);
  }
  grid.append(el('div', {}, decodedLabel, decodedAudio), decodedWave, decodedSpec);
  if (info.has_original) grid.append(el('div', { class: 'label' }, 'difference (decoded − original)'), el('div', {}), diffSpec);
  update();
  section.replaceChildren(el('h2', {}, `${info.name}`),
    el('p', {}, `${info.seconds.toFixed(2)} s at ${info.sample_rate} Hz, ${info.frames} frames, ${info.n_codebooks} codebooks in the .apc`),
    el('div', { class: 'controls' }, el('label', {}, 'Decoded at ', select), el('label', {}, 'Spectrograms: ', band)),
    tableHolder, grid);
  if (info.has_original) section.append(abx(base, info, () => current));
  section.append(await browserDecodeBox(item.index, base, info, () => current));
}

async function main() {
  window.apucodecListen = { decodes: {}, decoders: {}, ready: false, error: null };
  const container = document.getElementById('inputs');
  try {
    document.getElementById('env').textContent = (await webgpuAvailable())
      ? ' This browser has WebGPU: the in-browser decode runs there by default.'
      : ' This browser has no WebGPU adapter: the in-browser decode runs on WASM.';
    const listing = await getJson('inputs.json');
    container.replaceChildren(el('nav', {}, el('ol', {}, ...listing.inputs.map((item) =>
      el('li', {}, el('a', { href: `#input-${item.index}` }, item.name), item.kind === 'apc' ? ' (codes only)' : '')))));
    for (const item of listing.inputs) {
      // One input that fails (unreadable audio, say) shows its error line; the others still render.
      await renderInput(item, container).catch((error) => {
        document.getElementById(`input-${item.index}`)?.append(el('p', { class: 'error' }, `error: ${error.message}`));
      });
    }
    window.apucodecListen.ready = true;
  } catch (error) {
    window.apucodecListen.error = error.message;
    container.append(el('p', { class: 'error' }, `error: ${error.message}`));
  }
}

main();
