// The compute worker: the page's own wasm module, loaded a second time in a module Web Worker,
// where it runs the model's training loop (src/app/web.rs) and posts snapshots to the page, which
// only draws.
//
// Where the browser has JSPI (WebAssembly JS Promise Integration) the worker enters through
// `subspace_lab_worker_jspi`, whose code may suspend on WebGPU read-backs: the run can compute on
// WebGPU. Elsewhere it enters through `subspace_lab_worker` and computes on the CPU (wasm).
const jspi = typeof WebAssembly.Suspending === 'function' && typeof WebAssembly.promising === 'function';
if (!jspi) {
  // The module's JSPI import is wrapped in `new WebAssembly.Suspending(f)` when it loads; without
  // JSPI let that be `f` itself, never called on this path.
  WebAssembly.Suspending = function Suspending(f) { return f; };
}

function fail(msg) {
  postMessage(['snapshot', JSON.stringify({
    history: { points: [], markers: [], step: 0, run_name: '', hvps_last: 0, worst_residual: null, armed: null, k: 0 },
    running: false, backend: '', steps_per_sec: 0, message: msg,
  })]);
}

try {
  const m = await import('./subspace-lab.js');
  await m.default();
  (jspi ? m.subspace_lab_worker_jspi : m.subspace_lab_worker)();
} catch (e) {
  fail(`the compute worker could not load the wasm module: ${e}`);
}
