// Drives a senior reader through an arbitration task in headless Chromium (playwright-core, /usr/bin/chromium):
// sign in → worklist (the arbitration task) → open it → the reads as overlays with their agreement figures →
// hide and show each read → accept one → submit the final SEG.
// Usage: node arbitrate_task.mjs BASE_URL TOKEN_FILE TASK_ID OUT_DIR ACCEPT_READ   (prints one JSON line)
import { readFileSync } from 'node:fs';

import { collectErrorToasts, errorToasts, openBrowser, openTask, signIn } from '../browser.mjs';

const [base, tokenFile, taskId, out, acceptArg] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const accept = Number(acceptArg);
const seen = {};

const { browser, page, errors, shots, shot } = await openBrowser(out, 'arbitration-');
await collectErrorToasts(page);  // on every page the senior goes through

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
  await signIn(page, token);
  await page.waitForSelector(`[data-task="${taskId}"]`, { timeout: 30000 });
  seen.worklist = await page.textContent('#radlabel-worklist');
  await shot('worklist');
  await openTask(page, taskId);
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
const toasts = await errorToasts(page);
await browser.close();
console.log(JSON.stringify({ result, seen, screenshots: shots, console_errors: errors.slice(0, 40), error_toasts: toasts }));
