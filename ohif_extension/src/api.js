// The connector API (/radlabel/api/) as the extension uses it. The reader token lives in
// sessionStorage only (gone with the tab) and is never put in a URL or a log line.

const TOKEN_KEY = 'radlabel.readerToken';

export function tokenStore(storage = globalThis.sessionStorage) {
  return {
    get: () => storage?.getItem(TOKEN_KEY) || '',
    set: token => storage?.setItem(TOKEN_KEY, token.trim()),
    clear: () => storage?.removeItem(TOKEN_KEY),
  };
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function connectorApi({ base = '/radlabel/api', fetchFn = (...a) => globalThis.fetch(...a), tokens = tokenStore() } = {}) {
  async function call(method, path, body, contentType) {
    const headers = { Authorization: `Bearer ${tokens.get()}` };
    if (contentType) headers['Content-Type'] = contentType;
    const reply = await fetchFn(`${base}/${path}`, { method, headers, body });
    let payload = {};
    try {
      payload = await reply.json();
    } catch {
      payload = {};
    }
    if (!reply.ok && reply.status !== 202) {
      const error = new ApiError(reply.status, payload.error || `the connector answered HTTP ${reply.status}`);
      error.reason = payload.reason; // 401: missing, malformed, unknown, revoked or replaced token
      throw error;
    }
    return { ...payload, httpStatus: reply.status };
  }
  return {
    me: () => call('GET', 'me'),
    worklist: () => call('GET', 'worklist'),
    task: id => call('GET', `tasks/${Number(id)}`),
    reads: id => call('GET', `tasks/${Number(id)}/reads`),
    submitSeg: (id, blob) => call('POST', `tasks/${Number(id)}/seg`, blob, 'application/dicom'),
    noFindings: (id, wlLog, timing) => call('POST', `tasks/${Number(id)}/empty`,
      JSON.stringify({ wl_log: wlLog || [], ...(timing ? { timing } : {}) }), 'application/json'),
    escalate: (id, note) => call('POST', `tasks/${Number(id)}/escalate`, JSON.stringify({ note }), 'application/json'),
    protocol: async protocolId => {
      const reply = await fetchFn(`/radlabel/protocols/${encodeURIComponent(protocolId)}.json`,
        { headers: { Authorization: `Bearer ${tokens.get()}` } });
      if (!reply.ok) throw new ApiError(reply.status, `protocol ${protocolId} is not provisioned`);
      return reply.json();
    },
  };
}
