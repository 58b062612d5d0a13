// inkling's editor: one page over the writing API. No framework, no build step.
//
// What it guarantees the writer:
// - every keystroke reaches a revision: a save runs 400 ms after typing pauses and at least
//   once a second while typing goes on (so a killed server loses at most the last second),
//   never in the middle of an IME composition, and once more when the page is hidden;
// - saves go out one at a time, in order;
// - a suggestion is accepted as its own revision, after the writer's typing is saved, so undo
//   steps back over it alone.
'use strict';

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  for (const k of kids) e.append(k);
  return e;
};

const state = {
  project: null,        // name
  doc: null,            // id
  saved: '',            // text of the last revision the server has
  composing: false,
  saveTimer: null,
  lastSave: 0,
  saving: Promise.resolve(),
  tools: [],
  run: null,            // {controller, body, tool, range}
  findings: [],
  tree: null,           // {byId, kids, roots} of the open document's generation tree
  selected: null,       // the tree node shown under it
  popup: null,          // {node, i}: the token whose alternatives are shown
};

/// Alternatives asked for each token (what mikupad and NovelAI show).
const ALTERNATIVES = 10;

// ---- the API ----

function authHeaders() {
  const key = localStorage.getItem('inkling-key');
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, { method = 'GET', body, signal, keepalive } = {}) {
  const headers = { ...authHeaders() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, keepalive });
  if (r.status === 401) {
    const key = prompt('This server needs its API key:');
    if (key) {
      localStorage.setItem('inkling-key', key.trim());
      return api(path, { method, body, signal, keepalive });
    }
  }
  if (!r.ok) throw await failure(r);
  return r.status === 204 ? null : r.json();
}

/// The error a failed response carries (OpenAI's shape), or its status.
async function failure(r) {
  try { return new Error((await r.json()).error.message); } catch (_) { return new Error(`${r.status} ${r.statusText}`); }
}

const enc = encodeURIComponent;
const docPath = () => `/api/projects/${enc(state.project)}/documents/${state.doc}`;

function say(text) { $('message').textContent = text || ''; }
function status(text) { $('save-status').textContent = text; }
function showShare(share) {
  if (!share) { $('share').textContent = ''; return; }
  const total = share.writer + share.model + share.model_edited;
  const pct = total ? Math.round(100 * (share.model + share.model_edited) / total) : 0;
  $('share').textContent = `AI-assisted ${pct}%`;
}

// ---- projects and documents ----

async function loadProjects(select) {
  const projects = await api('/api/projects');
  const box = $('project');
  box.replaceChildren(...projects.map((p) => el('option', { value: p.name, textContent: p.name })));
  const want = select || localStorage.getItem('inkling-project');
  const pick = projects.find((p) => p.name === want) || projects[0];
  if (pick) await openProject(pick.name);
}

async function openProject(name, docId) {
  await flush();
  const v = await api(`/api/projects/${enc(name)}`);
  state.project = name;
  localStorage.setItem('inkling-project', name);
  $('project').value = name;
  $('memory').value = v.project.memory;
  $('note').value = v.project.authors_note;
  showBans(v.project.bans || {});
  $('document').replaceChildren(...v.documents.map((d) => el('option', { value: String(d.id), textContent: d.title })));
  const want = docId || Number(localStorage.getItem(`inkling-doc-${name}`));
  const pick = v.documents.find((d) => d.id === want) || v.documents[0];
  if (pick) await openDocument(pick.id); else closeDocument();
  await loadBible();
  await loadBinder();
  if ($('voice-panel').open) { await loadVoice(); await loadLearning(); }
}

// ---- banned phrases ----

const lines = (id) => $(id).value.split('\n').map((l) => l.trim()).filter(Boolean);

function showBans(b) {
  $('bans-defaults').checked = b.defaults !== false;
  $('bans-phrases').value = (b.phrases || []).join('\n');
  $('bans-regex').value = (b.regex || []).join('\n');
  $('bans-allow').value = (b.allow || []).join('\n');
}

async function loadBuiltinBans() {
  if (!state.project) return;
  const v = await api(`/api/projects/${enc(state.project)}/bans`);
  const list = v.builtin.phrases;
  $('bans-builtin-count').textContent = `${list.length}: ${list.slice(0, 6).join(', ')}…`;
  $('bans-builtin-count').title = list.join(', ');
}

/// The project's voice profile in words, or how to make one.
async function loadVoice() {
  if (!state.project) return;
  const list = $('voice-description');
  try {
    const v = await api(`/api/projects/${enc(state.project)}/voice`);
    list.replaceChildren(...v.description.map((line) => el('li', { textContent: line })));
  } catch (e) {
    list.replaceChildren(el('li', { className: 'hint', textContent: 'No profile yet: write some pages of your own, then let inkling learn your voice.' }));
  }
}

/// Minutes or seconds, as a writer reads an estimate.
function about(seconds) {
  return seconds >= 90 ? `about ${Math.round(seconds / 60)} min` : `about ${Math.max(1, Math.round(seconds))} s`;
}

let learningPoll = null;

