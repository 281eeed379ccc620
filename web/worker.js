// The compute worker: the page's own wasm module, loaded a second time in a module Web Worker.
// Its `main` finds no `window` and runs the MNIST training loop (src/app/web.rs), posting
// snapshots to the page, which only draws.
import init from './subspace-lab.js';

init().catch((e) => {
  const msg = `the compute worker could not load the wasm module: ${e}`;
  postMessage(['snapshot', JSON.stringify({
    history: { points: [], markers: [], step: 0, run_name: '', hvps_last: 0, worst_residual: null, armed: null, k: 0 },
    running: false, backend: '', steps_per_sec: 0, message: msg,
  })]);
});
