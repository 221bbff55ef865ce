// Stands in for the `sharp` image decoder in README snippets (see test/docs/snippets.test.ts): any
// file "decodes" to the same 40×48 RGB gradient, through the calls the README uses.
export default function sharp(file) {
  if (typeof file !== 'string') throw new TypeError('sharp stand-in: expected a file path');
  const width = 48;
  const height = 40;
  const chain = {
    removeAlpha: () => chain,
    raw: () => chain,
    async toBuffer(opts) {
      const data = Buffer.alloc(width * height * 3);
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const i = (y * width + x) * 3;
          data[i] = (x * 255) / (width - 1);
          data[i + 1] = (y * 255) / (height - 1);
          data[i + 2] = file.length * 17;
        }
      return opts?.resolveWithObject ? { data, info: { width, height, channels: 3 } } : data;
    },
  };
  return chain;
}
