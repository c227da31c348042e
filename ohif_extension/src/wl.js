// Viewing conditions of a read: every W/L change and every paint stroke with the window in
// effect, so the server can tell which classes were read outside their required preset.

export function windowFromRange({ lower, upper }) {
  const width = upper - lower;
  return { center: lower + width / 2, width };
}

export function rangeFromWindow(center, width) {
  return { lower: center - width / 2, upper: center + width / 2 };
}

// Same rule as the server (connectors/viewer/api.py viewing_conditions): 2 % of the width, at least 1.
export function matchesPreset(preset, center, width) {
  const tolerance = Math.max(1, 0.02 * preset.windowWidth);
  return Math.abs(center - preset.windowCenter) <= tolerance && Math.abs(width - preset.windowWidth) <= tolerance;
}

export function presetFor(presets, center, width) {
  return presets.find(p => matchesPreset(p, center, width))?.name ?? null;
}

export class ViewingLog {
  constructor(ohifConfig, now = () => Date.now()) {
    this.presets = ohifConfig.windowPresets || [];
    this.readIn = Object.fromEntries((ohifConfig.segments || []).map(s => [s.name, s.readIn]));
    this.events = [];
    this.now = now;
    this.current = null;
  }

  windowChanged(center, width, source = 'user') {
    const rounded = { center: Math.round(center * 10) / 10, width: Math.round(width * 10) / 10 };
    if (this.current && this.current.center === rounded.center && this.current.width === rounded.width) return null;
    this.current = rounded;
    const event = { type: 'wl', t: this.now(), ...rounded, preset: presetFor(this.presets, center, width), source };
    this.events.push(event);
    return event;
  }

  // One paint event per stroke and class: a stroke fires many data-modified events. Called only for the
  // reader's own strokes (the controller ignores the viewer's set-up and copied reads), with the window in
  // effect at that moment.
  painted(segment, stroke = null) {
    const last = this.events[this.events.length - 1];
    const window = this.current || {};
    if (last && last.type === 'paint' && last.segment === segment && last.center === window.center && last.width === window.width
      && (stroke === null || last.stroke === stroke)) {
      return null;
    }
    const event = { type: 'paint', t: this.now(), segment, center: window.center, width: window.width, preset: this.currentPreset() };
    if (stroke !== null) event.stroke = stroke;
    this.events.push(event);
    return event;
  }

  currentPreset() {
    return this.current ? presetFor(this.presets, this.current.center, this.current.width) : null;
  }

  // The class's required preset when the window in effect is not it (null when it is, or none is required).
  outsidePreset(segment) {
    const required = this.presets.find(p => p.name === this.readIn[segment]);
    if (!required || !this.current) return null;
    return matchesPreset(required, this.current.center, this.current.width) ? null : required.name;
  }

  flaggedClasses() {
    const flagged = new Set();
    for (const e of this.events) {
      if (e.type !== 'paint') continue;
      const required = this.presets.find(p => p.name === this.readIn[e.segment]);
      if (required && (e.center === undefined || !matchesPreset(required, e.center, e.width))) flagged.add(e.segment);
    }
    return [...flagged].sort();
  }
}
