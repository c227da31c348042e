// A reader's assisted read in Label Studio's editor behind radlabel's gateway (headless Chromium, playwright-core):
// sign in → open the task → pick the class's preset → paint one scribble with the smart brush on one slice → the
// gateway's 3-D assist lands on other slices → measure with the ruler → Submit. Also used by bench/annotate.py.
// Usage: node assist_read.mjs VIEWER_URL CREDENTIALS_FILE TASK_ID PLAN_FILE OUT_DIR   (prints one JSON line)
// PLAN: {steps: [{preset, control, image, label, smart, slice, points: [[x%, y%], ...] (one point: a click), outside}],
//        ruler: {preset, control, image, label, slice, a: [x%, y%], b: [x%, y%]}, screenshot: "name.png"}
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { openBrowser, signInAndOpen } from '../browser.mjs';

const [viewer, credentialsFile, taskId, planFile, out] = process.argv.slice(2);
const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8'));
const plan = JSON.parse(readFileSync(planFile, 'utf8'));
const count = { strokes: 0, clicks: 0, keys: 0 };

const { browser, page, errors } = await openBrowser(out, '', { width: 1500, height: 1000 });

// The editor's own model, as its UI changes it: a label click (selects the class and its tool), a tool, a slice.
const inEditor = (fn, arg) => page.evaluate(fn, arg);
async function choosePreset(preset) {
  await inEditor(p => {
    const choice = window.radlabelEditor.annotationStore.selected.names.get('preset').children.find(c => c.value === p);
    if (!choice.sel) choice.toggleSelected();  // as a click on the radio: the other preset unselected, the result updated
  }, preset);
  count.clicks += 1;
  await page.waitForTimeout(400);
}
async function chooseLabel(control, label, smart) {
  const tools = await inEditor(([c, l, s]) => {
    const annotation = window.radlabelEditor.annotationStore.selected;
    const tag = annotation.names.get(c);
    const item = tag.children.find(x => x.value === l);
    if (!item.selected) item.toggleSelected();
    const manager = annotation.names.get(tag.toname).getToolsManager();
    const names = Object.keys(manager.tools);
    const kind = /vector/i.test(tag.type) ? /Vector/ : (/keypoint/i.test(tag.type) ? /KeyPoint/ : /Brush/);
    // the smart copy of a tool is its dynamic one
    const wanted = names.find(n => kind.test(n) && Boolean(manager.tools[n].dynamic) === Boolean(s));
    if (wanted) manager.selectTool(manager.tools[wanted], true);
    const selected = Object.entries(manager.tools).find(([, t]) => t.selected);
    return { names, selected: selected && selected[0], auto: window.radlabelEditor.autoAnnotation, smart: tag.smartEnabled };
  }, [control, label, Boolean(smart)]);
  count.clicks += smart ? 2 : 1;  // the label, and the smart tool's button
  return tools;
}
async function goToSlice(image, slice) {
  const moved = await inEditor(([i, k]) => {
    const tag = window.radlabelEditor.annotationStore.selected.names.get(i);
    const from = tag.currentImage;
    if (k !== from) window.radlabelEditor.annotationStore.selected.unselectAreas();  // Escape: a new slice, a new region
    tag.setCurrentImage(k);
    return Math.abs(k - from);
  }, [image, slice]);
  count.keys += moved + (moved ? 1 : 0);  // one slice key press per slice moved, and Escape
  await page.waitForTimeout(250);
}
async function stage() {
  const found = page.locator('.konvajs-content:visible').first();
  await found.scrollIntoViewIfNeeded();
  return found.boundingBox();
}
async function stroke(points) {
  const box = await stage();
  const at = ([x, y]) => [box.x + x / 100 * box.width, box.y + y / 100 * box.height];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const point of points.slice(1)) await page.mouse.move(...at(point), { steps: 2 });
  await page.mouse.up();
  count.strokes += 1;
}
async function click([x, y], outside = false) {
  const box = await stage();
  if (outside) await page.keyboard.down('Alt');  // a negative click of the smart keypoints
  await page.mouse.click(box.x + x / 100 * box.width, box.y + y / 100 * box.height);
  if (outside) await page.keyboard.up('Alt');
  count.clicks += 1;
}
async function waitForAssist(before) {
  try {
    await page.waitForFunction(n => (window.radlabelAssist || {}).requests > n, before, { timeout: Number(process.env.ASSIST_WAIT_MS || 120000) });
  } catch (error) {
    const regions = await inEditor(() => window.radlabelEditor.annotationStore.selected.regions.map(r => ({
      type: r.type, dynamic: r.dynamic, real: r.isRealRegion, notify: r.shouldNotifyDrawingFinished,
      smart: r.results.map(x => x.from_name.smartEnabled), events: window.radlabelAssistEvents })));
    throw new Error(`no assist answer: ${JSON.stringify(regions)}`);
  }
  await page.waitForTimeout(800);
  return inEditor(() => window.radlabelAssist);
}

