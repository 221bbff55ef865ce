// The page's settings from its URL, so a test can shrink the work: ?backend=wasm&train=512&test=256&epochs=4 …
const DEFAULTS = {
  backend: '', // '' lets useBestBackend choose; wasm | webgl | webgpu | cpu forces one
  threads: 0, // wasm threads on the page; 0: one per core
  train: 2000, // training images of the shipped subset (of 10,000)
  test: 1000, // test images (of 2,000)
  t: 10,
  b: 8,
  pool: 4,
  epochs: 5,
  batch: 64,
  cka: 64, // images for the CKA heatmap
  ckaBlocks: '2,4,6,8,10,12,14,16,18',
  samples: 8, // DDIM samples drawn
  sampleSteps: 10,
  auto: 1, // run everything on load; 0 waits for the button
};

/** The settings, numbers parsed; unknown parameters are ignored. */
export function readParams(search = location.search) {
  const q = new URLSearchParams(search);
  const out = { ...DEFAULTS };
  for (const [k, v] of Object.entries(DEFAULTS)) {
    if (!q.has(k)) continue;
    const raw = q.get(k);
    out[k] = typeof v === 'number' ? Number(raw) : raw;
    if (typeof v === 'number' && !Number.isFinite(out[k])) throw new Error(`?${k}= must be a number, got "${raw}"`);
  }
  out.ckaBlocks = String(out.ckaBlocks).split(',').map(Number);
  return out;
}
