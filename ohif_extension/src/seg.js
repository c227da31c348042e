// A reader's SEG as radlabel needs it, from the naturalized dataset OHIF's own
// generateSegmentation (cornerstone adapters + dcmjs) made: binary, the protocol's segment
// names and SNOMED codes (not OHIF's default "Tissue"), tagged with reader, task, protocol
// version and the W/L log.

export const BINARY_SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

const asList = value => (value === undefined || value === null ? [] : Array.isArray(value) ? value : [value]);

// Source classes whose instances are single frames: a reference to them carries no frame number.
const SINGLE_FRAME = new Set(['1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.4', '1.2.840.10008.5.1.4.1.1.128',
  '1.2.840.10008.5.1.4.1.1.1', '1.2.840.10008.5.1.4.1.1.1.1', '1.2.840.10008.5.1.4.1.1.7']);

export function newUid() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return `2.25.${BigInt(`0x${[...bytes].map(b => b.toString(16).padStart(2, '0')).join('')}`)}`;
}

const code = c => (c ? { CodeValue: c.CodeValue, CodingSchemeDesignator: c.CodingSchemeDesignator, CodeMeaning: c.CodeMeaning } : undefined);

// A DICOM person name of one component says so with a trailing caret ("reader-11^"); the connector maps it
// back to the pseudonym "reader-11".
export function personName(reader) {
  return String(reader).endsWith('^') ? String(reader) : `${reader}^`;
}

export function generateOptions({ task, reader }) {
  const { id, version } = task.protocol;
  return {
    sopClassUID: BINARY_SEG_SOP_CLASS,
    transferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
    transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN,
    SeriesDescription: `radlabel read ${id}`.slice(0, 64),
    SeriesNumber: 901,
    ContentCreatorName: personName(reader),
    ContentDescription: `${id} ${version}`.slice(0, 64),
    ContentLabel: 'RADLABEL',
  };
}

// OHIF 3.13.2's SEG (dcmjs + the cornerstone3D adapter) numbers the SegmentSequence 1..N in the order the
// painted segments come, but each frame's ReferencedSegmentNumber is the labelmap's segment index (the
// protocol's segmentNumber): with segments 1 and 4 painted, frames of segment "2" say 4. Frames are mapped
// back through the protocol (labelmap index -> class -> its number in the SegmentSequence).
function renumberFrames(dataset, ohif) {
  const nameOfIndex = Object.fromEntries(ohif.segments.map(s => [Number(s.segmentNumber), s.name]));
  const numberOf = Object.fromEntries(asList(dataset.SegmentSequence).map(s => [s.SegmentLabel, Number(s.SegmentNumber)]));
  for (const frame of asList(dataset.PerFrameFunctionalGroupsSequence)) {
    const ident = asList(frame.SegmentIdentificationSequence)[0];
    if (!ident) throw new Error('a frame of the SEG names no segment');
    const number = numberOf[nameOfIndex[Number(ident.ReferencedSegmentNumber)]];
    if (!number) throw new Error(`a frame of the SEG refers to segment ${ident.ReferencedSegmentNumber}, which it does not describe`);
    ident.ReferencedSegmentNumber = number;
    const content = asList(frame.FrameContentSequence)[0];
    if (content && Array.isArray(content.DimensionIndexValues)) content.DimensionIndexValues[0] = number;
  }
}

export function tagReaderSeg(dataset, { task, reader, ohif, wlLog, timing = null }) {
  const byName = Object.fromEntries(ohif.segments.map(s => [s.name, s]));
  const segments = Array.isArray(dataset.SegmentSequence) ? dataset.SegmentSequence : [dataset.SegmentSequence];
  const unknown = segments.map(s => s.SegmentLabel).filter(label => !byName[label]);
  if (unknown.length) throw new Error(`segments ${unknown.join(', ')} are not classes of ${task.protocol.id}`);
  dataset.SegmentSequence = segments.map(s => {
    const cls = byName[s.SegmentLabel];
    const out = {
      ...s,
      SegmentAlgorithmType: 'MANUAL',
      SegmentedPropertyCategoryCodeSequence: code(cls.category),
      SegmentedPropertyTypeCodeSequence: code(cls.type),
      TrackingID: cls.name,
      TrackingUID: newUid(), // TrackingID needs its UID (type 1C)
    };
    delete out.SegmentAlgorithmName; // only for automatic segments
    if (cls.typeModifier) out.SegmentedPropertyTypeCodeSequence.SegmentedPropertyTypeModifierCodeSequence = code(cls.typeModifier);
    if (cls.anatomicRegion) out.AnatomicRegionSequence = code(cls.anatomicRegion);
    else delete out.AnatomicRegionSequence;
    return out;
  });
  if (dataset.SegmentationType !== 'BINARY') throw new Error('the viewer made a non-binary SEG');
  renumberFrames(dataset, ohif);
  // The labelmap is painted on the source grid itself; say so, or readers such as highdicom
  // refuse to map frames back to their source slices.
  // Also what dciodvfy asks of the derivation macro that cornerstone leaves out.
  const classOf = {};
  for (const series of asList(dataset.ReferencedSeriesSequence)) {
    for (const item of asList(series.ReferencedInstanceSequence)) {
      classOf[item.ReferencedSOPInstanceUID] = item.ReferencedSOPClassUID;
      if (SINGLE_FRAME.has(item.ReferencedSOPClassUID)) delete item.ReferencedFrameNumber;
    }
  }
  const anyClass = Object.values(classOf).find(Boolean);
  for (const frame of asList(dataset.PerFrameFunctionalGroupsSequence)) {
    for (const derivation of asList(frame.DerivationImageSequence)) {
      derivation.DerivationCodeSequence = { CodeValue: '113076', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Segmentation' };
      for (const source of asList(derivation.SourceImageSequence)) {
        source.SpatialLocationsPreserved = 'YES';
        source.ReferencedSOPClassUID = source.ReferencedSOPClassUID || classOf[source.ReferencedSOPInstanceUID] || anyClass;
        source.PurposeOfReferenceCodeSequence = {
          CodeValue: '121322', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Source image for image processing operation',
        };
        if (SINGLE_FRAME.has(source.ReferencedSOPClassUID)) delete source.ReferencedFrameNumber;
      }
    }
  }
  dataset.ContentCreatorName = personName(reader);
  dataset.ContentDescription = `${task.protocol.id} ${task.protocol.version}`.slice(0, 64);
  dataset.ContentLabel = 'RADLABEL';
  dataset.SeriesDescription = `radlabel read ${task.protocol.id}`.slice(0, 64);
  if (dataset.StudyID === 'No Study ID') dataset.StudyID = '';
  dataset.ImageComments = readerComments({ task, reader, wlLog, timing });
  return dataset;
}

// The W/L log and the reading time travel inside the SEG (ImageComments, LT: at most 10240 characters).
function readerComments({ task, reader, wlLog, timing }) {
  const meta = { task: task.task_id, protocol: task.protocol, reader, ...(timing ? { timing } : {}) };
  let log = wlLog;
  let comments = JSON.stringify({ ...meta, wl_log: log });
  while (comments.length > 10240 && log.length > 1) {
    log = log.slice(Math.ceil(log.length / 4)); // keep the latest events
    comments = JSON.stringify({ ...meta, wl_log: log, truncated: true });
  }
  return comments;
}