/// What learning from the writer's choices would take, how far a training has got, and
/// whether the project's suggestions use what it learnt. Polls while a training runs.
async function loadLearning() {
  if (!state.project) return;
  clearTimeout(learningPoll);
  const project = state.project;
  let l;
  try { l = await api(`/api/projects/${enc(project)}/learning`); } catch (e) { $('learning-status').textContent = e.message; return; }
  if (project !== state.project) return;
  const bar = $('learning-progress');
  const t = l.training;
  const running = t && (t.state === 'preparing' || t.state === 'running');
  bar.hidden = !running;
  $('learning-start').disabled = running || !l.available || l.pairs < (l.plan?.needed ?? 0);
  $('learning-forget').hidden = !l.adapter && !running;
  const lines = [];
  if (!l.available) {
    lines.push(`${l.pairs} choices noted; ${l.why_not}.`);
  } else if (l.pairs < l.plan.needed) {
    lines.push(`${l.pairs} choices noted; ${l.plan.needed} are needed before there is anything to learn.`);
  } else {
    lines.push(`${l.pairs} choices to learn from (${l.edits} of them your edits): ${l.plan.steps} steps, ${about(l.plan.seconds)}.`);
  }
  if (t?.state === 'preparing') lines.push('Reading your choices…');
  if (t?.state === 'running') {
    bar.max = t.steps; bar.value = t.step;
    lines.push(`Learning: step ${t.step} of ${t.steps}, ${about(t.seconds_left)} left.`);
  }
  if (t?.state === 'failed') lines.push(`The last training failed: ${t.error}`);
  if (t?.state === 'stopped') lines.push('The training was stopped.');
  const r = l.adapter?.report;
  if (l.adapter?.in_use) {
    lines.push(r ? `In use for this project's suggestions. On ${r.held_out} choices kept aside to check it, the model preferred yours ${r.preferred_before} times before and ${r.preferred_after} after.` : "In use for this project's suggestions.");
  } else if (l.adapter) {
    lines.push(`Not in use: ${l.adapter.why_not}`);
  }
  $('learning-status').textContent = lines.join(' ');
  if (running && $('voice-panel').open) learningPoll = setTimeout(loadLearning, 1500);
}

async function saveBans() {
  if (!state.project) return;
  // Unchecked turns the list off for this project; checked leaves it to the config file.
  const body = { phrases: lines('bans-phrases'), regex: lines('bans-regex'), allow: lines('bans-allow') };
  if (!$('bans-defaults').checked) body.defaults = false;
  const saved = await api(`/api/projects/${enc(state.project)}/bans`, { method: 'PUT', body });
  showBans(saved);
}

function closeDocument() {
  state.doc = null;
  $('text').value = '';
  $('text').disabled = true;
  status('No document open');
  showShare(null);
}

async function openDocument(id) {
  await flush();
  const v = await api(`/api/projects/${enc(state.project)}/documents/${id}`);
  state.doc = id;
  localStorage.setItem(`inkling-doc-${state.project}`, String(id));
  $('document').value = String(id);
  setText(v.revision.text);
  $('text').disabled = false;
  status('Saved');
  showShare(v.revision.share);
  $('candidates').replaceChildren();
  state.selected = null;
  $('tree-node').replaceChildren();
  await loadTree();
}

/// The editor shows `text` as what the server has.
function setText(text) {
  const t = $('text');
  const pos = Math.min(t.selectionStart, text.length);
  t.value = text;
  t.setSelectionRange(pos, pos);
  state.saved = text;
  clearFindings();
}

// ---- autosave ----

function scheduleSave() {
  if (state.composing || state.doc === null) return;
  clearTimeout(state.saveTimer);
  status('Editing…');
  // At least once a second while typing continues; else when typing pauses.
  const wait = Date.now() - state.lastSave >= 1000 ? 0 : 400;
  state.saveTimer = setTimeout(() => save(), wait);
}

function save({ keepalive = false } = {}) {
  clearTimeout(state.saveTimer);
  state.saveTimer = null;
  state.saving = state.saving.then(async () => {
    const text = $('text').value;
    if (state.doc === null || text === state.saved) return;
    state.lastSave = Date.now();
    status('Saving…');
    try {
      const r = await api(`${docPath()}/revisions`, { method: 'POST', body: { text }, keepalive });
      state.saved = text;
      status($('text').value === text ? 'Saved' : 'Editing…');
      showShare(r.share);
      loadBinder().catch((e) => say(e.message));
    } catch (e) {
      status('Not saved');
      say(`Saving failed: ${e.message}. Your text is still here; it will be saved with the next change.`);
    }
  });
  return state.saving;
}

/// Saves whatever is pending and waits for it.
async function flush() {
  if (state.doc !== null && $('text').value !== state.saved) save();
  await state.saving;
}

// ---- tools ----

async function loadTools() {
  state.tools = await api('/api/tools');
  $('tool').replaceChildren(...state.tools.map((t) => el('option', { value: t.name, textContent: t.name })));
  $('tool').value = 'continue';
  showOptions();
}

function currentTool() { return state.tools.find((t) => t.name === $('tool').value); }

