// Parsing what the page fetches, in the browser: the .apc code file (apucodec/io/apc_writer.py's layout:
// a 72-byte little-endian header, codes bit-packed MSB first frame-major, a CRC32 of everything before it) and
// the model's codebooks.npy (NumPy's format; float16 or float32). Every field is checked as the Python reader
// checks it, so a corrupted file is refused with one line instead of decoding noise.

const MAGIC = [0x41, 0x50, 0x43, 0x1a];
const HEADER_SIZE = 72;
const HEADER_SIZE_V2 = 120;

let crcTable = null;
export function crc32(bytes) {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function u64(view, offset) {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('not a valid .apc file (impossible length)');
  return Number(value);
}

// -> {header, codes: Int32Array[n * frames] codebook-major (codes[c * frames + f])}
export function parseApc(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  const bad = (why) => new Error(`not a valid .apc file (${why})`);
  if (bytes.length < HEADER_SIZE + 4) throw bad('truncated: shorter than the header');
  if (MAGIC.some((m, i) => bytes[i] !== m)) throw bad('wrong magic bytes');
  const version = view.getUint16(4, true);
  if (version !== 1 && version !== 2) throw new Error(`.apc format version ${version} is not supported`);
  const headerSize = version === 1 ? HEADER_SIZE : HEADER_SIZE_V2;  // version 2 appends channels, precision, sha256
  if (view.getUint16(6, true) !== headerSize || bytes.length < headerSize + 4) throw bad('unexpected header layout');
  const channels = version === 1 ? 1 : view.getUint16(72, true);
  if (channels < 1 || channels > 64) throw bad(`${channels} channels`);
  const stored = view.getUint32(bytes.length - 4, true);
  if (crc32(bytes.subarray(0, bytes.length - 4)) !== stored) throw bad('CRC32 mismatch: the file is truncated or corrupted');
  const header = {
    sampleRate: view.getUint32(8, true), inputRate: view.getUint32(12, true), nCodebooks: view.getUint8(16),
    bits: view.getUint8(17), codebookSize: view.getUint32(20, true), hop: view.getUint32(24, true),
    frames: u64(view, 28), originalLength: u64(view, 36),
    modelId: String.fromCharCode(...bytes.subarray(44, 60)).replace(/\0+$/, ''), inputLength: u64(view, 60),
    version, channels,
  };
  const { nCodebooks: n, bits, codebookSize, hop, frames } = header;
  if (n < 1 || codebookSize < 2 || bits !== Math.max(1, Math.ceil(Math.log2(codebookSize)))) throw bad('bit width');
  if (hop < 1 || header.originalLength < 1 || frames !== Math.ceil(header.originalLength / hop)) {
    throw bad(`${frames} frames do not cover ${header.originalLength} samples`);
  }
  const payload = Math.ceil((frames * n * channels * bits) / 8);
  if (bytes.length !== headerSize + payload + 4) throw bad('the size does not match the header');
  const codes = new Int32Array(n * frames);  // the first channel's codes (the page plays one signal)
  let bitPos = headerSize * 8;
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < n; c++) {
      let value = 0;
      for (let b = 0; b < bits; b++, bitPos++) value = (value << 1) | ((bytes[bitPos >>> 3] >>> (7 - (bitPos & 7))) & 1);
      if (value >= codebookSize) throw bad(`a code exceeds the codebook size ${codebookSize}`);
      codes[c * frames + f] = value;
    }
  }
  return { header, codes };
}

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

// NumPy .npy (C order, little-endian float16 or float32) -> {shape, data: Float32Array}
export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  if (bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== 'NUMPY') throw new Error('not a .npy file');
  const major = bytes[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const text = new TextDecoder().decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(text)?.[1];
  if (/'fortran_order':\s*True/.test(text)) throw new Error('.npy in Fortran order is not supported');
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(text)?.[1] || '').split(',').filter((s) => s.trim()).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLength;
  const data = new Float32Array(count);
  if (descr === '<f2') {
    for (let i = 0; i < count; i++) data[i] = halfToFloat(view.getUint16(offset + 2 * i, true));
  } else if (descr === '<f4') {
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(offset + 4 * i, true);
  } else {
    throw new Error(`.npy dtype ${descr} is not supported`);
  }
  return { shape, data };
}

// The RVQ dequantize of apucodec/runtime/rvq.py: per frame, the sum of each level's codeword, in level order and
// in float32 (a Float32Array rounds every partial sum, as NumPy's float32 `+=` does). Returned channel-major
// [dim, frames], the layout the decoder step graph takes.
export function dequantize(codes, frames, nUse, codebooks) {
  const [levels, size, dim] = codebooks.shape;
  if (nUse < 1 || nUse > levels) throw new Error(`codebooks to use must be in 1..${levels}`);
  const latent = new Float32Array(dim * frames);
  const row = new Float32Array(dim);
  for (let f = 0; f < frames; f++) {
    row.fill(0);
    for (let level = 0; level < nUse; level++) {
      const base = (level * size + codes[level * frames + f]) * dim;
      for (let d = 0; d < dim; d++) row[d] += codebooks.data[base + d];
    }
    for (let d = 0; d < dim; d++) latent[d * frames + f] = row[d];
  }
  return latent;
}
