// The reading session against a stand-in viewer: which labelmap changes are the reader's strokes, the window
// in effect at each, the default preset kept against the viewer's reset, the slice numbering, the reading clock.
import { beforeEach, expect, test, vi } from 'vitest';
import { connectorApi, tokenStore } from '../src/api.js';
import { ReadingClock, IDLE_MS } from '../src/clock.js';
import { Controller } from '../src/controller.js';
import { onReaderInput } from '../src/input.js';
import { tagReaderSeg } from '../src/seg.js';
import { OHIF, TASK, fakeFetch } from './fixtures.js';

beforeEach(() => {
  document.body.innerHTML = '<div class="cornerstone-viewport-element"><canvas id="canvas"></canvas></div><button id="ohif-tool">W/L</button>';
  sessionStorage.clear();
  sessionStorage.setItem('radlabel.readerToken', 'rlr_reader');
});

// A stand-in for viewer.js: a viewport window the "viewer" may reset, a labelmap-modified event source.
function fakeGlue({ seriesWindow = { center: 40, width: 400 } } = {}) {
  const glue = {
    window: { ...seriesWindow }, activeSegment: 1, paintHandlers: [], imageIndex: 0,
    createProtocolSegmentation: async () => ({ segmentationId: 'own', viewportId: 'vp', displaySet: {} }),
    activateBrush: () => {},
    onReaderInput,
    currentWindow: () => ({ ...glue.window }),
    applyPreset: (ctx, p) => { glue.window = { center: p.windowCenter, width: p.windowWidth }; },
    onPaint: (ctx, fn) => { glue.paintHandlers.push(fn); return () => {}; },
    activeSegmentIndex: () => glue.activeSegment,
    currentSlice: (ctx, task) => ({ number: glue.imageIndex + 1, of: task.sop_instance_uids.length }),
    modify: (segmentationId = 'own') => glue.paintHandlers.forEach(fn => fn({ segmentationId })),
  };
  return glue;
}

async function openTask(glue) {
  const tokens = tokenStore(sessionStorage);
  const fetchFn = fakeFetch({
    'GET /radlabel/api/me': [200, { reader: 'reader-11', tier: 'radiologist' }],
    'GET /radlabel/api/tasks/7': [200, TASK],
  });
  const win = { sessionStorage, location: { search: '?radlabelTask=7' }, setInterval: () => 0, clearInterval: () => {},
    setTimeout: fn => setTimeout(fn, 0) };
  const ctx = { servicesManager: { services: { segmentationService: { setActiveSegment: (id, n) => { glue.activeSegment = n; } } } } };
  const controller = new Controller({ doc: document, win, tokens, api: connectorApi({ fetchFn, tokens }) });
  await controller.enterTask({ ctx, glue });
  if (!win.radlabelReady) throw new Error(`the task did not open: ${controller.state.status?.text}`);
  return controller;
}


function stroke(glue, { modifications = 2 } = {}) {
  const canvas = document.querySelector('#canvas');
  canvas.dispatchEvent(new MouseEvent('pointerdown', { bubbles: true, button: 0 }));
  for (let i = 0; i < modifications; i += 1) glue.modify();
  canvas.dispatchEvent(new MouseEvent('pointerup', { bubbles: true, button: 0 }));
}

test('a task opens in the default preset, and the viewer resetting to the series window is undone', async () => {
  const glue = fakeGlue();
  const controller = await openTask(glue);
  expect(glue.window).toEqual({ center: -600, width: 1500 });
  glue.window = { center: 40, width: 400 }; // the viewer's late reset, no input from the reader
  controller.pollWindow();
  expect(glue.window).toEqual({ center: -600, width: 1500 });
  expect(controller.log.events.filter(e => e.type === 'wl').map(e => e.preset)).toEqual(['lung']);
  expect(document.querySelector('#radlabel-viewing').textContent).toBe('W/L: lung (C -600 / W 1500) · slice 1 of 3 (1 = most inferior)');
});

test('the viewer building the labelmap is not painting: no paint event, no flag', async () => {
  const glue = fakeGlue();
  const controller = await openTask(glue);
  glue.modify(); // labelmap created / representation added, no stroke
  expect(controller.log.events.filter(e => e.type === 'paint')).toEqual([]);
  expect(document.querySelector('#radlabel-preset-warning')).toBeNull();
});

test('compliant read: a class painted in its required preset after other windows carries no flag', async () => {
  const glue = fakeGlue();
  const controller = await openTask(glue);
  document.querySelector('#ohif-tool').dispatchEvent(new MouseEvent('pointerdown', { bubbles: true })); // the reader's W/L tool
  glue.window = { center: 40, width: 400 };
  controller.pollWindow();
  document.querySelector('[data-preset="lung"]').click();
  stroke(glue);
  const paints = controller.log.events.filter(e => e.type === 'paint');
  expect(paints).toEqual([expect.objectContaining({ segment: 'solid_nodule', center: -600, width: 1500, preset: 'lung', stroke: 1 })]);
  expect(controller.log.flaggedClasses()).toEqual([]);
  expect(document.querySelector('#radlabel-preset-warning')).toBeNull();
});

