// sprig's web app: one page, hash-routed views over the JSON API. No framework, no build step.
// API data is only ever inserted as text (textContent), never as HTML.

import { barChart, breakable, confusionMatrix, emptyChart, lineChart } from './charts.js';

const $ = (selector, root = document) => root.querySelector(selector);

/** Builds an element: h('td', {className: 'x'}, 'text', childNode, …). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key in el && key !== 'list') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---------- formatting ----------

const percent = (x, digits = 1) => (Number.isFinite(x) ? `${(x * 100).toFixed(digits)} %` : '—');
const fixed = (x, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : '—');
const number = (x) => (Number.isFinite(x) ? x.toLocaleString('en') : '—');

function bytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** Local time as YYYY-MM-DD HH:MM:SS, compact for tables. */
function stamp(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return iso ?? '—';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function duration(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

// ---------- API client: errors, bearer token, retries ----------

/** An error from the API (its `error.code` and `error.message`) or from the network. */
class ApiError extends Error {
  constructor(status, code, message, jobId) {
    super(message);
    this.status = status;
    this.code = code;
    this.jobId = jobId;
  }
}

const TOKEN_KEY = 'sprig.apiToken';
const READS_KEY = 'sprig.readsNeedToken';
const storage = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  get readsNeedToken() {
    return sessionStorage.getItem(READS_KEY) === '1';
  },
  set readsNeedToken(value) {
    sessionStorage.setItem(READS_KEY, value ? '1' : '0');
  },
};

let tokenPrompt = null;

/** Asks for the API token once: concurrent requests share one dialog. Resolves to the token or null. */
function askForToken() {
  if (tokenPrompt) return tokenPrompt;
  const dialog = $('#token-dialog');
  const input = $('#token-input');
  tokenPrompt = new Promise((resolve) => {
    input.value = '';
    dialog.returnValue = '';
    dialog.addEventListener(
      'close',
      () => {
        const value = input.value.trim();
        input.value = '';
        resolve(dialog.returnValue === 'ok' && value ? value : null);
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  }).then((token) => {
    tokenPrompt = null;
    if (token) storage.token = token;
    return token;
  });
  return tokenPrompt;
}

/** One HTTP exchange. XMLHttpRequest when upload progress is wanted, fetch otherwise. */
function send({ method, url, body, headers, onUploadProgress }) {
  if (!onUploadProgress) {
    return fetch(url, { method, body, headers, cache: 'no-store' }).then(async (response) => ({
      status: response.status,
      statusText: response.statusText,
      contentType: response.headers.get('content-type') ?? '',
      text: await response.text(),
    }));
  }
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onUploadProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () =>
      resolve({ status: xhr.status, statusText: xhr.statusText, contentType: xhr.getResponseHeader('content-type') ?? '', text: xhr.responseText }),
    );
    xhr.addEventListener('error', () => reject(new TypeError('the connection failed')));
    xhr.addEventListener('abort', () => reject(new TypeError('the request was aborted')));
    xhr.send(body);
  });
}

function parse(result) {
  let data = null;
  if (result.contentType.includes('json') && result.text) {
    try {
      data = JSON.parse(result.text);
    } catch {
      data = null;
    }
  }
  return data;
}

/**
 * Calls the API. Writes (and reads, once a read was refused) carry the stored bearer token; a 401
 * asks for the token once and retries. Resolves to the JSON body; rejects with an ApiError
 * carrying the API's own error message.
 */
async function api(method, url, { body, json, contentType, write = method !== 'GET', onUploadProgress } = {}) {
  const headers = contentType ? { 'Content-Type': contentType } : {};
  let payload = body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
  }
  let prompted = false;
  for (;;) {
    const sentToken = write || storage.readsNeedToken ? storage.token : null;
    const attemptHeaders = { ...headers };
    if (sentToken) attemptHeaders.Authorization = `Bearer ${sentToken}`;
    let result;
    try {
      result = await send({ method, url, body: payload, headers: attemptHeaders, onUploadProgress });
    } catch (error) {
      throw new ApiError(0, 'network_error', `Cannot reach the sprig server (${error.message}).`);
    }
    const data = parse(result);
    if (result.status >= 200 && result.status < 300) return data;
    const detail = data?.error;
    const error = new ApiError(
      result.status,
      detail?.code ?? `http_${result.status}`,
      detail?.message ?? `The server answered ${result.status} ${result.statusText}.`.replace(' .', '.'),
      detail?.job_id,
    );
    if (result.status !== 401 || (detail && detail.code !== 'unauthorized')) throw error;
    if (!write) storage.readsNeedToken = true;
    if (sentToken && storage.token === sentToken) storage.token = null; // the stored token was refused
    if (storage.token && storage.token !== sentToken) continue; // another request just got a token
    if (prompted) throw error;
    prompted = true;
    const token = await askForToken();
    if (!token) throw error;
  }
}

const get = (url) => api('GET', url);
const post = (url, options) => api('POST', url, options);

/** Saves what a GET of `url` returns as a file (the token sent as for reads; errors as the API's). */
async function download(url, fallbackName) {
  const headers = storage.readsNeedToken && storage.token ? { Authorization: `Bearer ${storage.token}` } : {};
  const response = await fetch(url, { headers, cache: 'no-store' });
  if (!response.ok) {
    const detail = (await response.json().catch(() => null))?.error;
    if (response.status === 401) storage.readsNeedToken = true;
    throw new ApiError(response.status, detail?.code ?? `http_${response.status}`, detail?.message ?? `The server answered ${response.status}.`);
  }
  const name = /filename="([^"]+)"/.exec(response.headers.get('content-disposition') ?? '')?.[1] ?? fallbackName;
  const link = h('a', { href: URL.createObjectURL(await response.blob()), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  return name;
}

/** Shows an error (an ApiError's message is the API's own) in a status element. */
function showError(el, error, prefix) {
  console.warn(prefix ?? 'request failed', error);
  el.textContent = prefix ? `${prefix}: ${error.message}` : error.message;
  el.className = 'status error';
}

function showStatus(el, text, kind = '') {
  el.textContent = text;
  el.className = `status ${kind}`.trim();
}

function table(headers, rows, { caption, className } = {}) {
  return h(
    'table',
    { className },
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
    h('tbody', {}, rows),
  );
}

function badge(text, kind) {
  return h('span', { className: `badge ${kind ?? text}` }, text);
}

// ---------- drop zones ----------

function dropzone(name, onFiles) {
  const zone = $(`[data-drop="${name}"]`);
  const input = $('input[type=file]', zone);
  input.addEventListener('change', () => {
    if (input.files.length) onFiles([...input.files]);
    input.value = '';
  });
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    const files = [...(event.dataTransfer?.files ?? [])];
    if (files.length) onFiles(files);
  });
}

// ---------- header: health ----------

let lastReady = null;

async function readiness() {
  try {
    const response = await fetch('/readyz', { cache: 'no-store' });
    const data = await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, data };
  } catch (error) {
    return { ok: false, status: 0, data: { error: { code: 'network_error', message: `Cannot reach the sprig server (${error.message}).` } } };
  }
}

function renderHealth(ready) {
  const becameReady = ready.ok && lastReady && !lastReady.ok;
  lastReady = ready;
  if (becameReady && ['data', 'review', 'retrain', 'models'].includes(currentView)) views[currentView].enter?.();
  const el = $('#health');
  const text = $('#health-text');
  if (ready.ok) {
    el.className = 'health ok';
    text.textContent = `Ready · model v${ready.data.model_version} · ${ready.data.backend}`;
  } else {
    el.className = ready.status ? 'health warn' : 'health down';
    text.textContent = ready.status ? `Not ready: ${ready.data?.error?.message ?? `HTTP ${ready.status}`}` : 'Server unreachable';
  }
}

async function refreshHealth() {
  const ready = await readiness();
  renderHealth(ready);
  return ready;
}

// ---------- Predict ----------

const predictState = { urls: [] };
const BATCH_MAX = 32;

/** One bar per class, likeliest first; `limit` keeps only the top few (the review card shows 3). */
function probabilityBars(probabilities, predicted, limit = Infinity) {
  const entries = Object.entries(probabilities)
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit);
  return h(
    'ul',
    { className: 'prob-bars', 'aria-label': 'Probability per class' },
    entries.map(([name, p]) =>
      h(
        'li',
        { className: name === predicted ? 'top' : '' },
        h('span', { className: 'prob-name' }, name),
        h('span', { className: 'prob-value' }, percent(p)),
        h('span', { className: 'prob-track', 'aria-hidden': 'true' }, h('span', { className: 'prob-fill', style: `width:${(p * 100).toFixed(1)}%` })),
      ),
    ),
  );
}

/** The out-of-distribution flag of a prediction or review item (null when not flagged). */
function oodNote(entry) {
  if (!entry.out_of_distribution) return null;
  const novelty = Number.isFinite(entry.novelty) ? ` (novelty ${fixed(entry.novelty, 2)}; above 1.00 is out of distribution)` : '';
  return h('p', { className: 'ood', role: 'note' }, badge('out of distribution', 'bad'), ` This doesn't look like anything the model was trained on${novelty}: its answer is a guess.`);
}

/**
 * A prediction's explanation: the centre crop the model saw, drawn from the original image, under
 * the heatmap overlay the server made of it; the slider sets the overlay's opacity.
 */
function explanationFigure(url, explanation) {
  const crop = h('canvas', { className: 'explanation-crop', width: 224, height: 224, 'aria-hidden': 'true' });
  if (url) {
    const source = new Image();
    source.onload = () => {
      // As sprig prepares images: the centred square of side short_side * 224 / 256.
      const side = (Math.min(source.naturalWidth, source.naturalHeight) * 224) / 256;
      const left = (source.naturalWidth - side) / 2;
      const top = (source.naturalHeight - side) / 2;
      crop.getContext('2d').drawImage(source, left, top, side, side, 0, 0, 224, 224);
    };
    source.src = url;
  }
  const overlay = h('img', { className: 'explanation-overlay', src: `data:image/png;base64,${explanation.overlay_png}`, alt: `Heatmap of the evidence for ${explanation.class}: red where it is strongest` });
  overlay.style.opacity = '0.7';
  const slider = h('input', { type: 'range', min: '0', max: '100', value: '70', className: 'explanation-opacity', 'aria-label': 'Heatmap opacity' });
  slider.addEventListener('input', () => {
    overlay.style.opacity = String(Number(slider.value) / 100);
  });
  return h(
    'figure',
    { className: 'explanation' },
    h('div', { className: 'explanation-stack' }, crop, overlay),
    h('figcaption', {}, h('label', {}, 'Heatmap opacity ', slider), h('span', { className: 'muted' }, ` Evidence for ${explanation.class} (Grad-CAM, ${explanation.millis.toFixed(0)} ms)`)),
  );
}

