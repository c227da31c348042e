// Glue to the running OHIF 3.13.2 viewer and cornerstone3D (reached through the cornerstone
// extension's utility module: nothing is imported from the bundle). Not unit tested: the
// end-to-end test drives it in Chromium against the real stack.
import { rangeFromWindow, windowFromRange } from './wl.js';
import { generateOptions, tagReaderSeg } from './seg.js';

export { onReaderInput } from './input.js';

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

export function libraries(extensionManager) {
  const entry = extensionManager.getModuleEntry('@ohif/extension-cornerstone.utilityModule.common');
  return entry.exports.getCornerstoneLibraries(); // { cornerstone, cornerstoneTools }
}

export function activeViewport(ctx) {
  const { viewportGridService, cornerstoneViewportService } = ctx.servicesManager.services;
  const viewportId = viewportGridService.getActiveViewportId();
  const viewport = viewportId ? cornerstoneViewportService.getCornerstoneViewport(viewportId) : null;
  return { viewportId, viewport };
}

export async function waitFor(check, what, timeoutMs = 90000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = check();
      if (value) return value;
    } catch {
      // the viewer is still building what we wait for
    }
    if (Date.now() > deadline) throw new Error(`the viewer did not get ready: ${what}`);
    await sleep(250);
  }
}

export function currentWindow(ctx) {
  const { viewport } = activeViewport(ctx);
  const range = viewport?.getProperties?.().voiRange;
  return range ? windowFromRange(range) : null;
}

export function applyPreset(ctx, preset) {
  const { viewport } = activeViewport(ctx);
  viewport.setProperties({ voiRange: rangeFromWindow(preset.windowCenter, preset.windowWidth) });
  viewport.render();
}

// The task's series in the active viewport, with the protocol's segments (names, colours) as a labelmap.
export async function createProtocolSegmentation(ctx, task, ohif) {
  const { displaySetService, segmentationService } = ctx.servicesManager.services;
  const displaySet = await waitFor(() => displaySetService.getActiveDisplaySets()
    .find(d => d.SeriesInstanceUID === task.series && d.Modality !== 'SEG' && d.imageIds?.length), 'the task series');
  const { viewportId } = await waitFor(() => {
    const active = activeViewport(ctx);
    return active.viewport?.getImageIds?.().length ? active : null;
  }, 'a viewport with images');
  const segments = {};
  for (const s of ohif.segments) {
    segments[s.segmentNumber] = { segmentIndex: s.segmentNumber, label: s.name, active: s.segmentNumber === 1, locked: false };
  }
  const segmentationId = `radlabel-${task.task_id}-${Date.now()}`;
  await segmentationService.createLabelmapForDisplaySet(displaySet, { segmentationId, label: `radlabel ${task.protocol.id}`, segments });
  await segmentationService.addSegmentationRepresentation(viewportId, { segmentationId });
  for (const s of ohif.segments) {
    segmentationService.setSegmentColor(viewportId, segmentationId, s.segmentNumber, [...s.color, 255]);
  }
  segmentationService.setActiveSegment(segmentationId, ohif.segments[0].segmentNumber);
  return { segmentationId, viewportId, displaySet };
}

export function activateBrush(ctx, radius = 6) {
  const { cornerstoneTools } = libraries(ctx.extensionManager);
  const { viewportId } = activeViewport(ctx);
  const group = cornerstoneTools.ToolGroupManager.getToolGroupForViewport(viewportId);
  const primary = group.getActivePrimaryMouseButtonTool?.();
  if (primary && primary !== 'CircularBrush') group.setToolPassive(primary);
  group.setToolActive('CircularBrush', { bindings: [{ mouseButton: cornerstoneTools.Enums.MouseBindings.Primary }] });
  try {
    cornerstoneTools.utilities.segmentation.setBrushSizeForToolGroup(group.id, radius);
  } catch {
    // older tool groups keep their default size
  }
}