test('non-compliant read: a stroke in another window flags that class only, with the window it was painted in', async () => {
  const glue = fakeGlue();
  const controller = await openTask(glue);
  stroke(glue); // solid_nodule in lung: fine
  document.querySelector('[data-preset="mediastinum"]').click();
  document.querySelector('[data-segment="lung_field"]')?.click();
  glue.activeSegment = 2; // calcified_nodule, required: bone
  stroke(glue, { modifications: 3 });
  const paints = controller.log.events.filter(e => e.type === 'paint');
  expect(paints.map(e => [e.segment, e.preset, e.stroke])).toEqual([['solid_nodule', 'lung', 1], ['calcified_nodule', 'mediastinum', 2]]);
  expect(controller.state.flags).toEqual(['calcified_nodule']);
  expect(document.querySelector('#radlabel-preset-warning').textContent).toContain('calcified_nodule');
  // A change the reader made (a W/L tool, not radlabel) is kept and recorded, not undone.
  document.querySelector('#ohif-tool').dispatchEvent(new MouseEvent('pointerdown', { bubbles: true }));
  glue.window = { center: 100, width: 700 };
  controller.pollWindow();
  expect(glue.window).toEqual({ center: 100, width: 700 });
  expect(document.querySelector('#radlabel-viewing').textContent).toContain('W/L: not a protocol preset (C 100 / W 700)');
});

test('the panel collapses to its header, which still shows the window in effect', async () => {
  const glue = fakeGlue();
  await openTask(glue);
  document.querySelector('#radlabel-collapse').click();
  const panel = document.querySelector('#radlabel-panel');
  expect(panel.getAttribute('data-collapsed')).toBe('true');
  expect(panel.querySelector('#radlabel-classes')).toBeNull();
  expect(panel.querySelector('#radlabel-viewing').textContent).toContain('W/L: lung');
  expect(getComputedStyle(panel).left).toBe('4px'); // over OHIF's study browser, not its segmentation panel
  document.querySelector('#radlabel-collapse').click();
  expect(panel.querySelector('#radlabel-classes')).not.toBeNull();
});

test('the reading clock: lead time from opening to submit, active time without idle gaps', () => {
  let t = 1000;
  const clock = new ReadingClock(() => t);
  t += 5000; clock.activity();
  t += IDLE_MS + 1; clock.activity(); // away from the desk: not active
  t += 2000;
  expect(clock.times()).toEqual({ lead_time_s: 127, active_time_s: 7 });
});

test('the SEG carries the reading time in its radlabel JSON', () => {
  const ds = { SegmentSequence: [{ SegmentNumber: 1, SegmentLabel: 'solid_nodule' }], SegmentationType: 'BINARY' };
  tagReaderSeg(ds, { task: TASK, reader: 'reader-11', ohif: OHIF, wlLog: [], timing: { lead_time_s: 12.3, active_time_s: 9.1 } });
  expect(JSON.parse(ds.ImageComments).timing).toEqual({ lead_time_s: 12.3, active_time_s: 9.1 });
});

test('signing in again on a task link opens the task', async () => {
  sessionStorage.clear();
  const glue = fakeGlue();
  const tokens = tokenStore(sessionStorage);
  const fetchFn = fakeFetch({ 'GET /radlabel/api/me': [200, { reader: 'reader-11', tier: 'radiologist' }], 'GET /radlabel/api/tasks/7': [200, TASK] });
  const win = { sessionStorage, location: { search: '?radlabelTask=7' }, setInterval: () => 0, clearInterval: () => {}, setTimeout: fn => setTimeout(fn, 0) };
  const ctx = { servicesManager: { services: { segmentationService: { setActiveSegment: () => {} } } } };
  const controller = new Controller({ doc: document, win, tokens, api: connectorApi({ fetchFn, tokens }) });
  await controller.enterTask({ ctx, glue }); // OHIF entered the mode; no token yet
  expect(controller.state.task).toBeUndefined();
  await controller.signIn('rlr_reader');
  await vi.waitFor(() => expect(win.radlabelReady).toBe(true));
  expect(controller.state.task.task_id).toBe(7);
});

test('a task link opened before sign-in is followed once signed in (OHIF has meanwhile left for its not-found page)', async () => {
  sessionStorage.clear();
  const tokens = tokenStore(sessionStorage);
  const fetchFn = fakeFetch({ 'GET /radlabel/api/me': [200, { reader: 'reader-20', tier: 'senior' }], 'GET /radlabel/api/worklist': [200, { tasks: [] }] });
  const location = { pathname: '/segmentation', search: '?StudyInstanceUIDs=2.25.1&SeriesInstanceUIDs=2.25.2&radlabelTask=24', assign: vi.fn() };
  const win = { sessionStorage, location, setInterval: () => 0, clearInterval: () => {}, setTimeout: fn => setTimeout(fn, 0) };
  const controller = new Controller({ doc: document, win, tokens, api: connectorApi({ fetchFn, tokens }) });
  await controller.start(); // no token yet
  Object.assign(location, { pathname: '/notfoundstudy', search: '' });
  await controller.signIn('rlr_senior');
  expect(location.assign).toHaveBeenCalledWith('/segmentation?StudyInstanceUIDs=2.25.1&SeriesInstanceUIDs=2.25.2&radlabelTask=24');
  expect(sessionStorage.getItem('radlabel.taskLink')).toBeNull(); // followed once
  location.assign.mockClear();
  controller.signOut();
  await controller.signIn('rlr_senior');
  expect(location.assign).not.toHaveBeenCalled();
  sessionStorage.setItem('radlabel.taskLink', 'https://elsewhere.example/segmentation?radlabelTask=1'); // never off-site
  controller.signOut();
  await controller.signIn('rlr_senior');
  expect(location.assign).not.toHaveBeenCalled();
});

test('scrolling slices updates the header line only: a note being typed stays', async () => {
  const glue = fakeGlue();
  const controller = await openTask(glue);
  const note = document.querySelector('#radlabel-escalate-note');
  note.value = 'motion at the base';
  glue.imageIndex = 2;
  controller.pollWindow();
  expect(document.querySelector('#radlabel-viewing').textContent).toContain('slice 3 of 3');
  expect(document.querySelector('#radlabel-escalate-note')).toBe(note);
  expect(note.value).toBe('motion at the base');
});