function predictionCard(file, url, prediction, error) {
  const name = file?.name ?? prediction?.filename ?? 'image';
  const media = url ? h('img', { src: url, alt: `Preview of ${name}`, className: 'preview' }) : h('div', { className: 'preview none' }, 'no preview');
  if (error) {
    return h('article', { className: 'result-card failed' }, media, h('div', { className: 'result-body' }, h('h2', { className: 'file-name' }, name), h('p', { className: 'error', role: 'alert' }, error.message)));
  }
  return h(
    'article',
    { className: 'result-card', dataset: { predictedClass: prediction.predicted_class } },
    media,
    h(
      'div',
      { className: 'result-body' },
      h('h2', { className: 'file-name' }, name),
      h('p', { className: 'predicted' }, h('span', { className: 'muted' }, 'Predicted class '), h('strong', { className: 'predicted-class' }, breakable(prediction.predicted_class))),
      h('p', { className: 'confidence' }, 'Confidence ', h('strong', {}, percent(prediction.confidence))),
      oodNote(prediction),
      probabilityBars(prediction.probabilities, prediction.predicted_class),
      prediction.explanation ? explanationFigure(url, prediction.explanation) : null,
      h('p', { className: 'meta muted' }, `Model version `, h('strong', { className: 'model-version' }, String(prediction.model_version)), ` · ${prediction.latency_ms.toFixed(0)} ms` + (prediction.prediction_id ? ` · prediction #${prediction.prediction_id}` : ' · not recorded')),
    ),
  );
}

async function classify(files) {
  const status = $('#predict-status');
  const results = $('#predict-results');
  predictState.urls.forEach((u) => u && URL.revokeObjectURL(u));
  const urls = files.map((f) => (f.type.startsWith('image/') ? URL.createObjectURL(f) : null));
  predictState.urls = urls;
  results.replaceChildren();
  results.setAttribute('aria-busy', 'true');
  showStatus(status, `Classifying ${files.length === 1 ? files[0].name : `${files.length} images`}…`, 'busy');
  const explain = $('#predict-explain').checked ? '?explain=true' : '';
  try {
    if (files.length === 1) {
      const form = new FormData();
      form.append('file', files[0], files[0].name);
      const prediction = await post(`/api/predict${explain}`, { body: form, write: false });
      results.append(predictionCard(files[0], urls[0], prediction));
      showStatus(status, `${files[0].name}: ${prediction.predicted_class} (${percent(prediction.confidence)}).`, 'ok');
    } else {
      let ok = 0;
      let failed = 0;
      for (let start = 0; start < files.length; start += BATCH_MAX) {
        const chunk = files.slice(start, start + BATCH_MAX);
        const form = new FormData();
        chunk.forEach((f) => form.append('files', f, f.name));
        const answer = await post(`/api/predict/batch${explain}`, { body: form, write: false });
        answer.results.forEach((item, i) => {
          results.append(predictionCard(chunk[i], urls[start + i], item.prediction, item.success ? null : item.error));
        });
        ok += answer.succeeded;
        failed += answer.failed;
      }
      showStatus(status, `${ok} of ${files.length} images classified${failed ? `, ${failed} failed` : ''}.`, failed ? 'warn' : 'ok');
    }
  } catch (error) {
    showError(status, error);
  } finally {
    results.removeAttribute('aria-busy');
  }
}

// ---------- Upload ----------

const uploadState = { files: [], busy: false };
const NEW_CLASS = '__new__';
const UPLOAD_CHUNK_FILES = 25;
const UPLOAD_CHUNK_BYTES = 32 * 1024 * 1024;

function renderClassTable(classes) {
  $('#upload-classes').replaceChildren(
    classes.length
      ? table(
          ['Class', 'Images', 'Train', 'Validation', 'Size'],
          classes.map((c) => h('tr', { dataset: { class: c.name } }, h('th', { scope: 'row' }, c.name), h('td', { className: 'num images' }, number(c.images)), h('td', { className: 'num' }, number(c.train)), h('td', { className: 'num' }, number(c.validation)), h('td', { className: 'num' }, bytes(c.bytes)))),
          { className: 'data-table' },
        )
      : h('p', { className: 'muted' }, 'No classes yet.'),
  );
}

async function loadClasses(select) {
  const picker = $('#upload-class');
  try {
    const { classes } = await get('/api/classes');
    const current = select ?? picker.value;
    picker.replaceChildren(
      h('option', { value: '' }, 'Choose a class…'),
      ...classes.map((c) => h('option', { value: c.name }, `${c.name} (${c.images})`)),
      h('option', { value: NEW_CLASS }, 'New class…'),
    );
    picker.value = [...picker.options].some((o) => o.value === current) ? current : '';
    toggleNewClass();
    renderClassTable(classes);
  } catch (error) {
    showError($('#upload-status'), error, 'Could not load the classes');
  }
}

function toggleNewClass() {
  const isNew = $('#upload-class').value === NEW_CLASS;
  $('#new-class-field').hidden = !isNew;
  updateUploadButton();
}

function renderSelection() {
  const files = uploadState.files;
  const total = files.reduce((sum, f) => sum + f.size, 0);
  $('#upload-selection').textContent = files.length
    ? `${files.length} file${files.length === 1 ? '' : 's'} chosen (${bytes(total)}): ${files.slice(0, 6).map((f) => f.name).join(', ')}${files.length > 6 ? `, and ${files.length - 6} more` : ''}.`
    : 'No files chosen.';
  $('#upload-clear').disabled = !files.length || uploadState.busy;
  updateUploadButton();
}

function updateUploadButton() {
  $('#upload-submit').disabled = uploadState.busy || !uploadState.files.length;
}

function targetClass() {
  const picked = $('#upload-class').value;
  return picked === NEW_CLASS ? $('#upload-new-class').value.trim() : picked;
}

function uploadChunks(files) {
  const chunks = [];
  let current = [];
  let size = 0;
  for (const file of files) {
    if (current.length && (current.length >= UPLOAD_CHUNK_FILES || size + file.size > UPLOAD_CHUNK_BYTES)) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(file);
    size += file.size;
  }
  if (current.length) chunks.push(current);
  return chunks;
}

function uploadRow(n, item) {
  let detail;
  if (item.status === 'stored') detail = `image #${item.image.id} · ${item.image.split} split · ${item.image.width}×${item.image.height} ${item.image.format}`;
  else if (item.status === 'duplicate') detail = `already stored as image #${item.image.id} (class ${item.image.class})`;
  else detail = item.error?.message ?? 'rejected';
  return h(
    'tr',
    { dataset: { status: item.status } },
    h('td', { className: 'num' }, String(n)),
    h('td', { className: 'file-name' }, item.filename ?? '—'),
    h('td', {}, badge(item.status, item.status === 'stored' ? 'ok' : item.status === 'duplicate' ? 'neutral' : 'bad')),
    h('td', { className: item.status === 'rejected' ? 'error' : '' }, detail),
  );
}

async function upload(event) {
  event.preventDefault();
  const status = $('#upload-status');
  const cls = targetClass();
  if (!cls) {
    showStatus(status, $('#upload-class').value === NEW_CLASS ? 'Type a name for the new class.' : 'Choose a class first.', 'error');
    ($('#upload-class').value === NEW_CLASS ? $('#upload-new-class') : $('#upload-class')).focus();
    return;
  }
  const files = uploadState.files.slice();
  if (!files.length) return;
  uploadState.busy = true;
  renderSelection();
  const totalBytes = files.reduce((sum, f) => sum + f.size, 0) || 1;
  const progress = $('#upload-progress');
  const progressText = $('#upload-progress-text');
  $('#upload-progress-wrap').hidden = false;
  progress.value = 0;
  const body = h('tbody');
  $('#upload-results').replaceChildren(
    h('table', { className: 'data-table' }, h('caption', {}, `Results for class ${cls}`), h('thead', {}, h('tr', {}, ['#', 'File', 'Result', 'Details'].map((t) => h('th', { scope: 'col' }, t)))), body),
  );
  const counts = { stored: 0, duplicate: 0, rejected: 0 };
  let sentBytes = 0;
  let sentFiles = 0;
  let failure = null;
  showStatus(status, `Uploading ${files.length} file${files.length === 1 ? '' : 's'} to ${cls}…`, 'busy');
  for (const chunk of uploadChunks(files)) {
    const form = new FormData();
    form.append('class', cls);
    chunk.forEach((f) => form.append('files', f, f.name));
    const chunkBytes = chunk.reduce((sum, f) => sum + f.size, 0);
    const onUploadProgress = (loaded, total) => {
      const done = sentBytes + (loaded / total) * chunkBytes;
      progress.value = Math.min(99, (done / totalBytes) * 100);
      progressText.textContent = `Sending files ${sentFiles + 1}–${sentFiles + chunk.length} of ${files.length} · ${Math.round(progress.value)} %`;
    };
    try {
      const answer = await post('/api/images', { body: form, onUploadProgress });
      answer.items.forEach((item) => {
        counts[item.status] += 1;
        body.append(uploadRow(sentFiles + item.index + 1, item));
      });
    } catch (error) {
      failure = error;
      break;
    }
    sentBytes += chunkBytes;
    sentFiles += chunk.length;
    progress.value = (sentBytes / totalBytes) * 100;
    progressText.textContent = `${sentFiles} of ${files.length} files sent · ${Math.round(progress.value)} %`;
  }
  uploadState.busy = false;
  const summary = `${counts.stored} stored, ${counts.duplicate} duplicate${counts.duplicate === 1 ? '' : 's'}, ${counts.rejected} rejected in class ${cls}.`;
  if (failure) {
    showError(status, failure, sentFiles ? `Stopped after ${sentFiles} of ${files.length} files (${summary})` : 'Upload failed');
  } else {
    showStatus(status, `Done: ${summary}`, counts.rejected ? 'warn' : 'ok');
    uploadState.files = [];
    $('#upload-new-class').value = '';
  }
  renderSelection();
  await loadClasses(failure ? undefined : cls);
}

// ---------- Dataset & predictions ----------