function showOptions() {
  const tool = currentTool();
  if (!tool) return;
  $('tool-help').textContent = tool.description;
  const rows = Object.entries(tool.options).map(([name, o]) => {
    let input;
    if (o.values.length && !o.free) {
      input = el('select', { name });
      input.append(...o.values.map((v) => el('option', { value: v, textContent: v })));
      if (o.default) input.value = o.default;
    } else {
      input = el('input', { name, placeholder: o.values.join(', ') || o.help, value: o.default || '' });
      if (o.values.length) {
        const list = el('datalist', { id: `values-${name}` }, ...o.values.map((v) => el('option', { value: v })));
        input.setAttribute('list', list.id);
        return el('label', { title: o.help }, name, input, list);
      }
    }
    return el('label', { title: o.help }, name, input);
  });
  $('options').replaceChildren(...rows);
}

/// What the tool works on: the story up to the cursor (continue), the selection, or the
/// whole text; and the range its answer replaces.
function toolInput(tool) {
  const t = $('text');
  const [start, end] = [t.selectionStart, t.selectionEnd];
  if (tool.continues) return { text: t.value.slice(0, end), before: '', range: [end, end] };
  if (end > start) return { text: t.value.slice(start, end), before: t.value.slice(0, start), range: [start, end] };
  return { text: tool.needs_text ? t.value : '', before: '', range: [end, end] };
}

const randomSeed = () => Math.floor(Math.random() * 2 ** 31);

async function runTool({ regenerate = false } = {}) {
  let tool = currentTool();
  if (!tool) return;
  await flush();
  say('');
  let body, range;
  if (regenerate && state.run) {
    ({ body, range, tool } = state.run);
    body = { ...body, seed: randomSeed() };
  } else {
    const input = toolInput(tool);
    if (tool.needs_text && !input.text.trim()) { say(`${tool.name} needs ${tool.input}: write or select some text first.`); return; }
    const options = {};
    for (const i of $('options').querySelectorAll('input, select')) if (i.value) options[i.name] = i.value;
    body = { text: input.text, before: input.before, options, n: Number($('n').value) || 1, stream: true, alternatives: ALTERNATIVES, project: state.project, document: state.doc, voice: $('voice-rank').checked };
    range = input.range;
  }
  await generate(tool, body, range);
}

/// Runs `tool` with `body`, streaming its candidates into cards; its answer will replace
/// `range` of the document when accepted.
async function generate(tool, body, range, title = 'Candidate') {
  const controller = new AbortController();
  state.run = { controller, body, tool, range };
  $('run').disabled = true; $('stop').disabled = false; $('regenerate').disabled = true;
  const cards = [];
  const card = (i) => cards[i] || (cards[i] = addCard(`${title} ${i + 1}`));
  let result = null;
  $('candidates').replaceChildren();
  try {
    await streamEvents(`/api/tools/${enc(tool.name)}`, body, controller.signal, (ev) => {
      if (ev.type === 'progress') showReading(ev);
      else if (ev.type === 'text') { showReading(null); card(ev.candidate).body.textContent += ev.text; }
      else if (ev.type === 'result') { result = ev.result; showResult(tool, body, ev.result, title); }
      else if (ev.type === 'error') say(ev.error.message);
    });
  } catch (e) {
    if (e.name !== 'AbortError') say(e.message);
  } finally {
    showReading(null);
    $('run').disabled = false; $('stop').disabled = true; $('regenerate').disabled = false;
  }
  // The tree shows the new candidates, the first of them selected.
  await loadTree(result && result.generations[0]);
  return result;
}

/// While the model reads a long prompt (a chapter takes seconds to tens of seconds), the
/// share of it read so far; gone once the reading is done or text arrives.
function showReading(ev) {
  const el = $('reading');
  const left = ev ? ev.total - ev.cached : 0;
  if (!ev || ev.processed >= ev.total || left < 300) { el.hidden = true; return; }
  const pct = Math.floor(100 * (ev.processed - ev.cached) / left);
  el.hidden = false;
  el.textContent = `Reading your chapter… ${pct}%`;
}

/// POSTs `body` and calls `onEvent` with each server-sent event's JSON.
async function streamEvents(path, body, signal, onEvent) {
  const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...authHeaders() }, body: JSON.stringify(body), signal });
  if (!r.ok) throw await failure(r);
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data) onEvent(JSON.parse(data));
    }
  }
}

function addCard(title) {
  const body = el('div', { className: 'body' });
  const actions = el('div', { className: 'actions' });
  const meta = el('div', { className: 'meta', textContent: title });
  const node = el('div', { className: 'candidate' }, meta, body, actions);
  $('candidates').append(node);
  return { node, body, actions, meta };
}

/// What a candidate's flags mean, as the card's heading says it.
const FLAG_NOTES = {
  commentary: 'talks about the edit',
  wrong_language: 'not in your language',
  short_list: 'fewer items than asked',
  unusable_field: 'a field holds nothing usable',
  ignores_input: 'keeps nothing of your description',
};

function showResult(tool, body, result, title = 'Candidate') {
  $('candidates').replaceChildren();
  if (result.prompt) showContext(result.prompt);
  if (!result.candidates.length) { say('The model gave no usable answer; try Regenerate.'); return; }
  result.candidates.forEach((c, i) => {
    const gen = result.generations[i];
    const notes = (c.flags || []).map(f => FLAG_NOTES[f] || f);
    if (c.meets_length === false) notes.unshift('misses the length goal');
    const card = addCard(`${title} ${i + 1}${notes.map(n => ' · ' + n).join('')}`);
    if (c.diff) {
      card.body.classList.add('diff');
      for (const s of c.diff) card.body.append(s.change === 'equal' ? s.text : el(s.change === 'insert' ? 'ins' : 'del', { textContent: s.text }));
    } else {
      card.body.textContent = c.text;
    }
    if (c.voice) card.node.insertBefore(el('div', { className: 'voice-reason', textContent: `Your voice: ${c.voice.reason}` }), card.body);
    offer(card, gen, c.text, tool);
    if (c.tokens) offerTokens(card, { gen, tool, body, tokens: c.tokens, answerStart: body.answer_start || '' });
  });
}

