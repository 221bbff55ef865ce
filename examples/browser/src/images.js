// Turns any image the browser can decode into what the backbone takes: 28×28 grayscale in [-1, 1].
const SIDE = 28;

/** Decodes a File/Blob, fits it into 28×28 (aspect kept, black border) and returns its luminance in [-1, 1]. */
export async function imageToInput(blob) {
  const bitmap = await createImageBitmap(blob);
  const canvas = new OffscreenCanvas(SIDE, SIDE);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, SIDE, SIDE);
  const scale = SIDE / Math.max(bitmap.width, bitmap.height);
  const [w, h] = [bitmap.width * scale, bitmap.height * scale];
  ctx.drawImage(bitmap, (SIDE - w) / 2, (SIDE - h) / 2, w, h);
  bitmap.close();
  const { data } = ctx.getImageData(0, 0, SIDE, SIDE);
  const out = new Float32Array(SIDE * SIDE);
  // Rec. 601 luma, as PIL's convert('L'), then x / 127.5 − 1 as the training data.
  for (let p = 0; p < out.length; p++)
    out[p] = (0.299 * data[4 * p] + 0.587 * data[4 * p + 1] + 0.114 * data[4 * p + 2]) / 127.5 - 1;
  return out;
}
