// The reading workflow: sign-in → worklist → task (protocol panel, presets, segmentation) → submit.
import { connectorApi, tokenStore } from './api.js';
import { mountPanel, renderPanel, updateViewing } from './panel.js';
import { ReadingClock } from './clock.js';
import { ViewingLog, matchesPreset } from './wl.js';

const TASK_PARAM = 'radlabelTask';
const PENDING_LINK = 'radlabel.taskLink';
const STROKE_GRACE_MS = 1500; // the brush reports its last change just after the pointer is released
const SETTLE_POLLS = 40; // up to 10 s for the viewer to settle on the default preset

export function taskUrl(item) {
  const q = new URLSearchParams({ StudyInstanceUIDs: item.study, SeriesInstanceUIDs: item.series, [TASK_PARAM]: String(item.task_id) });
  return `/segmentation?${q}`;
}

export class Controller {
  constructor({ doc = globalThis.document, win = globalThis.window, api, tokens, viewer = null } = {}) {
    this.doc = doc;
    this.win = win;
    this.tokens = tokens || tokenStore(win?.sessionStorage);
    this.api = api || connectorApi({ tokens: this.tokens });
    this.viewer = viewer; // { ctx, glue } once OHIF hands us its managers
    this.state = { signedIn: false, worklist: [], status: null, flags: [] };
    this.log = null;
    this.stops = [];
    this.actions = {
      signIn: token => this.signIn(token),
      signOut: () => this.signOut(),
      open: item => this.win.location.assign(taskUrl(item)),
      back: () => this.win.location.assign('/'),
      preset: p => this.applyPreset(p),
      segment: s => this.chooseSegment(s),
      submit: () => this.submit(),
      noFindings: () => this.noFindings(),
      escalate: note => this.escalate(note),
      toggleRead: n => this.toggleRead(n),
      accept: n => this.acceptRead(n),
      collapse: () => { this.state.collapsed = !this.state.collapsed; this.render(); },
    };
  }

  render() {
    this.root = mountPanel(this.doc);
    renderPanel(this.root, this.state, this.actions);
  }

  say(kind, text) {
    this.state.status = { kind, text };
    this.render();
  }

  taskIdFromUrl() {
    const value = new URLSearchParams(this.win.location.search).get(TASK_PARAM);
    return value && /^\d+$/.test(value) ? Number(value) : null;
  }

  // A task link opened before signing in: OHIF cannot load the study without a token and leaves for its "study not
  // found" page, so the link is kept for the tab (a relative /segmentation link only) and followed after sign-in.
  rememberTaskLink() {
    const { pathname, search } = this.win.location;
    if (this.taskIdFromUrl() !== null && pathname === '/segmentation') this.win.sessionStorage?.setItem(PENDING_LINK, pathname + search);
  }

  followTaskLink() {
    const link = this.win.sessionStorage?.getItem(PENDING_LINK);
    this.win.sessionStorage?.removeItem(PENDING_LINK);
    if (!link || !link.startsWith('/segmentation?') || this.taskIdFromUrl() !== null) return false;
    this.win.location.assign(link);
    return true;
  }

  async start() {
    this.render();
    if (!this.tokens.get()) {
      this.rememberTaskLink();
      return;
    }
    try {
      this.state.me = await this.api.me();
      this.state.signedIn = true;
      this.state.tokenProblem = null;
      if (this.followTaskLink()) return;
      if (this.taskIdFromUrl() === null) await this.loadWorklist();
      else if (this.modeEntered && !this.state.task) await this.enterTask(this.viewer); // signed in on a task's link
      else this.render();
    } catch (error) {
      this.handleError(error);
    }
  }

  // A refused token (invalid, replaced or revoked) is forgotten and the reason shown apart from the sign-in prompt.
  handleError(error) {
    if (error?.status === 401) return this.tokenRefused(error.message);
    this.say('err', error?.message || String(error));
    return undefined;
  }

  tokenRefused(sentence) {
    this.rememberTaskLink();
    this.tokens.clear();
    this.state.signedIn = false;
    this.state.collapsed = false;
    this.state.tokenProblem = sentence || 'your reader token is invalid, expired or revoked.';
    this.state.status = null;
    this.render();
  }

  async signIn(token) {
    if (!token || !token.trim()) return this.say('err', 'Paste your reader token.');
    this.tokens.set(token);
    await this.start();
    return undefined;
  }

  signOut() {
    this.tokens.clear();
    this.state = { signedIn: false, worklist: [], status: { kind: 'muted', text: 'Signed out.' }, flags: [] };
    this.render();
  }

  async loadWorklist() {
    const { tasks } = await this.api.worklist();
    this.state.worklist = tasks;
    this.say('muted', `${tasks.length} task(s) for you.`);
  }

