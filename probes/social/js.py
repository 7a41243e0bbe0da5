"""Scripts the browser judge runs in the page (one ``page.evaluate`` round trip each).

Kept apart from the Python that drives them so each reads as one language.
They run in the page's main world (in each frame of the asset that is scanned):
a page could lie to them about its own links, which only hides its own links;
nothing here is trusted beyond that.
"""


# The candidate elements in document order, open shadow roots included, and what
# each says about itself: [href (resolved), onclick, target]. Plain page.evaluate
# (one round trip) rather than a locator: a click costs two round trips in all.
_COLLECT_JS = """const SEL = 'a[href], area[href], [onclick]';
const collect = () => {
  const out = [];
  const visit = root => {
    for (const el of root.querySelectorAll('*')) {
      if (el.matches(SEL)) out.push(el);
      if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(document);
  return out;
};
const row = el => {
  const tag = el.tagName.toLowerCase();
  let href = null;
  if (tag === 'a' || tag === 'area') {
    const raw = el.getAttribute('href') ?? el.getAttribute('xlink:href');
    if (raw !== null) {
      if (/^\\s*javascript:/i.test(raw)) href = raw.trim();
      else { try { href = new URL(raw, el.baseURI || document.baseURI).href; } catch (e) { href = null; } }
    }
  }
  return [href, el.getAttribute('onclick'), el.getAttribute('target')];
};
"""
SCAN_JS = "() => {" + _COLLECT_JS + "return collect().map(row); }"

# Check the element is still the one scanned, then say where a real mouse click
# lands on it. Whatever covers it (a cookie banner, a sticky header) is made
# transparent to the pointer until UNCOVER_JS, as a visitor would close the
# banner first. A hidden element (collapsed menu) is clicked from script.
AIM_JS = "([index, expected]) => {" + _COLLECT_JS + """
  const el = collect()[index];
  if (!el || JSON.stringify(row(el)) !== JSON.stringify(expected)) return {stale: true};
  const scripted = () => { el.click(); return {scripted: true}; };
  if (!el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) return scripted();
  el.scrollIntoView({block: 'center', inline: 'center'});
  const rects = el.getClientRects();
  if (!rects.length || rects[0].width < 1 || rects[0].height < 1) return scripted();
  const x = rects[0].left + rects[0].width / 2, y = rects[0].top + rects[0].height / 2;
  const root = el.getRootNode();
  const covers = [];
  let hit = root.elementFromPoint(x, y);
  for (let i = 0; i < 5 && hit && hit !== el && !el.contains(hit); i++) {
    let top = hit;
    while (top.parentElement && !top.parentElement.contains(el)) top = top.parentElement;
    covers.push([top, top.style.pointerEvents]);
    top.style.pointerEvents = 'none';
    hit = root.elementFromPoint(x, y);
  }
  window[Symbol.for('posture.covers')] = covers;
  if (hit && (hit === el || el.contains(hit))) return {x, y, covered: covers.length};
  for (const [e, v] of covers) e.style.pointerEvents = v;
  return scripted();
}"""

# A click from script on the element scanned, when a real click cannot reach it (a frame whose
# place in the page is covered or out of view): false when it is no longer the one scanned.
CLICK_JS = "([index, expected]) => {" + _COLLECT_JS + """
  const el = collect()[index];
  if (!el || JSON.stringify(row(el)) !== JSON.stringify(expected)) return false;
  el.click();
  return true;
}"""

# Run on a frame's element in its parent document: where a point of the frame's viewport is
# in the parent's viewport, or null when the frame does not show there (covered, scrolled out).
FRAME_POINT_JS = """(el, [x, y]) => {
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  const px = r.left + el.clientLeft + (parseFloat(s.paddingLeft) || 0) + x;
  const py = r.top + el.clientTop + (parseFloat(s.paddingTop) || 0) + y;
  const root = el.getRootNode();
  const hit = (root.elementFromPoint ? root : document).elementFromPoint(px, py);
  return hit === el ? [px, py] : null;
}"""

UNCOVER_JS = """() => {
  const key = Symbol.for('posture.covers');
  for (const [e, v] of window[key] || []) e.style.pointerEvents = v;
  delete window[key];
}"""

MARKERS_JS = """markers => {
  const t = (document.body ? document.body.innerText : '').replace(/\\s+/g, ' ').toLowerCase();
  const out = {};
  for (const m of markers) {
    let n = 0, i = t.indexOf(m);
    while (i !== -1) { n++; i = t.indexOf(m, i + m.length); }
    if (n) out[m] = n;
  }
  return out;
}"""

# The element a marker is shown in, widened to its box (up to ~400 characters).
_CONTAINER_JS = """
const norm = s => (s || '').replace(/\\s+/g, ' ').trim();
const container = m => {
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let hit = null;
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const p = n.parentElement;
    if (p && norm(n.data).toLowerCase().includes(m) && p.checkVisibility()) hit = p;
  }
  if (!hit) {
    for (const el of document.body.querySelectorAll('*')) {
      if (el.checkVisibility() && norm(el.innerText).toLowerCase().includes(m)) hit = el;
    }
  }
  let box = hit;
  while (box && box.parentElement && box.parentElement !== document.body
         && norm(box.parentElement.innerText).length <= 400) box = box.parentElement;
  return box;
};
"""

SNIPPET_JS = (
    "m => {" + _CONTAINER_JS + "const box = container(m); return box ? norm(box.innerText).slice(0, 300) : '';}"
)

CLOSE_MODAL_JS = "([m, labels]) => {" + _CONTAINER_JS + """
  let box = container(m);
  const sel = 'button, a, [role=button], input[type=button], input[type=submit], [data-dismiss], '
            + '[data-bs-dismiss], [aria-label], .close';
  for (let depth = 0; box && depth < 6; depth++, box = box.parentElement) {
    for (const el of box.querySelectorAll(sel)) {
      if (!el.checkVisibility()) continue;
      const label = norm(el.innerText || el.value || el.getAttribute('aria-label') || el.title).toLowerCase();
      const dismiss = el.hasAttribute('data-dismiss') || el.hasAttribute('data-bs-dismiss')
                      || el.classList.contains('close');
      if (dismiss || labels.includes(label)) { el.click(); return label || 'close'; }
    }
  }
  return null;
}"""

# [delay in seconds, resolved URL] of each <meta http-equiv=refresh> leading elsewhere.
REFRESH_JS = """() => [...document.querySelectorAll('meta[http-equiv]')]
  .filter(m => m.httpEquiv.trim().toLowerCase() === 'refresh')
  .map(m => {
    const c = m.content || '';
    const raw = (/url\\s*=\\s*['"]?([^'";]+)/i.exec(c) || [])[1];
    try { return [parseFloat(c) || 0, raw ? new URL(raw.trim(), document.baseURI).href : null]; }
    catch (e) { return [0, null]; }
  })
  .filter(r => r[1] !== null)"""