/// The context viewer: each part of the prompt the model read, with its tokens and what
/// became of it (memory, earlier chapters' summaries, lore entries and why they fired).
function showContext(p) {
  const rows = p.parts.map((part) => el('li', { className: 'context-part' }, el('b', { textContent: part.name }), ` ${part.tokens} tokens · ${part.fate}`));
  const box = el('details', { className: 'context' }, el('summary', { textContent: `What the model read: ${p.prompt_tokens} of ${p.budget} tokens` }), el('ul', {}, ...rows));
  $('candidates').append(box);
}

/// Accept and Reject buttons for generation `gen` with `text`, written by `tool`.
function offer(card, gen, text, tool) {
  const accept = el('button', { type: 'button', textContent: 'Accept', className: 'accept' });
  const reject = el('button', { type: 'button', textContent: 'Reject', className: 'reject' });
  card.node.dataset.gen = String(gen);
  accept.onclick = () => acceptCandidate(card, gen, text, tool);
  reject.onclick = async () => {
    try {
      await api(`/api/projects/${enc(state.project)}/generations/${gen}/status`, { method: 'POST', body: { status: 'rejected' } });
      card.node.classList.add('rejected');
      loadTree();
    } catch (e) { say(e.message); }
  };
  card.actions.append(accept, reject);
}

async function acceptCandidate(card, gen, text, tool) {
  if (state.doc === null) { say('Open a document to accept text into.'); return; }
  await flush();
  const t = $('text');
  tool = tool || (state.run ? state.run.tool : currentTool());
  let [start, end] = state.run ? state.run.range : [t.selectionStart, t.selectionEnd];
  start = Math.min(start, t.value.length); end = Math.min(end, t.value.length);
  let insert = text;
  // A list or profile lands as its own paragraph; a continuation or rewrite in place.
  if (!tool.continues && start === end) insert = `${start > 0 && !t.value.slice(0, start).endsWith('\n') ? '\n\n' : ''}${text}\n`;
  const next = t.value.slice(0, start) + insert + t.value.slice(end);
  try {
    const r = await api(`${docPath()}/accept`, { method: 'POST', body: { generation: gen, text: next } });
    setText(r.text);
    const caret = start + insert.length;
    t.setSelectionRange(caret, caret);
    if (state.run) state.run.range = [caret, caret];
    status('Saved');
    showShare(r.share);
    card.node.classList.add('accepted');
    loadTree(state.selected);
  } catch (e) { say(e.message); }
}

// ---- every token's alternatives, and branching from one ----

const pct = (lp) => `${(Math.exp(lp) * 100).toFixed(1)}%`;
/// A token's text as a list shows it: spaces and line breaks visible.
const shown = (text) => text.replace(/\n/g, '⏎').replace(/^ /, '␣') || '·';

/// A "Tokens" button on a card: the answer token by token, each with its alternatives.
/// `node` is what a branch needs: {gen, tool, body, tokens, answerStart}.
function offerTokens(card, node) {
  const b = el('button', { type: 'button', textContent: 'Tokens', className: 'show-tokens', title: 'Show the answer token by token; hover a token for its alternatives' });
  let plain = null;
  b.onclick = () => {
    if (plain) { card.body.replaceChildren(...plain); plain = null; b.textContent = 'Tokens'; return; }
    plain = [...card.body.childNodes];
    card.body.replaceChildren(tokenView(node));
    b.textContent = 'Text';
  };
  card.actions.append(b);
}

function tokenView(node) {
  const box = el('div', { className: 'tokens' });
  if (node.answerStart) box.append(el('span', { className: 'start', textContent: node.answerStart, title: 'The start this branch was given' }));
  node.tokens.forEach((t, i) => {
    // A token inside a character shows nothing: the next one carries the character.
    if (!t.text) return;
    const p = Math.exp(t.sampled_logprob);
    const span = el('span', { className: `tok${p < 0.1 ? ' rare' : p < 0.4 ? ' unlikely' : ''}`, tabIndex: 0, textContent: t.text, title: `${pct(t.sampled_logprob)} after the samplers, ${pct(t.logprob)} before` });
    span.dataset.i = String(i);
    const open = () => showAlternatives(span, node, i);
    span.addEventListener('mouseenter', open);
    span.addEventListener('focus', open);
    span.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') hideAlternatives(); });
    box.append(span);
  });
  return box;
}

function showAlternatives(span, node, i) {
  document.querySelectorAll('.tok.open').forEach((x) => x.classList.remove('open'));
  span.classList.add('open');
  state.popup = { node, i, span };
  renderAlternatives();
  const popup = $('token-popup');
  popup.hidden = false;
  const r = span.getBoundingClientRect();
  const width = popup.offsetWidth;
  popup.style.left = `${Math.max(8, Math.min(r.left, window.innerWidth - width - 8))}px`;
  const below = r.bottom + 4;
  popup.style.top = `${below + popup.offsetHeight < window.innerHeight ? below : Math.max(8, r.top - popup.offsetHeight - 4)}px`;
}

