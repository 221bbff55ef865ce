// The page's side of the worker: one promise per request, progress as callbacks.
export function startWorker(onMessage) {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  const waiting = new Map(); // reply type → { resolve, reject }
  const expect = (type) => new Promise((resolve, reject) => waiting.set(type, { resolve, reject }));
  const settle = (type, how, value) => {
    const w = waiting.get(type);
    waiting.delete(type);
    w?.[how](value);
  };
  worker.onmessage = ({ data }) => {
    onMessage(data);
    if (data.type === 'error') for (const t of [...waiting.keys()]) settle(t, 'reject', new Error(data.message));
    else settle(data.type, 'resolve', data);
  };
  worker.onerror = (e) => {
    e.preventDefault?.();
    for (const t of [...waiting.keys()]) settle(t, 'reject', new Error(`worker: ${e.message ?? 'failed to start'}`));
  };
  return {
    hello: () => (worker.postMessage({ type: 'hello' }), expect('ready')),
    /** `train` and `test` are { values, shape, labels }; their buffers move to the worker. */
    train(msg) {
      const buffers = [msg.train, msg.test].flatMap((s) => [s.values.buffer, s.labels.buffer]);
      worker.postMessage({ type: 'train', ...msg }, buffers);
      return expect('done');
    },
    sample: ({ n, steps }) => (worker.postMessage({ type: 'sample', n, steps }), expect('samples')),
    classify(maps) {
      worker.postMessage({ type: 'classify', id: 0, maps }, [maps.values.buffer]);
      return expect('predictions');
    },
    terminate: () => worker.terminate(),
  };
}
