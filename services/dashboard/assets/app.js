// The analysts' dashboard: monthly rates against the target line, the ranking with the
// one-vote veto and the best/worst lists, traffic lights and the red list, the ledger with its
// filters and XLSX export, and how fresh each view is. Everything comes from the query API's
// JSON routes (docs/dashboard.md); this file only fetches, renders and remembers the controls.

import * as echarts from './vendor/echarts/echarts.esm.min.js';
import {
  ApiProblem, clearToken, getFile, getJson, save, setToken, takeTokenFromFragment, token,
} from './api.js';
import { ago, dateTime, decimal, integer, monthOf, percent } from './format.js';
import {
  CATEGORIES, CHANNELS, RATES, STATUSES, label, lang, setLang, t,
} from './i18n.js';

const $ = (selector, root = document) => root.querySelector(selector);

// What the page shows, kept so a language switch re-renders without fetching again. Exposed
// (read-only use) for the browser test and for analysts poking at the console.
const view = {
  rates: { department: null, channel: null },
  ranking: null,
  alerts: null,
  ledger: { items: [], next: null, params: null },
  freshness: null,
};
const charts = {};
window.linkageDashboard = { charts, view };

const RATE_COLOURS = ['#5470c6', '#3ba272', '#fac858', '#9a60b4'];

// ---------------------------------------------------------------------------------------------
// Controls and the address bar

function initialControls() {
  const params = new URLSearchParams(location.search);
  const month = params.get('month');
  $('#month').value = /^\d{4}-\d{2}$/.test(month ?? '') ? month : monthOf(new Date());
  const kind = params.get('ranking');
  if (['month', 'quarter', 'year'].includes(kind)) $('#ranking-kind').value = kind;
}

/** The month and the assessment period the controls select. */
function selection() {
  const month = $('#month').value || monthOf(new Date());
  const [year, m] = month.split('-').map(Number);
  const kind = $('#ranking-kind').value;
  const period = kind === 'month' ? month : kind === 'quarter' ? `${year}-Q${Math.floor((m - 1) / 3) + 1}` : `${year}`;
  return { month, period };
}

/** Keeps the selection in the address (without the token) so a link shows the same view. */
function rememberSelection() {
  const params = new URLSearchParams(location.search);
  params.set('month', $('#month').value);
  params.set('ranking', $('#ranking-kind').value);
  history.replaceState(null, '', `${location.pathname}?${params}`);
}

// ---------------------------------------------------------------------------------------------
// Language

function applyLanguage() {
  document.documentElement.lang = lang();
  document.title = `${t('title')} · Linkage`;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  fillSelectOptions();
  $('#echarts-notice').textContent = t('footer', { version: echarts.version });
}

function fillSelectOptions() {
  const options = {
    status: STATUSES.map((v) => [v, label('status', v)]),
    channel: CHANNELS.map((v) => [v, label('channel', v)]),
    category: CATEGORIES.map((v) => [v, label('category', v)]),
    overdue: [['true', t('ledger.overdue.true')], ['false', t('ledger.overdue.false')]],
    sort: ['-filed_at', 'filed_at', 'resolution_due', 'tracking_number'].map((v) => [v, t(`sort.${v}`)]),
  };
  for (const select of document.querySelectorAll('select[data-options]')) {
    const kind = select.dataset.options;
    const chosen = select.value;
    const entries = kind === 'sort' ? options.sort : [['', t('ledger.any')], ...options[kind]];
    select.replaceChildren(...entries.map(([value, text]) => new Option(text, value)));
    select.value = chosen || entries[0][0];
  }
}

function rerender() {
  applyLanguage();
  if (view.freshness) renderFreshness();
  if (view.rates.department) renderRates();
  if (view.ranking) renderRanking();
  if (view.alerts) renderAlerts();
  renderLedger();
}

// ---------------------------------------------------------------------------------------------
// Errors

