// The radlabel panel: sign-in, worklist, protocol (classes, codes, boundaries, edge cases),
// W/L presets, segment choice, submit, escalate, arbitration overlays. Plain DOM, mounted
// into its own node: the prebuilt OHIF shares no React with runtime extensions.
// It sits over OHIF's left panel (the study browser: a task is one series) and collapses to its header, so
// OHIF's segmentation panel on the right (brush size and shape, eraser, threshold, interpolation, segment
// list) stays in reach. Its header always shows the window in effect and the slice in radlabel's numbering.
import { h } from './dom.js';

const CSS = `
#radlabel-panel{position:fixed;top:56px;left:4px;width:270px;max-height:calc(100vh - 64px);overflow:auto;z-index:1000;
 background:#090c29;color:#e6e6e6;border:1px solid #3a3f99;border-radius:6px;font:12px/1.4 sans-serif;padding:6px 8px}
#radlabel-panel[data-collapsed=true]{overflow:hidden}
#radlabel-panel .head{display:flex;align-items:center;gap:6px}
#radlabel-panel .head h3{flex:1}
#radlabel-viewing{font-weight:bold;color:#fff;background:#1f2a6b;border-radius:4px;padding:3px 6px;margin:2px 0}
#radlabel-viewing.off{background:#6b3a1f}
#radlabel-token-problem{border:1px solid #ff6b6b;border-radius:4px;padding:6px;margin:4px 0;color:#ffd0d0}
body.radlabel-task [data-cy=viewport-overlay-bottom-right],body.radlabel-task [data-cy=viewport-overlay-bottom-left]{visibility:hidden}
#radlabel-panel h3{margin:6px 0 4px;font-size:13px;color:#5acce6}
#radlabel-panel button{background:#1f2a6b;color:#fff;border:1px solid #3a3f99;border-radius:4px;padding:3px 7px;margin:2px;cursor:pointer}
#radlabel-panel button[aria-pressed=true]{background:#5acce6;color:#000}
#radlabel-panel input,#radlabel-panel textarea{width:95%;background:#000;color:#fff;border:1px solid #3a3f99}
#radlabel-panel .swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border:1px solid #fff}
#radlabel-panel .muted{color:#9aa}
#radlabel-panel .warn{color:#ffb347}
#radlabel-panel .err{color:#ff6b6b}
#radlabel-panel .ok{color:#7CFC00}
#radlabel-panel li{margin:3px 0}
`;

export function mountPanel(doc = globalThis.document) {
  let root = doc.getElementById('radlabel-panel');
  if (!root) {
    doc.head.append(h(doc, 'style', { id: 'radlabel-style' }, CSS));
    root = h(doc, 'div', { id: 'radlabel-panel', role: 'complementary', 'aria-label': 'radlabel' });
    doc.body.append(root);
  }
  return root;
}

function code(c) {
  return c ? `${c.CodingSchemeDesignator} ${c.CodeValue} "${c.CodeMeaning}"` : '';
}

// state: {signedIn, me, worklist, task, ohif, activeSegment, activePreset, status:{kind,text}, flags, arbitration}
// actions: {signIn(token), signOut(), open(item), preset(p), segment(s), submit(), noFindings(), escalate(note), toggleRead(n), accept(n)}
export function renderPanel(root, state, actions) {
  const doc = root.ownerDocument;
  const collapsed = Boolean(state.collapsed);
  root.setAttribute('data-collapsed', String(collapsed));
  doc.body.classList.toggle('radlabel-task', Boolean(state.task));
  const part = [h(doc, 'div', { class: 'head' }, h(doc, 'h3', {}, 'radlabel'),
    h(doc, 'button', { id: 'radlabel-collapse', 'aria-expanded': String(!collapsed), title: collapsed ? 'Show the radlabel panel' : 'Collapse to this header',
      onClick: () => actions.collapse() }, collapsed ? 'Show' : 'Hide'))];
  if (state.task && state.ohif) part.push(viewingLine(doc, state));
  if (collapsed) {
    if (state.status?.kind === 'err' || state.status?.kind === 'warn') part.push(statusLine(doc, state));
  } else {
    part.push(...sessionPart(doc, state, actions));
    if (state.signedIn && !state.task) part.push(...worklistPart(doc, state, actions));
    if (state.task && state.ohif) part.push(...taskPart(doc, state, actions));
  }
  root.replaceChildren(...part);
  return root;
}

