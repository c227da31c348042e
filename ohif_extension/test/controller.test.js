import { beforeEach, expect, test, vi } from 'vitest';
import { connectorApi, tokenStore } from '../src/api.js';
import { Controller, taskUrl } from '../src/controller.js';
import { renderPanel, mountPanel } from '../src/panel.js';
import { OHIF, TASK, fakeFetch } from './fixtures.js';

beforeEach(() => {
  document.body.innerHTML = '';
  sessionStorage.clear();
});

function controllerWith(routes) {
  const fetchFn = fakeFetch(routes);
  const tokens = tokenStore(sessionStorage);
  const win = { sessionStorage, location: { search: '', assign: vi.fn() }, setInterval, clearInterval };
  const controller = new Controller({ doc: document, win, tokens, api: connectorApi({ fetchFn, tokens }) });
  return { controller, fetchFn, win };
}

test('sign-in keeps the token in the session, sends it as a bearer header only, and shows the worklist', async () => {
  const item = { task_id: 7, kind: 'reads', protocol: { id: 'ct_lung_nodules', version: '1.0.0' }, study: '2.25.1', series: '2.25.2', slices: 3 };
  const { controller, fetchFn, win } = controllerWith({
    'GET /radlabel/api/me': [200, { reader: 'reader-11', tier: 'radiologist' }],
    'GET /radlabel/api/worklist': [200, { tasks: [item] }],
  });
  controller.render();
  document.querySelector('#radlabel-token').value = 'rlr_secret';
  document.querySelector('#radlabel-signin').dispatchEvent(new Event('submit'));
  await vi.waitFor(() => expect(document.querySelector('[data-task="7"]')).not.toBeNull());
  expect(sessionStorage.getItem('radlabel.readerToken')).toBe('rlr_secret');
  for (const call of fetchFn.calls) {
    expect(call.url).not.toContain('rlr_secret');
    expect(call.init.headers.Authorization).toBe('Bearer rlr_secret');
  }
  document.querySelector('[data-task="7"]').click();
  expect(win.location.assign).toHaveBeenCalledWith(taskUrl(item));
  expect(taskUrl(item)).toBe('/segmentation?StudyInstanceUIDs=2.25.1&SeriesInstanceUIDs=2.25.2&radlabelTask=7');
});

test('a refused token is forgotten and its reason shown apart from the sign-in prompt', async () => {
  const revoked = 'this reader token was revoked by the administrator: ask them for a new one if you should still read.';
  const { controller } = controllerWith({ 'GET /radlabel/api/me': [401, { error: revoked, reason: 'revoked' }] });
  await controller.signIn('rlr_wrong');
  expect(sessionStorage.getItem('radlabel.readerToken')).toBeNull();
  const problem = document.querySelector('#radlabel-token-problem');
  expect(problem.getAttribute('role')).toBe('alert');
  expect(problem.textContent).toBe('Your reader token was not accepted. This reader token was revoked by the administrator: ask them for a new one if you should still read.');
  expect(document.querySelector('#radlabel-status')).toBeNull(); // not the sign-in prompt in red
  expect(document.querySelector('#radlabel-signin').textContent).toContain('Sign in with your reader token');
});

test('a 202 from the connector counts as accepted (queued), not as an error', async () => {
  const api = connectorApi({ fetchFn: fakeFetch({ 'POST /radlabel/api/tasks/7/seg': [202, { status: 'queued' }] }), tokens: tokenStore(sessionStorage) });
  const reply = await api.submitSeg(7, new Blob(['x']));
  expect(reply.httpStatus).toBe(202);
  expect(reply.status).toBe('queued');
});

