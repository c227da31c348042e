import { expect, test } from 'vitest';
import dcmjs from 'dcmjs';
import { ViewingLog, matchesPreset, rangeFromWindow, windowFromRange } from '../src/wl.js';
import { BINARY_SEG_SOP_CLASS, generateOptions, tagReaderSeg } from '../src/seg.js';
import { OHIF, TASK } from './fixtures.js';

test('windows and ranges convert both ways; presets match within 2 % of the width', () => {
  expect(windowFromRange(rangeFromWindow(-600, 1500))).toEqual({ center: -600, width: 1500 });
  expect(matchesPreset(OHIF.windowPresets[0], -590, 1500)).toBe(true);
  expect(matchesPreset(OHIF.windowPresets[0], -560, 1500)).toBe(false);
});

test('the viewing log records W/L changes once and flags classes painted outside their preset', () => {
  let t = 0;
  const log = new ViewingLog(OHIF, () => ++t);
  expect(log.windowChanged(-600, 1500, 'preset').preset).toBe('lung');
  expect(log.windowChanged(-600, 1500)).toBeNull(); // unchanged: not logged again
  expect(log.painted('solid_nodule')).not.toBeNull();
  expect(log.painted('solid_nodule')).toBeNull(); // same stroke
  expect(log.outsidePreset('calcified_nodule')).toBe('bone');
  log.painted('calcified_nodule');
  log.windowChanged(400, 1800);
  log.painted('calcified_nodule');
  expect(log.flaggedClasses()).toEqual(['calcified_nodule']);
  expect(log.events.map(e => e.type)).toEqual(['wl', 'paint', 'paint', 'wl', 'paint']);
});

function naturalizedSeg() {
  const tissue = { CodeValue: 'T-D0050', CodingSchemeDesignator: 'SRT', CodeMeaning: 'Tissue' };
  return {
    _meta: {
      MediaStorageSOPClassUID: BINARY_SEG_SOP_CLASS, MediaStorageSOPInstanceUID: '2.25.9',
      TransferSyntaxUID: '1.2.840.10008.1.2.1', ImplementationClassUID: '2.25.10',
    },
    SOPClassUID: BINARY_SEG_SOP_CLASS, SOPInstanceUID: '2.25.9', Modality: 'SEG', SegmentationType: 'BINARY',
    StudyID: 'No Study ID', ContentCreatorName: 'OHIF',
    SegmentSequence: [{ SegmentNumber: 1, SegmentLabel: 'solid_nodule', SegmentAlgorithmType: 'MANUAL', SegmentAlgorithmName: 'OHIF Brush',
      SegmentedPropertyCategoryCodeSequence: tissue, SegmentedPropertyTypeCodeSequence: tissue }],
    ReferencedSeriesSequence: { SeriesInstanceUID: '2.25.2', ReferencedInstanceSequence: [{ ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: '2.25.3', ReferencedFrameNumber: 1 }] },
    PerFrameFunctionalGroupsSequence: [{ DerivationImageSequence: [{ SourceImageSequence: [{ ReferencedSOPInstanceUID: '2.25.3', ReferencedFrameNumber: 1 }] }],
      SegmentIdentificationSequence: { ReferencedSegmentNumber: 1 }, FrameContentSequence: { DimensionIndexValues: [1, 1] } }],
  };
}

