// What the reader does, as the page sees it (plain DOM, no viewer internals): strokes on a viewport, other input.

export const VIEWPORT = '.cornerstone-viewport-element, [data-viewport-uid]';

// The reader's own input, from the DOM (capture phase, before the tools see it): a primary-button stroke on a
// viewport, any other pointer or key input outside the radlabel panel, and wheel scrolling (reading slices).
export function onReaderInput(doc, { strokeStart, strokeEnd, input, activity }) {
  let stroking = false;
  const outsidePanel = target => !target?.closest?.('#radlabel-panel');
  const down = event => {
    if (!outsidePanel(event.target)) return;
    input();
    if (event.button === 0 && event.target?.closest?.(VIEWPORT)) {
      stroking = true;
      strokeStart();
    }
  };
  const up = () => {
    if (stroking) strokeEnd();
    stroking = false;
  };
  const key = event => { if (outsidePanel(event.target)) input(); };
  const listeners = [['pointerdown', down], ['pointerup', up], ['pointercancel', up], ['keydown', key], ['wheel', activity]];
  for (const [type, fn] of listeners) doc.addEventListener(type, fn, { capture: true, passive: true });
  return () => listeners.forEach(([type, fn]) => doc.removeEventListener(type, fn, { capture: true }));
}

