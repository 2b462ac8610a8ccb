import { marked } from '/vendor/marked.js';
import DOMPurify from '/vendor/purify.js';

const $ = (id) => document.getElementById(id);
/** `props`: a class name or properties. Children are nodes or text, never HTML. */
function el(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props.at ? { className: props } : props);
  node.append(...children);
  return node;
}
const button = (text, onclick, className = '') => el('button', { type: 'button', onclick, className }, text);
const show = (id, text) => Object.assign($(id), { textContent: text, hidden: !text });
const fail = (what) => (err) => show('error', `${what}: ${err.message}`);
const time = (iso) => new Date(iso).toLocaleString();
const chatPath = (jid = current) => '/api/chats/' + encodeURIComponent(jid);
async function api(path, init) {
  const res = await fetch(path, init);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}
const json = { 'Content-Type': 'application/json' };
const post = (path, body = {}) => api(path, { method: 'POST', headers: json, body: JSON.stringify(body) });

const list = $('messages');
const input = $('text');
let assistant = 'Assistant';
let chats = [];
let current, control;
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
    const code = pre.textContent;
    const copy = () => window.navigator.clipboard.writeText(code).then(() => (b.textContent = 'Copied'));
    const b = pre.appendChild(button('Copy', copy, 'copy'));
  }
  return html;
}

// A line naming a file becomes an image or a download link.
const FILE =
  /^\[(?:file: ([\w-]+)\/|(?:image|document): \/workspace\/inbox\/media\/)(\w[\w.-]*)(?: \(.*\))?\]$/;
function attachment(line) {
  const [, folder, name] = FILE.exec(line) ?? [];
  if (!name) return;
  const src = folder ? `/api/files/${folder}/${name}` : `/api/media/${encodeURIComponent(current)}/${name}`;
  if (/\.(png|jpe?g|gif|webp)$/i.test(name)) return el('img', { className: 'attachment', src, alt: name });
  return el('a', { className: 'attachment-file', href: src, download: name }, `↓ ${name}`);
}

function renderChatList() {
  const all = !current || chats.some((c) => c.jid === current) ? chats : [...chats, { jid: current }];
  $('chat-list').replaceChildren(
    ...all.map(({ jid }) => {
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
  const className = m.fromAssistant ? 'assistant' : m.sender === 'local-user' ? 'me' : 'other';
  const li = el(
    'li',
    { className, id: `m-${m.id}` },
    el('span', 'meta', `${m.senderName || assistant} · ${time(m.timestamp)}`),
    el('div', 'body', m.fromAssistant ? markdown(text) : text.trim(), ...files.filter(Boolean)),
  );
  li.dataset.ts = m.timestamp;
  list.insertBefore(li, [...list.children].find((n) => n.dataset.ts > m.timestamp) ?? null);
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
    // A page back that brings nothing new is the end.
    if (bulk) $('earlier').hidden = messages.length < 100 || (query && !fresh.length);
    if (atBottom || bulk) list.scrollTop = atBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
  } finally {
    list.ariaBusy = false;
  }
}

// From a message's time, with 1 ms of overlap; ids dedupe.
const around = (li, ms) => encodeURIComponent(new Date(Date.parse(li.dataset.ts) + ms).toISOString());
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
  }, fail('Could not load status'));
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
  if (next === 'wa') api('/api/whatsapp').then(renderWhatsApp, fail('Could not load WhatsApp'));
  toggleDrawer(false);
}

const toggleDrawer = (open) => ($('menu').ariaExpanded = $('drawer').classList.toggle('open', open));

async function openChat(jid) {
  const name = jid.slice(6);
  current = jid;
  list.replaceChildren();
  $('chat-title').textContent = jid;
  $('register').textContent = `nanoclaw groups register --jid ${jid} --name ${name} --folder ${name}`;
  $('earlier').hidden = $('notice').hidden = true;
  show('error', '');
  setView(view === 'wa' ? 'chat' : view);
  renderTyping();
  renderChatList();
  try {
    const info = await api(chatPath(jid));
    if (jid !== current) return;
    $('notice').hidden = info.registered;
    await load('', true);
  } catch (err) {
    fail('Could not load this chat')(err);
  }
  input.focus();
}

function sent() {
  show('error', '');
  input.value = '';
  refresh().then(() => (list.scrollTop = list.scrollHeight));
}

async function send(e) {
  e.preventDefault();
  if (!input.value.trim() || $('send').disabled) return;
  $('send').disabled = true;
  await post(`${chatPath()}/messages`, { text: input.value }).then(sent, fail('Message not sent'));
  $('send').disabled = false;
}

const schedule = ({ scheduleType: type, scheduleValue: v }) =>
  ({ interval: `every ${+(v / 6e4).toFixed(1)} min`, once: `once, ${time(v)}` })[type] ?? `cron ${v}`;

function twoStep(label, confirm, action) {
  const b = button(label, () => (b.textContent === confirm ? action() : (b.textContent = confirm)), 'danger');
  return b;
}

function loadTasks() {
  const jid = current;
  api(`${chatPath(jid)}/tasks`).then(({ tasks }) => {
    if (jid === current)
      $('task-list').replaceChildren(...(tasks.length ? tasks.map(task) : ['No scheduled tasks.']));
  }, fail('Could not load tasks'));
}

