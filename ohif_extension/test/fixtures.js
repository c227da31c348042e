// A protocol's OHIF configuration as the viewer front serves it (radlabel templates show … ohif).
export const OHIF = {
  protocol: { id: 'ct_lung_nodules', name: 'CT lung nodules', version: '1.0.0', fingerprint: 'd823f7f0f9d0a662' },
  windowPresets: [
    { name: 'lung', windowCenter: -600, windowWidth: 1500, modality: 'CT', description: 'Lung parenchyma' },
    { name: 'mediastinum', windowCenter: 40, windowWidth: 400, modality: 'CT', description: 'Soft tissue' },
    { name: 'bone', windowCenter: 400, windowWidth: 1800, modality: 'CT', description: 'Calcification' },
  ],
  defaultPreset: 'lung',
  segments: [
    { segmentNumber: 1, name: 'solid_nodule', label: 'Solid nodule', color: [230, 25, 75], readIn: 'lung',
      category: { CodeValue: '49755003', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Morphologically Abnormal Structure' },
      type: { CodeValue: '27925004', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Nodule' }, typeModifier: null,
      anatomicRegion: { CodeValue: '39607008', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Lung' },
      boundary: 'Include the whole nodule <img src=x onerror=alert(1)>' },
    { segmentNumber: 2, name: 'calcified_nodule', label: 'Calcified nodule', color: [255, 225, 25], readIn: 'bone',
      category: { CodeValue: '49755003', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Morphologically Abnormal Structure' },
      type: { CodeValue: '27925004', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Nodule' }, typeModifier: null,
      anatomicRegion: null, boundary: '' },
  ],
  otherClasses: [],
  edgeCases: [{ id: 'juxtapleural', text: 'A nodule touching the pleura is labelled.', action: 'label' }],
  escalation: { routeTo: 'senior', triggers: ['reader_request'] },
};

export const TASK = {
  task_id: 7, kind: 'reads', project_id: 1, protocol: { id: 'ct_lung_nodules', version: '1.0.0' },
  study: '2.25.1', series: '2.25.2', slices: 3, sop_instance_uids: ['2.25.3', '2.25.4', '2.25.5'],
  ohif: OHIF, reader: 'reader-11', own_annotations: [], own_submissions: [], open: true,
};

// A fetch standing in for the connector API: records every call, answers from a table.
export function fakeFetch(routes) {
  const calls = [];
  const fn = async (url, init = {}) => {
    calls.push({ url, init });
    const key = `${init.method || 'GET'} ${url}`;
    const [status, body] = routes[key] || [404, { error: 'not found' }];
    return { ok: status < 300, status, json: async () => body };
  };
  fn.calls = calls;
  return fn;
}
