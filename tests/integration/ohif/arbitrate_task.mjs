// Drives a senior reader through an arbitration task in headless Chromium (playwright-core, /usr/bin/chromium):
// sign in → worklist (the arbitration task) → open it → the reads as overlays with their agreement figures →
// hide and show each read → accept one → submit the final SEG.
// Usage: node arbitrate_task.mjs BASE_URL TOKEN_FILE TASK_ID OUT_DIR ACCEPT_READ   (prints one JSON line)
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(path.resolve(process.env.RADLABEL_EXTENSION_DIR || '.', 'package.json'));
const { chromium } = require('playwright-core');
const [base, tokenFile, taskId, out, acceptArg] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const accept = Number(acceptArg);
const errors = [];
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
// OHIF's error toasts (sonner), collected on every page the senior goes through.
await page.addInitScript(() => {
  window.radlabelErrorToasts = [];
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('[data-sonner-toast][data-type=error]')) {
      const text = el.textContent.slice(0, 300);
      if (!window.radlabelErrorToasts.includes(text)) window.radlabelErrorToasts.push(text);
    }
  }).observe(document, { childList: true, subtree: true, attributes: true });
});
const shot = async name => { const file = path.join(out, `arbitration-${shots.length + 1}-${name}.png`); await page.screenshot({ path: file }); shots.push(file); };

// What the viewer holds: the extension's controller (same module instance OHIF imported) and cornerstone's state.
const viewerState = () => page.evaluate(async () => {
  const { getController } = await import('/radlabel/extension/index.js');
  const c = getController();
  const { glue, ctx } = c.viewer;
  const overlays = Object.fromEntries(Object.entries(c.overlays || {}).map(([n, id]) => [n, {
    visible: glue.overlayVisible(ctx, c.session.viewportId, id), voxels: glue.labelmapCounts(ctx, id),
  }]));
  return {
    overlays,
    own: glue.labelmapCounts(ctx, c.session.segmentationId),
    active: ctx.servicesManager.services.segmentationService.getActiveSegmentation(c.session.viewportId)?.segmentationId,
    ownId: c.session.segmentationId,
    pressed: [...document.querySelectorAll('[data-read]')].map(b => b.getAttribute('aria-pressed')),
  };
});

let result = {};
try {
  await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#radlabel-signin', { timeout: 60000 });
  await page.fill('#radlabel-token', token);
  await page.click('#radlabel-signin button');
  await page.waitForSelector(`[data-task="${taskId}"]`, { timeout: 30000 });
  seen.worklist = await page.textContent('#radlabel-worklist');
  await shot('worklist');
  await page.click(`[data-task="${taskId}"]`);
  await page.waitForFunction(() => window.radlabelReady === true || document.querySelector('#radlabel-status.err'), null, { timeout: 120000 });
  const status = await page.textContent('#radlabel-status');
  if (!(await page.evaluate(() => window.radlabelReady === true))) throw new Error(`task did not open: ${status}`);
  // Show the slice where the reads disagree most (the accepted read's middle nodule slice).
  await page.evaluate(async n => {
    const c = (await import('/radlabel/extension/index.js')).getController();
    const read = c.reads.find(r => r.read === n) || c.reads[0];
    const slices = Object.keys(read.classes.solid_nodule || Object.values(read.classes)[0] || {}).map(Number).sort((x, y) => x - y);
    if (!slices.length) return;
    const uid = c.state.task.sop_instance_uids[slices[Math.floor(slices.length / 2)]];
    const position = c.session.displaySet.instances.findIndex(i => i.SOPInstanceUID === uid);
    const { viewport } = c.viewer.glue.activeViewport(c.viewer.ctx);
    if (position >= 0) await viewport.setImageIdIndex(position);
  }, accept);
  await page.waitForTimeout(1500);
  await page.locator('#radlabel-arbitration').scrollIntoViewIfNeeded();
  seen.panel = await page.textContent('#radlabel-arbitration');
  seen.agreement = await page.$$eval('#radlabel-agreement li', items => items.map(i => i.textContent));
  seen.opened = await viewerState();
  await shot('reads-shown');
  seen.toggles = [];
  for (const n of Object.keys(seen.opened.overlays)) {
    await page.click(`[data-read="${n}"]`);
    await page.waitForTimeout(400);
    const hidden = await viewerState();
    await shot(`read-${n}-hidden`);
    await page.click(`[data-read="${n}"]`);
    await page.waitForTimeout(400);
    const shown = await viewerState();
    seen.toggles.push({ read: Number(n), hidden: hidden.overlays[n].visible, shown: shown.overlays[n].visible,
      pressedHidden: hidden.pressed[Number(n)], pressedShown: shown.pressed[Number(n)] });
  }
  await page.click(`[data-accept="${accept}"]`);
  await page.waitForTimeout(800);
  seen.accepted = await viewerState();
  seen.acceptStatus = await page.textContent('#radlabel-status');
  await shot('accepted');
  await page.click('#radlabel-submit');
  await page.waitForFunction(() => window.radlabelLastSubmit, null, { timeout: 120000 });
  result = await page.evaluate(() => window.radlabelLastSubmit);
  await page.waitForTimeout(4000); // OHIF's false "Series filter" toast came about a second after a submit
  await shot('final-submitted');
} catch (error) {
  result = { error: String(error.message || error).slice(0, 500) };
  try { await shot('failure'); } catch { /* the page may be gone */ }
}
let toasts = [];
try { toasts = await page.evaluate(() => window.radlabelErrorToasts || []); } catch { /* the page may be gone */ }
await browser.close();
console.log(JSON.stringify({ result, seen, screenshots: shots, console_errors: errors.slice(0, 40), error_toasts: toasts }));
