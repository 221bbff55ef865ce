// Canvas drawing: a CKA heatmap and a grid of images in [-1, 1], with no library beyond the 2-D context.

/** Viridis-like ramp from dark blue (0) to yellow (1), by linear steps between five stops. */
const STOPS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];
function ramp(v) {
  const x = Math.min(1, Math.max(0, v)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

/** A square matrix of values in [0, 1] as coloured cells (its minimum dark, 1 bright) with labels and values. */
export function drawHeatmap(canvas, matrix, labels) {
  const ctx = canvas.getContext('2d');
  const n = matrix.length;
  // Block CKA often spans only 0.8–1: stretching the ramp over the matrix's own range keeps the pattern visible.
  const lo = Math.min(...matrix.flat());
  const level = (v) => (lo < 1 ? (v - lo) / (1 - lo) : 1);
  const margin = 36;
  const cell = Math.floor((Math.min(canvas.width, canvas.height) - margin) / n);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = `${Math.max(8, Math.floor(cell / 3.2))}px sans-serif`;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const [r, g, b] = ramp(level(matrix[i][j]));
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(margin + j * cell, margin + i * cell, cell, cell);
      ctx.fillStyle = level(matrix[i][j]) > 0.6 ? '#000' : '#fff';
      ctx.fillText(matrix[i][j].toFixed(2), margin + (j + 0.5) * cell, margin + (i + 0.5) * cell);
    }
  ctx.fillStyle = '#222';
  labels.forEach((l, i) => {
    ctx.fillText(l, margin / 2, margin + (i + 0.5) * cell);
    ctx.fillText(l, margin + (i + 0.5) * cell, margin / 2);
  });
}

/** Images `[N, S, S, 1]` in [-1, 1] (as flat values) tiled row by row, each scaled up to fill its tile. */
export function drawGrid(canvas, values, n, side, columns = Math.ceil(Math.sqrt(n))) {
  const rows = Math.ceil(n / columns);
  const tile = Math.floor(Math.min(canvas.width / columns, canvas.height / rows));
  const small = new ImageData(side, side);
  const scratch = new OffscreenCanvas(side, side);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let k = 0; k < n; k++) {
    for (let p = 0; p < side * side; p++) {
      const v = Math.round((values[k * side * side + p] + 1) * 127.5);
      small.data.set([v, v, v, 255], p * 4);
    }
    scratch.getContext('2d').putImageData(small, 0, 0);
    ctx.drawImage(scratch, (k % columns) * tile, Math.floor(k / columns) * tile, tile, tile);
  }
}