/** Shows a failed call in its section; a refused token sends the analyst back to sign in. */
function showError(section, error) {
  const box = $('.error', section);
  if (error instanceof ApiProblem && error.status === 401) {
    signedOut(t('notice.unauthenticated'), error);
    return;
  }
  let text;
  if (error instanceof ApiProblem) {
    text = error.status === 0
      ? `${t('error.network')}: ${error.detail}`
      : `${error.status} ${error.title}${error.detail ? ` — ${error.detail}` : ''}`;
  } else {
    text = String(error?.message ?? error);
  }
  box.textContent = text;
  box.hidden = false;
  section.dataset.state = 'error';
}

function clearError(section) {
  const box = $('.error', section);
  box.hidden = true;
  box.textContent = '';
}

/** Runs one section's load, marking its state for the eye (and the test). */
async function load(sectionId, work) {
  const section = document.getElementById(sectionId);
  section.dataset.state = 'loading';
  section.setAttribute('aria-busy', 'true');
  try {
    await work();
    clearError(section);
    section.dataset.state = 'ready';
    section.dataset.loads = String(Number(section.dataset.loads ?? 0) + 1);
  } catch (error) {
    showError(section, error);
  } finally {
    section.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------------------------------------
// Sign-in

function signedIn() {
  $('#signin').hidden = true;
  $('#board').hidden = false;
  $('#sign-out').hidden = false;
  loadAll();
}

function signedOut(message, problem) {
  clearToken();
  $('#board').hidden = true;
  $('#sign-out').hidden = true;
  $('#signin').hidden = false;
  const notice = $('#notice');
  if (message) {
    notice.textContent = problem?.detail ? `${message} (${problem.title}: ${problem.detail})` : message;
    notice.hidden = false;
  } else {
    notice.hidden = true;
  }
  $('#token-input').focus();
}

// ---------------------------------------------------------------------------------------------
// Freshness

async function loadFreshness() {
  const answer = await getJson('/api/v1/freshness');
  view.freshness = answer.views ?? [];
  renderFreshness();
}

function renderFreshness() {
  const list = $('#freshness');
  list.replaceChildren(...view.freshness.map((v) => {
    const li = document.createElement('li');
    li.dataset.view = v.view;
    const name = document.createElement('strong');
    name.textContent = label('view', v.view);
    const detail = document.createElement('span');
    if (v.updated_at) {
      const position = v.position ?? v.global_position;
      detail.textContent = `${t('freshness.updated')} ${dateTime(v.updated_at)} (${ago(v.updated_at)}) · ${t('freshness.position')} ${integer(position)}`;
      detail.title = v.updated_at;
    } else {
      detail.textContent = t('freshness.never');
    }
    li.append(name, detail);
    return li;
  }));
}

// ---------------------------------------------------------------------------------------------
// Rates

async function loadRates() {
  const { month } = selection();
  const [department, channel] = await Promise.all([
    getJson('/api/v1/rates', { month, by: 'department' }),
    getJson('/api/v1/rates', { month, by: 'channel' }),
  ]);
  view.rates = { department, channel };
  rememberDepartments(department.groups.map((g) => g.key));
  renderRates();
}

function renderRates() {
  const { department, channel } = view.rates;
  const target = department.target_percent;
  $('#rates-title').textContent = `${t('rates.title', { target })} · ${department.month}`;
  const kpis = $('#district-kpis');
  kpis.replaceChildren(...RATES.map((rate) => {
    const r = department.district[rate];
    const card = document.createElement('div');
    card.className = `kpi${r.below_target ? ' below' : ''}`;
    card.dataset.rate = rate;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = `${t('rates.district')}${lang() === 'en' ? ' ' : ''}${t(`rate.${rate}`)}`;
    const value = document.createElement('span');
    value.className = 'value';
    value.textContent = percent(r.percent);
    const of = document.createElement('span');
    of.className = 'of';
    of.textContent = r.denominator > 0
      ? t('rates.of', { n: decimal(r.numerator).replace(/\.0$/, ''), d: r.denominator }) + (r.below_target ? ` · ${t('rate.below')}` : '')
      : t('rates.empty');
    card.append(name, value, of);
    return card;
  }));
  drawRates('department', department, (key) => label('dept', key));
  drawRates('channel', channel, (key) => label('channel', key));
}

function drawRates(by, answer, name) {
  const el = document.getElementById(`chart-${by}`);
  const chart = charts[by] ?? echarts.init(el, null, { renderer: 'canvas' });
  charts[by] = chart;
  const target = answer.target_percent;
  const groups = answer.groups;
  el.setAttribute('aria-label', `${t(by === 'department' ? 'rates.byDepartment' : 'rates.byChannel')}: ${
    groups.map((g) => `${name(g.key)} ${RATES.map((r) => `${t(`rate.${r}`)} ${percent(g.rates[r].percent)}`).join(', ')}`).join('; ')
  }`);
  chart.setOption({
    animation: false,
    color: RATE_COLOURS,
    // Room below for department names, turned when there are many.
    grid: { left: 48, right: 24, top: 48, bottom: groups.length > 8 ? 88 : 40 },
    legend: { top: 0, data: RATES.map((r) => t(`rate.${r}`)) },
    tooltip: {
      trigger: 'axis',
      axisPointer: { type: 'shadow' },
      valueFormatter: (v) => percent(v),
    },
    xAxis: {
      type: 'category',
      data: groups.map((g) => name(g.key)),
      axisLabel: { interval: 0, rotate: groups.length > 8 ? 30 : 0 },
    },
    yAxis: { type: 'value', min: 0, max: 100, axisLabel: { formatter: '{value}%' } },
    series: RATES.map((rate, i) => ({
      id: rate,
      name: t(`rate.${rate}`),
      type: 'bar',
      barMaxWidth: 28,
      data: groups.map((g) => g.rates[rate].percent),
      // The target line (目标线), drawn once.
      markLine: i === 0 ? {
        silent: true,
        symbol: 'none',
        lineStyle: { type: 'dashed', color: '#c0392b', width: 2 },
        label: { formatter: t('rates.target', { target }), position: 'insideEndTop', color: '#c0392b' },
        data: [{ yAxis: target }],
      } : undefined,
    })),
    graphic: groups.length === 0 ? [{
      type: 'text', left: 'center', top: 'middle',
      style: { text: t('rates.empty'), fill: '#666', fontSize: 14 },
    }] : [],
  }, { notMerge: true });
}

// ---------------------------------------------------------------------------------------------
// Ranking

async function loadRanking() {
  const { period } = selection();
  view.ranking = await getJson('/api/v1/rankings', { period });
  rememberDepartments(view.ranking.departments.map((d) => d.department));
  renderRanking();
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function badge(text, className) {
  const span = document.createElement('span');
  span.className = `badge ${className}`;
  span.textContent = text;
  return span;
}

function emptyRow(tbody, columns, text) {
  const tr = document.createElement('tr');
  const td = cell(text, 'empty');
  td.colSpan = columns;
  tr.append(td);
  tbody.replaceChildren(tr);
}

function renderRanking() {
  const r = view.ranking;
  $('#ranking-title').textContent = t('ranking.title', { period: r.period });
  $('#ranking-policy').textContent = r.policy_version > 0
    ? t('ranking.policy', { version: r.policy_version })
    : t('ranking.policyDefault');
  const tbody = $('#ranking tbody');
  if (r.departments.length === 0) {
    emptyRow(tbody, 12, t('ranking.empty'));
    return;
  }
  tbody.replaceChildren(...r.departments.map((d) => {
    const tr = document.createElement('tr');
    tr.dataset.department = d.department;
    if (d.vetoed) tr.classList.add('vetoed');
    if (d.list) tr.classList.add(d.list);
    const rateCell = (rate) => {
      const td = cell(percent(d.rates[rate].percent), `num${d.rates[rate].below_target ? ' below' : ''}`);
      if (d.rates[rate].denominator > 0) td.title = `${d.rates[rate].numerator} / ${d.rates[rate].denominator}`;
      return td;
    };
    const veto = cell('', 'veto');
    if (d.vetoed) veto.append(badge(t('ranking.veto'), 'veto'));
    const list = cell('', 'list');
    if (d.list) list.append(badge(t(`ranking.${d.list}`), d.list));
    const dept = document.createElement('th');
    dept.scope = 'row';
    dept.textContent = label('dept', d.department);
    dept.title = d.department;
    tr.append(
      cell(String(d.rank), 'num'),
      dept,
      cell(decimal(d.score), 'num'),
      cell(decimal(d.base), 'num'),
      ...RATES.map(rateCell),
      cell(percent(d.style?.percent ?? null), 'num'),
      cell(d.penalty_points ? decimal(d.penalty_points) : t('none'), 'num'),
      veto,
      list,
    );
    return tr;
  }));
}

// ---------------------------------------------------------------------------------------------
// Traffic lights

async function loadAlerts() {
  view.alerts = await getJson('/api/v1/alerts', { light: 'red' });
  renderAlerts();
}

function renderAlerts() {
  const a = view.alerts;
  $('#alerts-as-of').textContent = t('alerts.asOf', { time: dateTime(a.as_of) });
  for (const light of ['red', 'yellow', 'green']) {
    $(`#light-${light}`).textContent = integer(a.lights[light]);
  }
  const tbody = $('#red-list tbody');
  if (a.items.length === 0) {
    emptyRow(tbody, 7, t('alerts.empty'));
  } else {
    tbody.replaceChildren(...a.items.map((item) => {
      const tr = document.createElement('tr');
      tr.dataset.appeal = item.tracking_number;
      tr.append(
        cell(item.tracking_number, 'mono'),
        cell(label('deadline', item.deadline)),
        cell(dateTime(item.due), 'num'),
        cell(label('dept', item.lead_department)),
        cell(label('channel', item.channel)),
        cell(label('category', item.category)),
        cell(item.town),
      );
      return tr;
    }));
  }
  $('#red-list-note').textContent = a.truncated ? t('alerts.truncated', { n: a.items.length }) : '';
}

// ---------------------------------------------------------------------------------------------
// Ledger

/** Appeals a ledger page shows; 加载更多 fetches the next page. */
const LEDGER_PAGE = 25;

const LEDGER_FILTERS = ['department', 'status', 'channel', 'category', 'town', 'filed_from', 'filed_to', 'overdue'];

function ledgerFilters() {
  const form = $('#ledger-filters');
  const params = {};
  for (const name of LEDGER_FILTERS) {
    const value = form.elements[name].value.trim();
    if (value) params[name] = value;
  }
  params.sort = form.elements.sort.value;
  return params;
}

async function loadLedger() {
  const params = ledgerFilters();
  const answer = await getJson('/api/v1/ledger', { ...params, limit: LEDGER_PAGE });
  view.ledger = { items: answer.items, next: answer.next_cursor, params, freshness: answer.freshness };
  renderLedger();
}

async function loadMoreLedger() {
  const { params, next } = view.ledger;
  if (!next) return;
  const answer = await getJson('/api/v1/ledger', { ...params, limit: LEDGER_PAGE, cursor: next });
  view.ledger.items.push(...answer.items);
  view.ledger.next = answer.next_cursor;
  renderLedger();
}

/** The most urgent light of the deadlines still owed. */
function worstLight(lights) {
  const values = Object.values(lights ?? {});
  return ['red', 'yellow', 'green'].find((l) => values.includes(l)) ?? null;
}

function renderLedger() {
  const { items, next, params } = view.ledger;
  const tbody = $('#ledger tbody');
  if (!params) return;
  if (items.length === 0) {
    emptyRow(tbody, 12, t('ledger.empty'));
  } else {
    tbody.replaceChildren(...items.map((row) => {
      const tr = document.createElement('tr');
      tr.dataset.appeal = row.tracking_number;
      const light = worstLight(row.lights);
      const lightCell = cell('', 'light-cell');
      if (light) lightCell.append(badge(label('light', light), `light-${light}`));
      const departments = [row.lead_department, ...(row.co_handlers ?? [])].filter(Boolean);
      tr.append(
        cell(row.tracking_number, 'mono'),
        cell(dateTime(row.filed_at), 'num'),
        cell(label('channel', row.channel)),
        cell(label('category', row.category)),
        cell(row.filer_name),
        cell(row.town),
        cell(departments.length ? departments.map((d) => label('dept', d)).join('、') : t('none')),
        cell(label('status', row.status)),
        cell(dateTime(row.resolution_due), 'num'),
        cell(dateTime(row.resolved_at), 'num'),
        lightCell,
        cell(row.overdue ? t('yes') : t('no'), row.overdue ? 'overdue' : ''),
      );
      return tr;
    }));
  }
  $('#ledger-count').textContent = t(next ? 'ledger.countMore' : 'ledger.count', { n: items.length });
  $('#ledger-more').hidden = !next;
}

async function exportLedger() {
  const section = $('#ledger-section');
  const status = $('#ledger-status');
  const button = $('#ledger-export');
  button.disabled = true;
  status.textContent = t('ledger.exporting');
  section.dataset.export = 'running';
  try {
    const { sort, ...filters } = ledgerFilters();
    const { blob, filename } = await getFile(
      '/api/v1/ledger/export',
      { format: 'xlsx', lang: lang() === 'en' ? 'en' : 'zh', ...filters, sort },
      'ledger.xlsx',
    );
    save(blob, filename);
    clearError(section);
    status.textContent = t('ledger.exported', { file: filename });
    section.dataset.export = 'done';
  } catch (error) {
    status.textContent = '';
    section.dataset.export = 'error';
    showError(section, error);
  } finally {
    button.disabled = false;
  }
}

const knownDepartments = new Set();

function rememberDepartments(ids) {
  for (const id of ids) knownDepartments.add(id);
  $('#departments').replaceChildren(...[...knownDepartments].sort().map((id) => {
    const option = document.createElement('option');
    option.value = id;
    option.label = label('dept', id);
    return option;
  }));
}

// ---------------------------------------------------------------------------------------------
// Start

function loadAll() {
  rememberSelection();
  return Promise.all([
    load('freshness-section', loadFreshness),
    load('rates-section', loadRates),
    load('ranking-section', loadRanking),
    load('alerts-section', loadAlerts),
    load('ledger-section', loadLedger),
  ]);
}

function start() {
  takeTokenFromFragment();
  initialControls();
  applyLanguage();

  $('#controls').addEventListener('submit', (e) => {
    e.preventDefault();
    loadAll();
  });
  $('#month').addEventListener('change', () => loadAll());
  $('#ranking-kind').addEventListener('change', () => {
    rememberSelection();
    load('ranking-section', loadRanking);
  });
  $('#lang-toggle').addEventListener('click', () => {
    setLang(lang() === 'en' ? 'zh-CN' : 'en');
    rerender();
  });
  $('#sign-out').addEventListener('click', () => signedOut());
  $('#signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('#token-input').value.trim();
    if (!value) {
      $('#notice').textContent = t('signin.missing');
      $('#notice').hidden = false;
      return;
    }
    setToken(value);
    $('#token-input').value = '';
    $('#notice').hidden = true;
    signedIn();
  });
  $('#ledger-filters').addEventListener('submit', (e) => {
    e.preventDefault();
    load('ledger-section', loadLedger);
  });
  $('#ledger-filters').addEventListener('reset', () => {
    // After the browser has reset the fields.
    setTimeout(() => {
      fillSelectOptions();
      load('ledger-section', loadLedger);
    });
  });
  $('#ledger-more').addEventListener('click', () => load('ledger-section', loadMoreLedger));
  $('#ledger-export').addEventListener('click', exportLedger);
  window.addEventListener('resize', () => Object.values(charts).forEach((c) => c.resize()));

  if (token()) signedIn();
  else signedOut();
  document.body.dataset.started = 'true';
}

start();