function task(t) {
  const act = (action) =>
    post(`${chatPath()}/tasks/${encodeURIComponent(t.id)}`, { action }).then(
      loadTasks,
      fail(`Could not ${action}`),
    );
  const head = el('div', '', el('span', 'tag', t.status), el('span', 'schedule', schedule(t)));
  if (t.status === 'active') head.append(button('Pause', () => act('pause')));
  if (t.status === 'paused') head.append(button('Resume', () => act('resume')));
  if (t.status !== 'completed') head.append(twoStep('Cancel', 'Really cancel?', () => act('cancel')));
  const runs = t.runs.map((r) =>
    el('li', '', `${time(r.runAt)} · ${r.durationMs / 1000} s · ${r.status}`, el('div', '', r.result ?? '')),
  );
  const facts = { 'Next run': t.nextRun && time(t.nextRun), 'Last result': t.lastResult };
  const card = el(
    'article',
    'task',
    head,
    el('p', 'prompt', t.prompt),
    el('dl', '', ...Object.entries(facts).flatMap(([k, v]) => [el('dt', '', k), el('dd', '', v ?? '—')])),
    el('h3', '', runs.length ? 'Runs' : 'No runs yet'),
    el('ol', 'runs', ...runs),
  );
  card.dataset.id = t.id;
  return card;
}

const STEPS = 'On your phone: WhatsApp → Settings → Linked devices → Link a device.';
const register = (g) =>
  post(`/api/whatsapp/groups/${encodeURIComponent(g.jid)}/register`).then(
    (r) => (show('wa-note', `Registered “${g.name}” (folder ${r.folder}).`), setView('wa')),
    fail(`Could not register ${g.name}`),
  );

function renderWhatsApp({ status, selfJid, error, qrSvg, pairingCode, groups }) {
  const said = status === 'unlinked' ? 'not linked' : status;
  const number = selfJid?.split(/[:@]/)[0];
  const linking = status === 'linking';
  $('wa-open').textContent = `WhatsApp: ${said}`;
  $('wa-status').textContent = status === 'linked' && number ? `Linked as +${number}` : `Status: ${said}`;
  show('wa-error', error ?? '');
  // An <img> runs no script; the CSP allows data: images.
  const src = 'data:image/svg+xml,' + encodeURIComponent(qrSvg);
  const code = qrSvg
    ? el('img', { className: 'qr', src, alt: 'WhatsApp QR code' })
    : el('p', 'pairing', pairingCode ?? '');
  $('wa-code').replaceChildren(...(linking && (qrSvg || pairingCode) ? [code, STEPS] : []));
  $('wa-link').hidden = status !== 'unlinked' && status !== 'logged-out';
  const unlink = { hidden: !$('wa-link').hidden, textContent: linking ? 'Cancel linking' : 'Unlink' };
  Object.assign($('wa-unlink'), unlink);
  $('wa-groups').hidden = status !== 'linked';
  $('wa-groups').replaceChildren(
    ...groups.map((g) =>
      el(
        'li',
        '',
        `${g.name} `,
        g.registered ? el('span', 'tag', 'registered') : button('Register', () => register(g)),
      ),
    ),
  );
}

$('wa-unlink').onclick = ({ target: b }) => {
  if (b.textContent === 'Unlink') return (b.textContent = 'Really unlink? (logs out)');
  post('/api/whatsapp/unlink').then(renderWhatsApp, fail('Could not unlink'));
};
$('wa-link').onsubmit = (e) => {
  e.preventDefault();
  const phone = $('wa-phone').value.trim() || undefined;
  post('/api/whatsapp/link', { phone }).then(renderWhatsApp, fail('Could not start linking'));
};

const events = new EventSource('/api/events');
const conn = (state) => Object.assign($('conn'), { textContent: state, className: state });
events.onopen = () => {
  conn('live');
  if (current) refresh();
};
events.onerror = () => conn('reconnecting…');
events.onmessage = ({ data }) => {
  const { chat } = JSON.parse(data);
  loadChats().catch(() => {});
  if (chat !== current) return;
  refresh();
  if (view === 'tasks') loadTasks();
};
events.addEventListener('typing', ({ data }) => {
  const { chat, isTyping } = JSON.parse(data);
  typing[isTyping ? 'add' : 'delete'](chat);
  renderTyping();
});
events.addEventListener('whatsapp', ({ data }) => renderWhatsApp(JSON.parse(data)));

$('composer').onsubmit = send;
input.onkeydown = (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) send(e);
};
input.oninput = () => {
  const now = Date.now();
  if (!control || !input.value.trim() || now - (typingSent[current] ?? 0) < 3000) return;
  typingSent[current] = now;
  post(`${chatPath()}/typing`).catch(() => {});
};
$('stop').onclick = () => post(`${chatPath()}/stop`).catch(fail('Could not stop'));
$('attach').onclick = () => $('file').click();
$('file').onchange = ({ target }) => {
  const [body] = target.files;
  const headers = {
    'X-File-Name': encodeURIComponent(body.name),
    'X-Caption': encodeURIComponent(input.value),
  };
  api(`${chatPath()}/files`, { method: 'POST', headers, body }).then(sent, fail('File not sent'));
  target.value = '';
};
$('tasks-tab').onclick = () => setView(view === 'tasks' ? 'chat' : 'tasks');
$('wa-open').onclick = () => setView('wa');
$('wa-close').onclick = () => setView('chat');
$('earlier').onclick = () =>
  load(`&before=${around(list.firstElementChild, 1)}`, true).catch(fail('Could not load'));
$('menu').onclick = () => toggleDrawer();
$('new-chat').onsubmit = (e) => {
  e.preventDefault();
  openChat(`local:${$('new-chat-name').value}`);
  e.target.reset();
};

loadChats()
  .catch(fail('Could not load chats'))
  .finally(() => openChat((chats.find((c) => c.isMain) ?? chats[0])?.jid ?? 'local:main'));
