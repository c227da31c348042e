// Drives a reader through the OHIF extension in headless Chromium (playwright-core, /usr/bin/chromium):
// sign in with the token → worklist → open the task → (a detour window) → apply a preset → paint → submit.
// Usage: node read_task.mjs BASE_URL TOKEN_FILE TASK_ID OUT_DIR   (prints one JSON line)
// Environment: RADLABEL_PRESET (preset in effect while painting), RADLABEL_DETOUR (a preset applied first),
// RADLABEL_SEGMENT (class painted), RADLABEL_BAD_TOKEN_FILE (a refused token tried first), RADLABEL_TOOLS=1 (check
// that OHIF's segmentation tools stay in reach and use its sphere brush and labelmap interpolation once).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(path.resolve(process.env.RADLABEL_EXTENSION_DIR || '.', 'package.json'));
const { chromium } = require('playwright-core');
const [base, tokenFile, taskId, out] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const preset = process.env.RADLABEL_PRESET || 'mediastinum';
const detour = process.env.RADLABEL_DETOUR || '';
const segment = process.env.RADLABEL_SEGMENT || 'solid_nodule';
const errors = [];
const toasts = [];
const shots = [];
const seen = {};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.on('console', m => { if (m.type() === 'error') errors.push(m.text().slice(0, 300)); });
page.on('pageerror', e => errors.push(String(e).slice(0, 300)));
const shot = async name => { const file = path.join(out, `read-${taskId}-${shots.length + 1}-${name}.png`); await page.screenshot({ path: file }); shots.push(file); };
// OHIF's error toasts (sonner), collected on every page the reader goes through.
await page.addInitScript(() => {
  window.radlabelErrorToasts = [];
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('[data-sonner-toast][data-type=error]')) {
      const text = el.textContent.slice(0, 300);
      if (!window.radlabelErrorToasts.includes(text)) window.radlabelErrorToasts.push(text);
    }
  }).observe(document, { childList: true, subtree: true, attributes: true });
});
const controllerState = () => page.evaluate(async () => {
  const c = (await import('/radlabel/extension/index.js')).getController();
  return { window: c.viewer.glue.currentWindow(c.viewer.ctx), events: c.log.events, flags: c.state.flags,
    viewing: document.querySelector('#radlabel-viewing')?.textContent, warning: document.querySelector('#radlabel-preset-warning')?.textContent ?? null };
});
const labelmapSlices = () => page.evaluate(async () => {
  const c = (await import('/radlabel/extension/index.js')).getController();
  const { cornerstone } = c.viewer.glue.libraries(c.viewer.ctx.extensionManager);
  const ids = c.viewer.ctx.servicesManager.services.segmentationService.getSegmentation(c.session.segmentationId).representationData.Labelmap.imageIds;
  return ids.map(id => cornerstone.cache.getImage(id).getPixelData().reduce((n, v) => n + (v ? 1 : 0), 0));
});
const showImage = n => page.evaluate(async n => {
  const c = (await import('/radlabel/extension/index.js')).getController();
  await c.viewer.glue.activeViewport(c.viewer.ctx).viewport.setImageIdIndex(n);
}, n);

// Is each of OHIF's segmentation controls the topmost element at its own centre (not under the radlabel panel)?
const inReach = () => page.evaluate(() => {
  const found = {};
  for (const cy of ['Brush-btn', 'Eraser-btn', 'Threshold-btn', 'InterpolateLabelmap-btn', 'brush-radius', 'data-row']) {
    const el = document.querySelector(`[data-cy="${cy}"]`);
    const box = el?.getBoundingClientRect();
    const top = box && document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    found[cy] = Boolean(top && (el === top || el.contains(top)));
  }
  return found;
});

async function stroke(dx = 0) {
  const canvas = page.locator('.cornerstone-viewport-element canvas, [data-viewport-uid] canvas').first();
  const box = await canvas.boundingBox();
  const cx = box.x + box.width / 2 + dx, cy = box.y + box.height / 2;
  await page.mouse.move(cx - 40, cy);
  await page.mouse.down();
  for (let i = 0; i <= 16; i++) await page.mouse.move(cx - 40 + i * 5, cy + (i % 2) * 3);
  await page.mouse.up();
  await page.waitForTimeout(800);
}