let result = {};
const started = Date.now();
try {
  await signInAndOpen(page, `${viewer}/radlabel/editor/`, credentials.label_studio.token, taskId, 'editor');
  await page.waitForTimeout(2000);
  let current = {}, assists = 0;
  result.log = [];
  for (const step of plan.steps) {
    if (step.preset !== current.preset) await choosePreset(step.preset);
    if (step.preset !== current.preset || step.label !== current.label || step.smart !== current.smart) {
      result.tools = await chooseLabel(step.control, step.label, step.smart);
    }
    current = step;
    await goToSlice(step.image, step.slice);
    if (step.points.length === 1) await click(step.points[0], step.outside); else await stroke(step.points);
    if (step.smart) { result.assist = await waitForAssist(assists); assists += 1; }
    result.log.push({ label: step.label, slice: step.slice, interactions: count.strokes + count.clicks + count.keys,
      seconds: (Date.now() - started) / 1000 });
  }
  result.slices = await inEditor(() => {
    const slices = {};
    for (const r of window.radlabelEditor.annotationStore.selected.serializeAnnotation()) {
      if (r.type !== 'brushlabels') continue;
      const key = `${r.from_name}/${r.value.brushlabels[0]}`;
      slices[key] = [...new Set([...(slices[key] || []), r.item_index])].sort((a, b) => a - b);
    }
    return slices;
  });
  if (plan.screenshot) await page.screenshot({ path: path.join(out, plan.screenshot) });
  if (plan.ruler) {
    const r = plan.ruler;
    await inEditor(() => window.radlabelEditor.annotationStore.selected.unselectAreas());  // Escape: nothing selected
    count.keys += 1;
    await choosePreset(r.preset);
    result.ruler_tools = await chooseLabel(r.control, r.label, false);
    await goToSlice(r.image, r.slice);
    await click(r.a);
    // the editor starts the ruler on this click; a second click sent before it has (a loaded machine) ended a
    // zero-length ruler in one CI run
    await page.waitForTimeout(500);
    await click(r.b);
    await page.waitForTimeout(500);
    result.rulers = (await inEditor(c => window.radlabelEditor.annotationStore.selected.serializeAnnotation()
      .filter(x => x.from_name === c).length, r.control));
  }
  const submit = page.locator('button', { hasText: /^Submit$/ }).first();
  await submit.scrollIntoViewIfNeeded();
  await submit.click();
  count.clicks += 1;
  await page.waitForFunction(() => window.radlabelLastSubmit, null, { timeout: 120000 });
  result.submit = await inEditor(() => window.radlabelLastSubmit);
  await page.screenshot({ path: path.join(out, 'submitted.png') });
} catch (error) {
  result.error = String(error.message || error).slice(0, 500);
  try { await page.screenshot({ path: path.join(out, 'failure.png') }); } catch { /* the page may be gone */ }
  try { result.status = await page.textContent('#radlabel-status'); } catch { /* gone */ }
}
result.seconds = (Date.now() - started) / 1000;
result.interactions = count;
await browser.close();
console.log(JSON.stringify({ result, console_errors: errors.slice(0, 20) }));
