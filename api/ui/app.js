// The GPU fleet dashboard: a hash-routed single page over the REST API of this server.
//
//   #/ [?metric=M]                              the fleet: hosts x GPUs coloured by M's latest value
//   #/gpu/<uuid> [?metrics=A,B&range=1h&step=auto&agg=avg]   one GPU's metrics over time
//   #/pipeline                                  ingest rate, consumer lag, dead letters
//
// Plain JavaScript, no build step; the one library is uPlot (vendor/, see its README.md).
// Nothing here writes to the console: every failure, expected or not, is shown in the page
// (#errors), API failures with the problem+json `detail` the API answered.
(function () {
  'use strict';

  const API = '/api/v1';
  const REFRESH_MS = 15000;
  const PIPELINE_POLL_MS = 5000;
  const RANGES = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };
  const STEPS = { '15s': 15, '1m': 60, '5m': 300, '1h': 3600 };
  const AGGS = ['avg', 'min', 'max'];
  const DEFAULT_GPU_METRICS = ['DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_POWER_USAGE', 'DCGM_FI_DEV_GPU_UTIL'];
  const FLEET_METRIC_PREFERENCE = ['DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_POWER_USAGE'];
  // A GPU whose latest point is older than this is drawn as stale.
  const STALE_SECONDS = 300;
  const CHART_COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

  // ---------------------------------------------------------------------------------------
  // Small helpers

  /** An element: h('a', {href: '#/', class: 'x'}, 'text', otherNode). Text is never parsed as HTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'value') el[key] = value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  /** A metric's unit, from its DCGM field name. */
  function unitOf(metric) {
    const m = metric.toUpperCase();
    if (m.endsWith('_TEMP')) return '°C';
    if (m.endsWith('_UTIL')) return '%';
    if (m.includes('POWER_USAGE')) return 'W';
    if (m.endsWith('_CLOCK')) return 'MHz';
    if (m.startsWith('DCGM_FI_DEV_FB_')) return 'MiB';
    if (m.includes('ENERGY')) return 'mJ';
    return '';
  }

  /** A short label for a metric: DCGM_FI_DEV_GPU_TEMP -> GPU_TEMP. */
  function shortName(metric) {
    return metric.replace(/^DCGM_FI_(DEV_|PROF_)?/, '');
  }

  function fmtNumber(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return '—';
    const a = Math.abs(v);
    const digits = a >= 100 || Number.isInteger(v) ? 0 : a >= 10 ? 1 : 2;
    return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  function fmtValue(v, metric) {
    const unit = unitOf(metric);
    const text = fmtNumber(v);
    return text === '—' || !unit ? text : unit === '%' || unit === '°C' ? text + unit : text + ' ' + unit;
  }

  function fmtInt(v) {
    return v === null || v === undefined || !Number.isFinite(Number(v)) ? '—' : Number(v).toLocaleString('en-US');
  }

  /** "12 s ago", "3 min ago", "2 h ago", "5 d ago"; "—" for no time. */
  function fmtAge(ts) {
    if (!ts) return '—';
    const t = Date.parse(ts);
    if (!Number.isFinite(t)) return '—';
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 0) return 'in the future';
    if (s < 90) return `${s} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function fmtTime(ts) {
    if (!ts) return '—';
    const t = new Date(ts);
    return Number.isFinite(t.getTime()) ? t.toLocaleString('en-GB', { hour12: false }) : String(ts);
  }

  /** A time axis for uPlot: 24-hour clock labels, with seconds or the date when the span asks. */
  function timeAxis() {
    const pad = (n) => String(n).padStart(2, '0');
    return {
      stroke: '#555',
      grid: { stroke: '#e5e5e5' },
      ticks: { stroke: '#ccc' },
      space: 80,
      values: (u, splits) => {
        const span = u.scales.x.max - u.scales.x.min;
        let previous = null;
        return splits.map((s) => {
          const d = new Date(s * 1000);
          const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
          let label = `${pad(d.getDate())}/${pad(d.getMonth() + 1)} ${clock}`;
          if (span <= 900) label = `${clock}:${pad(d.getSeconds())}`;
          else if (span <= 129600) label = clock;
          // Ticks finer than the label (half seconds) would repeat it: label the first only.
          const shown = label === previous ? '' : label;
          previous = label;
          return shown;
        });
      },
    };
  }

  /** A failed API call: what was asked and what the API said (problem+json `detail`). */
  class ApiError extends Error {
    constructor(path, status, message) {
      super(message);
      this.path = path;
      this.status = status;
    }
  }

  /** GET an API path; resolves to the JSON body, rejects with an ApiError. */
  async function getJSON(path, signal) {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: 'application/json' }, signal });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(path, 0, `the API did not answer (${e && e.message ? e.message : e})`);
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && typeof body === 'object' && body.detail ? body.detail : text.trim().slice(0, 300);
      const title = body && typeof body === 'object' && body.title ? body.title : response.statusText;
      throw new ApiError(path, response.status, `${response.status} ${title}${detail ? ': ' + detail : ''}`);
    }
    if (body === null) throw new ApiError(path, response.status, 'the answer is not JSON');
    return body;
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [key, value] of params) search.append(key, value);
    return search.toString();
  }

  // ---------------------------------------------------------------------------------------
  // Errors in the page

  const errorsEl = document.getElementById('errors');
  const viewEl = document.getElementById('view');
  const updatedEl = document.getElementById('updated');
  const autoRefreshEl = document.getElementById('auto-refresh');

  /** Replaces the view's error list (a refresh that succeeds clears it). */
  function showErrors(errors) {
    errorsEl.querySelectorAll('.error.api').forEach((el) => el.remove());
    for (const e of errors) {
      const what = e instanceof ApiError ? e.path : '';
      errorsEl.append(
        h('div', { class: 'error api', 'data-status': e instanceof ApiError ? e.status : null },
          what ? h('code', {}, 'GET ' + what) : null, what ? ' — ' : null, e.message || String(e)));
    }
  }

  /** An unexpected script failure: in the page, marked so that tests see it, never in the console. */
  function scriptError(message) {
    document.documentElement.setAttribute('data-js-error', message);
    errorsEl.append(h('div', { class: 'error script' }, 'Dashboard error: ' + message));
  }

  window.addEventListener('error', (event) => {
    scriptError(event.message || String(event.error));
    event.preventDefault();
  });
  window.addEventListener('unhandledrejection', (event) => {
    const reason = event.reason;
    scriptError(reason && reason.message ? reason.message : String(reason));
    event.preventDefault();
  });

  /** Runs every request; resolves to their results (null for a failed one), and adds the
   *  failures to `errors` (aborted requests are not failures). */
  async function settle(requests, errors) {
    const results = await Promise.allSettled(requests);
    for (const r of results) {
      if (r.status === 'rejected' && !(r.reason && r.reason.name === 'AbortError')) errors.push(r.reason);
    }
    return results.map((r) => (r.status === 'fulfilled' ? r.value : null));
  }

  function markUpdated() {
    updatedEl.textContent = 'updated ' + new Date().toLocaleTimeString('en-GB', { hour12: false });
  }

  // ---------------------------------------------------------------------------------------
  // Shared data

  let metricsCache = null;
  /** The metric names the API knows (`points_per_metric` of /api/v1/stats), sorted; and the stats. */
  async function loadStats(signal) {
    const stats = await getJSON(API + '/stats', signal);
    metricsCache = Object.keys(stats.points_per_metric || {}).sort();
    return stats;
  }

  // ---------------------------------------------------------------------------------------
  // Colour scale (blue -> yellow -> red), with its legend

  const SCALE_STOPS = ['#313695', '#4575b4', '#74add1', '#abd9e9', '#fee090', '#fdae61', '#f46d43', '#d73027', '#a50026'];

  function hexToRgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  /** The colour of t in [0, 1]. */
  function colourAt(t) {
    const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (SCALE_STOPS.length - 1);
    const i = Math.min(SCALE_STOPS.length - 2, Math.floor(x));
    const a = hexToRgb(SCALE_STOPS[i]);
    const b = hexToRgb(SCALE_STOPS[i + 1]);
    const f = x - i;
    const rgb = a.map((c, k) => Math.round(c + (b[k] - c) * f));
    return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
  }

  function textColourOn(rgb) {
    const [r, g, b] = rgb.match(/\d+/g).map(Number);
    return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#111' : '#fff';
  }

  /** The colour scale's domain for a metric: fixed for percentages and temperatures, else the data's. */
  function domainOf(metric, values) {
    const finite = values.filter(Number.isFinite);
    let lo = finite.length ? Math.min(...finite) : 0;
    let hi = finite.length ? Math.max(...finite) : 1;
    const unit = unitOf(metric);
    if (unit === '%') return [0, Math.max(100, hi)];
    if (unit === '°C') return [Math.min(30, lo), Math.max(90, hi)];
    if (unit === 'W' || unit === 'MiB' || unit === 'MHz') lo = Math.min(0, lo);
    if (hi - lo < 1e-9) {
      lo -= 1;
      hi += 1;
    }
    return [lo, hi];
  }

  function legend(metric, domain) {
    const stops = SCALE_STOPS.map((c, i) => `${c} ${Math.round((i / (SCALE_STOPS.length - 1)) * 100)}%`).join(', ');
    const [lo, hi] = domain;
    return h('div', { class: 'legend', 'aria-label': 'colour scale' },
      h('span', { class: 'legend-title' }, shortName(metric)),
      h('span', { class: 'legend-min' }, fmtValue(lo, metric)),
      h('span', { class: 'legend-bar', style: { background: `linear-gradient(to right, ${stops})` } }),
      h('span', { class: 'legend-max' }, fmtValue(hi, metric)),
      h('span', { class: 'legend-swatch nodata' }), h('span', {}, 'no data'),
      h('span', { class: 'legend-swatch stale' }), h('span', {}, `stale (> ${STALE_SECONDS / 60} min)`));
  }

  // ---------------------------------------------------------------------------------------
  // Fleet view

  function fleetView(params) {
    const controller = new AbortController();
    const state = { metric: params.get('metric') || null };
    const select = h('select', { id: 'fleet-metric', 'aria-label': 'metric', onchange: () => {
      location.hash = '#/?' + query([['metric', select.value]]);
    } });
    const summary = h('span', { class: 'muted', id: 'fleet-summary' });
    const legendEl = h('div', { id: 'fleet-legend' });
    const grid = h('div', { id: 'fleet-grid', class: 'fleet' }, h('p', { class: 'muted' }, 'Loading…'));
    viewEl.replaceChildren(
      h('section', { class: 'controls' }, h('h1', {}, 'Fleet'),
        h('label', {}, 'Colour by ', select), summary),
      legendEl, grid);

    function fillSelect(metrics) {
      if (!state.metric || !metrics.includes(state.metric)) {
        state.metric = FLEET_METRIC_PREFERENCE.find((m) => metrics.includes(m)) || metrics[0] || null;
      }
      const current = Array.from(select.options).map((o) => o.value).join('\n');
      if (current !== metrics.join('\n')) {
        select.replaceChildren(...metrics.map((m) => h('option', { value: m }, m)));
      }
      select.disabled = metrics.length === 0;
      if (state.metric) select.value = state.metric;
    }

    async function refresh() {
      const errors = [];
      const [, hosts, gpus] = await settle([
        loadStats(controller.signal),
        getJSON(API + '/hosts', controller.signal),
        getJSON(API + '/gpus', controller.signal),
      ], errors);
      if (controller.signal.aborted) return;
      fillSelect(metricsCache || []);
      const [latest] = state.metric
        ? await settle([getJSON(API + '/latest?' + query([['metric', state.metric]]), controller.signal)], errors)
        : [{ count: 0, points: [] }];
      if (controller.signal.aborted) return;
      showErrors(errors);
      render(hosts, gpus, latest);
      markUpdated();
    }

    function render(hostsBody, gpusBody, latestBody) {
      const metric = state.metric;
      const gpus = (gpusBody && Array.isArray(gpusBody.gpus)) ? gpusBody.gpus : [];
      const hostInfo = new Map();
      for (const host of (hostsBody && Array.isArray(hostsBody.hosts)) ? hostsBody.hosts : []) {
        hostInfo.set(host.hostname, host);
      }
      const byHost = new Map();
      for (const host of hostInfo.keys()) byHost.set(host, []);
      for (const gpu of gpus) {
        if (!byHost.has(gpu.hostname)) byHost.set(gpu.hostname, []);
        byHost.get(gpu.hostname).push(gpu);
      }
      const latest = new Map();
      for (const p of (latestBody && Array.isArray(latestBody.points)) ? latestBody.points : []) {
        if (!metric || p.metric === metric) latest.set(p.gpu_uuid, p);
      }
      // The scale spans the fresh values: a GPU silent for days must not stretch it.
      const now = Date.now();
      const isStale = (p) => (now - Date.parse(p.ts)) / 1000 > STALE_SECONDS;
      const fresh = Array.from(latest.values()).filter((p) => !isStale(p));
      const values = (fresh.length ? fresh : Array.from(latest.values())).map((p) => p.value);
      const domain = metric ? domainOf(metric, values) : [0, 1];
      legendEl.replaceChildren(metric ? legend(metric, domain) : '');
      summary.textContent = `${byHost.size} host${byHost.size === 1 ? '' : 's'}, ${gpus.length} GPU${gpus.length === 1 ? '' : 's'}`;

      if (byHost.size === 0) {
        grid.replaceChildren(h('p', { class: 'empty', id: 'fleet-empty' },
          gpusBody ? 'No GPUs have reported telemetry yet.' : 'The GPU list could not be loaded.'));
        return;
      }
      const rows = Array.from(byHost.keys()).sort().map((hostname) => {
        const list = byHost.get(hostname).slice().sort((a, b) => (a.gpu_index - b.gpu_index) || String(a.uuid).localeCompare(String(b.uuid)));
        const info = hostInfo.get(hostname);
        const cells = list.map((gpu) => {
          const point = latest.get(gpu.uuid);
          const value = point ? point.value : null;
          const stale = point ? isStale(point) : false;
          const colour = point && Number.isFinite(value) ? colourAt((value - domain[0]) / (domain[1] - domain[0])) : null;
          const title = [
            gpu.uuid, gpu.model, gpu.device ? `${gpu.device} (index ${gpu.gpu_index})` : `index ${gpu.gpu_index}`,
            point ? `${metric} = ${fmtValue(value, metric)} at ${fmtTime(point.ts)} (${fmtAge(point.ts)})` : `${metric || 'no metric'}: no data`,
          ].filter(Boolean).join('\n');
          return h('a', {
            class: 'cell' + (point ? '' : ' nodata') + (stale ? ' stale' : ''),
            href: '#/gpu/' + encodeURIComponent(gpu.uuid),
            'data-uuid': gpu.uuid,
            'data-value': point ? String(value) : null,
            title,
            style: colour ? { background: colour, color: textColourOn(colour) } : null,
          },
          h('span', { class: 'cell-index' }, 'GPU ' + gpu.gpu_index),
          h('span', { class: 'cell-value' }, point ? fmtValue(value, metric) : '—'),
          h('span', { class: 'cell-id' }, String(gpu.uuid).slice(0, 12)));
        });
        const meta = info
          ? `${fmtInt(info.gpus)} GPU${info.gpus === 1 ? '' : 's'} · last seen ${fmtAge(info.last_seen)}`
          : `${list.length} GPU${list.length === 1 ? '' : 's'}`;
        return h('div', { class: 'host', 'data-hostname': hostname },
          h('div', { class: 'host-name' }, h('strong', {}, hostname), h('span', { class: 'muted' }, meta)),
          h('div', { class: 'cells' }, cells.length ? cells : h('span', { class: 'muted' }, 'no GPUs listed')));
      });
      grid.replaceChildren(...rows);
    }

    return { refresh, interval: REFRESH_MS, destroy: () => controller.abort() };
  }

  // ---------------------------------------------------------------------------------------
  // GPU view

  /** The step for "auto": the finest of 15s/1m/5m/1h that keeps a chart under ~400 points. */
  function autoStep(rangeSeconds) {
    for (const [name, seconds] of Object.entries(STEPS)) {
      if (rangeSeconds / seconds <= 400) return name;
    }
    return '1h';
  }

  function durationSeconds(text) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(String(text || ''));
    if (!m) return null;
    const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
    return Number(m[1]) * unit;
  }

  /** uPlot's columns for one series, with a null wherever buckets are missing (a gap, not a line). */
  function columns(points, stepSeconds) {
    const xs = [];
    const ys = [];
    let previous = null;
    for (const p of points) {
      const t = Date.parse(p.ts) / 1000;
      if (!Number.isFinite(t)) continue;
      if (previous !== null && stepSeconds && t - previous > 1.5 * stepSeconds) {
        xs.push(previous + stepSeconds);
        ys.push(null);
      }
      xs.push(t);
      ys.push(Number.isFinite(p.value) ? p.value : null);
      previous = t;
    }
    return [xs, ys];
  }

  function gpuView(uuid, params) {
    const controller = new AbortController();
    const range = RANGES[params.get('range')] ? params.get('range') : '1h';
    const step = params.get('step') && STEPS[params.get('step')] ? params.get('step') : 'auto';
    const agg = AGGS.includes(params.get('agg')) ? params.get('agg') : 'avg';
    const requested = (params.get('metrics') || '').split(',').filter(Boolean);
    let chosen = requested.slice();
    const charts = new Map(); // metric -> {plot, box}

    function go(changes) {
      const next = {
        metrics: chosen.join(','), range, step, agg, ...changes,
      };
      location.hash = '#/gpu/' + encodeURIComponent(uuid) + '?' + query(Object.entries(next));
    }

    const picker = h('fieldset', { class: 'metric-picker', id: 'gpu-metrics' }, h('legend', {}, 'Metrics'));
    const rangeSelect = h('select', { id: 'gpu-range', 'aria-label': 'range', onchange: () => go({ range: rangeSelect.value }) },
      Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === range }, 'last ' + r)));
    const stepSelect = h('select', { id: 'gpu-step', 'aria-label': 'step', onchange: () => go({ step: stepSelect.value }) },
      ['auto', ...Object.keys(STEPS)].map((s) => h('option', { value: s, selected: s === step }, s === 'auto' ? 'auto' : s)));
    const aggSelect = h('select', { id: 'gpu-agg', 'aria-label': 'aggregation', onchange: () => go({ agg: aggSelect.value }) },
      AGGS.map((a) => h('option', { value: a, selected: a === agg }, a)));
    const info = h('p', { class: 'muted', id: 'gpu-info' }, uuid);
    const stepNote = h('span', { class: 'muted', id: 'gpu-step-note' });
    const chartsEl = h('div', { id: 'gpu-charts', class: 'charts' });
    viewEl.replaceChildren(
      h('section', { class: 'controls' },
        h('h1', {}, h('a', { href: '#/' }, 'Fleet'), ' / ', h('span', { id: 'gpu-title' }, uuid)),
        info),
      h('section', { class: 'controls' },
        h('label', {}, 'Range ', rangeSelect), h('label', {}, 'Step ', stepSelect),
        h('label', {}, 'Aggregation ', aggSelect), stepNote),
      picker, chartsEl);

    let pickerFilled = false;
    function fillPicker(metrics) {
      if (pickerFilled) return;
      pickerFilled = true;
      if (chosen.length === 0) {
        chosen = DEFAULT_GPU_METRICS.filter((m) => metrics.includes(m));
        if (chosen.length === 0) chosen = metrics.slice(0, 3);
      }
      const all = Array.from(new Set([...metrics, ...chosen])).sort();
      picker.append(...all.map((m) => h('label', { class: 'metric-option' },
        h('input', {
          type: 'checkbox', value: m, checked: chosen.includes(m),
          onchange: (event) => {
            const set = new Set(chosen);
            if (event.target.checked) set.add(m); else set.delete(m);
            chosen = all.filter((x) => set.has(x));
            go({ metrics: chosen.join(',') });
          },
        }), ' ', shortName(m))));
      if (all.length === 0) picker.append(h('span', { class: 'muted' }, 'No metrics stored yet.'));
    }

    function chartBox(metric) {
      let entry = charts.get(metric);
      if (!entry) {
        const plotEl = h('div', { class: 'plot' });
        const note = h('p', { class: 'muted chart-note' });
        const box = h('figure', { class: 'chart', 'data-metric': metric },
          h('figcaption', {}, h('strong', {}, shortName(metric)), h('span', { class: 'muted' }, ' ' + metric + (unitOf(metric) ? ` (${unitOf(metric)})` : ''))),
          note, plotEl);
        entry = { box, plotEl, note, plot: null };
        charts.set(metric, entry);
      }
      return entry;
    }

    function plotOptions(metric, index, entry) {
      const colour = CHART_COLOURS[index % CHART_COLOURS.length];
      return {
        width: Math.max(300, entry.plotEl.clientWidth),
        height: 220,
        scales: { x: { time: true, range: () => [entry.start, entry.end] } },
        series: [
          { value: (u, v) => (v === null || v === undefined ? '—' : fmtTime(v * 1000)) },
          {
            label: `${agg}(${shortName(metric)})`,
            stroke: colour,
            width: 2,
            fill: colour + '33',
            spanGaps: false,
            points: { show: false },
            value: (u, v) => fmtValue(v, metric),
          },
        ],
        axes: [
          timeAxis(),
          { stroke: '#555', grid: { stroke: '#e5e5e5' }, ticks: { stroke: '#ccc' }, size: 64, values: (u, vals) => vals.map((v) => fmtNumber(v)) },
        ],
        legend: { show: true },
        cursor: { drag: { x: true, y: false } },
      };
    }

    async function refresh() {
      const errors = [];
      const [, gpus] = await settle([loadStats(controller.signal), getJSON(API + '/gpus', controller.signal)], errors);
      if (controller.signal.aborted) return;
      fillPicker(metricsCache || []);
      const gpu = gpus && Array.isArray(gpus.gpus) ? gpus.gpus.find((g) => g.uuid === uuid) : null;
      if (gpu) {
        info.textContent = `${gpu.hostname} · GPU ${gpu.gpu_index}${gpu.device ? ' (' + gpu.device + ')' : ''} · ${gpu.model || ''} · last seen ${fmtAge(gpu.last_seen)}`;
      } else if (gpus) {
        info.textContent = 'This GPU is not in the GPU list.';
      }
      if (chosen.length === 0) {
        showErrors(errors);
        chartsEl.replaceChildren(h('p', { class: 'empty' }, 'Choose at least one metric.'));
        markUpdated();
        return;
      }
      const stepName = step === 'auto' ? autoStep(RANGES[range]) : step;
      stepNote.textContent = step === 'auto' ? `(auto: ${stepName})` : '';
      const q = query([...chosen.map((m) => ['metric', m]), ['step', stepName], ['agg', agg],
        ['start_time', '-' + range], ['end_time', 'now']]);
      const [body] = await settle([getJSON(`${API}/gpus/${encodeURIComponent(uuid)}/telemetry?${q}`, controller.signal)], errors);
      if (controller.signal.aborted) return;
      showErrors(errors);
      const nowSeconds = Date.now() / 1000;
      const end = body && Date.parse(body.end_time) ? Date.parse(body.end_time) / 1000 : nowSeconds;
      const start = body && Date.parse(body.start_time) ? Date.parse(body.start_time) / 1000 : end - RANGES[range];
      const stepSeconds = (body && durationSeconds(body.step)) || STEPS[stepName];
      const series = new Map();
      for (const s of (body && Array.isArray(body.series)) ? body.series : []) series.set(s.metric, s.points || []);
      const entries = chosen.map((metric) => chartBox(metric));
      chartsEl.replaceChildren(...entries.map((entry) => entry.box));
      chosen.forEach((metric, index) => {
        const entry = entries[index];
        const data = columns(series.get(metric) || [], stepSeconds);
        const empty = data[0].length === 0;
        if (!body) entry.note.textContent = 'Could not load this metric (see the error above).';
        else if (empty) entry.note.textContent = `No ${metric} points in the last ${range}.`;
        else entry.note.textContent = '';
        entry.box.classList.toggle('empty-chart', empty);
        entry.start = start;
        entry.end = end;
        if (empty) {
          if (entry.plot) entry.plot.destroy();
          entry.plot = null;
        } else if (entry.plot) {
          // setData rescales x through the scale's range function: the requested window.
          entry.plot.setData(data);
        } else {
          entry.plot = new uPlot(plotOptions(metric, index, entry), data, entry.plotEl);
        }
      });
      markUpdated();
    }

    function resize() {
      for (const entry of charts.values()) {
        if (entry.plot) entry.plot.setSize({ width: Math.max(300, entry.plotEl.clientWidth), height: 220 });
      }
    }
    window.addEventListener('resize', resize);

    return {
      refresh,
      interval: REFRESH_MS,
      destroy: () => {
        controller.abort();
        window.removeEventListener('resize', resize);
        for (const entry of charts.values()) if (entry.plot) entry.plot.destroy();
      },
    };
  }

  // ---------------------------------------------------------------------------------------
  // Pipeline health

  // Successive polls of points_total (kept across visits of the view, within this page load).
  const ingestSamples = [];

  function ingestRate() {
    const n = ingestSamples.length;
    if (n < 2) return null;
    const a = ingestSamples[n - 2];
    const b = ingestSamples[n - 1];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0 || b.points < a.points) return null;
    return (b.points - a.points) / dt;
  }

  function pipelineView() {
    const controller = new AbortController();
    const cards = h('div', { class: 'cards', id: 'pipeline-cards' });
    const rateEl = h('div', { class: 'plot', id: 'ingest-chart' });
    const rateNote = h('p', { class: 'muted' }, 'Measuring: the rate needs two polls, 5 s apart.');
    const consumersEl = h('div', { id: 'pipeline-consumers' });
    const metricsEl = h('div', { id: 'pipeline-metrics' });
    viewEl.replaceChildren(
      h('section', { class: 'controls' }, h('h1', {}, 'Pipeline health')),
      cards,
      h('figure', { class: 'chart' }, h('figcaption', {}, h('strong', {}, 'Ingest rate'), h('span', { class: 'muted' }, ' points/s stored, from successive polls of points_total')), rateNote, rateEl),
      h('h2', {}, 'Consumer lag'), consumersEl,
      h('h2', {}, 'Points per metric'), metricsEl);
    let plot = null;

    function card(label, value, detail, cls) {
      return h('div', { class: 'card' + (cls ? ' ' + cls : '') }, h('div', { class: 'card-label' }, label),
        h('div', { class: 'card-value' }, value), detail ? h('div', { class: 'muted' }, detail) : null);
    }

    async function refresh() {
      const errors = [];
      const [pipeline, stats] = await settle([getJSON(API + '/pipeline', controller.signal), loadStats(controller.signal)], errors);
      if (controller.signal.aborted) return;
      showErrors(errors);
      const total = pipeline && Number.isFinite(pipeline.points_total) ? pipeline.points_total : null;
      if (total !== null) {
        ingestSamples.push({ t: Date.now(), points: total });
        while (ingestSamples.length > 720) ingestSamples.shift();
      }
      const rate = ingestRate();
      const consumers = pipeline && Array.isArray(pipeline.consumers) ? pipeline.consumers : [];
      const lags = consumers.map((c) => c.lag).filter(Number.isFinite);
      const totalLag = lags.length ? lags.reduce((a, b) => a + b, 0) : null;
      const dead = pipeline ? pipeline.dead_letters : null;
      // `reachable`, `unreachable` or `not configured`: whether the API could ask the broker
      // for the partitions' end offsets (without them the lag is unknown).
      const broker = pipeline && typeof pipeline.broker === 'string' ? pipeline.broker : null;
      cards.replaceChildren(
        card('Ingest rate', rate === null ? '—' : fmtNumber(rate) + ' pts/s', rate === null ? 'measuring…' : `over the last ${Math.round((ingestSamples[ingestSamples.length - 1].t - ingestSamples[ingestSamples.length - 2].t) / 1000)} s`),
        card('Points stored', fmtInt(total), stats ? `${fmtInt(stats.gpus)} GPUs on ${fmtInt(stats.hosts)} hosts, ${fmtInt(stats.metrics)} metrics` : null),
        card('Newest point', pipeline ? fmtAge(pipeline.latest_ts) : '—', pipeline && pipeline.latest_ts ? fmtTime(pipeline.latest_ts) : 'no points yet'),
        card('Consumer lag', totalLag === null ? '—' : fmtInt(totalLag) + ' msgs',
          `${consumers.length} partition${consumers.length === 1 ? '' : 's'}` + (broker ? ` · broker ${broker}` : ''),
          totalLag > 0 || broker === 'unreachable' ? 'warn' : ''),
        card('Dead letters', fmtInt(dead), pipeline && pipeline.last_dead_letter_at ? 'last ' + fmtAge(pipeline.last_dead_letter_at) : 'none recorded', dead > 0 ? 'bad' : ''));
      renderRate();
      renderConsumers(consumers, broker);
      renderMetrics(stats);
      markUpdated();
    }

    function renderRate() {
      const xs = [];
      const ys = [];
      for (let i = 1; i < ingestSamples.length; i++) {
        const a = ingestSamples[i - 1];
        const b = ingestSamples[i];
        const dt = (b.t - a.t) / 1000;
        xs.push(b.t / 1000);
        ys.push(dt > 0 && b.points >= a.points ? (b.points - a.points) / dt : null);
      }
      rateNote.hidden = xs.length >= 2;
      if (xs.length < 2) return;
      if (plot) {
        plot.setData([xs, ys]);
        return;
      }
      plot = new uPlot({
        width: Math.max(300, rateEl.clientWidth),
        height: 180,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.1)] } },
        series: [{ value: (u, v) => (v === null || v === undefined ? '—' : fmtTime(v * 1000)) }, { label: 'points/s', stroke: '#2ca02c', width: 2, fill: '#2ca02c33', value: (u, v) => fmtNumber(v) }],
        axes: [timeAxis(), { stroke: '#555', grid: { stroke: '#e5e5e5' }, size: 64, values: (u, vals) => vals.map(fmtNumber) }],
      }, [xs, ys], rateEl);
    }

    function renderConsumers(consumers, broker) {
      if (consumers.length === 0) {
        consumersEl.replaceChildren(h('p', { class: 'empty' }, 'No consumer offsets recorded yet.'));
        return;
      }
      const lagUnknown = consumers.some((c) => !Number.isFinite(c.lag));
      const note = !lagUnknown ? null
        : broker === 'not configured' ? 'The API has no broker URL (--broker-url / BROKER_URL): end offsets and lag are unknown.'
        : broker === 'unreachable' ? 'The broker did not answer the API: end offsets and lag are unknown.'
        : 'Some partitions\' end offsets are unknown.';
      const maxLag = Math.max(1, ...consumers.map((c) => c.lag).filter(Number.isFinite));
      const sorted = consumers.slice().sort((a, b) => String(a.group).localeCompare(String(b.group))
        || String(a.topic).localeCompare(String(b.topic)) || a.partition - b.partition);
      consumersEl.replaceChildren(note ? h('p', { class: 'muted', id: 'lag-note' }, note) : '', h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, ['Group', 'Topic', 'Partition', 'Committed offset', 'End offset', 'Lag', '', 'Updated'].map((t) => h('th', {}, t)))),
        h('tbody', {}, sorted.map((c) => h('tr', { 'data-partition': c.partition },
          h('td', {}, c.group), h('td', {}, c.topic), h('td', { class: 'num' }, c.partition),
          h('td', { class: 'num' }, fmtInt(c.next_offset)), h('td', { class: 'num' }, fmtInt(c.end_offset)),
          h('td', { class: 'num' + (c.lag > 0 ? ' warn' : '') }, fmtInt(c.lag)),
          h('td', { class: 'bar-cell' }, Number.isFinite(c.lag) ? h('span', { class: 'bar', style: { width: `${(100 * c.lag) / maxLag}%` } }) : null),
          h('td', { title: fmtTime(c.updated_at) }, fmtAge(c.updated_at)))))));
    }

    function renderMetrics(stats) {
      if (!stats) return;
      const entries = Object.entries(stats.points_per_metric || {}).sort((a, b) => b[1] - a[1]);
      if (entries.length === 0) {
        metricsEl.replaceChildren(h('p', { class: 'empty' }, 'No points stored yet.'));
        return;
      }
      metricsEl.replaceChildren(
        h('p', { class: 'muted' }, `From ${fmtTime(stats.first_ts)} to ${fmtTime(stats.last_ts)}.`),
        h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Metric'), h('th', {}, 'Points'))),
          h('tbody', {}, entries.map(([m, n]) => h('tr', {}, h('td', {}, h('code', {}, m)), h('td', { class: 'num' }, fmtInt(n)))))));
    }

    function resize() {
      if (plot) plot.setSize({ width: Math.max(300, rateEl.clientWidth), height: 180 });
    }
    window.addEventListener('resize', resize);

    return {
      refresh,
      interval: PIPELINE_POLL_MS,
      destroy: () => {
        controller.abort();
        window.removeEventListener('resize', resize);
        if (plot) plot.destroy();
      },
    };
  }

  // ---------------------------------------------------------------------------------------
  // Routing and refresh

  let current = null;
  let timer = null;

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, search] = raw.split('?', 2);
    const parts = path.split('/').filter(Boolean);
    return { parts, params: new URLSearchParams(search || '') };
  }

  /** Refreshes the current view, unless its previous refresh is still under way. */
  async function runRefresh() {
    const view = current;
    if (!view || view.running) return;
    view.running = true;
    try {
      await view.refresh();
    } catch (e) {
      if (e instanceof ApiError) showErrors([e]);
      else if (!(e && e.name === 'AbortError')) scriptError(e && e.message ? e.message : String(e));
    } finally {
      view.running = false;
    }
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = null;
    if (current && autoRefreshEl.checked) timer = setInterval(runRefresh, current.interval);
  }

  function route() {
    if (current) current.destroy();
    errorsEl.replaceChildren(...errorsEl.querySelectorAll('.error.script'));
    const { parts, params } = parseHash();
    let name = 'fleet';
    if (parts[0] === 'gpu' && parts[1]) {
      name = 'gpu';
      current = gpuView(decodeURIComponent(parts[1]), params);
    } else if (parts[0] === 'pipeline') {
      name = 'pipeline';
      current = pipelineView(params);
    } else {
      current = fleetView(params);
    }
    document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === name));
    document.body.dataset.view = name;
    runRefresh();
    schedule();
  }

  autoRefreshEl.addEventListener('change', () => {
    schedule();
    if (autoRefreshEl.checked) runRefresh();
  });
  window.addEventListener('hashchange', route);
  route();
})();