function renderAlternatives() {
  if (!state.popup) return;
  const { node, i } = state.popup;
  const t = node.tokens[i];
  const before = $('alt-before').checked;
  const list = before ? t.top : t.sampled_top;
  $('alt-title').textContent = `“${shown(t.text)}” · ${pct(before ? t.logprob : t.sampled_logprob)}`;
  $('alt-list').replaceChildren(...list.map((a) => {
    const chosen = a.text === t.text;
    const b = el('button', { type: 'button', className: `alt${chosen ? ' chosen' : ''}`, disabled: chosen || !a.whole, title: chosen ? 'The token written here' : a.whole ? 'Write the rest again from this token' : 'Part of a character: cannot start a branch' }, el('span', { textContent: shown(a.text) }), el('span', { textContent: pct(a.logprob) }));
    b.onclick = () => branchFrom(node, i, a.text);
    return el('li', {}, b);
  }));
  if (!list.length) $('alt-list').append(el('li', { textContent: 'The samplers left no other token here.' }));
}

function hideAlternatives() {
  $('token-popup').hidden = true;
  document.querySelectorAll('.tok.open').forEach((x) => x.classList.remove('open'));
  state.popup = null;
}

/// Cuts `node`'s answer before token `i`, puts `text` there and writes the rest again: a new
/// branch, filed under the old one.
async function branchFrom(node, i, text) {
  hideAlternatives();
  const start = node.answerStart + node.tokens.slice(0, i).map((t) => t.text).join('') + text;
  const body = { ...node.body, n: 1, seed: randomSeed(), stream: true, alternatives: ALTERNATIVES, answer_start: start, parent: node.gen, project: state.project, document: state.doc };
  const range = state.run ? state.run.range : [$('text').selectionStart, $('text').selectionEnd];
  await generate(node.tool, body, range, `Branch at “${shown(text)}”`);
}

// ---- the generation tree ----

/// Reads the open document's whole tree and shows it; `select` (an id) becomes the
/// selected node, else the selection stays.
async function loadTree(select) {
  if (!state.project || state.doc === null) { $('tree').replaceChildren(); $('tree-node').replaceChildren(); state.tree = null; return; }
  try {
    const v = await api(`/api/projects/${enc(state.project)}/generations?tree=true&document=${state.doc}`);
    const byId = new Map(v.generations.map((g) => [g.id, g]));
    const kids = new Map();
    const roots = [];
    for (const g of v.generations) {
      if (g.parent_id != null && byId.has(g.parent_id)) {
        if (!kids.has(g.parent_id)) kids.set(g.parent_id, []);
        kids.get(g.parent_id).push(g);
      } else roots.push(g);
    }
    state.tree = { byId, kids, roots };
    const item = (g) => {
      const label = el('span', { className: 'label', title: g.text }, el('b', { textContent: `${g.recipe} · ${g.status}` }), g.text.trim().slice(0, 80) || '(empty)');
      label.onclick = () => selectNode(g.id);
      const li = el('li', { role: 'treeitem', id: `node-${g.id}` }, label);
      li.setAttribute('aria-selected', 'false');
      li.dataset.id = String(g.id);
      const under = kids.get(g.id);
      if (under) { li.setAttribute('aria-expanded', 'true'); li.append(el('ul', { role: 'group' }, ...under.map(item))); }
      return li;
    };
    $('tree').replaceChildren(el('ul', { role: 'group' }, ...roots.map(item)));
    const want = select ?? state.selected;
    if (want != null && byId.has(want)) await selectNode(want, { show: select != null || !$('tree-node').hasChildNodes() });
    else { state.selected = null; $('tree-node').replaceChildren(); }
  } catch (e) { say(e.message); }
}

async function selectNode(id, { show = true } = {}) {
  state.selected = id;
  for (const li of $('tree').querySelectorAll('[role=treeitem]')) li.setAttribute('aria-selected', String(li.dataset.id === String(id)));
  const li = $(`node-${id}`);
  if (li) li.scrollIntoView({ block: 'nearest' });
  if (show) await showNode(id);
}

/// The selected node as a card: its text, Accept and Reject, and its tokens when it has them.
async function showNode(id) {
  try {
    const g = await api(`/api/projects/${enc(state.project)}/generations/${id}`);
    const tool = state.tools.find((t) => t.name === g.recipe) || currentTool();
    const branchOf = g.parent_id != null ? ` · under #${g.parent_id}` : '';
    const card = addCard(`#${g.id} ${g.recipe} · ${g.status}${branchOf}`);
    card.node.classList.add('tree-card');
    card.body.textContent = g.text;
    $('tree-node').replaceChildren(card.node);
    offer(card, g.id, g.text, tool);
    if (g.tokens) {
      const r = g.request || {};
      const body = { text: r.text || '', before: r.before || '', options: r.options || {}, max_tokens: r.max_tokens, temperature: r.temperature, language: r.language, count: r.count, frame: r.frame };
      offerTokens(card, { gen: g.id, tool, body, tokens: g.tokens, answerStart: r.answer_start || '' });
    }
  } catch (e) { say(e.message); }
}

