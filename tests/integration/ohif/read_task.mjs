// Drives a reader through the OHIF extension in headless Chromium (playwright-core, /usr/bin/chromium):
// sign in with the token → worklist → open the task → apply a preset → paint → submit.
// Usage: node read_task.mjs BASE_URL TOKEN_FILE TASK_ID OUT_DIR   (prints one JSON line)
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(path.resolve(process.env.RADLABEL_EXTENSION_DIR || '.', 'package.json'));
const { chromium } = require('playwright-core');
const [base, tokenFile, taskId, out] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const preset = process.env.RADLABEL_PRESET || 'mediastinum';
const segment = process.env.RADLABEL_SEGMENT || 'solid_nodule';
const errors = [];
const shots = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.on('console', m => { if (m.type() === 'error') errors.push(m.text().slice(0, 300)); });
page.on('pageerror', e => errors.push(String(e).slice(0, 300)));
const shot = async name => { const file = path.join(out, `${shots.length + 1}-${name}.png`); await page.screenshot({ path: file }); shots.push(file); };
let result = {};
try {
  await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#radlabel-signin', { timeout: 60000 });
  await page.fill('#radlabel-token', token);
  await page.click('#radlabel-signin button');
  await page.waitForSelector(`[data-task="${taskId}"]`, { timeout: 30000 });
  await shot('worklist');
  await page.click(`[data-task="${taskId}"]`);
  await page.waitForFunction(() => window.radlabelReady === true || /error|not/i.test(document.querySelector('#radlabel-status.err')?.textContent || ''), null, { timeout: 120000 });
  const status = await page.textContent('#radlabel-status');
  if (!(await page.evaluate(() => window.radlabelReady === true))) throw new Error(`task did not open: ${status}`);
  await page.waitForTimeout(1500);
  await shot('task-opened');
  await page.click(`[data-preset="${preset}"]`);
  await page.click(`[data-segment="${segment}"]`);
  await page.waitForTimeout(500);
  // Paint a stroke across the middle of the viewport.
  const canvas = page.locator('.cornerstone-viewport-element canvas, [data-viewport-uid] canvas').first();
  const box = await canvas.boundingBox();
  const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  await page.mouse.move(cx - 40, cy);
  await page.mouse.down();
  for (let i = 0; i <= 16; i++) await page.mouse.move(cx - 40 + i * 5, cy + (i % 2) * 3);
  await page.mouse.up();
  await page.waitForTimeout(800);
  await shot('painted');
  await page.click('#radlabel-submit');
  await page.waitForFunction(() => window.radlabelLastSubmit, null, { timeout: 120000 });
  result = await page.evaluate(() => window.radlabelLastSubmit);
  await page.waitForTimeout(300);
  await shot('submitted');
} catch (error) {
  result = { error: String(error.message || error).slice(0, 500) };
  try { await shot('failure'); } catch { /* the page may be gone */ }
}
await browser.close();
console.log(JSON.stringify({ result, screenshots: shots, console_errors: errors.slice(0, 20) }));