export function onPaint(ctx, callback) {
  const { cornerstone, cornerstoneTools } = libraries(ctx.extensionManager);
  const type = cornerstoneTools.Enums.Events.SEGMENTATION_DATA_MODIFIED;
  const handler = event => callback(event.detail);
  cornerstone.eventTarget.addEventListener(type, handler);
  return () => cornerstone.eventTarget.removeEventListener(type, handler);
}

// The slice shown, in radlabel's numbering: 1 = the first of the task's sop_instance_uids (sorted along the slice
// normal: the most inferior slice of an axial series), as Label Studio numbers the task's images.
export function currentSlice(ctx, task) {
  const { viewport } = activeViewport(ctx);
  const imageId = viewport?.getCurrentImageId?.();
  const uid = imageId && /\/instances\/([0-9.]+)/.exec(imageId)?.[1];
  const index = uid ? task.sop_instance_uids.indexOf(uid) : -1;
  return index < 0 ? null : { number: index + 1, of: task.sop_instance_uids.length };
}

export function activeSegmentIndex(ctx, viewportId) {
  return ctx.servicesManager.services.segmentationService.getActiveSegment(viewportId)?.segmentIndex;
}

// The store function also adds the SEG to OHIF's metadata store, and OHIF 3.13.2 then warns, in a red toast, that
// this new series is "not part of the current study" (any series outside the URL's series filter): a false
// alarm after every submit. That one warning is held back while the SEG is serialised; nothing else is.
async function withoutSeriesFilterWarning(ctx, work) {
  const notifications = ctx.servicesManager.services.uiNotificationService;
  if (!notifications?.show) return work();
  const own = Object.prototype.hasOwnProperty.call(notifications, 'show');
  const show = notifications.show;
  notifications.show = options => (options?.title === 'Series filter' ? undefined : show.call(notifications, options));
  try {
    return await work();
  } finally {
    if (own) notifications.show = show;
    else delete notifications.show;
  }
}

// OHIF's store function for the clipboard target serialises with the bundle's own dcmjs
// (datasetToDicomBlob); we catch the Blob instead of letting it reach the clipboard.
async function datasetToBlob(ctx, dataset) {
  const store = ctx.commandsManager.runCommand('createStoreFunction', {
    dataSource: 'copyToClipboard', defaultContentType: 'application/dicom',
  });
  let captured = null;
  const saved = Object.getOwnPropertyDescriptor(navigator, 'clipboard');
  const savedItem = globalThis.ClipboardItem;
  if (!savedItem) globalThis.ClipboardItem = class { constructor(items) { this.items = items; } getType(t) { return this.items[t]; } };
  Object.defineProperty(navigator, 'clipboard', {
    configurable: true,
    value: { write: async items => { captured = await items[0].getType('application/dicom'); } },
  });
  try {
    await withoutSeriesFilterWarning(ctx, () => store(dataset, {}));
  } finally {
    if (saved) Object.defineProperty(navigator, 'clipboard', saved);
    else delete navigator.clipboard;
    if (!savedItem) delete globalThis.ClipboardItem;
  }
  if (!captured) throw new Error('the viewer did not serialise the SEG');
  return captured;
}

export async function readerSegBlob(ctx, { segmentationId, task, reader, ohif, wlLog, timing }) {
  const generated = ctx.commandsManager.runCommand('generateSegmentation', {
    segmentationId, options: generateOptions({ task, reader }),
  });
  const dataset = (await generated).dataset;
  tagReaderSeg(dataset, { task, reader, ohif, wlLog, timing });
  return datasetToBlob(ctx, dataset);
}