test('the protocol panel shows classes, colours, codes, boundaries and edge cases as text', () => {
  const root = mountPanel(document);
  const actions = Object.fromEntries(['signIn', 'signOut', 'open', 'back', 'preset', 'segment', 'submit', 'noFindings', 'escalate', 'toggleRead', 'accept', 'collapse'].map(n => [n, vi.fn()]));
  renderPanel(root, { signedIn: true, me: { reader: 'reader-11', tier: 'radiologist' }, task: TASK, ohif: OHIF, activePreset: 'lung', activeSegment: 'solid_nodule', flags: ['calcified_nodule'] }, actions);
  expect([...root.querySelectorAll('[data-preset]')].map(b => b.textContent)).toEqual(['lung (default)', 'mediastinum', 'bone']);
  expect(root.querySelector('[data-preset="lung"]').getAttribute('aria-pressed')).toBe('true');
  const classes = root.querySelector('#radlabel-classes').textContent;
  expect(classes).toContain('SCT 27925004 "Nodule"');
  expect(root.querySelector('[data-segment="solid_nodule"] .swatch').style.background).toBe('rgb(230, 25, 75)');
  expect(root.querySelector('img')).toBeNull(); // boundary text is text, never HTML
  expect(root.querySelector('#radlabel-preset-warning').textContent).toBe('Painted outside the required preset: calcified_nodule (recorded with your read)');
  expect(root.textContent).toContain('A nodule touching the pleura is labelled.');
  root.querySelector('[data-preset="bone"]').click();
  expect(actions.preset).toHaveBeenCalledWith(OHIF.windowPresets[2]);
  root.querySelector('#radlabel-escalate-note').value = 'motion';
  root.querySelector('#radlabel-escalate').click();
  expect(actions.escalate).toHaveBeenCalledWith('motion');
});

test('the arbitration view lists every read with its figures and toggles', () => {
  const root = mountPanel(document);
  const actions = { toggleRead: vi.fn(), accept: vi.fn(), submit: vi.fn(), escalate: vi.fn(), back: vi.fn(), preset: vi.fn(), segment: vi.fn(), signOut: vi.fn() };
  const arbitration = { reads: [{ read: 0, reader: 'reader-12', score: 0.41, visible: true }, { read: 1, reader: 'reader-13', score: 0.52, visible: false }], reasons: ['solid_nodule: Dice 0.41 < 0.7'],
    agreement: { solid_nodule: { pairs: [{ a: 12, b: 13, dice: 0.4123, surface_dice: 0.5, hd95_mm: null }] } } };
  renderPanel(root, { signedIn: true, me: { reader: 'reader-20', tier: 'senior' }, task: { ...TASK, kind: 'arbitration' }, ohif: OHIF, arbitration, flags: [] }, actions);
  expect(root.querySelector('#radlabel-arbitration').textContent).toContain('reader-12 · Dice vs consensus 0.41');
  expect(root.querySelector('[data-read="1"]').textContent).toBe('Show');
  root.querySelector('[data-accept="0"]').click();
  expect(actions.accept).toHaveBeenCalledWith(0);
  expect(root.querySelector('#radlabel-submit').textContent).toBe('Submit final SEG');
  expect(root.querySelector('#radlabel-agreement').textContent).toBe('solid_nodule: reader-12 vs reader-13 · Dice 0.41 · surface Dice 0.50 · HD95 –');
});

test('no findings posts an empty read with the W/L log and closes the task', async () => {
  const { controller, fetchFn, win } = controllerWith({
    'POST /radlabel/api/tasks/7/empty': [201, { status: 'imported', empty: true, annotation_id: 55 }],
  });
  controller.state = { ...controller.state, signedIn: true, me: { reader: 'reader-11', tier: 'radiologist' }, task: TASK, ohif: OHIF };
  controller.log = { events: [{ type: 'wl', preset: 'lung', center: -600, width: 1500 }] };
  controller.clock = { times: () => ({ lead_time_s: 42.5, active_time_s: 30 }) };
  controller.render();
  document.querySelector('#radlabel-no-findings').click();
  await vi.waitFor(() => expect(win.radlabelLastSubmit?.annotation_id).toBe(55));
  const call = fetchFn.calls.find(c => c.url.endsWith('/tasks/7/empty'));
  expect(call.init.method).toBe('POST');
  expect(JSON.parse(call.init.body)).toEqual({ wl_log: controller.log.events, timing: { lead_time_s: 42.5, active_time_s: 30 } });
  expect(document.querySelector('#radlabel-status').textContent).toContain('no findings');
  expect(document.querySelector('#radlabel-no-findings').disabled).toBe(true);
  expect(document.querySelector('#radlabel-submit').disabled).toBe(true);
});