async function loadData() {
  const status = $('#data-status');
  const [dataset, predictions, models] = await Promise.allSettled([get('/api/dataset/stats'), get('/api/stats/predictions'), get('/api/models')]);
  const errors = [dataset, predictions, models].filter((r) => r.status === 'rejected').map((r) => r.reason.message);
  if (errors.length) showStatus(status, [...new Set(errors)].join(' '), 'error');
  else showStatus(status, '');

  if (dataset.status === 'fulfilled') {
    const d = dataset.value;
    const p = predictions.value;
    $('#data-summary').replaceChildren(
      card('Images', number(d.total_images), `${d.classes.length} classes`),
      card('Stored size', bytes(d.total_bytes), `mean ${bytes(Math.round(d.mean_bytes))} per image`),
      card('Mean image size', `${Math.round(d.mean_width)}×${Math.round(d.mean_height)}`, 'pixels'),
      card('Predictions', p ? number(p.total) : '—', p ? `${Object.keys(p.per_class).length} classes predicted` : ''),
    );
    barChart($('#chart-classes'), {
      label: 'Images per class and split',
      categories: d.classes.map((c) => c.name),
      series: [
        { name: 'train', values: d.classes.map((c) => c.train) },
        { name: 'validation', values: d.classes.map((c) => c.validation) },
      ],
      stacked: true,
      yLabel: 'images',
      empty: 'No images yet.',
    });
    barChart($('#chart-uploads'), {
      label: 'Images added per day',
      categories: d.uploads_per_day.map((x) => x.date),
      series: [{ name: 'images', values: d.uploads_per_day.map((x) => x.count), color: 2 }],
      yLabel: 'images',
      empty: 'No images yet.',
    });
  }
  if (predictions.status === 'fulfilled') {
    const p = predictions.value;
    const active = models.status === 'fulfilled' ? models.value.items.find((m) => m.active) : null;
    const classes = [...new Set([...(active?.classes ?? []), ...Object.keys(p.per_class)])];
    barChart($('#chart-pred-class'), {
      label: 'Predictions per class',
      categories: classes,
      series: [{ name: 'predictions', values: classes.map((c) => p.per_class[c] ?? 0), color: 3 }],
      yLabel: 'predictions',
      empty: 'No predictions yet.',
    });
    barChart($('#chart-pred-hour'), {
      label: 'Predictions per hour',
      categories: p.per_hour.map((x) => x.hour.replace(/^\d{4}-(\d\d-\d\d)T(\d\d):.*$/, '$1 $2h')),
      series: [{ name: 'predictions', values: p.per_hour.map((x) => x.count), color: 3 }],
      yLabel: 'predictions',
      empty: 'No predictions yet.',
    });
    barChart($('#chart-confidence'), {
      label: 'Confidence histogram',
      categories: p.confidence_histogram.map((b) => `${Math.round(b.lower * 100)}–${Math.round(b.upper * 100)}%`),
      series: [{ name: 'predictions', values: p.confidence_histogram.map((b) => b.count), color: 4 }],
      yLabel: 'predictions',
      empty: 'No predictions yet.',
    });
    const versions = Object.keys(p.per_model_version).sort((a, b) => Number(a) - Number(b));
    barChart($('#chart-pred-version'), {
      label: 'Predictions per model version',
      categories: versions.map((v) => `v${v}`),
      series: [{ name: 'predictions', values: versions.map((v) => p.per_model_version[v]), color: 5 }],
      yLabel: 'predictions',
      empty: 'No predictions yet.',
    });
  }
  if (models.status === 'fulfilled') {
    const active = models.value.items.find((m) => m.active);
    if (active) {
      $('#eval-heading').textContent = `Active model: version ${active.version} — accuracy ${percent(active.evaluation.accuracy)}, macro-F1 ${fixed(active.evaluation.macro_f1)}`;
      confusionMatrix($('#confusion'), active.classes, active.evaluation.confusion_matrix);
      $('#per-class').replaceChildren(perClassTable(active.evaluation));
    } else {
      $('#eval-heading').textContent = 'Active model: none yet';
      emptyChart($('#confusion'), 'No model is active yet.');
      $('#per-class').replaceChildren();
    }
  }
}

function card(title, value, note) {
  return h('div', { className: 'card' }, h('p', { className: 'card-title' }, title), h('p', { className: 'card-value' }, value), note ? h('p', { className: 'card-note muted' }, note) : null);
}

function perClassTable(evaluation, { bars = true } = {}) {
  return table(
    ['Class', 'Precision', 'Recall', 'F1', 'Support'],
    evaluation.per_class.map((c) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, c.class),
        h('td', { className: 'num' }, fixed(c.precision)),
        h('td', { className: 'num' }, fixed(c.recall)),
        h('td', { className: 'num f1' }, bars ? h('span', { className: 'f1-bar', style: `--value:${c.f1}`, 'aria-hidden': 'true' }) : null, fixed(c.f1)),
        h('td', { className: 'num' }, number(c.support)),
      ),
    ),
    { className: 'data-table per-class' },
  );
}

// ---------- Review ----------

// The queue is worked through locally: a decision shows the next item at once and is sent in the
// background (a failed one puts its item back in front). `decided` keeps items whose answer may
// not have reached the server yet out of a refill.
const reviewState = { items: [], classes: [], decided: new Set(), images: new Map(), loaded: false, failed: false, refilling: null, summarySeq: 0, refocus: false };
const REVIEW_PAGE = 20;
const REVIEW_REFILL_BELOW = 5;
const REVIEW_PRELOAD = 2;

async function enterReview() {
  Object.assign(reviewState, { items: [], loaded: false, failed: false, refilling: null }); // `decided` stays: answers may be in flight
  forgetReviewImages();
  renderReviewItem();
  showStatus($('#review-status'), '');
  // Together, so that a server asking for the token asks once for all three.
  const [classes, queue] = await Promise.allSettled([loadReviewClasses(), refillReview(), loadReviewSummary()]);
  const failure = [classes, queue].find((r) => r.status === 'rejected');
  if (failure) showError($('#review-status'), failure.reason, 'Could not load the review queue');
  Object.assign(reviewState, { loaded: true, failed: Boolean(failure) });
  renderReviewItem();
}

/** The labels offered: the data set's classes (a label adds the image there), else the model's. */
async function loadReviewClasses() {
  const { classes } = await get('/api/classes');
  reviewState.classes = classes.map((c) => c.name);
}

/** Page 1 of the queue is always its most uncertain items: what is still pending, in order. */
function refillReview() {
  reviewState.refilling ??= get(`/api/review?per_page=${REVIEW_PAGE}`)
    .then((page) => {
      const [current] = reviewState.items;
      const fresh = page.items.filter((i) => !reviewState.decided.has(i.prediction_id) && i.prediction_id !== current?.prediction_id);
      reviewState.items = current ? [current, ...fresh] : fresh;
    })
    .finally(() => {
      reviewState.refilling = null;
    });
  return reviewState.refilling;
}

/** The kept image as an object URL, fetched once (ahead, for the next items). Fetched rather
 *  than given to <img src> because reads may need the bearer token. Null when it failed. */
function reviewImage(item) {
  const { images } = reviewState;
  if (!images.has(item.prediction_id)) {
    const headers = storage.readsNeedToken && storage.token ? { Authorization: `Bearer ${storage.token}` } : {};
    const url = item.image_url ?? `/api/predictions/${item.prediction_id}/image`;
    const loading = fetch(url, { headers })
      .then((r) => (r.ok ? r.blob() : null))
      .then((blob) => (blob ? URL.createObjectURL(blob) : null))
      .catch(() => null);
    images.set(item.prediction_id, loading);
  }
  return images.get(item.prediction_id);
}

function forgetReviewImage(id) {
  reviewState.images.get(id)?.then((url) => url && URL.revokeObjectURL(url));
  reviewState.images.delete(id);
}

function forgetReviewImages() {
  for (const id of [...reviewState.images.keys()]) forgetReviewImage(id);
}

function labelButton(name, index, item) {
  const key = index < 9 ? String(index + 1) : null; // digits 1–9; further classes by button only
  return h(
    'button',
    { type: 'button', className: `label-button${name === item.predicted_class ? ' predicted' : ''}`, dataset: { class: name }, 'aria-keyshortcuts': key, onclick: () => decide({ class: name }) },
    key ? h('kbd', {}, key) : null,
    h('span', {}, breakable(name)),
  );
}

function reviewCard(item) {
  const name = item.filename ?? `prediction #${item.prediction_id}`;
  const image = h('img', { className: 'review-image', alt: `The image of ${name}` });
  reviewImage(item).then((url) => {
    image.src = url ?? item.image_url;
  });
  const classes = reviewState.classes.length ? reviewState.classes : Object.keys(item.probabilities);
  return h(
    'article',
    { className: 'review-card', dataset: { predictionId: String(item.prediction_id) }, 'aria-labelledby': 'review-title' },
    h('div', { className: 'review-media' }, image),
    h(
      'div',
      { className: 'review-body' },
      h('h2', { id: 'review-title', className: 'review-title', tabindex: '-1' }, name, h('span', { className: 'muted' }, ` · prediction #${item.prediction_id}`)),
      oodNote(item),
      h('p', { className: 'predicted' }, h('span', { className: 'muted' }, 'Predicted class '), h('strong', { className: 'predicted-class' }, breakable(item.predicted_class))),
      probabilityBars(item.probabilities, item.predicted_class, 3),
      h(
        'dl',
        { className: 'metrics review-metrics' },
        h('div', {}, h('dt', {}, 'Uncertainty'), h('dd', { className: 'uncertainty', title: '1 − (top − second probability): what orders the queue' }, fixed(item.uncertainty))),
        h('div', {}, h('dt', {}, 'Novelty'), h('dd', { className: 'novelty' }, fixed(item.novelty, 2))),
        h('div', {}, h('dt', {}, 'Model version'), h('dd', { className: 'model-version' }, String(item.model_version))),
        h('div', {}, h('dt', {}, 'Predicted'), h('dd', {}, h('time', { dateTime: item.created_at }, stamp(item.created_at)))),
      ),
      h('div', { className: 'review-actions', role: 'group', 'aria-label': 'Label with a class, or dismiss' }, classes.map((c, i) => labelButton(c, i, item))),
      h(
        'div',
        { className: 'review-actions' },
        h('button', { type: 'button', className: 'secondary dismiss-button', 'aria-keyshortcuts': 'x', onclick: () => decide({ dismiss: true }) }, h('kbd', {}, 'x'), h('span', {}, 'Dismiss')),
      ),
    ),
  );
}

function reviewEmpty() {
  if (!reviewState.loaded) return h('p', { className: 'muted' }, 'Loading the review queue…');
  const again = h('button', { type: 'button', className: 'secondary', id: 'review-recheck', onclick: enterReview }, reviewState.failed ? 'Try again' : 'Check again');
  if (reviewState.failed) return h('div', { className: 'panel review-empty failed' }, h('p', {}, 'The review queue could not be loaded (see above).'), again);
  return h(
    'div',
    { className: 'panel review-empty' },
    h('p', {}, h('strong', {}, 'Nothing to review: the queue is empty.'), ' Predictions the model is unsure about, or whose image looks unfamiliar, are kept here for a label.'),
    again,
  );
}

