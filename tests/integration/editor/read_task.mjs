// Drives a reader through Label Studio's editor behind radlabel's gateway in headless Chromium (playwright-core,
// /usr/bin/chromium): sign in with the token → worklist → open the task → paint a brush region → Submit; then tries
// the same credentials on Label Studio's own UI (login form, and the token as an API header on its pages).
// Usage: node read_task.mjs VIEWER_URL LABEL_STUDIO_URL CREDENTIALS_FILE TASK_ID OUT_DIR   (prints one JSON line)
import { readFileSync } from 'node:fs';

import { openBrowser, openTask, signIn } from '../browser.mjs';

const [viewer, labelStudio, credentialsFile, taskId, out] = process.argv.slice(2);
const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8'));

const { browser, page, errors, shots, shot } = await openBrowser(out);
let result = {};
try {
  await page.goto(credentials.label_studio.url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#radlabel-signin:not([hidden])', { timeout: 30000 });
  await signIn(page, credentials.label_studio.token);
  await page.waitForSelector(`[data-task="${taskId}"]`, { timeout: 60000 });
  result.worklist = await page.evaluate(() => window.radlabelWorklist);
  await shot('worklist');
  await openTask(page, taskId, 'editor');
  await page.waitForTimeout(3000);  // the slices load
  await shot('editor-opened');
  await page.getByText('lung_field', { exact: true }).first().click();  // selects the label and the brush
  const stage = page.locator('.konvajs-content').first();
  await stage.scrollIntoViewIfNeeded();
  const box = await stage.boundingBox();
  const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
  await page.mouse.move(cx - 30, cy);
  await page.mouse.down();
  for (let i = 0; i <= 12; i++) await page.mouse.move(cx - 30 + i * 5, cy + (i % 2) * 4);
  await page.mouse.up();
  await page.waitForTimeout(800);
  await shot('painted');
  result.regions = await page.evaluate(() => window.radlabelEditor.annotationStore.selected.regions.length);
  result.buttons = await page.evaluate(() => [...document.querySelectorAll('button')].map(b => `${b.textContent.trim()}${b.disabled ? ' (disabled)' : ''}`).filter(Boolean));
  const submit = page.locator('button', { hasText: /^Submit$/ }).first();
  await submit.scrollIntoViewIfNeeded();
  await submit.click();
  await page.waitForFunction(() => window.radlabelLastSubmit, null, { timeout: 120000 });
  result.submit = await page.evaluate(() => window.radlabelLastSubmit);
  await shot('submitted');
} catch (error) {
  result.error = String(error.message || error).slice(0, 500);
  try { await shot('failure'); } catch { /* the page may be gone */ }
}
// The same credentials on Label Studio's own UI: the login form, and the token sent on its pages.
try {
  const login = await browser.newPage();
  await login.goto(`${labelStudio}/user/login/`, { waitUntil: 'domcontentloaded' });
  await login.fill('input[name="email"]', credentials.label_studio.email);
  await login.fill('input[name="password"]', credentials.label_studio.token);
  await Promise.all([login.waitForLoadState('domcontentloaded'), login.locator('form button[type="submit"], form input[type="submit"]').first().click()]);
  await login.waitForTimeout(1500);
  result.label_studio_login_url = login.url();
  const context = await browser.newContext({ extraHTTPHeaders: { Authorization: `Token ${credentials.label_studio.token}` } });
  const projects = await context.newPage();
  await projects.goto(`${labelStudio}/projects/`, { waitUntil: 'domcontentloaded' });
  result.label_studio_projects_url = projects.url();
} catch (error) {
  result.label_studio_error = String(error.message || error).slice(0, 300);
}
await browser.close();
console.log(JSON.stringify({ result, screenshots: shots, console_errors: errors.slice(0, 20) }));
