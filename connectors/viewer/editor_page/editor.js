// radlabel's Label Studio door: sign-in, worklist and Label Studio's own editor on the viewer front.
// The reader token lives in sessionStorage only (the OHIF extension's key: one sign-in per tab for both
// doors), is sent as a bearer header on every call and never put in a URL or a log line.
const TOKEN_KEY = 'radlabel.readerToken';
const tokens = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: token => sessionStorage.setItem(TOKEN_KEY, token.trim()),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};
const $ = id => document.getElementById(id);
const page = document.body.dataset;

function status(message, error = false) {
  $('radlabel-status').textContent = message;
  $('radlabel-status').className = error ? 'err' : '';
}

class SignInNeeded extends Error {}

async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${tokens.get()}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const reply = await fetch(`/radlabel/editor/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let payload = {};
  try { payload = await reply.json(); } catch { payload = {}; }
  if (reply.status === 401) {
    tokens.clear();
    throw new SignInNeeded(payload.error || 'sign in with your reader token.');
  }
  return { status: reply.status, body: payload };
}

function signIn(message) {
  status(message || 'Sign in with the reader token your administrator gave you.', Boolean(message));
  $('radlabel-signin').hidden = false;
  $('radlabel-main').replaceChildren();
}

async function showWorklist() {
  const { status: code, body } = await call('GET', 'api/worklist');
  if (code !== 200) return status(body.error || `the worklist answered ${code}.`, true);
  $('radlabel-who').textContent = body.reader;
  const list = document.createElement('ul');
  list.id = 'radlabel-worklist';
  for (const task of body.tasks) {
    const item = document.createElement('li');
    const link = document.createElement('a');
    link.href = `/radlabel/editor/tasks/${task.task_id}`;
    link.dataset.task = task.task_id;
    link.textContent = `task ${task.task_id} — ${task.kind}, ${task.protocol.id} ${task.protocol.version}, ${task.slices} slices`;
    item.append(link);
    list.append(item);
  }
  $('radlabel-main').replaceChildren(list);
  status(body.tasks.length ? `${body.tasks.length} task(s) to read.` : 'Nothing to read now.');
  window.radlabelWorklist = body.tasks.map(t => t.task_id);
}

async function loadEditorBundle() {
  const load = self.radlabelBundleLoader;
  await Promise.all(page.chunks.split(',').map(chunk => load.e(Number(chunk))));
  load(Number(page.module));  // sets window.LabelStudio
}

async function save(taskId, annotation, started) {
  const result = annotation.serializeAnnotation();
  const lead_time = Math.min(86400, Math.round((Date.now() - started) / 100) / 10);
  const reply = await call('POST', `tasks/${taskId}/annotation`, { result, lead_time });
  window.radlabelLastSubmit = reply;
  if (reply.status === 201) status(`Saved as your read (annotation ${reply.body.annotation_id}).`);
  else status(reply.body.error || `saving answered ${reply.status}.`, true);
}

async function showTask(taskId) {
  await loadEditorBundle();
  const { status: code, body } = await call('GET', `api/tasks/${taskId}`);
  if (code !== 200) return status(body.error || `the task answered ${code}.`, true);
  $('radlabel-who').textContent = body.reader;
  const started = Date.now();
  const navigation = window.radlabelNavigation;  // slice keys, wheel, slice number and mm (navigation.js)
  const submit = (_, annotation) => save(taskId, annotation, started).catch(failed);
  // Nothing that shows others' work or Label Studio's project settings: no annotation or prediction tabs or menus
  // ('topbar' alone holds the Submit control); a read task is shown without submit.
  const shown = ['panel', 'controls', 'side-column', 'infobar', 'topbar'];
  const interfaces = body.open ? [...shown, 'submit'] : shown;
  const editor = new window.LabelStudio('radlabel-main', {
    ...navigation.editorOptions, config: body.config, task: body.task, interfaces,
    // the smart tools on, their answers accepted onto their slices (an open read only)
    forceAutoAnnotation: body.open, forceAutoAcceptSuggestions: body.open,
    user: { id: body.user_id, firstName: body.reader, lastName: '' },
    onLabelStudioLoad: ls => {
      const store = ls.annotationStore;
      const current = body.open ? store.addAnnotation({ userGenerate: true }) : store.annotations[0];
      if (current) store.selectAnnotation(current.id);
      navigation.attach(ls, body.slice_positions_mm);
      window.radlabelEditor = ls;  // the editor of this page (tests and the browser console look at it)
      window.radlabelReady = true;
    },
    onSubmitAnnotation: submit,
    onUpdateAnnotation: submit,
  });
  if (body.open) wireAssist(editor, taskId);
  status(body.open ? `${body.kind} task ${taskId}: label it, then Submit.` : `task ${taskId}: you have read it (your read is shown).`);
}

// 3-D assist: Label Studio's smart tools (the toolbar's Auto-Detect brush, keypoints, boxes) report a finished
// drawing with every dynamic region of its class; radlabel's gateway grows them in 3-D with the ML backend and the
// regions land, accepted, on their slices. A new assist of a class replaces that class's earlier assisted regions.
const assisted = new Map();  // "control/label" → ids of the regions the last assist of that class added

function assistKey(region) {
  const result = region.results && region.results[0];
  return `${result ? result.from_name.name : ''}/${region.labelName || ''}`;
}

function removeAssisted(annotation, key) {
  const ids = assisted.get(key) || new Set();
  for (const region of [...annotation.regions]) if (ids.has(region.cleanId)) annotation.deleteRegion(region);
}

async function runAssist(taskId, region, connected) {
  const store = window.radlabelEditor;
  const annotation = store.annotationStore.selected;
  const key = assistKey(region);
  const earlier = assisted.get(key) || new Set();
  const ids = new Set(connected.map(r => r.cleanId).filter(id => !earlier.has(id)));
  const result = annotation.serializeAnnotation().filter(r => ids.has(r.id));
  if (!result.length) return;
  status('Assist: growing your strokes in 3-D…');
  const reply = await call('POST', `tasks/${taskId}/assist`, { result });
  window.radlabelAssist = { requests: ((window.radlabelAssist || {}).requests || 0) + 1, status: reply.status,
    regions: reply.status === 200 ? reply.body.result.length : 0 };
  if (reply.status !== 200) return status(reply.body.error || `the assist answered ${reply.status}.`, true);
  removeAssisted(annotation, key);
  assisted.set(key, new Set(reply.body.result.map(r => r.id)));
  await store.loadSuggestions(Promise.resolve(reply.body.result), regions => regions);
  const slices = new Set(reply.body.result.map(r => r.item_index)).size;
  status(`Assist: ${reply.body.result.length} region(s) on ${slices} slice(s) added; correct them and Submit.`);
}

function wireAssist(editor, taskId) {
  editor.on('regionFinishedDrawing', (region, connected) => {
    window.radlabelAssistEvents = (window.radlabelAssistEvents || 0) + 1;
    runAssist(taskId, region, connected || [region]).catch(failed);
  });
}

function failed(error) {
  if (error instanceof SignInNeeded) return signIn(error.message);
  status(String(error.message || error), true);
}

function start() {
  if (!tokens.get()) return signIn();
  $('radlabel-signin').hidden = true;
  const work = page.page === 'task' ? showTask(Number(page.task)) : showWorklist();
  work.catch(failed);
}

$('radlabel-signin').addEventListener('submit', event => {
  event.preventDefault();
  tokens.set($('radlabel-token').value);
  $('radlabel-token').value = '';
  start();
});
$('radlabel-signout').addEventListener('click', () => { tokens.clear(); signIn(); });
start();
