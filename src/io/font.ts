/**
 * A 5×7 bitmap font for plot labels: digits, Latin letters and the punctuation labels use. Each glyph is seven
 * rows of five pixels, written as strings so the shapes can be read in the source ('#' on, '.' off).
 * @module
 */

const GLYPHS: Record<string, string> = {
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '###.. #..#. #...# #...# #...# #..#. ###..',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# #...# .#.#. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  a: '..... ..... .###. ....# .#### #...# .####',
  b: '#.... #.... #.##. ##..# #...# #...# ####.',
  c: '..... ..... .###. #.... #.... #...# .###.',
  d: '....# ....# .##.# #..## #...# #...# .####',
  e: '..... ..... .###. #...# ##### #.... .###.',
  f: '..##. .#..# .#... ###.. .#... .#... .#...',
  g: '..... .#### #...# #...# .#### ....# .###.',
  h: '#.... #.... #.##. ##..# #...# #...# #...#',
  i: '..#.. ..... .##.. ..#.. ..#.. ..#.. .###.',
  j: '...#. ..... ..##. ...#. ...#. #..#. .##..',
  k: '#.... #.... #..#. #.#.. ##... #.#.. #..#.',
  l: '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  m: '..... ..... ##.#. #.#.# #.#.# #...# #...#',
  n: '..... ..... #.##. ##..# #...# #...# #...#',
  o: '..... ..... .###. #...# #...# #...# .###.',
  p: '..... ..... ####. #...# ####. #.... #....',
  q: '..... ..... .##.# #..## .#### ....# ....#',
  r: '..... ..... #.##. ##..# #.... #.... #....',
  s: '..... ..... .###. #.... .###. ....# ####.',
  t: '.#... .#... ###.. .#... .#... .#..# ..##.',
  u: '..... ..... #...# #...# #...# #..## .##.#',
  v: '..... ..... #...# #...# #...# .#.#. ..#..',
  w: '..... ..... #...# #...# #.#.# #.#.# .#.#.',
  x: '..... ..... #...# .#.#. ..#.. .#.#. #...#',
  y: '..... ..... #...# #...# .#### ....# .###.',
  z: '..... ..... ##### ...#. ..#.. .#... #####',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  ';': '..... .##.. .##.. ..... .##.. ..#.. .#...',
  '-': '..... ..... ..... ##### ..... ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  '=': '..... ..... ##### ..... ##### ..... .....',
  _: '..... ..... ..... ..... ..... ..... #####',
  '/': '..... ....# ...#. ..#.. .#... #.... .....',
  '\\': '..... #.... .#... ..#.. ...#. ....# .....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '[': '.###. .#... .#... .#... .#... .#... .###.',
  ']': '.###. ...#. ...#. ...#. ...#. ...#. .###.',
  '<': '...#. ..#.. .#... #.... .#... ..#.. ...#.',
  '>': '.#... ..#.. ...#. ....# ...#. ..#.. .#...',
  '|': '..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  '*': '..... ..#.. #.#.# .###. #.#.# ..#.. .....',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...##',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
  '@': '.###. #...# #.### #.#.# #.### #.... .####',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....',
  '"': '.#.#. .#.#. ..... ..... ..... ..... .....',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
  '×': '..... #...# .#.#. ..#.. .#.#. #...# .....',
};
/** Characters drawn as another: the Unicode minus and dashes as '-', the middle dot as '.'. */
const ALIASES: Record<string, string> = { '−': '-', '–': '-', '—': '-', '·': '.' };

/** Glyph width and height in font pixels; characters advance by {@link ADVANCE}. */
export const GLYPH_W = 5;
export const GLYPH_H = 7;
export const ADVANCE = 6;

const bitmaps = new Map<string, Uint8Array>();
for (const [ch, rows] of Object.entries(GLYPHS)) {
  const bits = new Uint8Array(GLYPH_W * GLYPH_H);
  rows.split(' ').forEach((row, y) => [...row].forEach((c, x) => (bits[y * GLYPH_W + x] = c === '#' ? 1 : 0)));
  bitmaps.set(ch, bits);
}

/** The 5×7 bitmap of a character (1 = ink); unknown characters draw as '?'. */
export function glyph(ch: string): Uint8Array {
  return bitmaps.get(ch) ?? bitmaps.get(ALIASES[ch] ?? '') ?? bitmaps.get('?')!;
}

/** Width in pixels of a string drawn at `scale` (no trailing gap). */
export const textWidth = (text: string, scale: number): number =>
  text.length === 0 ? 0 : ([...text].length * ADVANCE - 1) * scale;

/** An RGB canvas, row-major, 3 bytes per pixel. */
export interface Canvas {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** Sets one pixel, ignoring coordinates off the canvas. */
export function setPixel(c: Canvas, x: number, y: number, color: readonly [number, number, number]): void {
  if (x < 0 || y < 0 || x >= c.width || y >= c.height) return;
  const at = (y * c.width + x) * 3;
  c.rgb[at] = color[0];
  c.rgb[at + 1] = color[1];
  c.rgb[at + 2] = color[2];
}

/**
 * Draws text with its top-left corner at (x, y). `vertical` turns it 90° counter-clockwise: it then reads bottom
 * to top with (x, y) the top-left of its bounding box, which is 7·scale wide and {@link textWidth} tall.
 */
export function drawText(
  c: Canvas,
  text: string,
  x: number,
  y: number,
  scale: number,
  color: readonly [number, number, number],
  vertical = false,
): void {
  const chars = [...text];
  const length = textWidth(text, scale);
  chars.forEach((ch, k) => {
    const bits = glyph(ch);
    for (let gy = 0; gy < GLYPH_H; gy++)
      for (let gx = 0; gx < GLYPH_W; gx++) {
        if (!bits[gy * GLYPH_W + gx]) continue;
        // Horizontal: font pixel (gx, gy) of char k at (k·ADVANCE + gx, gy). Vertical: rotate so that the
        // baseline runs up the left side: u along the text becomes −y, v down the glyph becomes +x.
        const u = k * ADVANCE + gx;
        for (let sy = 0; sy < scale; sy++)
          for (let sx = 0; sx < scale; sx++) {
            if (vertical) setPixel(c, x + gy * scale + sy, y + length - 1 - (u * scale + sx), color);
            else setPixel(c, x + u * scale + sx, y + gy * scale + sy, color);
          }
      }
  });
}