async function dab(dx) {
  const box = await page.locator('.cornerstone-viewport-element canvas, [data-viewport-uid] canvas').first().boundingBox();
  await page.mouse.move(box.x + box.width / 2 + dx, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + dx + 3, box.y + box.height / 2);
  await page.mouse.up();
  await page.waitForTimeout(800);
}

// OHIF's own 3D tools, once: its sphere brush paints several slices; its labelmap interpolation fills the slices
// between two painted ones (the ITK-Wasm pipeline served by the viewer front, not a CDN).
async function useOhifTools() {
  seen.reach = { expanded: await inReach() };
  await page.click('#radlabel-collapse');
  seen.reach.collapsed = await inReach();
  seen.reach.collapsedViewing = await page.textContent('#radlabel-viewing');
  await shot('panel-collapsed');
  await page.click('#radlabel-collapse');
  await page.click('[data-cy="Brush-btn"]');
  await page.getByText('Sphere', { exact: true }).click();
  await showImage(12);
  await dab(60);
  seen.sphereSlices = (await labelmapSlices()).filter(n => n > 0).length;
  await page.getByText('Circle', { exact: true }).click();
  await showImage(3);
  await dab(-60);
  await showImage(7);
  await dab(-60);
  const before = await labelmapSlices();
  await page.click('[data-cy="InterpolateLabelmap-btn"]');
  let after = before;
  for (let i = 0; i < 60 && !after[5]; i++) { await page.waitForTimeout(500); after = await labelmapSlices(); }
  seen.interpolation = { before: before.slice(3, 8), after: after.slice(3, 8) };
  await shot('ohif-tools');
}

async function signInWith(value) {
  await page.fill('#radlabel-token', value);
  await page.click('#radlabel-signin button');
}

let result = {};
try {
  await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#radlabel-signin', { timeout: 60000 });
  if (process.env.RADLABEL_BAD_TOKEN_FILE) {
    await signInWith(readFileSync(process.env.RADLABEL_BAD_TOKEN_FILE, 'utf8').trim());
    await page.waitForSelector('#radlabel-token-problem', { timeout: 30000 });
    seen.tokenProblem = await page.textContent('#radlabel-token-problem');
    seen.signInAfterProblem = await page.textContent('#radlabel-signin');
    await shot('token-refused');
  }
  await signInWith(token);
  await page.waitForSelector(`[data-task="${taskId}"]`, { timeout: 30000 });
  await shot('worklist');
  await page.click(`[data-task="${taskId}"]`);
  await page.waitForFunction(() => window.radlabelReady === true || document.querySelector('#radlabel-status.err'), null, { timeout: 120000 });
  const status = await page.textContent('#radlabel-status');
  if (!(await page.evaluate(() => window.radlabelReady === true))) throw new Error(`task did not open: ${status}`);
  await page.waitForTimeout(3000); // long enough for the viewer's own late window reset
  seen.opened = await controllerState();
  await shot('task-opened');
  await page.click(`[data-segment="${segment}"]`);
  if (detour) {
    await page.click(`[data-preset="${detour}"]`);
    await page.waitForTimeout(400);
  }
  await page.click(`[data-preset="${preset}"]`);
  await page.waitForTimeout(500);
  await stroke();
  if (process.env.RADLABEL_TOOLS === '1') await useOhifTools();
  seen.painted = await controllerState();
  await shot('painted');
  await page.click('#radlabel-submit');
  await page.waitForFunction(() => window.radlabelLastSubmit, null, { timeout: 120000 });
  result = await page.evaluate(() => window.radlabelLastSubmit);
  await page.waitForTimeout(4000); // OHIF's false "Series filter" toast came about a second after the submit
  seen.submitStatus = await page.textContent('#radlabel-status');
  await shot('submitted');
} catch (error) {
  result = { error: String(error.message || error).slice(0, 500) };
  try { await shot('failure'); } catch { /* the page may be gone */ }
}
try { toasts.push(...await page.evaluate(() => window.radlabelErrorToasts || [])); } catch { /* the page may be gone */ }
await browser.close();
console.log(JSON.stringify({ result, seen, screenshots: shots, console_errors: errors.slice(0, 40), error_toasts: toasts }));
