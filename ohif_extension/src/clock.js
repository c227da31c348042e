// Reading time of one task, as Label Studio records it for its own editor: lead time from opening the task to
// submitting it, plus the active part of it (time between the reader's inputs, gaps over IDLE_MS left out).

export const IDLE_MS = 120000;

const seconds = ms => Math.round(ms / 100) / 10;

export class ReadingClock {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.opened = now();
    this.last = this.opened;
    this.activeMs = 0;
  }

  activity() {
    const t = this.now();
    const gap = t - this.last;
    if (gap > 0 && gap <= IDLE_MS) this.activeMs += gap;
    this.last = Math.max(this.last, t);
  }

  // What goes with the read: {lead_time_s, active_time_s} (the submit click is the last activity).
  times() {
    this.activity();
    return { lead_time_s: seconds(this.now() - this.opened), active_time_s: seconds(this.activeMs) };
  }
}