/// Loom-style keys on the tree: siblings up and down, parent left, first branch right.
function treeKey(ev) {
  const tree = state.tree;
  if (!tree || state.selected == null) {
    if (tree && tree.roots.length && ev.key.startsWith('Arrow')) { ev.preventDefault(); selectNode(tree.roots[tree.roots.length - 1].id); }
    return;
  }
  const g = tree.byId.get(state.selected);
  if (!g) return;
  const siblings = g.parent_id != null && tree.byId.has(g.parent_id) ? tree.kids.get(g.parent_id) : tree.roots;
  const at = siblings.findIndex((x) => x.id === g.id);
  let next = null;
  if (ev.key === 'ArrowUp') next = siblings[at - 1];
  else if (ev.key === 'ArrowDown') next = siblings[at + 1];
  else if (ev.key === 'ArrowLeft') next = tree.byId.get(g.parent_id);
  else if (ev.key === 'ArrowRight') next = (tree.kids.get(g.id) || [])[0];
  else if (ev.key === 'Enter') { ev.preventDefault(); const b = $('tree-node').querySelector('.accept'); if (b) b.click(); return; }
  else return;
  ev.preventDefault();
  if (next) selectNode(next.id);
}

// ---- undo and redo (the store's: typing and accepted suggestions alike) ----

async function step(which) {
  if (state.doc === null) return;
  await flush();
  try {
    const r = await api(`${docPath()}/${which}`, { method: 'POST' });
    setText(r.text);
    status('Saved');
    showShare(r.share);
    say('');
  } catch (e) { say(e.message); }
}

// ---- proofreading ----

function clearFindings() { state.findings = []; $('findings').replaceChildren(); renderMarks(); }

function renderMarks() {
  const text = $('text').value;
  const marks = $('marks');
  const parts = [];
  let at = 0;
  for (const f of state.findings) {
    if (f.utf16_start < at) continue;
    parts.push(text.slice(at, f.utf16_start), el('mark', { textContent: text.slice(f.utf16_start, f.utf16_end) }));
    at = f.utf16_end;
  }
  parts.push(text.slice(at), '\n');
  marks.replaceChildren(...parts);
  marks.scrollTop = $('text').scrollTop;
}

async function proofread() {
  try {
    const v = await api('/api/proofread', { method: 'POST', body: { text: $('text').value } });
    state.findings = v.findings;
    renderMarks();
    const items = v.findings.map((f) => {
      const li = el('li', {}, el('div', { textContent: `${f.kind}: ${f.message}` }));
      for (const rep of f.replacements.slice(0, 3)) {
        const b = el('button', { type: 'button', className: 'fix', textContent: rep === '' ? `delete “${f.original}”` : `${f.original} → ${rep}` });
        b.onclick = () => applyFix(f, rep);
        li.append(b);
      }
      return li;
    });
    $('findings').replaceChildren(...(items.length ? items : [el('li', { textContent: 'No findings.' })]));
  } catch (e) { say(e.message); }
}

async function applyFix(f, replacement) {
  const t = $('text');
  if (t.value.slice(f.utf16_start, f.utf16_end) !== f.original) { say('The text changed since the check; checking again.'); return proofread(); }
  t.value = t.value.slice(0, f.utf16_start) + replacement + t.value.slice(f.utf16_end);
  await save();
  await proofread();
}

// ---- the story bible and context ----

async function loadBible() {
  if (!state.project) return;
  const v = await api(`/api/projects/${enc(state.project)}/bible`);
  $('entries').replaceChildren(...v.entries.map((e) => {
    const del = el('button', { type: 'button', textContent: '×', title: 'Remove' });
    del.onclick = async () => { await api(`/api/projects/${enc(state.project)}/bible/${e.id}`, { method: 'DELETE' }); loadBible(); };
    return el('li', {}, el('span', { className: 'kind', textContent: e.kind }), el('b', { textContent: e.name }), ' ', del, el('div', { textContent: e.body }));
  }));
}

// ---- the binder: the book as its story pipeline ----

const bookPath = () => `/api/projects/${enc(state.project)}/book`;

/// Runs a binder action, then shows the book as it now is.
async function bookAction(label, f) {
  say(`${label}…`);
  try { await f(); say(''); } catch (e) { say(e.message); }
  await loadBinder({ documents: true });
}

function binderEntry(label, part, ...extra) {
  const li = el('li', { className: 'binder-item' });
  const open = el('button', { type: 'button', className: 'link', textContent: label, disabled: !part });
  if (part) open.onclick = () => openDocument(part.id).catch((e) => say(e.message));
  li.append(open, el('span', { className: 'meta', textContent: part ? ` ${part.words} words${part.locks && part.locks.whole ? ' · locked' : ''}` : ' not written' }));
  if (part && part.stale) li.append(el('span', { className: 'stale-mark', textContent: ' stale', title: part.stale }));
  li.append(...extra);
  return li;
}

function actButton(text, title, f) {
  const b = el('button', { type: 'button', className: 'act', textContent: text, title });
  b.onclick = f;
  return b;
}

