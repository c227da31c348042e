// The reading workflow: sign-in → worklist → task (protocol panel, presets, segmentation) → submit.
import { connectorApi, tokenStore } from './api.js';
import { mountPanel, renderPanel } from './panel.js';
import { ViewingLog } from './wl.js';

const TASK_PARAM = 'radlabelTask';

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

  async start() {
    this.render();
    if (!this.tokens.get()) return;
    try {
      this.state.me = await this.api.me();
      this.state.signedIn = true;
      if (this.taskIdFromUrl() === null) await this.loadWorklist();
      else this.render();
    } catch (error) {
      if (error.status === 401) this.tokens.clear();
      this.say('err', error.message);
    }
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
    const taskId = this.taskIdFromUrl();
    if (taskId === null || !this.tokens.get()) return;
    try {
      if (!this.state.signedIn) {
        this.state.me = await this.api.me();
        this.state.signedIn = true;
      }
      const task = await this.api.task(taskId);
      this.state.task = task;
      this.state.ohif = task.ohif;
      this.log = new ViewingLog(task.ohif);
      this.say('muted', 'Loading the series…');
      const { glue, ctx } = viewer;
      this.session = await glue.createProtocolSegmentation(ctx, task, task.ohif);
      const preset = task.ohif.windowPresets.find(p => p.name === task.ohif.defaultPreset) || task.ohif.windowPresets[0];
      if (preset) this.applyPreset(preset);
      glue.activateBrush(ctx);
      this.chooseSegment(task.ohif.segments[0]);
      const timer = this.win.setInterval(() => this.pollWindow(), 250);
      this.stops.push(() => this.win.clearInterval(timer));
      this.stops.push(glue.onPaint(ctx, detail => this.painted(detail)));
      if (task.kind === 'arbitration') await this.loadReads();
      const ready = task.kind === 'arbitration' ? 'Ready: compare the reads, accept one (and edit it) or paint, then submit the final SEG.'
        : 'Ready: paint with the protocol classes, then submit (or No findings).';
      this.say(task.open ? 'ok' : 'warn', task.open ? ready : 'You have already read this task.');
      this.win.radlabelReady = true; // for the end-to-end test and for embedding pages
    } catch (error) {
      this.say('err', error.message);
    }
  }

  leave() {
    this.stops.splice(0).forEach(stop => stop());
  }

  pollWindow() {
    const { glue, ctx } = this.viewer;
    const window = glue.currentWindow(ctx);
    if (!window) return;
    const event = this.log.windowChanged(window.center, window.width);
    if (event) {
      this.state.activePreset = event.preset;
      this.render();
    }
  }

  applyPreset(preset) {
    const { glue, ctx } = this.viewer;
    glue.applyPreset(ctx, preset);
    this.log.windowChanged(preset.windowCenter, preset.windowWidth, 'preset');
    this.state.activePreset = preset.name;
    this.render();
  }

  chooseSegment(segment) {
    const { ctx } = this.viewer;
    ctx.servicesManager.services.segmentationService.setActiveSegment(this.session.segmentationId, segment.segmentNumber);
    this.state.activeSegment = segment.name;
    const outside = this.log.outsidePreset(segment.name);
    this.say(outside ? 'warn' : 'muted', outside ? `${segment.label} must be read in the ${outside} preset.` : `Painting ${segment.label}.`);
  }

  painted(detail) {
    // Only the reader's own strokes: not the read overlays, not an accepted read being copied in.
    if (this.copying || (detail?.segmentationId && detail.segmentationId !== this.session?.segmentationId)) return;
    const { glue, ctx } = this.viewer;
    const index = glue.activeSegmentIndex(ctx, this.session.viewportId);
    const segment = this.state.ohif.segments.find(s => s.segmentNumber === index);
    if (!segment || !this.log.painted(segment.name)) return;
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
      });
      const reply = await this.api.submitSeg(task.task_id, blob);
      this.state.task = { ...task, open: false };
      this.state.busy = false;
      if (reply.httpStatus === 202) this.say('warn', 'Submitted: queued, it will be stored when the PACS is back (nothing is lost).');
      else this.say('ok', `Submitted: stored and in Label Studio (annotation ${reply.annotation_id}).`);
      this.win.radlabelLastSubmit = reply;
    } catch (error) {
      this.state.busy = false;
      this.say('err', `Not submitted: ${error.message}`);
      this.win.radlabelLastSubmit = { error: error.message };
    }
  }

  // No findings: an empty read (an empty SEG is not valid DICOM), recorded by the connector with the W/L log.
  async noFindings() {
    const { task } = this.state;
    this.state.busy = true;
    this.say('muted', 'Recording no findings…');
    try {
      const reply = await this.api.noFindings(task.task_id, this.log ? this.log.events : []);
      this.state.task = { ...task, open: false };
      this.state.busy = false;
      this.say('ok', `Submitted: no findings (annotation ${reply.annotation_id}).`);
      this.win.radlabelLastSubmit = reply;
    } catch (error) {
      this.state.busy = false;
      this.say('err', `Not submitted: ${error.message}`);
      this.win.radlabelLastSubmit = { error: error.message };
    }
  }

  async escalate(note) {
    try {
      const reply = await this.api.escalate(this.state.task.task_id, note || '');
      this.say('ok', `Escalated to the ${reply.route_to} reader.`);
    } catch (error) {
      this.say('err', error.message);
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
