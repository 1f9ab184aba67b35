// sprig's charts: small hand-drawn SVG bar and line charts and an HTML confusion matrix.
// No dependencies. Colours come from style.css (classes c0..c5), so dark mode follows the page.
// Every chart is an <svg role="img"> with an aria-label summarising its data, and each bar or
// point carries a <title> for a hover tooltip.

const SVG = 'http://www.w3.org/2000/svg';

function svgEl(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  if (text !== undefined) el.textContent = text;
  return el;
}

function htmlEl(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A name with line-break opportunities after '_' and '-' (as <wbr>): class names in narrow cells. */
export function breakable(name) {
  return name.split(/(?<=[_-])/).flatMap((part, i) => (i ? [document.createElement('wbr'), part] : [part]));
}

/** A round upper bound and tick step for values up to `max`. */
export function niceScale(max, ticks = 4, integer = false) {
  if (!(max > 0)) return integer ? { max: 1, step: 1 } : { max: 1, step: 0.25 };
  const raw = integer ? Math.max(1, max / ticks) : max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const steps = (integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]).map((m) => m * magnitude);
  const step = steps.find((s) => s >= raw) ?? 10 * magnitude;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

const defaultFormat = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/\.?0+$/, ''));

function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function legend(series) {
  const list = htmlEl('ul', 'legend');
  list.setAttribute('aria-hidden', 'true'); // the svg's label names the series
  series.forEach((s, i) => {
    const item = htmlEl('li');
    const swatch = htmlEl('span', `swatch c${s.color ?? i}${s.dashed ? ' dashed' : ''}`);
    item.append(swatch, document.createTextNode(s.name));
    list.append(item);
  });
  return list;
}

/** The drawing width: the container's own width (so text keeps its size), within limits. */
function widthOf(el) {
  const w = el.clientWidth;
  return w > 0 ? Math.max(300, Math.min(1100, Math.round(w))) : 560;
}

/** Replaces the content of `el` with a muted message (no data yet). */
export function emptyChart(el, message) {
  el.replaceChildren(htmlEl('p', 'chart-empty', message));
}