/// A list stage's parts, each with a lock box: regenerating keeps the locked ones.
function partsList(stage, chapter, part) {
  const locked = new Set((part.locks.parts || []).map((i) => i + 1));
  const ol = el('ol', { className: 'parts' });
  part.parts.forEach((text, i) => {
    const box = el('input', { type: 'checkbox', checked: locked.has(i + 1), title: 'Lock: regenerating keeps it' });
    box.setAttribute('aria-label', `Lock ${stage} ${i + 1}`);
    box.onchange = () => bookAction('Saving locks', async () => {
      if (box.checked) locked.add(i + 1); else locked.delete(i + 1);
      await api(`${bookPath()}/${stage}/locks`, { method: 'PUT', body: { chapter, whole: part.locks.whole, parts: [...locked] } });
    });
    ol.append(el('li', { className: 'part' }, box, ' ', el('span', { className: 'part-text', textContent: text })));
  });
  return ol;
}

/// Shows the book as it is; `documents` also refreshes the document drop-down (after an
/// action that may add, rename or move one; a save does neither).
async function loadBinder({ documents = false } = {}) {
  if (!state.project) return;
  const b = await api(bookPath());
  const items = [];
  const generate = (stage, chapter) => actButton('Generate', `Generate the ${stage} from the stage above it (locked parts are kept)`, () => bookAction(`Writing the ${stage}`, async () => {
    await api(`${bookPath()}/${stage}/generate`, { method: 'POST', body: { chapter, seed: randomSeed() } });
  }));
  const write = (stage, chapter) => actButton('Write', `Start the ${stage} by hand`, () => bookAction(`Adding the ${stage}`, async () => {
    await api(`${bookPath()}/${stage}`, { method: 'PUT', body: { chapter, text: '' } });
  }));
  for (const s of b.stages) {
    const li = binderEntry(s.stage[0].toUpperCase() + s.stage.slice(1), s.document, s.stage === 'braindump' ? '' : generate(s.stage), s.document ? '' : write(s.stage));
    li.dataset.stage = s.stage;
    if (s.stage === 'outline' && s.document && s.document.items) li.append(partsList('outline', null, s.document));
    items.push(li);
  }
  b.chapters.forEach((c) => {
    const li = binderEntry(c.title, { id: c.id, words: c.words, stale: c.stale, locks: c.locks },
      el('span', { className: c.done ? 'done-mark' : 'meta', textContent: c.done ? ' done' : ' draft' }),
      actButton(c.done ? 'Reopen' : 'Done', c.done ? 'Mark it a draft again' : 'Mark it done: it is summarized for the chapters after it', () => bookAction(c.done ? 'Reopening' : 'Summarizing the chapter', async () => {
        await api(`/api/projects/${enc(state.project)}/chapters/${c.chapter}/done`, { method: 'POST', body: { done: !c.done, seed: randomSeed() } });
      })),
      c.beats && c.beats.items ? actButton('Draft', 'Draft the chapter from its beats, one beat at a time (about 250 words a beat)', () => {
        const replace = c.words > 0;
        if (replace && !window.confirm(`Draft over the ${c.words} words of "${c.title}"? They stay in its history.`)) return;
        bookAction('Drafting the chapter from its beats', async () => {
          // The writer's typing is saved first, the chapter cannot be typed in while it is
          // drafted, and it is read back after: an autosave of the old text never lands on
          // the draft.
          await flush();
          const shown = state.doc === c.id;
          if (shown) $('text').disabled = true;
          try {
            await api(`/api/projects/${enc(state.project)}/chapters/${c.chapter}/draft`, { method: 'POST', body: { replace, seed: randomSeed() } });
          } finally {
            if (shown) $('text').disabled = false;
          }
          await openDocument(c.id);
        });
      }) : '',
      actButton('↑', 'Move up', () => bookAction('Moving', async () => {
        const docs = (await api(`/api/projects/${enc(state.project)}`)).documents;
        const at = docs.findIndex((d) => d.id === c.id);
        await api(`/api/projects/${enc(state.project)}/documents/${c.id}/move`, { method: 'POST', body: { to: Math.max(1, at) } });
      })),
      actButton('Rename', 'Rename the chapter', () => {
        const title = window.prompt('New title', c.title);
        if (title) bookAction('Renaming', () => api(`/api/projects/${enc(state.project)}/documents/${c.id}/rename`, { method: 'POST', body: { title } }));
      }));
    li.dataset.chapter = String(c.chapter);
    const beats = binderEntry('Beats', c.beats, generate('beats', c.chapter));
    beats.className = 'sub beats';
    const summary = binderEntry('Summary', c.summary, c.done || c.summary ? '' : el('span', { className: 'meta', textContent: ' (made when the chapter is done)' }));
    summary.className = 'sub summary';
    li.append(el('ul', { className: 'binder' }, beats, summary));
    items.push(li);
    if (c.beats && c.beats.items) beats.append(partsList('beats', c.chapter, c.beats));
  });
  if (!b.chapters.length && b.outline_entries) {
    items.push(el('li', { className: 'help', textContent: `The outline has ${b.outline_entries} chapters: generate the first one's beats to start it.` }),
      el('li', {}, actButton('Beats for chapter 1', 'Generate chapter 1 and its beats from the outline', () => bookAction('Writing beats', () => api(`${bookPath()}/beats/generate`, { method: 'POST', body: { chapter: 1, seed: randomSeed() } })))));
  }
  $('binder').replaceChildren(...items);
  if (!documents) return;
  // Chapters are documents: keep the drop-down in step with the binder.
  const docs = (await api(`/api/projects/${enc(state.project)}`)).documents;
  const keep = $('document').value;
  $('document').replaceChildren(...docs.map((d) => el('option', { value: String(d.id), textContent: d.title })));
  if (docs.some((d) => String(d.id) === keep)) $('document').value = keep;
}