  // Called by the extension's onModeEnter once OHIF's managers exist.
  async enterTask(viewer) {
    this.viewer = viewer;
    this.modeEntered = true;
    const taskId = this.taskIdFromUrl();
    if (taskId === null || !this.tokens.get() || this.entering) return;
    this.entering = true;
    try {
      if (!this.state.signedIn) {
        this.state.me = await this.api.me();
        this.state.signedIn = true;
      }
      const task = await this.api.task(taskId);
      this.state.task = task;
      this.state.ohif = task.ohif;
      this.log = new ViewingLog(task.ohif);
      this.clock = new ReadingClock(() => Date.now());
      this.say('muted', 'Loading the series…');
      const { glue, ctx } = viewer;
      this.session = await glue.createProtocolSegmentation(ctx, task, task.ohif);
      this.watchReader();
      this.chooseSegment(task.ohif.segments[0]);
      glue.activateBrush(ctx);
      await this.openInDefaultPreset();
      if (task.kind === 'arbitration') await this.loadReads();
      const ready = task.kind === 'arbitration' ? 'Ready: compare the reads, accept one (and edit it) or paint, then submit the final SEG.'
        : 'Ready: paint with the protocol classes, then submit (or No findings).';
      this.say(task.open ? 'ok' : 'warn', task.open ? ready : 'You have already read this task.');
      this.win.radlabelReady = true; // for the end-to-end test and for embedding pages
    } catch (error) {
      this.entering = false;
      this.handleError(error);
    }
  }

  // The reader's own input: a stroke on the viewport is painting (the viewer also modifies the labelmap when it
  // builds or copies one: that is not painting); any input outside the panel may change the window on purpose.
  watchReader() {
    const { glue, ctx } = this.viewer;
    this.strokes = 0;
    this.strokeOpenUntil = 0;
    this.stops.push(glue.onReaderInput(this.doc, {
      strokeStart: () => { this.strokes += 1; this.strokeOpenUntil = Infinity; this.clock.activity(); },
      strokeEnd: () => { this.strokeOpenUntil = Date.now() + STROKE_GRACE_MS; },
      input: () => { this.readerMovedWindow = true; this.clock.activity(); },
      activity: () => this.clock.activity(),
    }));
    this.stops.push(glue.onPaint(ctx, detail => this.painted(detail)));
    const timer = this.win.setInterval(() => this.pollWindow(), 250);
    this.stops.push(() => this.win.clearInterval(timer));
  }

  // Every task opens in the protocol's default preset: applied once the viewer has shown the series, and kept
  // against the viewer's own late reset to the series' window (see pollWindow).
  async openInDefaultPreset() {
    const { ohif } = this.state;
    const preset = ohif.windowPresets.find(p => p.name === ohif.defaultPreset) || ohif.windowPresets[0];
    if (!preset) return;
    this.applyPreset(preset);
    const { glue, ctx } = this.viewer;
    let steady = 0;
    for (let tries = 0; tries < SETTLE_POLLS && steady < 4; tries += 1) {
      await new Promise(resolve => this.win.setTimeout(resolve, 250));
      this.pollWindow();
      const window = glue.currentWindow(ctx);
      steady = window && matchesPreset(preset, window.center, window.width) ? steady + 1 : 0;
    }
  }

  leave() {
    this.modeEntered = false;
    this.entering = false;
    this.stops.splice(0).forEach(stop => stop());
  }

  // The window in effect, polled (W/L changes come from many tools). A change away from a preset radlabel applied,
  // with no input from the reader since, is the viewer resetting to the series' window: the preset is put back.
  pollWindow() {
    const { glue, ctx } = this.viewer;
    const window = glue.currentWindow(ctx);
    if (!window) return;
    const intended = this.intendedPreset;
    if (intended && !this.readerMovedWindow && !matchesPreset(intended, window.center, window.width)) {
      glue.applyPreset(ctx, intended);
      return;
    }
    const event = this.log.windowChanged(window.center, window.width);
    const slice = glue.currentSlice ? glue.currentSlice(ctx, this.state.task) : null;
    const sliceMoved = slice?.number !== this.state.slice?.number;
    this.state.slice = slice;
    if (event) {
      this.updateWindowState();
      this.render();
    } else if (sliceMoved && !(this.root && updateViewing(this.root, this.state))) {
      this.render();
    }
  }

  updateWindowState() {
    const current = this.log.current;
    this.state.window = current ? { ...current, preset: this.log.currentPreset() } : null;
    this.state.activePreset = this.state.window?.preset ?? null;
  }

  applyPreset(preset) {
    const { glue, ctx } = this.viewer;
    glue.applyPreset(ctx, preset);
    this.intendedPreset = preset;
    this.readerMovedWindow = false;
    this.log.windowChanged(preset.windowCenter, preset.windowWidth, 'preset');
    this.clock?.activity();
    this.updateWindowState();
    this.render();
  }

  chooseSegment(segment) {
    const { ctx } = this.viewer;
    ctx.servicesManager.services.segmentationService.setActiveSegment(this.session.segmentationId, segment.segmentNumber);
    this.state.activeSegment = segment.name;
    const outside = this.log.outsidePreset(segment.name);
    this.say(outside ? 'warn' : 'muted', outside ? `${segment.label} must be read in the ${outside} preset.` : `Painting ${segment.label}.`);
  }

