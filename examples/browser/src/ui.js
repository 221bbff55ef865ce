// Small DOM helpers: status lines, progress bars and the throttled repaint of a progress callback.
export const $ = (id) => document.getElementById(id);

export function status(id, text) {
  $(id).textContent = text;
}

/** A progress callback for `{ done, total }` reports that moves the bar `id` and writes `label(p)` beside it. */
export function progressTo(barId, statusId, label) {
  return (p) => {
    const bar = $(barId);
    bar.max = p.total || 1;
    bar.value = p.done;
    if (label) status(statusId, label(p));
  };
}

/** Lets the browser paint and handle input between long synchronous steps. */
export const yieldToBrowser = () => new Promise((r) => setTimeout(r, 0));

export const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
