// Slice navigation in Label Studio's editor behind radlabel's door (issue 20).
// - Slice keys: arrow up / PageUp = next slice (towards slice N, superior), arrow down / PageDown = previous one,
//   on the preset shown (see KEYMAP for why this page handles them, not the editor's own binding).
// - The mouse wheel over the image pages the shown preset's slices (ctrl/cmd + wheel stays the editor's zoom).
// - Beside the image: "slice N of M · z mm" (slice 1 = the most inferior, the numbering of the OHIF extension).
// - Every region is named with its slice: `slice N` under its class in the Regions panel, saved as its meta text.
// - One current slice for the task: a preset switched to shows the same slice, and so does the task opened again
//   in this tab (after Submit, a reload, a tab switch back). Label Studio's own editor does not reset it on Submit.
// editor.js hands over the editor's options (`editorOptions`) and the editor once loaded (`attach`).
(function () {
  // Label Studio's own slice hotkeys (image:prev/next) default to ctrl+left/right (or ctrl+a/d), Label Studio's
  // task keys, and with one image per window preset they page the image mounted last, a hidden preset's. So the
  // editor's keymap gets the arrow keys (its pagination tooltips name them) and this page takes those keys first
  // (capture phase) to page the preset on screen; PageUp/PageDown the same.
  const KEYMAP = {
    'image:next': { key: 'up', description: 'Next slice (towards the last, most superior one)' },
    'image:prev': { key: 'down', description: 'Previous slice (towards slice 1, the most inferior one)' },
  };
  const SLICE_KEYS = { ArrowUp: 1, PageUp: 1, ArrowDown: -1, PageDown: -1 };
  const WHEEL_STEP_PX = 50;  // a mouse wheel notch is 100 to 120 px; a touchpad sends many small deltas
  const state = { ls: null, positions: null, slice: 0, image: null, badge: null, timer: null, wheel: 0 };

  const annotation = () => state.ls && state.ls.annotationStore && state.ls.annotationStore.selected;

  function shownImage() {
    // the image of the preset on screen: Label Studio keeps one image tag per preset, the others hidden
    const current = annotation();
    if (!current || !current.names) return null;
    for (const tag of current.names.values()) {
      const box = tag.type === 'image' && tag.containerRef;
      if (box && box.isConnected && box.getClientRects().length) return tag;
    }
    return null;
  }

  const count = image => (image && image.parsedValueList ? image.parsedValueList.length : 0);

  function show(image, slice) {
    const last = count(image) - 1;
    if (last < 0) return;
    const wanted = Math.max(0, Math.min(last, slice));
    if (image.currentImage !== wanted) image.setCurrentImage(wanted);
    state.slice = wanted;
  }

  function step(delta) {
    const image = shownImage();
    if (image) show(image, image.currentImage + delta);
    follow();
  }

  function describe(slice, total) {
    const mm = state.positions && state.positions.length === total ? state.positions[slice] : null;
    return `slice ${slice + 1} of ${total}` + (mm === null || mm === undefined ? '' : ` · ${mm.toFixed(1)} mm`) +
      ' (1 = most inferior)';
  }

  function drawBadge(image) {
    const badge = state.badge;
    const total = count(image);
    const box = image.containerRef.getBoundingClientRect();
    badge.hidden = false;
    badge.textContent = describe(image.currentImage, total);
    badge.dataset.slice = String(image.currentImage + 1);
    badge.dataset.position = state.positions && state.positions.length === total ? String(state.positions[image.currentImage]) : '';
    badge.dataset.image = image.name;
    badge.style.top = `${Math.max(0, box.top + window.scrollY) + 4}px`;
    badge.style.left = `${box.left + window.scrollX + 4}px`;
  }

  function nameRegion(region) {
    // The Regions panel shows a region's `text` under its label (a plain field: set as the region is made, before
    // the panel draws it); its meta text, saved with the read, shows in the region's details.
    if (!region || typeof region.item_index !== 'number') return false;
    const name = `slice ${region.item_index + 1}`;
    const meta = region.meta && region.meta.text;
    if (typeof region.setMetaText === 'function' && (!meta || !meta.length || /^slice \d+$/.test(meta[0]) && meta[0] !== name)) {
      region.setMetaText(name);
    }
    if (region.text === name) return false;
    region.text = name;
    return true;
  }

  function nameRegions() {
    const current = annotation();
    if (!current || !current.regions || !current.regions.map(nameRegion).includes(true)) return;
    // regions the panel drew before they had a name (an earlier read shown): the sort order flipped there and back
    // redraws the panel (no undo step, nothing stored)
    const panel = current.regionStore;
    if (panel && typeof panel.toggleSortOrder === 'function') {
      panel.toggleSortOrder();
      panel.toggleSortOrder();
    }
  }

  // Called on a timer and after each own step: the editor changes slices itself too (its pagination, "N of M" typed
  // in, a region selected on another slice), so the page follows it; a preset newly shown gets the current slice.
  function follow() {
    nameRegions();
    const image = shownImage();
    if (!image || !count(image)) {  // nothing shown, or its slices not parsed yet
      if (state.badge) state.badge.hidden = true;
      return;
    }
    if (image !== state.image) show(image, state.slice);  // another preset shows the same slice
    else if (image.currentImage !== state.slice) state.slice = image.currentImage;
    state.image = image;
    keep(state.slice);
    drawBadge(image);
  }

  // The slice survives a reload of the page and the task opened again in this tab (after Submit, the read is shown
  // at the slice it was submitted on): a number per task in sessionStorage, nothing else.
  const SLICE_KEY = `radlabel.slice.${document.body.dataset.task}`;
  function keep(slice) {
    if (sessionStorage.getItem(SLICE_KEY) !== String(slice)) sessionStorage.setItem(SLICE_KEY, String(slice));
  }

  function onWheel(event) {
    const image = shownImage();
    if (!image || event.ctrlKey || event.metaKey || !image.containerRef.contains(event.target) || !event.deltaY) return;
    event.preventDefault();
    event.stopPropagation();  // the editor's own wheel handler pans a zoomed image
    // one slice per wheel notch (lines, pages, or a large pixel delta); a touchpad's small deltas add up to one
    const notch = event.deltaMode !== WheelEvent.DOM_DELTA_PIXEL || Math.abs(event.deltaY) >= WHEEL_STEP_PX;
    state.wheel = notch ? event.deltaY : state.wheel + event.deltaY;
    if (Math.abs(state.wheel) < (notch ? 0 : WHEEL_STEP_PX)) return;
    step(state.wheel < 0 ? 1 : -1);  // wheel up (negative delta) = towards the last slice, like arrow up
    state.wheel = 0;
  }

  function onSliceKey(event) {
    const delta = SLICE_KEYS[event.key];
    const target = event.target;
    if (!delta || event.ctrlKey || event.metaKey || event.altKey || event.shiftKey || !shownImage() ||
        target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName))) return;
    event.preventDefault();
    event.stopPropagation();  // the editor's own binding would page a hidden preset's image
    step(delta);
  }

  function releaseChoiceFocus(event) {
    // arrow keys on a focused radio button would switch the window preset instead of the slice
    const input = event.target;
    if (input instanceof HTMLInputElement && (input.type === 'radio' || input.type === 'checkbox')) input.blur();
  }

  window.radlabelNavigation = {
    editorOptions: { keymap: KEYMAP, onEntityCreate: nameRegion },
    attach(ls, positions) {
      state.ls = ls;
      state.positions = Array.isArray(positions) ? positions : null;
      state.slice = Math.max(0, Number(sessionStorage.getItem(SLICE_KEY)) || 0);
      state.badge = document.createElement('div');
      state.badge.id = 'radlabel-slice';
      state.badge.setAttribute('role', 'status');
      state.badge.hidden = true;
      document.body.append(state.badge);
      document.addEventListener('wheel', onWheel, { capture: true, passive: false });
      window.addEventListener('keydown', onSliceKey, true);
      document.addEventListener('change', releaseChoiceFocus, true);
      state.timer = setInterval(follow, 200);
      follow();
    },
    current: () => ({ slice: state.slice + 1, image: state.image && state.image.name }),
    step,
  };
})();