  // A labelmap change is a paint stroke only while the reader's pointer is down on the viewport (or just after):
  // the viewer's own set-up, copied reads and the read overlays are not the reader painting.
  painted(detail) {
    if (this.copying || (detail?.segmentationId && detail.segmentationId !== this.session?.segmentationId)) return;
    if (!this.strokes || Date.now() > this.strokeOpenUntil) return;
    const { glue, ctx } = this.viewer;
    this.pollWindow(); // the window in effect now, not as of the last poll
    const index = glue.activeSegmentIndex(ctx, this.session.viewportId);
    const segment = this.state.ohif.segments.find(s => s.segmentNumber === index);
    if (!segment || !this.log.painted(segment.name, this.strokes)) return;
    const flags = this.log.flaggedClasses();
    if (flags.join() !== this.state.flags.join()) {
      this.state.flags = flags;
      this.render();
    }
  }

  async submit() {
    const { glue, ctx } = this.viewer;
    const { task } = this.state;
    this.state.busy = true;
    this.say('muted', 'Making the SEG…');
    try {
      const blob = await glue.readerSegBlob(ctx, {
        segmentationId: this.session.segmentationId, task, reader: this.state.me.reader, ohif: task.ohif, wlLog: this.log.events,
        timing: this.clock?.times(),
      });
      const reply = await this.api.submitSeg(task.task_id, blob);
      this.state.task = { ...task, open: false };
      this.state.busy = false;
      if (reply.httpStatus === 202) this.say('warn', 'Submitted: queued, it will be stored when the PACS is back (nothing is lost).');
      else this.say('ok', `Submitted: stored and in Label Studio (annotation ${reply.annotation_id}).`);
      this.win.radlabelLastSubmit = reply;
    } catch (error) {
      this.state.busy = false;
      if (error.status === 401) this.tokenRefused(error.message);
      else this.say('err', `Not submitted: ${error.message}`);
      this.win.radlabelLastSubmit = { error: error.message };
    }
  }

  // No findings: an empty read (an empty SEG is not valid DICOM), recorded by the connector with the W/L log.
  async noFindings() {
    const { task } = this.state;
    this.state.busy = true;
    this.say('muted', 'Recording no findings…');
    try {
      const reply = await this.api.noFindings(task.task_id, this.log ? this.log.events : [], this.clock?.times());
      this.state.task = { ...task, open: false };
      this.state.busy = false;
      this.say('ok', `Submitted: no findings (annotation ${reply.annotation_id}).`);
      this.win.radlabelLastSubmit = reply;
    } catch (error) {
      this.state.busy = false;
      if (error.status === 401) this.tokenRefused(error.message);
      else this.say('err', `Not submitted: ${error.message}`);
      this.win.radlabelLastSubmit = { error: error.message };
    }
  }

  async escalate(note) {
    try {
      const reply = await this.api.escalate(this.state.task.task_id, note || '');
      this.say('ok', `Escalated to the ${reply.route_to} reader.`);
    } catch (error) {
      this.handleError(error);
    }
  }

  async loadReads() {
    const { glue, ctx } = this.viewer;
    const { reads } = await this.api.reads(this.state.task.task_id);
    this.reads = reads;
    const figures = this.state.task.arbitration;
    this.state.arbitration = { ...figures, reads: figures.reads.map(r => ({ ...r, visible: true })) };
    this.overlays = {};
    for (const read of reads) {
      this.overlays[read.read] = await glue.addReadOverlay(ctx, {
        displaySet: this.session.displaySet, viewportId: this.session.viewportId, read, ohif: this.state.ohif, task: this.state.task,
      });
    }
    // The brush paints into the arbiter's own segmentation, not into the last overlay added.
    glue.activateSegmentation(ctx, this.session.viewportId, this.session.segmentationId);
  }

  toggleRead(n) {
    const { ctx } = this.viewer;
    const read = this.state.arbitration.reads.find(r => r.read === n);
    read.visible = !read.visible;
    this.viewer.glue.setOverlayVisible(ctx, this.session.viewportId, this.overlays[n], read.visible);
    this.render();
  }

  // Accept: the chosen read becomes the arbiter's own segmentation, to edit and submit.
  acceptRead(n) {
    const { glue, ctx } = this.viewer;
    this.copying = true;
    try {
      glue.copyLabelmap(ctx, this.overlays[n], this.session.segmentationId);
    } finally {
      this.copying = false;
    }
    for (const read of this.state.arbitration.reads) {
      if (read.visible) this.toggleRead(read.read); // the accepted labels now show as the arbiter's own
    }
    this.state.arbitration.accepted = n;
    glue.activateSegmentation(ctx, this.session.viewportId, this.session.segmentationId);
    const reader = this.state.arbitration.reads.find(r => r.read === n)?.reader ?? `read ${n}`;
    this.say('ok', `Accepted ${reader} into your segmentation: edit it if needed, then submit the final SEG.`);
  }
}
