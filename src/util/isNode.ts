/** Whether this runs in Node (not a browser, a worker of one, or another runtime without `process.versions.node`). */
export const isNode = typeof process !== 'undefined' && !!process.versions?.node;
