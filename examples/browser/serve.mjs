// A static server for dist/ with cross-origin isolation (wasm threads need SharedArrayBuffer) and HTTP ranges.
//   node serve.mjs [--port 8080] [--dir dist] [--no-isolation]
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  // The IDX files are read as gzip bytes by the library: no Content-Encoding, or the browser would unzip them.
  '.gz': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
};

/** Parses a single `bytes=a-b` range against a file of `size` bytes; null for none, 'bad' for unsatisfiable. */
export function parseRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? '');
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start, end;
  if (m[1] === '') [start, end] = [Math.max(0, size - Number(m[2])), size - 1];
  else [start, end] = [Number(m[1]), m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)];
  return start > end || start >= size ? 'bad' : { start, end };
}

function handler(dir, isolate) {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.join(dir, rel.endsWith('/') ? `${rel}index.html` : rel);
    if (!file.startsWith(dir + path.sep)) return void res.writeHead(403).end();
    let stat;
    try {
      stat = fs.statSync(file);
    } catch {
      return void res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
    if (!stat.isFile()) return void res.writeHead(404).end();
    const headers = {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'no-cache',
      ...(isolate && {
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
        'Cross-Origin-Resource-Policy': 'same-origin',
      }),
    };
    const range = parseRange(req.headers.range, stat.size);
    if (range === 'bad') return void res.writeHead(416, { ...headers, 'Content-Range': `bytes */${stat.size}` }).end();
    const { start, end } = range ?? { start: 0, end: stat.size - 1 };
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'Content-Length': String(stat.size === 0 ? 0 : end - start + 1),
      ...(range && { 'Content-Range': `bytes ${start}-${end}/${stat.size}` }),
    });
    if (req.method === 'HEAD' || stat.size === 0) return void res.end();
    fs.createReadStream(file, { start, end }).pipe(res);
  };
}

/** Serves `dir` on 127.0.0.1; port 0 takes a free one. Returns the base URL and a close function. */
export async function serve({ dir = path.join(HERE, 'dist'), port = 0, isolate = true } = {}) {
  const root = path.resolve(dir);
  const server = http.createServer(handler(root, isolate));
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/`;
  const close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { url, close };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const { url } = await serve({
    dir: arg('--dir') ?? path.join(HERE, 'dist'),
    port: Number(arg('--port') ?? 8080),
    isolate: !process.argv.includes('--no-isolation'),
  });
  console.log(`serving ${url} (open ${url}?backend=wasm, or without ?backend for the best one)`);
}