/** Shows the queue's first item and fetches the next images ahead. */
function renderReviewItem() {
  const box = $('#review-item');
  // Focus inside the card (a clicked button) moves to the new card, not to <body>; a loading
  // message has nothing to focus, so the move waits for the next render.
  const wantFocus = box.contains(document.activeElement) || reviewState.refocus;
  const [item] = reviewState.items;
  box.replaceChildren(item ? reviewCard(item) : reviewEmpty());
  const target = $('#review-title, #review-recheck', box);
  reviewState.refocus = wantFocus && !target;
  if (wantFocus && target) target.focus();
  reviewState.items.slice(1, 1 + REVIEW_PRELOAD).forEach(reviewImage);
}

function decide(decision) {
  const item = reviewState.items.shift();
  if (!item) return;
  reviewState.decided.add(item.prediction_id);
  renderReviewItem();
  forgetReviewImage(item.prediction_id);
  sendDecision(item, decision);
  if (reviewState.items.length < REVIEW_REFILL_BELOW) refillReview().then(renderIfEmpty, () => {});
}

/** A refill that found items while the empty message was shown replaces it. */
function renderIfEmpty() {
  if (currentView === 'review' && !$('#review-item .review-card') && reviewState.items.length) renderReviewItem();
}

async function sendDecision(item, decision) {
  const status = $('#review-status');
  const what = `prediction #${item.prediction_id}`;
  try {
    const answer = await post(`/api/review/${item.prediction_id}`, { json: decision });
    if (answer.state === 'labelled') showStatus(status, `Labelled ${what} as ${answer.label}: image #${answer.image_id} in the data set.`, 'ok');
    else showStatus(status, `Dismissed ${what}.`, 'ok');
  } catch (error) {
    showError(status, error, decision.dismiss ? `Dismissing ${what} failed` : `Labelling ${what} as ${decision.class} failed`);
    if (error.code !== 'already_reviewed' && error.status !== 404) {
      // Still pending on the server: back in front, to be decided again.
      reviewState.decided.delete(item.prediction_id);
      reviewState.items.unshift(item);
      if (currentView === 'review') renderReviewItem();
    }
  }
  loadReviewSummary();
}

function reviewKeys(event) {
  if (currentView !== 'review' || event.defaultPrevented || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest?.('input, textarea, select, [contenteditable]') || $('dialog[open]')) return; // typing, or a dialog
  const decision = keyDecision(event.key);
  if (!decision || !reviewState.items.length) return;
  event.preventDefault();
  decide(decision);
}

function keyDecision(key) {
  if (key === 'x' || key === 'X') return { dismiss: true };
  const [item] = reviewState.items;
  const classes = reviewState.classes.length ? reviewState.classes : Object.keys(item?.probabilities ?? {});
  const n = /^[1-9]$/.test(key) ? Number(key) : 0;
  return n && n <= classes.length ? { class: classes[n - 1] } : null;
}

async function loadReviewSummary() {
  const seq = ++reviewState.summarySeq;
  try {
    const s = await get('/api/review/summary');
    if (seq !== reviewState.summarySeq) return; // an older answer than one already shown
    renderReviewSummary(s);
  } catch (error) {
    showError($('#review-summary'), error, 'Could not load the queue summary');
  }
}

const mib = (n) => `${(n / 1048576).toFixed(n >= 10 * 1048576 ? 0 : 1)} MiB`;

function renderReviewSummary(s) {
  const line = $('#review-summary');
  line.className = 'review-summary';
  line.replaceChildren(
    h('strong', { className: 'pending' }, `${number(s.pending)} pending`),
    ` · ${mib(s.kept_bytes)} of ${mib(s.max_bytes)} kept`,
    h('span', { className: 'muted' }, ` (keeping ${s.keep_images} images) · ${number(s.labelled)} labelled · ${number(s.dismissed)} dismissed · ${number(s.evicted)} evicted`),
  );
  line.dataset.pending = String(s.pending);
  $('#review-accuracy').replaceChildren(
    s.accuracy.length
      ? table(
          ['Model version', 'Labelled', 'Agreed', 'Accuracy'],
          s.accuracy.map((a) =>
            h('tr', { dataset: { version: String(a.model_version) } }, h('th', { scope: 'row' }, `v${a.model_version}`), h('td', { className: 'num' }, number(a.labelled)), h('td', { className: 'num' }, number(a.agreed)), h('td', { className: 'num' }, percent(a.accuracy))),
          ),
          { className: 'data-table review-accuracy-table' },
        )
      : h('p', { className: 'muted' }, 'No prediction has been labelled yet.'),
  );
  $('#review-caveat').textContent = s.caveat;
}

// ---------- Retrain ----------

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const retrainState = { following: null };

function stopFollowing() {
  const f = retrainState.following;
  if (!f) return;
  f.stopped = true;
  f.source?.close();
  clearTimeout(f.timer);
  retrainState.following = null;
}

function follow(jobId) {
  stopFollowing();
  const f = { id: jobId, stopped: false, source: null, timer: null, done: false };
  retrainState.following = f;
  $('#job-panel').hidden = false;
  $('#job-id').textContent = String(jobId);
  $('#job-result').replaceChildren();
  emptyChart($('#chart-loss'), 'Waiting for the first epoch…');
  emptyChart($('#chart-accuracy'), 'Waiting for the first epoch…');
  const onJob = (job) => {
    if (f.stopped || f.done) return;
    renderJob(job);
    if (TERMINAL.has(job.state)) {
      f.done = true;
      f.source?.close();
      finished(job);
    }
  };
  const poll = async () => {
    if (f.stopped || f.done) return;
    try {
      onJob(await get(`/api/jobs/${jobId}`));
    } catch (error) {
      showError($('#retrain-status'), error, `Following job ${jobId}`);
    }
    if (!f.stopped && !f.done) f.timer = setTimeout(poll, 1000);
  };
  // Server-sent events; EventSource cannot send a bearer token, so poll where reads need one
  // (and whenever the stream breaks before the job finishes).
  if ('EventSource' in window && !storage.readsNeedToken) {
    const source = new EventSource(`/api/jobs/${jobId}/events`);
    f.source = source;
    source.addEventListener('job', (event) => onJob(JSON.parse(event.data)));
    source.addEventListener('error', () => {
      source.close();
      if (!f.stopped && !f.done) poll();
    });
  } else {
    poll();
  }
}

function renderJob(job) {
  $('#job-id').textContent = String(job.id);
  const state = $('#job-state');
  state.textContent = job.cancel_requested && !TERMINAL.has(job.state) ? `${job.state} · cancelling` : job.state;
  state.className = `badge ${job.state}`;
  $('#job-progress').value = job.progress;
  const epoch = job.current_epoch ? ` · epoch ${job.current_epoch}${job.total_epochs ? ` of ${job.total_epochs}` : ''}` : '';
  $('#job-progress-text').textContent = `${Math.round(job.progress)} %${epoch}`;
  $('#job-message').textContent = job.message;
  $('#job-cancel').disabled = TERMINAL.has(job.state) || job.cancel_requested;
  $('#job-cancel').hidden = TERMINAL.has(job.state);
  $('#job-panel').dataset.state = job.state;
  drawCurves(job.epochs, $('#chart-loss'), $('#chart-accuracy'));
}

function drawCurves(epochs, lossEl, accuracyEl) {
  if (!epochs.length) return;
  const xs = epochs.map((e) => e.epoch);
  lineChart(lossEl, {
    label: 'Loss per epoch',
    xs,
    xLabel: 'epoch',
    series: [
      { name: 'train loss', values: epochs.map((e) => e.train_loss), color: 0 },
      { name: 'validation loss', values: epochs.map((e) => e.val_loss), color: 1, dashed: true },
    ],
  });
  lineChart(accuracyEl, {
    label: 'Accuracy per epoch',
    xs,
    xLabel: 'epoch',
    yMax: 1,
    format: (v) => `${Math.round(v * 100)}%`,
    series: [
      { name: 'train accuracy', values: epochs.map((e) => e.train_accuracy), color: 0 },
      { name: 'validation accuracy', values: epochs.map((e) => e.val_accuracy), color: 1, dashed: true },
    ],
  });
}

async function finished(job) {
  const result = $('#job-result');
  const status = $('#retrain-status');
  if (job.state === 'succeeded') showStatus(status, `Job ${job.id} succeeded${job.model_version ? `: version ${job.model_version} trained` : ''}.`, 'ok');
  else if (job.state === 'cancelled') showStatus(status, `Job ${job.id} was cancelled.`, 'warn');
  else showStatus(status, `Job ${job.id} failed.`, 'error');
  if (!job.epochs.length) {
    emptyChart($('#chart-loss'), 'No epochs were trained.');
    emptyChart($('#chart-accuracy'), 'No epochs were trained.');
  }
  const parts = [];
  const timings = Object.entries(job.timings_ms ?? {});
  if (timings.length) parts.push(h('p', { className: 'muted' }, `Timings: ${timings.map(([k, v]) => `${k.replace(/_ms$/, '')} ${duration(v)}`).join(' · ')}`));
  if (job.features_computed !== null && job.features_computed !== undefined) {
    parts.push(h('p', { className: 'muted' }, `Backbone features: ${number(job.features_computed)} computed, ${number(job.features_reused ?? 0)} reused from the cache.`));
  }
  if (job.state === 'failed') {
    result.replaceChildren(h('p', { className: 'error', role: 'alert' }, `The retrain failed: ${job.error?.message ?? job.message}`), ...parts);
  } else if (job.state === 'cancelled') {
    result.replaceChildren(h('p', {}, 'The retrain was cancelled; no version was created.'), ...parts);
  } else if (job.model_version) {
    try {
      const model = await get(`/api/models/${job.model_version}`);
      result.replaceChildren(
        h('h3', {}, `Result: version ${model.version} `, model.active ? badge('active', 'ok') : badge('not active', 'neutral')),
        h(
          'dl',
          { className: 'metrics' },
          h('div', {}, h('dt', {}, 'Accuracy'), h('dd', { className: 'result-accuracy' }, percent(model.evaluation.accuracy))),
          h('div', {}, h('dt', {}, 'Macro-F1'), h('dd', {}, fixed(model.evaluation.macro_f1))),
          h('div', {}, h('dt', {}, 'Validation loss'), h('dd', {}, fixed(model.evaluation.loss))),
          h('div', {}, h('dt', {}, 'Best epoch'), h('dd', {}, `${model.best_epoch} of ${model.epochs.length}`)),
          h('div', {}, h('dt', {}, 'Images'), h('dd', {}, `${number(model.data_snapshot.total_images)} in ${model.classes.length} classes`)),
          h('div', {}, h('dt', {}, 'Duration'), h('dd', {}, duration(model.duration_ms))),
        ),
        perClassTable(model.evaluation),
        ...parts,
        h('p', {}, h('a', { href: '#models' }, 'Compare with the other versions in Models')),
      );
    } catch (error) {
      result.replaceChildren(h('p', { className: 'error' }, `Version ${job.model_version} was created, but loading it failed: ${error.message}`), ...parts);
    }
  } else {
    result.replaceChildren(...parts);
  }
  refreshHealth();
  loadRetrainStatus(false);
  loadJobs();
}

