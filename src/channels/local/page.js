import { marked } from '/vendor/marked.js';
import DOMPurify from '/vendor/purify.js';

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
/** `props`: a class name or properties. Children: nodes or text, never HTML. */
function el(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props.at ? { className: props } : props);
  node.append(...children);
  return node;
}
const button = (textContent, onclick, className = '') =>
  el('button', { type: 'button', textContent, onclick, className });
const twoStep = (label, ask, go) =>
  button(label, ({ target: b }) => (b.textContent === ask ? go() : (b.textContent = ask)), 'danger');
const show = (id, text) => Object.assign($(id), { textContent: text, hidden: !text });
const oops = (err, what = 'Error') => show('error', `${what}: ${err.message}`);
const time = (iso) => new Date(iso).toLocaleString();
const chatPath = () => '/api/chats/' + enc(current);
async function api(path, init) {
  const res = await fetch(path, init);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}
const post = (path, body = {}) =>
  api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

const list = $('messages');
const input = $('text');
let chats = [];
let current, control, assistant;
let view = 'chat';
const typing = new Set();
const typingSent = {};

// Raw HTML is shown as text; WhatsApp's *bold* wins over Markdown's *italic*.
marked.use({
  breaks: true,
  renderer: {
    html: ({ text }) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`),
    em({ raw, tokens }) {
      const tag = raw[0] === '*' ? 'strong' : 'em';
      return `<${tag}>${this.parser.parseInline(tokens)}</${tag}>`;
    },
  },
});

function markdown(text) {
  const html = DOMPurify.sanitize(marked.parse(text).trim(), {
    RETURN_DOM_FRAGMENT: true,
    ALLOWED_URI_REGEXP: /^(https?|mailto):/i,
    FORBID_TAGS: ['img', 'input'],
  });
  for (const a of html.querySelectorAll('a'))
    Object.assign(a, { target: '_blank', rel: 'noopener noreferrer' });
  for (const pre of html.querySelectorAll('pre')) {
    const copy = ({ target }) =>
      window.navigator.clipboard
        .writeText(pre.firstChild.textContent)
        .then(() => (target.textContent = 'Copied'));
    pre.append(button('Copy', copy, 'copy'));
  }
  return html;
}

const FILE =
  /^\[(?:file: ([\w-]+)\/|(?:image|document): \/workspace\/inbox\/media\/)(\w[\w.-]*)(?: \(.*\))?\]$/;
function attachment(line) {
  const [, folder, name] = FILE.exec(line) ?? [];
  if (!name) return;
  const src = folder ? `/api/files/${folder}/${name}` : `/api/media/${enc(current)}/${name}`;
  if (/\.(png|jpe?g|gif|webp)$/i.test(name)) return el('img', { className: 'attachment', src, alt: name });
  return el('a', { className: 'attachment-file', href: src, download: name }, `↓ ${name}`);
}

function renderChatList() {
  const jids = chats.map((c) => c.jid);
  if (current && !jids.includes(current)) jids.push(current);
  $('chat-list').replaceChildren(
    ...jids.map((jid) => {
      const b = button(jid.slice(6), () => openChat(jid));
      b.ariaCurrent = jid === current;
      b.dataset.jid = jid;
      return b;
    }),
  );
}

/** The log is never rebuilt, so a screen reader hears only what is new. */
function put(m) {
  const lines = m.text.split('\n');
  const files = lines.map(attachment);
  const text = lines.filter((_, i) => !files[i]).join('\n');
  const who = m.fromAssistant ? 'assistant' : m.sender === 'local-user' ? 'me' : '';
  const li = el(
    'li',
    { className: who, id: `m-${m.id}`, ts: m.timestamp },
    el('span', 'meta', `${m.senderName || assistant} · ${time(m.timestamp)}`),
    el('div', 'body', m.fromAssistant ? markdown(text) : text.trim(), ...files.filter(Boolean)),
  );
  list.insertBefore(li, [...list.children].find((n) => n.ts > m.timestamp) ?? null);
}

/** A bulk load marks the log busy so it is not read out. */
async function load(query, bulk) {
  const chat = current;
  list.ariaBusy = bulk;
  try {
    const { messages } = await api(`${chatPath()}/messages?limit=100${query}`);
    if (chat !== current) return;
    const fromBottom = list.scrollHeight - list.scrollTop;
    const atBottom = fromBottom - list.clientHeight < 80;
    const fresh = messages.filter((m) => !$(`m-${m.id}`));
    fresh.forEach(put);
    if (bulk) $('earlier').hidden = messages.length < 100 || (query && !fresh.length);
    if (atBottom || bulk) list.scrollTop = atBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
  } finally {
    list.ariaBusy = false;
  }
}

// From a message's time, with 1 ms of overlap; ids dedupe.
const around = (li, ms) => enc(new Date(Date.parse(li.ts) + ms).toISOString());
function refresh() {
  const last = list.lastElementChild;
  return load(last ? `&after=${around(last, -1)}` : '', !last).catch(() => {});
}

async function loadChats() {
  api('/api/status').then(({ running = [], usageToday = [] }) => {
    const n = (x) => x.toLocaleString('en');
    const usage = usageToday.map(
      (u) =>
        `${u.groupFolder}: ${n(u.inputTokens)} tokens in, ${n(u.outputTokens)} out, ${u.requests} requests today`,
    );
    $('usage').replaceChildren(
      ...[`Running: ${running.join(', ') || 'none'}`, ...usage].map((t) => el('li', '', t)),
    );
  }, oops);
  ({ chats, control, assistantName: assistant } = await api('/api/chats'));
  $('tasks-tab').hidden = $('wa-open').hidden = !control;
  renderChatList();
}

function renderTyping() {
  const on = typing.has(current);
  show('typing', on ? `${assistant} is working…` : '');
  $('stop').hidden = !on || !control;
}

function setView(next) {
  view = next;
  for (const v of ['chat', 'tasks', 'wa']) $(`${v}-view`).hidden = v !== next;
  $('tasks-tab').ariaPressed = next === 'tasks';
  if (next === 'tasks') loadTasks();
  if (next === 'wa') api('/api/whatsapp').then(renderWhatsApp, oops);
  toggleDrawer(false);
}

const toggleDrawer = (open) => ($('menu').ariaExpanded = $('drawer').classList.toggle('open', open));

function openChat(jid) {
  current = jid;
  list.replaceChildren();
  $('chat-title').textContent = jid;
  $('earlier').hidden = true;
  $('notice').hidden = chats.some((c) => c.jid === jid && c.registered);
  show('error', '');
  setView(view === 'wa' ? 'chat' : view);
  renderTyping();
  renderChatList();
  load('', true).catch(oops);
}

function sent() {
  show('error', '');
  input.value = '';
  refresh();
}

async function send(e) {
  e.preventDefault();
  if (!input.value.trim() || $('send').disabled) return;
  $('send').disabled = true;
  await post(`${chatPath()}/messages`, { text: input.value }).then(sent, (e) => oops(e, 'Message not sent'));
  $('send').disabled = false;
}

function loadTasks() {
  const jid = current;
  api(`${chatPath()}/tasks`).then(({ tasks }) => {
    if (jid === current)
      $('task-list').replaceChildren(...(tasks.length ? tasks.map(task) : ['No scheduled tasks.']));
  }, oops);
}

function task(t) {
  const act = (action) => post(`${chatPath()}/tasks/${enc(t.id)}`, { action }).then(loadTasks, oops);
  const v = t.scheduleValue;
  const schedule = { interval: `every ${+(v / 6e4).toFixed(1)} min`, once: `once, ${time(v)}` }[
    t.scheduleType
  ];
  const toggle = { active: 'Pause', paused: 'Resume' }[t.status];
  const runs = t.runs.map((r) =>
    el('li', '', `${time(r.runAt)} · ${r.durationMs / 1000} s · ${r.status}`, el('div', '', r.result ?? '')),
  );
  return el(
    'article',
    { className: 'task', id: `task-${t.id}` },
    el(
      'div',
      '',
      el('span', 'tag', t.status),
      el('span', 'schedule', schedule ?? `cron ${v}`),
      toggle ? button(toggle, () => act(toggle.toLowerCase())) : '',
      t.status === 'completed' ? '' : twoStep('Cancel', 'Really cancel?', () => act('cancel')),
    ),
    el('p', 'prompt', t.prompt),
    el('p', '', `Next run: ${t.nextRun ? time(t.nextRun) : '—'} · Last result: ${t.lastResult ?? '—'}`),
    el('h3', '', runs.length ? 'Runs' : 'No runs yet'),
    el('ol', 'runs', ...runs),
  );
}

function renderWhatsApp({ status, selfJid, error, qrSvg, pairingCode, groups }) {
  const said = status === 'unlinked' ? 'not linked' : status;
  const linked = status === 'linked';
  $('wa-open').textContent = `WhatsApp: ${said}`;
  $('wa-status').textContent =
    linked && selfJid ? `Linked as +${selfJid.split(/[:@]/)[0]}` : `Status: ${said}`;
  show('wa-error', error ?? '');
  const active = ($('wa-link').hidden = status !== 'unlinked' && status !== 'logged-out');
  const unlink = () => post('/api/whatsapp/unlink').then(renderWhatsApp, oops);
  $('wa-code').replaceChildren(
    // An <img> runs no script; the CSP allows data: images.
    qrSvg ? el('img', { className: 'qr', src: 'data:image/svg+xml,' + enc(qrSvg), alt: 'QR code' }) : '',
    pairingCode ? el('p', 'pairing', pairingCode) : '',
    active ? twoStep('Unlink', 'Really unlink?', unlink) : '',
  );
  const register = (g) => post(`/api/whatsapp/groups/${enc(g.jid)}/register`).then(() => setView('wa'), oops);
  $('wa-groups').replaceChildren(
    ...(linked ? groups : []).map((g) =>
      el(
        'li',
        '',
        `${g.name} `,
        g.registered ? el('span', 'tag', 'registered') : button('Register', () => register(g)),
      ),
    ),
  );
}

const events = new EventSource('/api/events');
const conn = (state) => Object.assign($('conn'), { textContent: state, className: state });
events.onopen = () => (conn('live'), current && refresh());
events.onerror = () => conn('reconnecting…');
events.onmessage = ({ data }) => {
  loadChats().catch(() => {});
  if (JSON.parse(data).chat === current) refresh();
};
events.addEventListener('typing', ({ data }) => {
  const { chat, isTyping } = JSON.parse(data);
  typing[isTyping ? 'add' : 'delete'](chat);
  renderTyping();
});
events.addEventListener('whatsapp', ({ data }) => renderWhatsApp(JSON.parse(data)));

$('composer').onsubmit = send;
// (Returning false would cancel the key.)
input.onkeydown = (e) => void (e.key === 'Enter' && !e.shiftKey && !e.isComposing && send(e));
input.oninput = () => {
  const now = Date.now();
  if (!control || !input.value.trim() || now - typingSent[current] < 3000) return;
  typingSent[current] = now;
  post(`${chatPath()}/typing`).catch(() => {});
};
$('stop').onclick = () => post(`${chatPath()}/stop`).catch(oops);
$('attach').onclick = () => $('file').click();
$('file').onchange = ({ target }) => {
  const [body] = target.files;
  const headers = { 'X-File-Name': enc(body.name), 'X-Caption': enc(input.value) };
  api(`${chatPath()}/files`, { method: 'POST', headers, body }).then(sent, (e) => oops(e, 'File not sent'));
  target.value = '';
};
$('wa-link').onsubmit = (e) => {
  e.preventDefault();
  post('/api/whatsapp/link', { phone: $('wa-phone').value.trim() || undefined }).then(renderWhatsApp, oops);
};
$('tasks-tab').onclick = () => setView(view === 'tasks' ? 'chat' : 'tasks');
$('wa-open').onclick = () => setView('wa');
$('wa-close').onclick = () => setView('chat');
$('earlier').onclick = () => load(`&before=${around(list.firstElementChild, 1)}`, true).catch(oops);
$('menu').onclick = () => toggleDrawer();
$('new-chat').onsubmit = (e) => {
  e.preventDefault();
  openChat(`local:${$('new-chat-name').value}`);
  e.target.reset();
};

loadChats()
  .catch(oops)
  .finally(() => openChat((chats.find((c) => c.isMain) ?? chats[0])?.jid ?? 'local:main'));