test('the reader SEG carries protocol codes, reader, version and the W/L log, and survives dcmjs', () => {
  const wlLog = [{ type: 'wl', t: 1, center: -600, width: 1500, preset: 'lung' }];
  const ds = tagReaderSeg(naturalizedSeg(), { task: TASK, reader: 'reader-11', ohif: OHIF, wlLog });
  const bytes = dcmjs.data.datasetToBuffer(ds);
  const back = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)).dict);
  const segment = Array.isArray(back.SegmentSequence) ? back.SegmentSequence[0] : back.SegmentSequence;
  expect(segment.SegmentedPropertyTypeCodeSequence.CodeValue ?? segment.SegmentedPropertyTypeCodeSequence[0].CodeValue).toBe('27925004');
  expect(JSON.stringify(back.SegmentSequence)).not.toContain('Tissue');
  expect(back.ContentCreatorName?.[0]?.Alphabetic ?? back.ContentCreatorName).toBe('reader-11^');
  expect(back.ContentDescription).toBe('ct_lung_nodules 1.0.0');
  expect(JSON.parse(back.ImageComments)).toMatchObject({ task: 7, wl_log: wlLog });
  expect(back.StudyID ?? '').toBe('');
  const derivation = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0];
  expect(derivation.SourceImageSequence[0]).toMatchObject({ SpatialLocationsPreserved: 'YES', ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2' });
  expect(derivation.SourceImageSequence[0].ReferencedFrameNumber).toBeUndefined(); // single-frame CT
  expect(derivation.DerivationCodeSequence.CodeValue).toBe('113076');
  expect(ds.SegmentSequence[0].TrackingUID).toMatch(/^2\.25\.\d+$/);
});

test('a segment that is no protocol class, or a non-binary SEG, is refused before upload', () => {
  const foreign = naturalizedSeg();
  foreign.SegmentSequence[0].SegmentLabel = 'Segment 1';
  expect(() => tagReaderSeg(foreign, { task: TASK, reader: 'reader-11', ohif: OHIF, wlLog: [] })).toThrow(/not classes/);
  const labelmap = naturalizedSeg();
  labelmap.SegmentationType = 'LABELMAP';
  expect(() => tagReaderSeg(labelmap, { task: TASK, reader: 'reader-11', ohif: OHIF, wlLog: [] })).toThrow(/non-binary/);
});

test('frames refer to the SegmentSequence numbers, not to the labelmap indices OHIF leaves there', () => {
  // Only "calcified_nodule" (labelmap index 2) painted: OHIF describes it as segment 1 but its frames say 2.
  const ds = naturalizedSeg();
  ds.SegmentSequence[0].SegmentLabel = 'calcified_nodule';
  ds.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence.ReferencedSegmentNumber = 2;
  ds.PerFrameFunctionalGroupsSequence[0].FrameContentSequence.DimensionIndexValues = [2, 1];
  tagReaderSeg(ds, { task: TASK, reader: 'reader-11', ohif: OHIF, wlLog: [] });
  expect(ds.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence.ReferencedSegmentNumber).toBe(1);
  expect(ds.PerFrameFunctionalGroupsSequence[0].FrameContentSequence.DimensionIndexValues).toEqual([1, 1]);
  const stray = naturalizedSeg();
  stray.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence.ReferencedSegmentNumber = 2; // not described
  expect(() => tagReaderSeg(stray, { task: TASK, reader: 'reader-11', ohif: OHIF, wlLog: [] })).toThrow(/does not describe/);
});

test('the W/L log is cut to the latest events to fit ImageComments', () => {
  const wlLog = Array.from({ length: 2000 }, (_, i) => ({ type: 'wl', t: i, center: i, width: 400, preset: null }));
  const ds = tagReaderSeg(naturalizedSeg(), { task: TASK, reader: 'reader-11', ohif: OHIF, wlLog });
  const json = JSON.parse(ds.ImageComments);
  expect(ds.ImageComments.length).toBeLessThanOrEqual(10240);
  expect(json.truncated).toBe(true);
  expect(json.wl_log.at(-1).t).toBe(1999);
});

test('generate options ask OHIF for a binary, uncompressed SEG', () => {
  const options = generateOptions({ task: TASK, reader: 'reader-11' });
  expect(options.sopClassUID).toBe(BINARY_SEG_SOP_CLASS);
  expect(options.transferSyntaxUID).toBe('1.2.840.10008.1.2.1');
  expect(options.ContentCreatorName).toBe('reader-11^');
});