function renderRetrainStatus(s) {
  const el = $('#retrain-current');
  const last = s.last_retrain_time ? `Last successful retrain: ${when(s.last_retrain_time)}.` : 'No successful retrain yet.';
  if (s.is_running) {
    el.replaceChildren(h('strong', {}, `A retrain is running (job ${s.job_id}, ${s.progress} %): `), s.message, ' ', h('span', { className: 'muted' }, last));
  } else if (s.job_id) {
    el.replaceChildren(h('strong', {}, `No retrain is running.`), ` Latest job ${s.job_id}: `, badge(s.state), ` ${s.message}. `, h('span', { className: 'muted' }, last));
  } else {
    el.replaceChildren(h('strong', {}, 'No retrain is running.'), s.message ? ` ${s.message[0].toUpperCase()}${s.message.slice(1)}.` : '');
  }
  $('#retrain-start').disabled = s.is_running;
}

async function loadRetrainStatus(followRunning = true) {
  try {
    const s = await get('/api/retrain_status');
    renderRetrainStatus(s);
    if (followRunning && s.is_running && s.job_id && retrainState.following?.id !== s.job_id) follow(s.job_id);
  } catch (error) {
    showError($('#retrain-current'), error, 'Could not load the retrain status');
  }
}

async function loadJobs() {
  try {
    const page = await get('/api/jobs?per_page=10');
    $('#jobs-table').replaceChildren(
      page.items.length
        ? table(
            ['Job', 'State', 'Created', 'Epochs', 'Version', 'Message', ''],
            page.items.map((j) =>
              h(
                'tr',
                {},
                h('th', { scope: 'row' }, `#${j.id}`),
                h('td', {}, badge(j.state)),
                h('td', { className: 'nowrap' }, h('time', { dateTime: j.created_at }, stamp(j.created_at))),
                h('td', { className: 'num' }, j.total_epochs ? `${j.epochs.length}/${j.total_epochs}` : String(j.epochs.length)),
                h('td', { className: 'num' }, j.model_version ? `v${j.model_version}` : '—'),
                h('td', { className: 'wrap' }, j.message),
                h('td', {}, h('button', { type: 'button', className: 'secondary small', onclick: () => follow(j.id), 'aria-label': `Show job ${j.id}` }, 'Show')),
              ),
            ),
            { className: 'data-table' },
          )
        : h('p', { className: 'muted' }, 'No jobs yet.'),
    );
  } catch (error) {
    showError($('#retrain-status'), error, 'Could not load the jobs');
  }
}

async function startRetrain(event) {
  event.preventDefault();
  const status = $('#retrain-status');
  const body = {};
  const backbone = $('#rt-backbone').value;
  if (backbone) body.backbone = backbone;
  const pooling = $('#rt-pooling').value;
  if (pooling) body.pooling = pooling;
  const activation = $('#rt-activation').value;
  if (activation) body.activation_policy = activation;
  const fields = [
    ['#rt-epochs', 'epochs', Number.parseInt],
    ['#rt-lr', 'learning_rate', Number.parseFloat],
    ['#rt-augment', 'augment_views', Number.parseInt],
    ['#rt-test-views', 'test_time_views', Number.parseInt],
  ];
  for (const [selector, key, parseValue] of fields) {
    const input = $(selector);
    const raw = input.value.trim();
    if (!input.checkValidity()) {
      showStatus(status, `${$(`label[for="${input.id}"]`).textContent}: ${input.validationMessage}`, 'error');
      input.focus();
      return;
    }
    if (raw === '') continue;
    const value = parseValue(raw, 10);
    if (!Number.isFinite(value)) {
      showStatus(status, `${$(`label[for="${selector.slice(1)}"]`).textContent} must be a number.`, 'error');
      $(selector).focus();
      return;
    }
    body[key] = value;
  }
  $('#retrain-start').disabled = true;
  showStatus(status, 'Starting the retrain…', 'busy');
  try {
    const accepted = await post('/api/retrain', { json: body });
    showStatus(status, `Retrain job ${accepted.job_id} started.`, 'ok');
    follow(accepted.job_id);
    loadRetrainStatus(false);
  } catch (error) {
    if (error.code === 'retrain_in_progress' && error.jobId) {
      showStatus(status, `${error.message} — following job ${error.jobId}.`, 'warn');
      follow(error.jobId);
    } else {
      showError(status, error);
      $('#retrain-start').disabled = false;
    }
  }
}

async function cancelJob() {
  const f = retrainState.following;
  if (!f) return;
  $('#job-cancel').disabled = true;
  try {
    const job = await post(`/api/jobs/${f.id}/cancel`);
    renderJob(job);
    showStatus($('#retrain-status'), `Cancelling job ${f.id}…`, 'warn');
  } catch (error) {
    showError($('#retrain-status'), error);
    $('#job-cancel').disabled = false;
  }
}

// ---------- Models ----------

function modelCard(model, activeVersion) {
  const e = model.evaluation;
  const action = model.active
    ? null
    : h(
        'button',
        { type: 'button', className: 'primary', dataset: { activate: String(model.version) }, onclick: () => confirmActivate(model.version, activeVersion) },
        activeVersion && model.version < activeVersion ? `Roll back to v${model.version}` : `Activate v${model.version}`,
      );
  const counts = Object.entries(model.data_snapshot.class_counts);
  const save = (kind, url, name) =>
    h('button', {
      type: 'button',
      dataset: { download: kind },
      onclick: async () => {
        const status = $('#models-status');
        showStatus(status, `Preparing ${name}…`, 'busy');
        try {
          showStatus(status, `Saved ${await download(url, name)}.`, 'ok');
        } catch (error) {
          showError(status, error, `Could not download ${name}`);
        }
      },
    }, kind === 'onnx' ? 'Export ONNX' : 'Download bundle');
  return h(
    'article',
    { className: `model-card${model.active ? ' active' : ''}`, dataset: { version: String(model.version) }, 'aria-labelledby': `model-${model.version}-title` },
    h('header', {}, h('h2', { id: `model-${model.version}-title` }, `Version ${model.version}`), model.active ? badge('active', 'ok') : null, h('span', { className: 'spacer' }), action),
    h('p', { className: 'muted' }, `${when(model.created_at)} · ${model.origin}${model.job_id ? ` (job ${model.job_id})` : ''} · ${model.backbone}${({ every_block: ' (every block)', every_block_texture: ' (every block + texture)' })[model.hyperparameters?.pooling] ?? ''} on ${model.backend}`),
    model.active ? null : rolloutActions(model.version),
    h(
      'dl',
      { className: 'metrics' },
      h('div', {}, h('dt', {}, 'Accuracy'), h('dd', {}, percent(e.accuracy))),
      h('div', {}, h('dt', {}, '95 % interval'), h('dd', { className: 'accuracy-interval', title: `Wilson score interval on ${number(e.examples)} images: where the true accuracy may lie` }, `${percent(e.accuracy_ci95[0])} – ${percent(e.accuracy_ci95[1])}`)),
      h('div', {}, h('dt', {}, 'Macro-F1'), h('dd', {}, fixed(e.macro_f1))),
      h('div', {}, h('dt', {}, 'Calibration'), h('dd', { className: 'calibration', title: 'Expected calibration error (15 bins) of the confidences on the images it was scored on, before → after temperature scaling; the temperature fitted on out-of-fold answers (heads that never saw the image) or on the scored images themselves' }, e.calibration ? `ECE ${fixed(e.calibration.ece_before, 3)} → ${fixed(e.calibration.ece_after, 3)} (T ${fixed(e.calibration.temperature, 2)}, fitted on ${e.calibration.fitted_answers} ${e.calibration.fitted_on === 'out_of_fold' ? 'out-of-fold answers' : 'scored images'})` : 'none (too few images scored)')),
      h('div', {}, h('dt', {}, e.split === 'train' ? 'Train loss' : 'Val. loss'), h('dd', {}, fixed(e.loss))),
      h('div', {}, h('dt', {}, 'Scored on'), h('dd', { className: 'evaluation-split' }, e.split === 'train' ? 'training split (no validation images: optimistic)' : `validation split (${number(e.examples)})`)),
      h('div', {}, h('dt', {}, 'Images'), h('dd', {}, number(model.data_snapshot.total_images))),
      h('div', {}, h('dt', {}, 'Best epoch'), h('dd', {}, `${model.best_epoch} / ${model.epochs.length}`)),
      h('div', {}, h('dt', {}, 'Trained in'), h('dd', {}, duration(model.duration_ms))),
    ),
    h(
      'details',
      {},
      h('summary', {}, 'Per-class metrics, data snapshot and settings'),
      h('h3', {}, 'Per-class metrics'),
      h('div', { className: 'table-wrap' }, perClassTable(e, { bars: false })),
      h('h3', {}, 'Training data'),
      h(
        'div',
        { className: 'table-wrap' },
        table(
          ['Class', 'Train', 'Validation'],
          counts.map(([name, c]) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', { className: 'num' }, number(c.train)), h('td', { className: 'num' }, number(c.validation)))),
          { className: 'data-table' },
        ),
      ),
      h('p', { className: 'muted hash' }, `Image set hash ${model.data_snapshot.image_set_hash.slice(0, 16)}…`),
      h('h3', {}, 'Hyperparameters'),
      h('pre', { className: 'json' }, JSON.stringify(model.hyperparameters, null, 2)),
      h('h3', {}, 'Take it elsewhere'),
      h('p', { className: 'muted' }, 'A self-contained ONNX model, checked against this version by ONNX Runtime at export (its model card is inside the file), or a bundle another sprig imports.'),
      h('p', { className: 'actions' }, save('onnx', `/api/models/${model.version}/export?format=onnx`, `sprig-model-v${model.version}.onnx`), ' ', save('bundle', `/api/models/${model.version}/bundle`, `sprig-model-v${model.version}.bundle`)),
    ),
  );
}

/** Imports a bundle file as a new version. */
async function importBundle(file) {
  const status = $('#models-status');
  showStatus(status, `Importing ${file.name}…`, 'busy');
  try {
    const model = await post('/api/models/import', { body: file, contentType: 'application/octet-stream' });
    showStatus(status, `Imported ${file.name} as version ${model.version} (not active yet).`, 'ok');
    await loadModels();
    showStatus(status, `Imported ${file.name} as version ${model.version} (not active yet).`, 'ok');
  } catch (error) {
    showError(status, error, `Could not import ${file.name}`);
  }
}

/** The active version the versions list last showed (null before it loaded). */
let activeShown = null;

async function loadModels() {
  const status = $('#models-status');
  const [list, history] = await Promise.allSettled([get('/api/models'), get('/api/models/history')]);
  if (list.status === 'rejected') {
    showError(status, list.reason, 'Could not load the models');
  } else {
    const { items, active_version: active } = list.value;
    activeShown = active ?? null;
    $('#models-list').replaceChildren(...(items.length ? [...items].reverse().map((m) => modelCard(m, active)) : [h('p', { className: 'muted' }, 'No model version yet: the first one is being trained.')]));
  }
  if (history.status === 'rejected') {
    showError(status, history.reason, 'Could not load the activation history');
  } else {
    const items = [...history.value.items].reverse();
    $('#models-history').replaceChildren(
      items.length
        ? table(
            ['#', 'When', 'From', 'To', 'Reason'],
            items.map((a) => h('tr', {}, h('td', { className: 'num' }, String(a.sequence)), h('td', { className: 'nowrap' }, h('time', { dateTime: a.at }, stamp(a.at))), h('td', { className: 'num' }, a.from ? `v${a.from}` : '—'), h('td', { className: 'num' }, `v${a.to}`), h('td', { className: 'wrap reason' }, a.reason))),
            { className: 'data-table history' },
          )
        : h('p', { className: 'muted' }, 'No activations yet.'),
    );
  }
}

function confirmActivate(version, activeVersion) {
  const dialog = $('#activate-dialog');
  const rollback = activeVersion && version < activeVersion;
  $('#activate-title').textContent = rollback ? `Roll back to version ${version}` : `Activate version ${version}`;
  $('#activate-text').textContent = `Version ${version} will serve every new prediction${activeVersion ? ` instead of version ${activeVersion}` : ''}.`;
  $('#activate-reason').value = '';
  dialog.returnValue = '';
  dialog.addEventListener(
    'close',
    () => {
      if (dialog.returnValue === 'ok') activate(version, $('#activate-reason').value.trim());
    },
    { once: true },
  );
  dialog.showModal();
  $('#activate-reason').focus();
}

async function activate(version, reason) {
  const status = $('#models-status');
  showStatus(status, `Activating version ${version}…`, 'busy');
  try {
    const answer = await post(`/api/models/${version}/activate`, reason ? { json: { reason } } : {});
    showStatus(status, `Version ${answer.activation.to} is now active (was ${answer.activation.from ? `version ${answer.activation.from}` : 'none'}).`, 'ok');
    refreshHealth();
  } catch (error) {
    showError(status, error, `Activating version ${version} failed`);
  }
  await loadModels();
  $(`[data-version="${version}"] h2`)?.setAttribute('tabindex', '-1');
  $(`[data-version="${version}"] h2`)?.focus();
}

// ---------- Models: shadow and canary rollouts ----------

const ROLLOUT_POLL_MS = 2000;
const ROLLOUT_BADGE = { running: 'running', promoted: 'ok', rolled_back: 'bad', stopped: 'neutral' };
// The verdict is recorded before the registry has loaded and swapped the promoted version (about
// half a second), so a reload right after it can still show the old active one: reload on the next
// polls until the list shows the promoted version, for at most this many polls.
const PROMOTE_POLLS = 15;
const rolloutState = { timer: null, seq: 0, runningId: null, key: null, promoting: null };

const stateLabel = (state) => state.replace('_', ' ');
/** A share (0–1] as a percentage without trailing zeros: 1 → "100 %", 0.055 → "5.5 %". */
const share = (x) => (Number.isFinite(x) ? `${Number((x * 100).toFixed(2))} %` : '—');
const millis = (x) => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '—');
/** What share of the traffic a rollout gets, in words. */
const rolloutShare = (r) => (r.mode === 'shadow' ? `on ${share(r.sample)} of requests` : `answering ${share((r.percent ?? NaN) / 100)} of requests`);