// Arbitration: each read painted into its own labelmap (toggleable overlay) from the API's run lengths.
export async function addReadOverlay(ctx, { displaySet, viewportId, read, ohif, task }) {
  const { segmentationService } = ctx.servicesManager.services;
  const { cornerstone } = libraries(ctx.extensionManager);
  const segments = {};
  for (const s of ohif.segments) segments[s.segmentNumber] = { segmentIndex: s.segmentNumber, label: s.name, locked: true };
  const segmentationId = `radlabel-read-${task.task_id}-${read.read}`;
  await segmentationService.createLabelmapForDisplaySet(displaySet, { segmentationId, label: `read ${read.reader}`, segments });
  const segmentation = cornerstone && ctx.servicesManager.services.segmentationService.getSegmentation(segmentationId);
  const imageIds = segmentation.representationData.Labelmap.imageIds;
  const byName = Object.fromEntries(ohif.segments.map(s => [s.name, s.segmentNumber]));
  // Labelmap images follow the display set's image order; the task's slices follow its sop_instance_uids.
  const order = displaySet.instances.map(i => i.SOPInstanceUID);
  for (const [name, slices] of Object.entries(read.classes)) {
    for (const [index, runs] of Object.entries(slices)) {
      const position = order.indexOf(task.sop_instance_uids[Number(index)]);
      if (position < 0) continue;
      const pixels = cornerstone.cache.getImage(imageIds[position]).getPixelData();
      for (let i = 0; i < runs.length; i += 2) pixels.fill(byName[name], runs[i], runs[i] + runs[i + 1]);
    }
  }
  segmentationModified(ctx, segmentationId);
  await segmentationService.addSegmentationRepresentation(viewportId, { segmentationId });
  for (const s of ohif.segments) segmentationService.setSegmentColor(viewportId, segmentationId, s.segmentNumber, [...s.color, 160]);
  return segmentationId;
}

export function setOverlayVisible(ctx, viewportId, segmentationId, visible) {
  const { cornerstoneTools } = libraries(ctx.extensionManager);
  const type = cornerstoneTools.Enums.SegmentationRepresentations.Labelmap;
  cornerstoneTools.segmentation.config.visibility.setSegmentationRepresentationVisibility(viewportId, { segmentationId, type }, visible);
}

export function overlayVisible(ctx, viewportId, segmentationId) {
  const { cornerstoneTools } = libraries(ctx.extensionManager);
  const type = cornerstoneTools.Enums.SegmentationRepresentations.Labelmap;
  return cornerstoneTools.segmentation.config.visibility.getSegmentationRepresentationVisibility(viewportId, { segmentationId, type });
}

export function activateSegmentation(ctx, viewportId, segmentationId) {
  ctx.servicesManager.services.segmentationService.setActiveSegmentation(viewportId, segmentationId);
}

function labelmapImageIds(ctx, segmentationId) {
  return ctx.servicesManager.services.segmentationService.getSegmentation(segmentationId).representationData.Labelmap.imageIds;
}

function segmentationModified(ctx, segmentationId) {
  const { cornerstoneTools } = libraries(ctx.extensionManager);
  cornerstoneTools.segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(segmentationId);
}

// Accept: one labelmap's voxels (a read's overlay) become another's (the arbiter's segmentation).
export function copyLabelmap(ctx, fromSegmentationId, toSegmentationId) {
  const { cornerstone } = libraries(ctx.extensionManager);
  const from = labelmapImageIds(ctx, fromSegmentationId);
  const to = labelmapImageIds(ctx, toSegmentationId);
  from.forEach((imageId, i) => cornerstone.cache.getImage(to[i]).getPixelData().set(cornerstone.cache.getImage(imageId).getPixelData()));
  segmentationModified(ctx, toSegmentationId);
}

// Voxels per segment index of a segmentation (for checks: what the arbiter will submit).
export function labelmapCounts(ctx, segmentationId) {
  const { cornerstone } = libraries(ctx.extensionManager);
  const counts = {};
  for (const imageId of labelmapImageIds(ctx, segmentationId)) {
    for (const value of cornerstone.cache.getImage(imageId).getPixelData()) if (value) counts[value] = (counts[value] || 0) + 1;
  }
  return counts;
}
