// Drives a reader through the OHIF extension in headless Chromium (playwright-core, /usr/bin/chromium):
// sign in with the token → worklist → open the task → (a detour window) → apply a preset → paint → submit.
// Usage: node read_task.mjs BASE_URL TOKEN_FILE TASK_ID OUT_DIR   (prints one JSON line)
// Environment: RADLABEL_PRESET (preset in effect while painting), RADLABEL_DETOUR (a preset applied first),
// RADLABEL_SEGMENT (class painted), RADLABEL_BAD_TOKEN_FILE (a refused token tried first), RADLABEL_TOOLS=1 (check
// that OHIF's segmentation tools stay in reach and use its sphere brush and labelmap interpolation once).
import { readFileSync } from 'node:fs';

import { collectErrorToasts, errorToasts, openBrowser, openTask, signIn } from '../browser.mjs';

const [base, tokenFile, taskId, out] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const preset = process.env.RADLABEL_PRESET || 'mediastinum';
const detour = process.env.RADLABEL_DETOUR || '';
const segment = process.env.RADLABEL_SEGMENT || 'solid_nodule';
const seen = {};

const { browser, page, errors, shots, shot } = await openBrowser(out, `read-${taskId}-`);
await collectErrorToasts(page);  // on every page the reader goes through
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


let result = {};
try {
  await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#radlabel-signin', { timeout: 60000 });
  if (process.env.RADLABEL_BAD_TOKEN_FILE) {
    await signIn(page, readFileSync(process.env.RADLABEL_BAD_TOKEN_FILE, 'utf8').trim());
    await page.waitForSelector('#radlabel-token-problem', { timeout: 30000 });
    seen.tokenProblem = await page.textContent('#radlabel-token-problem');
    seen.signInAfterProblem = await page.textContent('#radlabel-signin');
    await shot('token-refused');
  }
  await signIn(page, token);
  await page.waitForSelector(`[data-task="${taskId}"]`, { timeout: 30000 });
  await shot('worklist');
  await openTask(page, taskId);
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
const toasts = await errorToasts(page);
await browser.close();
console.log(JSON.stringify({ result, seen, screenshots: shots, console_errors: errors.slice(0, 40), error_toasts: toasts }));