/** The "Shadow…" and "Canary…" buttons of a version that is not active, and where their form opens. */
function rolloutActions(version) {
  const slot = h('div', { className: 'rollout-slot' });
  const buttons = {};
  const close = (focus) => {
    slot.replaceChildren();
    for (const b of Object.values(buttons)) b.setAttribute('aria-expanded', 'false');
    focus?.focus();
  };
  const open = (mode) => {
    const wasOpen = $('.rollout-form', slot)?.dataset.mode === mode;
    close();
    if (wasOpen) return buttons[mode].focus();
    const form = rolloutForm(version, mode, () => close(buttons[mode]));
    slot.append(form);
    buttons[mode].setAttribute('aria-expanded', 'true');
    $('input', form).focus();
  };
  for (const mode of ['shadow', 'canary']) {
    buttons[mode] = h(
      'button',
      { type: 'button', className: 'small', dataset: { rollout: mode }, 'aria-expanded': 'false', onclick: () => open(mode) },
      mode === 'shadow' ? 'Shadow…' : 'Canary…',
    );
  }
  return h(
    'div',
    { className: 'rollout-actions' },
    h('p', { className: 'actions' }, h('span', { className: 'muted' }, 'Try it on live traffic first:'), buttons.shadow, buttons.canary),
    slot,
  );
}

/** The small form asking a shadow's sample or a canary's percent. */
function rolloutForm(version, mode, close) {
  const shadow = mode === 'shadow';
  const id = `rollout-${version}-${mode}`;
  const input = h('input', {
    type: 'number',
    id,
    className: 'rollout-value',
    name: shadow ? 'sample' : 'percent',
    min: shadow ? '0.01' : '1',
    max: shadow ? '1' : '50',
    step: shadow ? '0.01' : '1',
    value: shadow ? '0.2' : '10',
    required: true,
    'aria-describedby': `${id}-hint`,
  });
  const form = h(
    'form',
    {
      className: 'rollout-form',
      dataset: { mode },
      onsubmit: (event) => {
        event.preventDefault();
        startRollout(version, mode, Number(input.value), form, close);
      },
      onkeydown: (event) => {
        if (event.key === 'Escape') {
          event.preventDefault();
          close();
        }
      },
    },
    h('label', { htmlFor: id }, shadow ? 'Share of requests to shadow (0.01 – 1)' : 'Percent of requests it answers (1 – 50)'),
    input,
    h(
      'span',
      { className: 'hint', id: `${id}-hint` },
      shadow
        ? `Version ${version} also runs on this share of live requests after the active version answered; its answers are compared, never sent.`
        : `Version ${version} answers this share of live requests; the active version answers the rest.`,
    ),
    h(
      'div',
      { className: 'actions' },
      h('button', { type: 'submit', className: 'primary rollout-start' }, shadow ? 'Start shadow' : 'Start canary'),
      h('button', { type: 'button', onclick: close }, 'Cancel'),
    ),
  );
  return form;
}

async function startRollout(version, mode, value, form, close) {
  const status = $('#models-status');
  const start = $('.rollout-start', form);
  start.disabled = true;
  showStatus(status, `Starting a ${mode} of version ${version}…`, 'busy');
  try {
    const info = await post(`/api/models/${version}/${mode}`, { json: mode === 'shadow' ? { sample: value } : { percent: value } });
    showStatus(status, `Started a ${mode} of version ${version} ${rolloutShare(info)}.`, 'ok');
    close();
    rolloutState.runningId = info.id;
    renderRollout(info);
    $('#h-rollout')?.focus();
    refreshRollouts();
  } catch (error) {
    showError(status, error, `Could not start the ${mode} of version ${version}`);
    start.disabled = false;
    // Another rollout runs, or this version became the active one: show what is true now.
    if (error.code === 'rollout_conflict') {
      refreshRollouts();
      loadModels();
    }
  }
}

async function stopRollout(r, button) {
  const status = $('#models-status');
  button.disabled = true;
  showStatus(status, `Stopping the ${r.mode} of version ${r.version}…`, 'busy');
  try {
    const info = await api('DELETE', `/api/models/${r.version}/${r.mode}`);
    showStatus(status, `Stopped the ${r.mode} of version ${r.version}.`, 'ok');
    rolloutState.runningId = null; // ended by this page: nothing to announce
    renderRollout(info);
  } catch (error) {
    showError(status, error, `Could not stop the ${r.mode} of version ${r.version}`);
    button.disabled = false;
  }
  refreshRollouts();
}

/** One figure of the running rollout (a `dt`/`dd` pair). */
function figure(key, title, value) {
  return h('div', { dataset: { figure: key } }, h('dt', {}, title), h('dd', {}, value));
}

/** The active and candidate versions side by side. */
function armsTable(r) {
  const { active: a, candidate: c } = r;
  const row = (key, title, f) => h('tr', { dataset: { row: key } }, h('th', { scope: 'row' }, title), h('td', { className: 'num active-arm' }, f(a)), h('td', { className: 'num candidate-arm' }, f(c)));
  return table(
    ['', `Active v${a.version}`, `Candidate v${c.version}`],
    [
      row('requests', 'Requests', (x) => number(x.requests)),
      row('errors', 'Errors', (x) => (Number.isFinite(x.error_rate) ? `${number(x.errors)} (${percent(x.error_rate)})` : number(x.errors))),
      row('mean-confidence', 'Mean confidence', (x) => percent(x.mean_confidence)),
      row('mean-latency', 'Mean latency', (x) => millis(x.mean_latency_ms)),
      row('p95-latency', 'p95 latency', (x) => millis(x.p95_latency_ms)),
      row('reviewed-accuracy', 'Reviewed accuracy', (x) => (x.reviewed ? `${percent(x.reviewed_accuracy)} of ${number(x.reviewed)}` : 'none reviewed')),
    ],
    { className: 'data-table rollout-arms' },
  );
}

function policyText(r) {
  const p = r.policy;
  const bounds = [
    r.mode === 'shadow' ? `agreement ≥ ${percent(p.min_agreement)}` : null,
    `mean confidence at most ${fixed(p.max_confidence_drop, 2)} below the active version's`,
    `error rate ≤ ${percent(p.max_error_rate)}`,
    `p95 latency ≤ ${p.max_latency_ratio}× the active version's`,
    `reviewed accuracy at most ${percent(p.max_accuracy_drop)} lower once ${number(p.min_reviewed)} predictions of each are reviewed`,
  ].filter(Boolean);
  return `The policy promotes or rolls back after ${number(p.min_requests)} candidate requests: ${bounds.join(', ')}.`;
}