// Only the header's viewing line (scrolling slices re-renders nothing else: a note being typed stays).
export function updateViewing(root, state) {
  const line = root.querySelector('#radlabel-viewing');
  if (line && state.task && state.ohif) line.replaceWith(viewingLine(root.ownerDocument, state));
  return Boolean(line);
}

// Always visible (also collapsed): the window in effect (a protocol preset or "not a preset") and the slice shown.
function viewingLine(doc, state) {
  const w = state.window;
  const where = w ? `C ${w.center} / W ${w.width}` : 'loading';
  const text = w?.preset ? `W/L: ${w.preset} (${where})` : `W/L: not a protocol preset (${where})`;
  const slice = state.slice ? ` · slice ${state.slice.number} of ${state.slice.of} (1 = most inferior)` : '';
  return h(doc, 'div', { id: 'radlabel-viewing', class: w?.preset ? '' : 'off', role: 'status' }, text + slice);
}

function statusLine(doc, state) {
  return h(doc, 'div', { id: 'radlabel-status', class: state.status.kind || 'muted', role: 'status' }, state.status.text);
}

function sessionPart(doc, state, actions) {
  const part = [];
  if (!state.signedIn) {
    if (state.tokenProblem) {
      const sentence = state.tokenProblem.charAt(0).toUpperCase() + state.tokenProblem.slice(1);
      part.push(h(doc, 'div', { id: 'radlabel-token-problem', role: 'alert' }, h(doc, 'strong', {}, 'Your reader token was not accepted. '),
        sentence));
    }
    const input = h(doc, 'input', { type: 'password', id: 'radlabel-token', placeholder: 'reader token', autocomplete: 'off' });
    part.push(h(doc, 'form', { id: 'radlabel-signin', onSubmit: e => { e.preventDefault(); actions.signIn(input.value); } },
      h(doc, 'div', {}, 'Sign in with your reader token'), input, h(doc, 'button', { type: 'submit' }, 'Sign in')));
  } else {
    part.push(h(doc, 'div', { class: 'muted' }, `${state.me?.reader ?? ''} · ${state.me?.tier ?? ''} `,
      h(doc, 'button', { id: 'radlabel-signout', onClick: () => actions.signOut() }, 'Sign out')));
  }
  if (state.status?.text) part.push(statusLine(doc, state));
  return part;
}

function worklistPart(doc, state, actions) {
  const items = state.worklist || [];
  return [h(doc, 'h3', {}, 'Worklist'), items.length
    ? h(doc, 'ul', { id: 'radlabel-worklist' }, items.map(item => h(doc, 'li', {},
      h(doc, 'button', { 'data-task': item.task_id, onClick: () => actions.open(item) }, `Open task ${item.task_id}`),
      ` ${item.kind} · ${item.protocol.id} ${item.protocol.version} · ${item.slices} slices`)))
    : h(doc, 'div', { class: 'muted', id: 'radlabel-worklist-empty' }, 'Nothing to read.')];
}

function taskPart(doc, state, actions) {
  const { task, ohif } = state;
  const part = [h(doc, 'h3', {}, `Task ${task.task_id} · ${task.kind}`), h(doc, 'div', { class: 'muted' }, `${ohif.protocol.name} ${ohif.protocol.version}`)];
  if (state.arbitration) part.push(renderArbitration(doc, state, actions)); // the arbiter's work comes first
  part.push(h(doc, 'h3', {}, 'Window presets'));
  part.push(h(doc, 'div', { id: 'radlabel-presets' }, (ohif.windowPresets || []).map(p =>
    h(doc, 'button', { 'data-preset': p.name, 'aria-pressed': state.activePreset === p.name ? 'true' : 'false',
      title: `${p.description || ''} (C ${p.windowCenter} / W ${p.windowWidth})`, onClick: () => actions.preset(p) },
    p.name === ohif.defaultPreset ? `${p.name} (default)` : p.name))));
  part.push(h(doc, 'h3', {}, 'Classes'));
  part.push(h(doc, 'ul', { id: 'radlabel-classes' }, (ohif.segments || []).map(s => h(doc, 'li', {},
    h(doc, 'button', { 'data-segment': s.name, 'aria-pressed': state.activeSegment === s.name ? 'true' : 'false',
      onClick: () => actions.segment(s) },
    h(doc, 'span', { class: 'swatch', style: `background:rgb(${s.color.join(',')})` }), s.label),
    h(doc, 'div', { class: 'muted' }, `read in ${s.readIn} · ${code(s.type)}`),
    s.boundary ? h(doc, 'div', {}, s.boundary) : null))));
  if (state.flags?.length) {
    part.push(h(doc, 'div', { id: 'radlabel-preset-warning', class: 'warn' },
      `Painted outside the required preset: ${state.flags.join(', ')} (recorded with your read)`));
  }
  if ((ohif.edgeCases || []).length) {
    part.push(h(doc, 'h3', {}, 'Edge cases'));
    part.push(h(doc, 'ul', {}, ohif.edgeCases.map(e => h(doc, 'li', {}, `[${e.action}] ${e.text}`))));
  }
  part.push(...finishPart(doc, state, actions));
  return part;
}