function yAxis(svg, { left, right, top, bottom, height, scale, format }) {
  const plotH = height - top - bottom;
  for (let v = 0; v <= scale.max + 1e-9; v += scale.step) {
    const y = top + plotH - (v / scale.max) * plotH;
    svg.append(svgEl('line', { x1: left, x2: right, y1: y, y2: y, class: v === 0 ? 'axis' : 'grid' }));
    svg.append(svgEl('text', { x: left - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, format(v)));
  }
}

/**
 * Vertical bar chart, grouped or stacked.
 * options: { categories: string[], series: [{name, values: number[], color?}], stacked?, label,
 *            yLabel?, format?(v), height? }
 */
export function barChart(el, options) {
  const { categories, series, stacked = false, label, yLabel, format = defaultFormat } = options;
  if (!categories.length || series.every((s) => s.values.every((v) => !v))) {
    emptyChart(el, options.empty ?? 'No data yet.');
    return;
  }
  const width = widthOf(el);
  const height = options.height ?? 260;
  const crowded = categories.length > 8;
  const longest = Math.max(...categories.map((c) => c.length));
  const rotate = crowded || longest * 6.5 > (width - 60) / categories.length;
  const top = 14;
  const bottom = rotate ? Math.min(90, 22 + Math.min(longest, 16) * 5.2) : 34;
  const left = 48;
  const right = width - 10;
  const plotW = right - left;
  const plotH = height - top - bottom;
  const totals = categories.map((_, i) =>
    stacked ? series.reduce((sum, s) => sum + (s.values[i] || 0), 0) : Math.max(...series.map((s) => s.values[i] || 0)),
  );
  const integer = series.every((s) => s.values.every((v) => Number.isInteger(v ?? 0)));
  const scale = niceScale(Math.max(...totals), 4, integer);
  const summary = categories
    .map((c, i) => `${c}: ${series.map((s) => (series.length > 1 ? `${s.name} ${format(s.values[i] || 0)}` : format(s.values[i] || 0))).join(', ')}`)
    .join('; ');
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${label}. ${summary}`, class: 'chart' });
  yAxis(svg, { left, right, top, bottom, height, scale, format });
  if (yLabel) {
    svg.append(svgEl('text', { x: 12, y: top + plotH / 2, class: 'axis-label', transform: `rotate(-90 12 ${top + plotH / 2})`, 'text-anchor': 'middle' }, yLabel));
  }
  const slot = plotW / categories.length;
  const groupW = Math.min(slot * 0.75, 64);
  const every = Math.ceil(categories.length / Math.max(4, Math.floor(width / 34)));
  categories.forEach((category, i) => {
    const x0 = left + slot * i + (slot - groupW) / 2;
    let stackedSoFar = 0;
    series.forEach((s, si) => {
      const value = s.values[i] || 0;
      const barH = (value / scale.max) * plotH;
      const w = stacked ? groupW : groupW / series.length;
      const x = stacked ? x0 : x0 + w * si;
      const y = top + plotH - barH - (stacked ? (stackedSoFar / scale.max) * plotH : 0);
      stackedSoFar += stacked ? value : 0;
      if (value > 0) {
        const rect = svgEl('rect', { x: x + (stacked ? 0 : 0.5), y, width: Math.max(1, w - (stacked ? 0 : 1)), height: Math.max(barH, 0.5), class: `bar c${s.color ?? si}` });
        rect.append(svgEl('title', {}, `${category}${series.length > 1 ? ` — ${s.name}` : ''}: ${format(value)}`));
        svg.append(rect);
      }
    });
    if (i % every === 0) {
      const cx = left + slot * i + slot / 2;
      const text = truncate(category, rotate ? 16 : 24);
      svg.append(
        rotate
          ? svgEl('text', { x: cx, y: top + plotH + 12, class: 'tick', 'text-anchor': 'end', transform: `rotate(-35 ${cx} ${top + plotH + 12})` }, text)
          : svgEl('text', { x: cx, y: top + plotH + 18, class: 'tick', 'text-anchor': 'middle' }, text),
      );
    }
  });
  el.replaceChildren(...(series.length > 1 ? [legend(series)] : []), svg);
}

/**
 * Line chart over numeric x values (e.g. epochs).
 * options: { xs: number[], series: [{name, values: (number|null)[], color?, dashed?, dots?}], label,
 *            xLabel?, yLabel?, yMax?, format?(v), height? }
 * `dots: false` draws the line alone (a threshold drawn as a flat series needs no points).
 */
export function lineChart(el, options) {
  const { xs, series, label, xLabel, yLabel, format = defaultFormat } = options;
  const present = series.filter((s) => s.values.some((v) => v !== null && v !== undefined && Number.isFinite(v)));
  if (!xs.length || !present.length) {
    emptyChart(el, options.empty ?? 'No data yet.');
    return;
  }
  const width = widthOf(el);
  const height = options.height ?? 240;
  const top = 14;
  const bottom = xLabel ? 42 : 28;
  const left = 48;
  const right = width - 14;
  const plotW = right - left;
  const plotH = height - top - bottom;
  const all = present.flatMap((s) => s.values.filter((v) => Number.isFinite(v)));
  const scale = options.yMax ? { max: options.yMax, step: options.yMax / 4 } : niceScale(Math.max(...all));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const xPos = (x) => (xMax === xMin ? left + plotW / 2 : left + ((x - xMin) / (xMax - xMin)) * plotW);
  const yPos = (v) => top + plotH - (Math.min(v, scale.max) / scale.max) * plotH;
  const last = (s) => [...s.values].reverse().find((v) => Number.isFinite(v));
  const summary = present.map((s) => `${s.name} latest ${format(last(s))}`).join(', ');
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${label}, ${xs.length} points. ${summary}`, class: 'chart' });
  yAxis(svg, { left, right, top, bottom, height, scale, format });
  const xTicks = Math.min(xs.length, Math.max(3, Math.floor(width / 50)));
  const xStep = Math.max(1, Math.ceil((xMax - xMin) / Math.max(1, xTicks - 1)));
  for (let x = xMin; x <= xMax; x += xStep) {
    svg.append(svgEl('text', { x: xPos(x), y: top + plotH + 16, class: 'tick', 'text-anchor': 'middle' }, String(x)));
  }
  if (xLabel) svg.append(svgEl('text', { x: left + plotW / 2, y: height - 6, class: 'axis-label', 'text-anchor': 'middle' }, xLabel));
  if (yLabel) {
    svg.append(svgEl('text', { x: 12, y: top + plotH / 2, class: 'axis-label', transform: `rotate(-90 12 ${top + plotH / 2})`, 'text-anchor': 'middle' }, yLabel));
  }
  series.forEach((s, si) => {
    const color = s.color ?? si;
    const points = xs.map((x, i) => [x, s.values[i]]).filter(([, v]) => Number.isFinite(v));
    if (!points.length) return;
    const d = points.map(([x, v], i) => `${i ? 'L' : 'M'}${xPos(x).toFixed(1)},${yPos(v).toFixed(1)}`).join('');
    svg.append(svgEl('path', { d, class: `line c${color}${s.dashed ? ' dashed' : ''}`, 'data-series': s.name }));
    if (points.length <= 60 && s.dots !== false) {
      for (const [x, v] of points) {
        const dot = svgEl('circle', { cx: xPos(x), cy: yPos(v), r: 3, class: `dot c${color}` });
        dot.append(svgEl('title', {}, `${s.name} at ${x}: ${format(v)}`));
        svg.append(dot);
      }
    }
  });
  el.replaceChildren(legend(series), svg);
}

/** Confusion matrix as an accessible HTML table, cells shaded by their share of the row. */
export function confusionMatrix(el, classes, matrix) {
  if (!classes.length || !matrix.length) {
    emptyChart(el, 'No evaluation.');
    return;
  }
  const table = htmlEl('table', 'confusion');
  const caption = htmlEl('caption', null, 'Rows: actual class. Columns: predicted class.');
  const thead = htmlEl('thead');
  const head = htmlEl('tr');
  const corner = htmlEl('th', null, 'actual \\ predicted');
  corner.scope = 'col';
  head.append(corner);
  for (const c of classes) {
    const th = htmlEl('th');
    th.append(...breakable(c));
    th.scope = 'col';
    head.append(th);
  }
  thead.append(head);
  const tbody = htmlEl('tbody');
  matrix.forEach((row, i) => {
    const tr = htmlEl('tr');
    const th = htmlEl('th', null, classes[i] ?? `#${i}`);
    th.scope = 'row';
    tr.append(th);
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((count, j) => {
      const td = htmlEl('td', i === j ? 'diag' : count ? 'miss' : null, String(count));
      td.style.setProperty('--share', (count / total).toFixed(3));
      td.title = `actual ${classes[i]}, predicted ${classes[j]}: ${count} of ${total}`;
      tr.append(td);
    });
    tbody.append(tr);
  });
  table.append(caption, thead, tbody);
  el.replaceChildren(table);
}