function runningRollout(r) {
  const { active: a, candidate: c } = r;
  const shadow = r.mode === 'shadow';
  const min = r.policy.min_requests;
  const disagreements = [...r.disagreements].sort((x, y) => y.count - x.count);
  return h(
    'div',
    { className: 'rollout-body' },
    h(
      'p',
      { className: 'rollout-summary' },
      shadow
        ? `Candidate version ${c.version} runs ${rolloutShare(r)} after active version ${a.version} answered; its answers are compared, never sent.`
        : `Candidate version ${c.version} is ${rolloutShare(r)}; active version ${a.version} answers the rest.`,
      ' ',
      h('span', { className: 'muted' }, `Started ${stamp(r.started_at)}.`),
    ),
    h(
      'div',
      { className: 'progress-wrap rollout-progress' },
      h('progress', { max: min, value: Math.min(c.requests, min), 'aria-label': 'Progress toward the verdict' }),
      h('span', { className: 'progress-text' }, `${number(c.requests)} of ${number(min)} candidate requests before a verdict`),
    ),
    h(
      'dl',
      { className: 'metrics rollout-figures' },
      figure('requests', 'Requests seen', number(c.requests)),
      shadow ? figure('compared', 'Compared', number(r.compared)) : figure('errors', 'Errors', number(c.errors)),
      shadow ? figure('dropped', 'Dropped', number(r.dropped)) : null,
      shadow ? figure('agreement', 'Agreement', percent(r.agreement)) : null,
      shadow ? figure('mean-difference', 'Mean confidence difference', fixed(r.mean_confidence_difference)) : null,
      shadow ? figure('worst-difference', 'Worst confidence difference', fixed(r.worst_confidence_difference)) : null,
    ),
    shadow ? h('h3', {}, 'Disagreements (active → candidate)') : null,
    shadow
      ? disagreements.length
        ? h(
            'ul',
            { className: 'disagreements' },
            disagreements.map((d) => h('li', {}, h('span', { className: 'pair' }, breakable(d.active_class), ' → ', breakable(d.candidate_class)), ' ', h('span', { className: 'count' }, `× ${number(d.count)}`))),
          )
        : h('p', { className: 'muted disagreements-none' }, r.compared ? 'None: both versions gave the same class every time.' : 'None yet: no request compared.')
      : null,
    h('div', { className: 'table-wrap' }, armsTable(r)),
    h('p', { className: 'muted rollout-policy' }, policyText(r), shadow ? ' Shadow latency is the forward pass\'s time per image (the candidate runs only on otherwise idle CPU, so its time includes waiting for it); ' : ' Canary latency is end to end; ', 'figures are synced every few seconds.'),
    h('p', { className: 'muted rollout-updated' }, `Updated ${new Date().toLocaleTimeString()}`),
  );
}

const ROLLOUT_OUTCOME = {
  promoted: (r) => `Version ${r.version} was promoted: it became the active version.`,
  rolled_back: (r) => `Version ${r.version} was rolled back: version ${r.active.version} stayed active.`,
  stopped: () => 'Stopped before a verdict.',
};

/** The most recent rollout once it ended: its outcome and the verdict's reasons, compactly. */
function endedRollout(r) {
  const c = r.candidate;
  const figures = [`${number(c.requests)} candidate requests`, r.mode === 'shadow' ? `agreement ${percent(r.agreement)}` : null, `started ${stamp(r.started_at)}`, r.ended_at ? `ended ${stamp(r.ended_at)}` : null];
  return h(
    'div',
    { className: 'rollout-body' },
    h('p', { className: 'rollout-outcome' }, ROLLOUT_OUTCOME[r.state]?.(r) ?? stateLabel(r.state), ' ', h('span', { className: 'muted' }, `vs version ${r.active.version}, ${rolloutShare(r)} · ${figures.filter(Boolean).join(' · ')}`)),
    r.verdict
      ? h(
          'ul',
          { className: 'verdict-reasons', 'aria-label': `Verdict of ${stamp(r.verdict.at)}` },
          r.verdict.reasons.map((reason) => h('li', { className: /\(failed\)$/.test(reason) ? 'failed' : /\(ok\)$/.test(reason) ? 'ok' : '' }, reason)),
        )
      : null,
  );
}

/** Shows the running rollout with its live figures, or the latest one's outcome, or nothing. */
function renderRollout(r) {
  const panel = $('#rollout-panel');
  if (!r) {
    panel.hidden = true;
    panel.replaceChildren();
    panel.removeAttribute('data-state');
    rolloutState.key = null;
    return;
  }
  const running = r.state === 'running';
  panel.hidden = false;
  panel.className = `panel rollout-panel ${r.state}`;
  Object.assign(panel.dataset, { state: r.state, mode: r.mode, rolloutId: String(r.id) });
  const body = running ? runningRollout(r) : endedRollout(r);
  const key = `${r.id}:${r.state}`;
  const old = $('.rollout-body', panel);
  if (old && rolloutState.key === key) {
    old.replaceWith(body); // the heading and Stop button stay, and keep the focus
    return;
  }
  rolloutState.key = key;
  const stop = running ? h('button', { type: 'button', className: 'danger', id: 'rollout-stop', onclick: () => stopRollout(r, stop) }, 'Stop') : null;
  panel.replaceChildren(
    h(
      'div',
      { className: 'rollout-head' },
      h('h2', { id: 'h-rollout', tabIndex: -1 }, `${running ? 'Rollout' : 'Last rollout'}: ${r.mode} of version ${r.version}`),
      badge(stateLabel(r.state), ROLLOUT_BADGE[r.state]),
      stop,
    ),
    body,
  );
}

/** Reads the rollouts; once the one this page saw running has ended, says how and reloads the versions. */
async function refreshRollouts() {
  const seq = ++rolloutState.seq;
  clearTimeout(rolloutState.timer);
  rolloutState.timer = null;
  let rollouts;
  try {
    rollouts = (await get('/api/rollouts')).rollouts;
  } catch (error) {
    if (seq !== rolloutState.seq || currentView !== 'models') return;
    if (error.status === 401) return renderRollout(null); // the view's status shows the API's message; no polling without the token
    const panel = $('#rollout-panel');
    panel.hidden = false;
    if (!$('#rollout-error', panel)) panel.append(h('p', { id: 'rollout-error' }));
    showError($('#rollout-error', panel), error, 'Could not load the rollouts');
    rolloutState.timer = setTimeout(refreshRollouts, ROLLOUT_POLL_MS);
    return;
  }
  if (seq !== rolloutState.seq || currentView !== 'models') return;
  $('#rollout-error')?.remove();
  const running = rollouts.find((r) => r.state === 'running');
  const seen = rolloutState.runningId;
  rolloutState.runningId = running?.id ?? null;
  if (seen !== null && running?.id !== seen) {
    const ended = rollouts.find((r) => r.id === seen);
    if (ended && ended.state !== 'running') {
      const promoted = ended.state === 'promoted';
      showStatus($('#models-status'), `The ${ended.mode} of version ${ended.version} ended: ${stateLabel(ended.state)}${promoted ? `; version ${ended.version} is now active` : ''}.`, promoted ? 'ok' : 'warn');
      rolloutState.promoting = promoted ? { version: ended.version, polls: PROMOTE_POLLS } : null;
    }
    loadModels();
    refreshHealth();
  } else if (rolloutState.promoting) {
    const promoting = rolloutState.promoting;
    promoting.polls -= 1;
    if (activeShown === promoting.version || promoting.polls < 0) rolloutState.promoting = null;
    else {
      loadModels();
      refreshHealth();
    }
  }
  renderRollout(running ?? rollouts[0] ?? null);
  rolloutState.timer = setTimeout(refreshRollouts, ROLLOUT_POLL_MS);
}

function startRollouts() {
  stopRollouts();
  rolloutState.runningId = null;
  rolloutState.promoting = null;
  return refreshRollouts();
}

function stopRollouts() {
  clearTimeout(rolloutState.timer);
  rolloutState.timer = null;
  rolloutState.seq += 1; // an answer still on its way is dropped
}

// ---------- Monitoring ----------

const monitorState = { timer: null, history: [], seq: 0 };

function meterCard(title, value, note) {
  const pct = Math.max(0, Math.min(100, value));
  return h(
    'div',
    { className: 'card' },
    h('p', { className: 'card-title' }, title),
    h('p', { className: 'card-value' }, `${value.toFixed(1)} %`),
    h('meter', { min: 0, max: 100, low: 70, high: 90, optimum: 0, value: pct, 'aria-label': `${title} ${value.toFixed(1)} percent` }),
    note ? h('p', { className: 'card-note muted' }, note) : null,
  );
}

// Drift: whether recent traffic still looks like what the active version was trained on.

const DRIFT_BADGE = { ok: 'ok', warning: 'warn', drift: 'bad' };
const DRIFT_STATISTICS = { ood_share: 'Out-of-distribution share', class_mix_psi: 'Class-mix PSI', confidence_drop: 'Confidence drop' };

/** A report is judged when it has a reference and at least one window had enough predictions. */
const driftJudged = (report) => !report.note && report.windows.some((w) => !w.note);

function renderDrift(report) {
  const judged = driftJudged(report);
  const badgeEl = $('#drift-badge');
  badgeEl.textContent = judged ? report.status : 'not judged';
  badgeEl.className = `badge ${judged ? DRIFT_BADGE[report.status] : 'neutral'}`;
  badgeEl.dataset.status = judged ? report.status : 'not_judged';
  const summary = $('#drift-summary');
  summary.className = 'muted';
  const why = report.note ?? (judged ? null : report.windows.find((w) => w.note)?.note);
  summary.textContent = [report.model_version ? `Model version ${report.model_version}` : null, `checked ${stamp(report.checked_at)}`, why ? `not judged: ${why}` : null].filter(Boolean).join(' · ');
  drawDriftHistory(report);
  $('#drift-windows').replaceChildren(report.windows.length ? driftTable(report.windows) : h('p', { className: 'muted' }, 'No windows to show.'));
}