// ---- wiring ----

function wire() {
  const t = $('text');
  t.addEventListener('input', () => { if (state.findings.length) clearFindings(); scheduleSave(); });
  t.addEventListener('compositionstart', () => { state.composing = true; });
  t.addEventListener('compositionend', () => { state.composing = false; scheduleSave(); });
  t.addEventListener('scroll', () => { $('marks').scrollTop = t.scrollTop; });
  document.addEventListener('visibilitychange', () => { if (document.hidden) save({ keepalive: true }); });
  window.addEventListener('pagehide', () => save({ keepalive: true }));

  $('project').onchange = () => openProject($('project').value).catch((e) => say(e.message));
  $('document').onchange = () => openDocument(Number($('document').value)).catch((e) => say(e.message));
  $('create-project').onclick = async () => {
    const name = $('project-name').value.trim();
    if (!name) { say('Give the project a name.'); return; }
    try {
      await api('/api/projects', { method: 'POST', body: { name } });
      $('project-name').value = '';
      await loadProjects(name);
    } catch (e) { say(e.message); }
  };
  $('create-doc').onclick = async () => {
    if (!state.project) { say('Create a project first.'); return; }
    try {
      const v = await api(`/api/projects/${enc(state.project)}/documents`, { method: 'POST', body: { title: $('doc-title').value.trim() || 'Untitled' } });
      $('doc-title').value = '';
      await openProject(state.project, v.document.id);
      t.focus();
    } catch (e) { say(e.message); }
  };
  $('undo').onclick = () => step('undo');
  $('redo').onclick = () => step('redo');
  $('tool').onchange = showOptions;
  $('run').onclick = () => runTool();
  $('regenerate').onclick = () => runTool({ regenerate: true });
  $('stop').onclick = () => state.run && state.run.controller.abort();
  $('proofread').onclick = proofread;
  $('tree').addEventListener('keydown', treeKey);
  $('alt-before').onchange = renderAlternatives;
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') hideAlternatives(); });
  document.addEventListener('mousedown', (ev) => { if (state.popup && !ev.target.closest('#token-popup, .tok')) hideAlternatives(); });
  $('bible-form').onsubmit = async (ev) => {
    ev.preventDefault();
    if (!state.project) { say('Create a project first.'); return; }
    const keys = $('bible-keys').value.split(',').map((k) => k.trim()).filter(Boolean);
    try {
      await api(`/api/projects/${enc(state.project)}/bible`, { method: 'POST', body: { kind: $('bible-kind').value, name: $('bible-name').value, keys, body: $('bible-body').value } });
      $('bible-name').value = ''; $('bible-keys').value = ''; $('bible-body').value = '';
      await loadBible();
    } catch (e) { say(e.message); }
  };
  $('save-bans').onclick = async () => {
    try { await saveBans(); say(''); } catch (e) { say(e.message); }
  };
  $('bans-panel').addEventListener('toggle', () => { if ($('bans-panel').open) loadBuiltinBans().catch((e) => say(e.message)); });
  $('voice-panel').addEventListener('toggle', () => { if ($('voice-panel').open) { loadVoice(); loadLearning(); } });
  $('learning-start').onclick = async () => {
    if (!state.project) return;
    try { await api(`/api/projects/${enc(state.project)}/learning`, { method: 'POST' }); say(''); } catch (e) { say(e.message); }
    await loadLearning();
  };
  $('learning-forget').onclick = async () => {
    if (!state.project) return;
    try { await api(`/api/projects/${enc(state.project)}/learning`, { method: 'DELETE' }); say(''); } catch (e) { say(e.message); }
    await loadLearning();
  };
  $('voice-rank').checked = localStorage.getItem('inkling-voice-rank') !== 'off';
  $('voice-rank').onchange = () => localStorage.setItem('inkling-voice-rank', $('voice-rank').checked ? 'on' : 'off');
  $('voice-build').onclick = async () => {
    if (!state.project) { say('Create a project first.'); return; }
    await flush();
    try {
      const v = await api(`/api/projects/${enc(state.project)}/voice`, { method: 'POST' });
      $('voice-description').replaceChildren(...v.description.map((line) => el('li', { textContent: line })));
      say('');
    } catch (e) { say(e.message); }
  };
  $('voice-clear').onclick = async () => {
    if (!state.project) return;
    try { await api(`/api/projects/${enc(state.project)}/voice`, { method: 'DELETE' }); await loadVoice(); } catch (e) { say(e.message); }
  };
  $('save-context').onclick = async () => {
    if (!state.project) return;
    try {
      await api(`/api/projects/${enc(state.project)}/context`, { method: 'PUT', body: { memory: $('memory').value, authors_note: $('note').value } });
      say('');
    } catch (e) { say(e.message); }
  };
}

wire();
Promise.all([loadTools(), loadProjects()]).catch((e) => say(e.message));
