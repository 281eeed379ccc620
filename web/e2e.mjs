// End-to-end check of the web page in headless Chromium (playwright-core, Debian's chromium).
//   [E2E_MIN_SECONDS=S] [E2E_VIEWPORT=WxH] node web/e2e.mjs URL MODE SCREENSHOT.png [MIN_STEPS] [TIMEOUT_S]
// E2E_VIEWPORT (default 1500x900): a smaller window rasterises faster under SwiftShader, which
// also serves WebGPU's read-backs (see web/README.md).
// MODE "webgpu": the WebGPU flags (SwiftShader's Vulkan), asserts the page drew with WebGPU.
// MODE "fallback": WebGPU disabled, asserts the page drew with WebGL2.
// Both assert that the toy and the model's run advanced (read from window.subspace_lab_state,
// which the app publishes) and print the final state as JSON on stdout.
// E2E_BRANCH_STEPS=N (for a URL with `#scenario=…&branch`): wait instead until every branch has
// made N steps.
// E2E_VERDICT=1 (with E2E_BRANCH_STEPS): wait also until the live verdict is final (judged at the
// scenario's horizon, not "provisional"); the JSON then says `seconds_to_verdict`.
// The JSON's `branch_step_times` lists [steps per branch, seconds after opening] each time the
// branches' step count was seen to grow (polled every 0.5 s).
// E2E_SHOTS=0,10,60 (seconds after the page was opened): also keep a picture at each of those
// times, SCREENSHOT with `-<S>s` before `.png` (the screenshot series of issue 30).
// The JSON printed says `seconds_to_done`: from opening the page to the wait's condition.
import { chromium } from 'playwright-core';

const [url, mode, shot, minStepsArg, timeoutArg] = process.argv.slice(2);
if (!url || !['webgpu', 'fallback'].includes(mode) || !shot) {
  console.error('usage: node web/e2e.mjs URL webgpu|fallback SCREENSHOT.png [MIN_STEPS] [TIMEOUT_S]');
  process.exit(2);
}
const minSteps = Number(minStepsArg ?? 3);
const branchSteps = process.env.E2E_BRANCH_STEPS ? Number(process.env.E2E_BRANCH_STEPS) : null;
const waitVerdict = process.env.E2E_VERDICT === '1';
let secondsToVerdict = null;
const branchStepTimes = [];
const timeoutMs = 1000 * Number(timeoutArg ?? 240);
// For measurements: keep the page running at least this long (frame times, steps/s).
const minMs = 1000 * Number(process.env.E2E_MIN_SECONDS ?? 0);
const shots = (process.env.E2E_SHOTS ?? '').split(',').filter((t) => t !== '').map(Number).sort((a, b) => a - b);
const shotPath = (t) => shot.replace(/\.png$/, '') + `-${t}s.png`;
let secondsToDone = null;
const common = ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'];
const args = mode === 'webgpu'
  ? [...common, '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader']
  : [...common, '--disable-features=WebGPU,Vulkan'];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args,
});
let failed = null;
let state = null;
const logs = [];
try {
  const [vw, vh] = (process.env.E2E_VIEWPORT ?? '1500x900').split('x').map(Number);
  const page = await browser.newPage({ viewport: { width: vw, height: vh } });
  page.on('worker', (w) => w.on('console', (m) => logs.push(`worker ${m.type()}: ${m.text()}`)));
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(url);
  const t0 = Date.now();
  for (;;) {
    while (shots.length > 0 && Date.now() - t0 >= 1000 * shots[0]) {
      await page.screenshot({ path: shotPath(shots.shift()) });
    }
    const raw = await page.evaluate(() => window.subspace_lab_state ?? null);
    state = raw ? JSON.parse(raw) : null;
    const enough = Date.now() - t0 >= minMs;
    const t = (Date.now() - t0) / 1000;
    const bs = state?.branch_steps ?? 0;
    if (bs > 0 && (branchStepTimes.length === 0 || branchStepTimes[branchStepTimes.length - 1][0] < bs)) {
      branchStepTimes.push([bs, t]);
    }
    const final = !!(state && state.verdict && !/provisional/.test(state.verdict));
    if (final && secondsToVerdict === null) secondsToVerdict = t;
    const advanced = branchSteps === null
      ? state && state.steps >= minSteps
      : state && bs >= branchSteps && (!waitVerdict || final);
    // The toy animates (a few frames a second while a scenario's branches compute: issue 30).
    const toy_ok = state && (state.toy_steps > 0 || state.scenario || state.snapshot);
    if (enough && toy_ok && advanced) {
      secondsToDone = (Date.now() - t0) / 1000;
      break;
    }
    if (state && state.message && /not available|could not|failed|not on this server/.test(state.message)) {
      failed = `the model run reports: ${state.message}`;
      break;
    }
    if (Date.now() - t0 > timeoutMs) {
      failed = branchSteps === null
        ? `timed out after ${timeoutMs / 1000} s waiting for ${minSteps} steps of the model run`
        : `timed out after ${timeoutMs / 1000} s waiting for ${branchSteps} steps per branch${waitVerdict ? ' and the final verdict' : ''}`;
      break;
    }
    await page.waitForTimeout(shots.length > 0 ? Math.min(500, Math.max(10, 1000 * shots[0] - (Date.now() - t0))) : 500);
  }
  // Let a few more frames draw the latest snapshot, then keep a picture of the page.
  await page.waitForTimeout(1000);
  const raw = await page.evaluate(() => window.subspace_lab_state ?? null);
  if (raw) state = JSON.parse(raw);
  await page.screenshot({ path: shot });
  const want = mode === 'webgpu' ? 'WebGPU' : 'WebGL2';
  if (!failed && state?.renderer?.api !== want) {
    failed = `expected the page to draw with ${want}, it reports ${JSON.stringify(state?.renderer)}`;
  }
  if (!failed && !state.renderer.adapter) failed = 'no adapter name reported';
} catch (e) {
  failed = `${e}`;
} finally {
  await browser.close();
}
console.log(JSON.stringify({ mode, ok: !failed, error: failed, seconds_to_done: secondsToDone, seconds_to_verdict: secondsToVerdict, branch_step_times: branchStepTimes, state, console: logs.slice(-40) }, null, 1));
process.exit(failed ? 1 : 0);
