// Drives slice navigation in Label Studio's editor behind radlabel's gateway (headless Chromium, playwright-core,
// /usr/bin/chromium) at 1600x1000: where the side column's controls sit, slice keys, the wheel over the image, the
// slice number and mm, a brush region on the slice reached, Submit, and a preset switch. Prints one JSON line.
// Usage: node navigate_task.mjs VIEWER_URL CREDENTIALS_FILE TASK_ID OUT_DIR
import { readFileSync } from 'node:fs';

import { openBrowser, signInAndOpen } from '../browser.mjs';

const [, credentialsFile, taskId, out] = process.argv.slice(2);
const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8'));
const { browser, page, errors, shots, shot } = await openBrowser(out, '', { width: 1600, height: 1000 });
const badge = () => page.evaluate(() => {
  const element = document.getElementById('radlabel-slice');
  const image = window.radlabelNavigation.current();
  const images = Object.fromEntries([...window.radlabelEditor.annotationStore.selected.names.values()]
    .filter(tag => tag.type === 'image').map(tag => [tag.name, tag.currentImage + 1]));
  return element && { text: element.textContent, slice: Number(element.dataset.slice), position: element.dataset.position,
    image: element.dataset.image, hidden: element.hidden, shown: image, images };
});
const settle = () => page.waitForTimeout(600);  // the page follows the editor every 200 ms
// Where each control of the side column is, in the viewport, before any scrolling.
const onScreen = () => page.evaluate(() => {
  const inView = element => {
    if (!element) return null;
    const r = element.getBoundingClientRect();
    return { top: Math.round(r.top), bottom: Math.round(r.bottom), left: Math.round(r.left), right: Math.round(r.right),
      visible: r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth };
  };
  const text = wanted => [...document.querySelectorAll('body *')].find(e => e.children.length === 0 && e.textContent.trim() === wanted);
  const heading = start => [...document.querySelectorAll('body *')].find(e => e.children.length === 0 && e.textContent.trim().startsWith(start));
  return {
    scroll: window.scrollY,
    class_button: inView(text('solid_nodule')),
    preset_selector: inView(document.querySelector('input[type="radio"][name="bone"]')?.closest('label')),
    flags: inView(heading('Edge cases met')),
    escalation: inView(heading('Escalate to')),
    image: inView(document.querySelector('.konvajs-content')),
  };
});
const result = {};
try {
  await signInAndOpen(page, credentials.label_studio.url, credentials.label_studio.token, taskId, 'editor');
  await page.waitForSelector('#radlabel-slice:not([hidden])', { timeout: 60000 });
  await page.waitForTimeout(2000);  // the slices load
  const url = page.url();
  result.layout = await onScreen();
  result.opened = await badge();
  await shot('opened');
  const stage = page.locator('.konvajs-content').first();
  const box = await stage.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowUp');
  await settle();
  result.after_up3 = await badge();
  await page.keyboard.press('PageDown');
  await settle();
  result.after_pagedown = await badge();
  const scrollBefore = await page.evaluate(() => document.scrollingElement.scrollTop);
  for (let i = 0; i < 2; i++) { await page.mouse.wheel(0, -120); await page.waitForTimeout(150); }
  await settle();
  result.after_wheel_up2 = await badge();
  for (let i = 0; i < 4; i++) { await page.mouse.wheel(0, -15); await page.waitForTimeout(100); }  // a touchpad's small deltas
  await settle();
  result.after_touchpad_up = await badge();
  await page.mouse.wheel(0, 120);
  await settle();
  result.after_wheel_down = await badge();
  result.wheel_scrolled_page = (await page.evaluate(() => document.scrollingElement.scrollTop)) !== scrollBefore;
  result.same_task = page.url() === url && await page.evaluate(() => window.radlabelReady === true);
  await shot('slice-5');
  await page.getByText('lung_field', { exact: true }).first().click();
  const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  await page.mouse.move(cx - 30, cy);
  await page.mouse.down();
  for (let i = 0; i <= 12; i++) await page.mouse.move(cx - 30 + i * 5, cy + (i % 2) * 4);
  await page.mouse.up();
  await settle();
  result.regions = await page.evaluate(() => window.radlabelEditor.annotationStore.selected.regions.map(
    r => ({ item_index: r.item_index, meta: r.meta && r.meta.text })));
  result.regions_panel = await page.evaluate(() => [...document.querySelectorAll('.lsf-outliner-item')].map(e => e.innerText.split('\n')));
  await shot('painted');
  const submit = page.locator('button', { hasText: /^Submit$/ }).first();
  await submit.click();
  await page.waitForFunction(() => window.radlabelLastSubmit, null, { timeout: 120000 });
  result.submit = await page.evaluate(() => window.radlabelLastSubmit);
  await page.waitForTimeout(3500);
  result.after_submit = await badge();
  await shot('submitted');
  await page.locator('label:has(input[type="radio"][name="bone"])').first().click();
  await settle();
  result.after_preset = await badge();
  await page.keyboard.press('ArrowUp');  // goes to the slice, not to the next radio button
  await settle();
  result.preset_after_up = await badge();
  await shot('bone-preset');
  await page.reload({ waitUntil: 'domcontentloaded' });  // the task opened again in this tab: the read, same slice
  await page.waitForFunction(() => window.radlabelReady === true, null, { timeout: 120000 });
  await page.waitForSelector('#radlabel-slice:not([hidden])', { timeout: 60000 });
  await settle();
  result.reopened = await badge();
  result.reopened_status = await page.textContent('#radlabel-status');
  result.reopened_regions_panel = await page.evaluate(() => [...document.querySelectorAll('.lsf-outliner-item')].map(e => e.innerText.split('\n')));
  await shot('reopened');
} catch (error) {
  result.error = String(error.message || error).slice(0, 500);
  try { await shot('failure'); } catch { /* the page may be gone */ }
}
await browser.close();
console.log(JSON.stringify({ result, screenshots: shots, console_errors: errors.slice(0, 20) }));
