// The headless Chromium session the browser tests share (playwright-core from the OHIF extension's node_modules,
// /usr/bin/chromium unless CHROMIUM names another): launch, console errors, numbered screenshots, OHIF's error
// toasts, signing in with a reader token and opening a task from the worklist (radlabel's OHIF extension and its
// Label Studio editor page answer with the same elements).
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.resolve(process.env.RADLABEL_EXTENSION_DIR || '.', 'package.json'));
const { chromium } = require('playwright-core');

// A page of a fresh headless browser; `shot(name)` saves OUT/<prefix><n>-<name>.png and lists it in `shots`.
export async function openBrowser(out, prefix = '', viewport = { width: 1400, height: 900 }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport });
  const errors = [];
  const shots = [];
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text().slice(0, 300)); });
  page.on('pageerror', e => errors.push(String(e).slice(0, 300)));
  const shot = async name => {
    const file = path.join(out, `${prefix}${shots.length + 1}-${name}.png`);
    await page.screenshot({ path: file });
    shots.push(file);
  };
  return { browser, page, errors, shots, shot };
}

// OHIF's error toasts (sonner), collected on every page the reader goes through; `errorToasts` reads them.
export async function collectErrorToasts(page) {
  await page.addInitScript(() => {
    window.radlabelErrorToasts = [];
    new MutationObserver(() => {
      for (const el of document.querySelectorAll('[data-sonner-toast][data-type=error]')) {
        const text = el.textContent.slice(0, 300);
        if (!window.radlabelErrorToasts.includes(text)) window.radlabelErrorToasts.push(text);
      }
    }).observe(document, { childList: true, subtree: true, attributes: true });
  });
}

export async function errorToasts(page) {
  try { return await page.evaluate(() => window.radlabelErrorToasts || []); } catch { return []; /* the page may be gone */ }
}

export async function signIn(page, token) {
  await page.fill('#radlabel-token', token);
  await page.click('#radlabel-signin button');
}

// Sign in on the page at `url` and open the task from the worklist (see openTask).
export async function signInAndOpen(page, url, token, taskId, what = 'task') {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#radlabel-signin:not([hidden])', { timeout: 30000 });
  await signIn(page, token);
  await page.waitForSelector(`[data-task="${taskId}"]`, { timeout: 60000 });
  await openTask(page, taskId, what);
}

// Click the task on the worklist and wait until it is ready (or its status says why not: thrown).
export async function openTask(page, taskId, what = 'task') {
  await page.click(`[data-task="${taskId}"]`);
  await page.waitForFunction(() => window.radlabelReady === true || document.querySelector('#radlabel-status.err'), null, { timeout: 120000 });
  if (!(await page.evaluate(() => window.radlabelReady === true))) {
    throw new Error(`${what} did not open: ${await page.textContent('#radlabel-status')}`);
  }
}