function finishPart(doc, state, actions) {
  const { task, ohif } = state;
  const note = h(doc, 'textarea', { id: 'radlabel-escalate-note', rows: 2, placeholder: 'Why escalate? (no patient details)' });
  return [h(doc, 'h3', {}, 'Finish'),
    h(doc, 'button', { id: 'radlabel-submit', disabled: state.busy || !task.open, onClick: () => actions.submit() },
      task.kind === 'arbitration' ? 'Submit final SEG' : 'Submit read'),
    h(doc, 'button', { id: 'radlabel-no-findings', disabled: state.busy || !task.open,
      title: 'Submit a read with no labels: nothing of this protocol in the series', onClick: () => actions.noFindings() },
    task.kind === 'arbitration' ? 'Final: no findings' : 'No findings'),
    h(doc, 'div', {}, note, h(doc, 'button', { id: 'radlabel-escalate', onClick: () => actions.escalate(note.value) },
      `Escalate to ${ohif.escalation?.routeTo ?? 'senior'}`)),
    h(doc, 'button', { id: 'radlabel-back', onClick: () => actions.back() }, 'Back to worklist')];
}

const figure = value => (value === null || value === undefined || Number.isNaN(Number(value)) ? '–' : Number(value).toFixed(2));
const who = id => (/^\d+$/.test(String(id)) ? `reader-${id}` : String(id));

// Pairwise agreement per class, as the adjudicator computed it (Dice, surface Dice, HD95).
function renderAgreement(doc, agreement) {
  const rows = [];
  for (const [name, figures] of Object.entries(agreement || {})) {
    for (const pair of figures?.pairs || []) {
      rows.push(h(doc, 'li', { 'data-class': name },
        `${name}: ${who(pair.a)} vs ${who(pair.b)} · Dice ${figure(pair.dice)} · surface Dice ${figure(pair.surface_dice)}`
        + ` · HD95 ${pair.hd95_mm == null ? '–' : `${figure(pair.hd95_mm)} mm`}`));
    }
  }
  return rows.length ? h(doc, 'div', {}, h(doc, 'h3', {}, 'Agreement'), h(doc, 'ul', { id: 'radlabel-agreement' }, rows)) : null;
}

function renderArbitration(doc, state, actions) {
  const arb = state.arbitration;
  const reasons = (arb.reasons || []).map(r => h(doc, 'li', { class: 'warn' }, r));
  return h(doc, 'div', { id: 'radlabel-arbitration' },
    h(doc, 'h3', {}, 'Reads'),
    h(doc, 'ul', {}, arb.reads.map(read => h(doc, 'li', {},
      h(doc, 'button', { 'data-read': read.read, 'aria-pressed': read.visible ? 'true' : 'false', onClick: () => actions.toggleRead(read.read) },
        read.visible ? 'Hide' : 'Show'),
      h(doc, 'button', { 'data-accept': read.read, 'aria-pressed': arb.accepted === read.read ? 'true' : 'false',
        onClick: () => actions.accept(read.read) }, 'Accept'),
      ` ${read.reader} · Dice vs consensus ${read.score == null ? '–' : Number(read.score).toFixed(2)}`))),
    renderAgreement(doc, arb.agreement),
    reasons.length ? h(doc, 'ul', { id: 'radlabel-reasons' }, reasons) : null,
    h(doc, 'div', { class: 'muted' }, 'Accept copies a read into your segmentation; edit it, then submit the final SEG.'));
}