/** Out-of-distribution share of the count window over time, with that window's thresholds as flat lines. */
function drawDriftHistory(report) {
  const el = $('#chart-drift');
  const points = report.history.filter((p) => Number.isFinite(p.ood_share));
  if (!points.length) {
    emptyChart(el, report.note ?? 'No judged window yet: points appear once enough predictions were made.');
    return;
  }
  const times = points.map((p) => Date.parse(p.at));
  const inSeconds = times[times.length - 1] - times[0] < 3 * 60_000; // short histories in seconds
  const unit = inSeconds ? 1000 : 60_000;
  const xs = times.map((t) => Math.round((t - times[0]) / unit));
  const stat = report.windows.find((w) => w.kind === 'count')?.statistics.find((s) => s.name === 'ood_share');
  const flat = (value) => xs.map(() => value);
  const series = [{ name: 'OOD share', values: points.map((p) => p.ood_share), color: 2 }];
  if (stat) {
    series.push(
      { name: `warning ${fixed(stat.warning, 2)}`, values: flat(stat.warning), color: 1, dashed: true, dots: false },
      { name: `drift ${fixed(stat.drift, 2)}`, values: flat(stat.drift), color: 4, dashed: true, dots: false },
    );
  }
  lineChart(el, {
    label: 'Share of out-of-distribution images in the count window over time, with its warning and drift thresholds',
    xs,
    xLabel: `${inSeconds ? 'seconds' : 'minutes'} since ${stamp(points[0].at)}`,
    format: (v) => v.toFixed(2),
    series,
  });
}

function driftWindowCell(w, rows) {
  const span = w.kind === 'count' ? `Last ${number(w.size)} predictions` : `Last ${number(w.size)} minutes`;
  return h(
    'th',
    { scope: 'rowgroup', rowSpan: rows },
    span,
    h('span', { className: 'window-note muted' }, `${number(w.predictions)} in it · false alarms ${percent(w.false_alarm_rate)} · warnings ${percent(w.warning_rate)}`),
    w.note ? h('span', { className: 'window-note muted' }, `Not judged: ${w.note}`) : null,
  );
}

function driftStatisticCells(s) {
  const status = Number.isFinite(s.value) ? badge(s.status, DRIFT_BADGE[s.status]) : badge('not judged', 'neutral');
  return [
    h('td', {}, DRIFT_STATISTICS[s.name] ?? s.name),
    h('td', { className: 'num value' }, fixed(s.value)),
    h('td', { className: 'num' }, fixed(s.expected)),
    h('td', { className: 'num' }, fixed(s.warning)),
    h('td', { className: 'num' }, fixed(s.drift)),
    h('td', {}, status),
  ];
}

/** One row per statistic of each window; the window's cell spans its rows. */
function driftTable(windows) {
  const bodies = windows.map((w) => {
    const stats = w.statistics;
    const rows = stats.length
      ? stats.map((s, i) => h('tr', { dataset: { statistic: s.name } }, i === 0 ? driftWindowCell(w, stats.length) : null, driftStatisticCells(s)))
      : [h('tr', {}, driftWindowCell(w, 1), h('td', { colSpan: 6, className: 'muted' }, 'No statistic can be computed for this window.'))];
    return h('tbody', { dataset: { window: w.kind } }, rows);
  });
  return h(
    'table',
    { className: 'data-table drift-table' },
    h('thead', {}, h('tr', {}, ['Window', 'Statistic', 'Value', 'Expected', 'Warning', 'Drift', 'Status'].map((t) => h('th', { scope: 'col' }, t)))),
    bodies,
  );
}

async function refreshMonitoring() {
  const seq = ++monitorState.seq;
  const status = $('#monitor-status');
  const [metrics, ready, drift] = await Promise.allSettled([get('/api/metrics'), refreshHealth(), get('/api/drift')]);
  if (seq !== monitorState.seq) return;
  if (drift.status === 'rejected') showError($('#drift-summary'), drift.reason, 'Could not load the drift report');
  else renderDrift(drift.value);
  const health = $('#monitor-health');
  const r = ready.value;
  if (r?.ok) {
    health.className = 'panel health-panel ok';
    health.replaceChildren(h('strong', {}, 'Ready'), ` · serving model version ${r.data.model_version} on ${r.data.backend} · store ${r.data.store}`);
  } else if (r) {
    health.className = 'panel health-panel warn';
    health.replaceChildren(h('strong', {}, r.status ? `Not ready (HTTP ${r.status}${r.data?.error?.code ? `, ${r.data.error.code}` : ''})` : 'Unreachable'), `: ${r.data?.error?.message ?? ''}`);
  }
  if (metrics.status === 'rejected') {
    showError(status, metrics.reason, 'Could not load the metrics');
  } else {
    showStatus(status, '');
    const m = metrics.value;
    $('#monitor-cards').replaceChildren(
      card('Uptime', m.uptime, `since ${new Date(Date.now() - m.uptime_seconds * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}`),
      meterCard('CPU', m.cpu_percent, 'whole machine'),
      meterCard('Memory', m.memory_percent, 'whole machine'),
      meterCard('Disk', m.disk_percent, 'disk holding the data dir'),
      card('Process memory', bytes(m.process_rss_bytes), 'resident set of sprig'),
      card('Backend', m.backend, m.active_model_version ? `model version ${m.active_model_version}` : 'no active model'),
      card('Predictions', number(m.prediction_count), `${number(m.predictions_last_minute)} in the last minute`),
      // The latency fields are left out (not null) when nothing was predicted in the last minute.
      card('Latency p50', m.latency_p50_ms == null ? '—' : `${m.latency_p50_ms.toFixed(1)} ms`, m.latency_p95_ms == null ? 'no predictions in the last minute' : `p95 ${m.latency_p95_ms.toFixed(1)} ms`),
      card('Inference queue', number(m.inference_queue_depth), 'requests waiting'),
      card('Images', number(m.image_count), `${number(m.class_count)} classes`),
      card('Database', bytes(m.database_bytes), 'on disk'),
      card('Retrain', m.retrain_running ? 'running' : 'idle', m.retrain_running ? 'see Retrain' : ''),
    );
    const history = monitorState.history;
    history.push({ t: Date.now(), cpu: m.cpu_percent, mem: m.memory_percent });
    if (history.length > 120) history.shift();
    const t0 = history[0].t;
    if (history.length < 2) emptyChart($('#chart-resources'), 'Collecting samples (one every refresh)…');
    else lineChart($('#chart-resources'), {
      label: 'CPU and memory percent over time',
      xs: history.map((x) => Math.round((x.t - t0) / 1000)),
      xLabel: 'seconds since this page opened',
      yMax: 100,
      format: (v) => `${Math.round(v)}%`,
      series: [
        { name: 'CPU %', values: history.map((x) => x.cpu), color: 0 },
        { name: 'memory %', values: history.map((x) => x.mem), color: 2 },
      ],
    });
  }
  $('#monitor-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function startMonitoring() {
  stopMonitoring();
  refreshMonitoring();
  if ($('#monitor-auto').checked) monitorState.timer = setInterval(refreshMonitoring, 5000);
}

function stopMonitoring() {
  clearInterval(monitorState.timer);
  monitorState.timer = null;
}

// ---------- routing ----------

const views = {
  predict: { title: 'Predict' },
  upload: { title: 'Upload', enter: () => loadClasses() },
  data: { title: 'Dataset & predictions', enter: loadData },
  review: { title: 'Review', enter: enterReview },
  retrain: { title: 'Retrain', enter: () => Promise.all([loadRetrainStatus(), loadJobs()]) },
  models: { title: 'Models', enter: () => Promise.all([loadModels(), startRollouts()]), leave: stopRollouts },
  monitoring: { title: 'Monitoring', enter: startMonitoring, leave: stopMonitoring },
};
let currentView = null;

// The original project's page URLs (and /review) open their view (server/src/pages.rs serves this page there).
const PAGE_VIEWS = {
  '/predict': 'predict',
  '/visualizations': 'data',
  '/upload_data': 'upload',
  '/retrain': 'retrain',
  '/monitoring': 'monitoring',
  '/review': 'review',
};

function route(moveFocus) {
  const name = location.hash.slice(1) || PAGE_VIEWS[location.pathname] || '';
  if (!views[name] && currentView) return; // an in-page anchor, not a view
  const view = views[name] ? name : 'predict';
  if (currentView && currentView !== view) views[currentView].leave?.();
  for (const key of Object.keys(views)) $(`#view-${key}`).hidden = key !== view;
  for (const link of document.querySelectorAll('.tabs a')) {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${views[view].title} · sprig`;
  currentView = view;
  document.body.dataset.view = view;
  if (moveFocus) $(`#h-${view}`).focus({ preventScroll: false });
  Promise.resolve(views[view].enter?.()).catch((error) => console.error(error));
}

function tabKeys(event) {
  const links = [...document.querySelectorAll('.tabs a')];
  const i = links.indexOf(document.activeElement);
  if (i < 0) return;
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: links.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  links[(next + links.length) % links.length].focus();
}

// ---------- start ----------

function init() {
  dropzone('predict', classify);
  // The rollout panel, at the top of the Models view: filled while the view is open.
  $('#view-models .lead').after(h('section', { id: 'rollout-panel', className: 'panel rollout-panel', 'aria-labelledby': 'h-rollout', hidden: true }));
  $('#models-import').addEventListener('change', (event) => {
    const [file] = event.target.files;
    if (file) importBundle(file).finally(() => (event.target.value = ''));
  });
  dropzone('upload', (files) => {
    uploadState.files.push(...files);
    renderSelection();
  });
  $('#upload-class').addEventListener('change', () => {
    toggleNewClass();
    if ($('#upload-class').value === NEW_CLASS) $('#upload-new-class').focus();
  });
  $('#upload-clear').addEventListener('click', () => {
    uploadState.files = [];
    renderSelection();
  });
  $('#upload-form').addEventListener('submit', upload);
  $('#retrain-form').addEventListener('submit', startRetrain);
  $('#job-cancel').addEventListener('click', cancelJob);
  $('#monitor-auto').addEventListener('change', () => (currentView === 'monitoring' ? startMonitoring() : null));
  $('#monitor-refresh').addEventListener('click', refreshMonitoring);
  $('.tabs').addEventListener('keydown', tabKeys);
  document.addEventListener('keydown', reviewKeys);
  $('.skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    $(`#h-${currentView}`).focus();
  });
  for (const button of document.querySelectorAll('dialog [data-close]')) {
    button.addEventListener('click', () => button.closest('dialog').close('cancel'));
  }
  window.addEventListener('hashchange', () => route(true));
  route(false);
  // Header health: every 10 s, every 2 s while the server is not ready (first model training).
  const healthLoop = async () => {
    if (currentView !== 'monitoring' && !document.hidden) await refreshHealth();
    setTimeout(healthLoop, lastReady?.ok ? 10000 : 2000);
  };
  healthLoop();
}

init();
