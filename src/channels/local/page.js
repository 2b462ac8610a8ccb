import { marked } from '/vendor/marked.js';
import DOMPurify from '/vendor/purify.js';
import { $, api, button, chatPath, el, formatTime, post, showIn } from '/dom.js';
import { loadTasks, loadWhatsApp, renderWhatsApp } from '/panels.js';

const CHAT_ID = /^local:[\w-]{1,64}$/;
const PAGE = 100;
const list = $('messages');
const input = $('text');
let assistant = 'Assistant';
let chats = [];
let current, registered, control;
let view = 'chat';
let shown = new Set(); // message ids in the current chat
let newest, oldest; // the server's timestamps, for paging
const typing = new Set();
const typingSent = new Map(); // chat -> when the last typing signal went out

// Raw HTML in a reply is shown as text; WhatsApp's *bold* wins over Markdown's *italic*.
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
const IMAGE = /\.(png|jpe?g|gif|webp)$/i;
const SENT = /^\[file: ([\w-]+)\/(\w[\w.-]*)\]$/;
const UPLOADED = /^\[(?:image|document): \/workspace\/inbox\/media\/(\w[\w.-]*)(?: \(.*\))?\]$/;

function attachment(line) {
  const sent = SENT.exec(line);
  const name = sent?.[2] ?? UPLOADED.exec(line)?.[1];
  if (!name) return;
  const href = sent ? `/api/files/${sent[1]}/${name}` : `/api/media/${encodeURIComponent(current)}/${name}`;
  if (!IMAGE.test(name))
    return Object.assign(el('a', 'attachment-file', `↓ ${name.replace(/^\d+-[0-9a-f]{8}-/, '')}`), {
      href,
      download: name,
    });
  const img = Object.assign(el('img', 'attachment'), { src: href, alt: name });
  return Object.assign(el('a', '', img), { href, target: '_blank' });
}

const showError = (text) => showIn($('error'), text);
const fail = (what, err) =>
  showError(
    err.status === 401
      ? 'Not signed in: reopen the link that `nanoclaw open` prints.'
      : `${what}: ${err.message}`,
  );

function renderChatList() {
  const all =
    current && !chats.some((c) => c.jid === current) ? [...chats, { jid: current, registered }] : chats;
  $('chat-list').replaceChildren(
    ...all.map((c) => {
      const b = button(el('span', 'name', c.jid.slice(6)), () => openChat(c.jid));
      b.dataset.jid = c.jid;
      b.title = c.registered ? c.jid : `${c.jid} (not registered)`;
      b.setAttribute('aria-current', c.jid === current);
      if (typing.has(c.jid)) b.append(el('span', 'dot'));
      if (c.isMain || !c.registered) b.append(el('span', 'tag', c.isMain ? 'main' : 'off'));
      return b;
    }),
  );
}

/** Inserted in time order; the log is never rebuilt, so a screen reader hears only what is new. */
function put(m) {
  shown.add(m.id);
  const lines = m.text.split('\n');
  const files = lines.map(attachment);
  const text = lines
    .filter((_, i) => !files[i])
    .join('\n')
    .trim();
  const li = el(
    'li',
    m.fromAssistant ? 'assistant' : m.sender === 'local-user' ? 'me' : 'other',
    el(
      'span',
      'meta',
      `${m.fromAssistant ? m.senderName || assistant : m.senderName} · ${formatTime(m.timestamp)}`,
    ),
    el('div', 'body', m.fromAssistant ? markdown(text) : text, ...files.filter(Boolean)),
  );
  li.dataset.ts = m.timestamp;
  list.insertBefore(li, [...list.children].find((n) => n.dataset.ts > m.timestamp) ?? null);
}

/** One page of history; a bulk load marks the log busy so it is not read out. */
async function load(query, bulk) {
  const chat = current;
  list.setAttribute('aria-busy', bulk);
  try {
    const { messages } = await api(`${chatPath(chat)}/messages?limit=${PAGE}${query}`);
    if (chat !== current) return;
    const fromBottom = list.scrollHeight - list.scrollTop;
    const atBottom = fromBottom - list.clientHeight < 80;
    const fresh = messages.filter((m) => !shown.has(m.id));
    fresh.forEach(put);
    for (const { timestamp: t } of messages) {
      if (!(t <= newest)) newest = t;
      if (!(t >= oldest)) oldest = t;
    }
    // A page back that brings nothing new is the end (a store that cannot page back, too).
    if (bulk) $('earlier').hidden = messages.length < PAGE || (query && !fresh.length);
    // Earlier messages go in above: what was on screen stays there.
    if (atBottom || bulk) list.scrollTop = atBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
  } finally {
    list.setAttribute('aria-busy', false);
  }
}

// 1 ms of overlap at either end; ids dedupe.
const around = (ts, ms) => encodeURIComponent(new Date(Date.parse(ts) + ms).toISOString());
const refresh = () => load(newest ? `&after=${around(newest, -1)}` : '', !newest).catch(() => {});

async function loadUsage() {
  const { usageToday = [] } = await api('/api/status');
  $('usage').replaceChildren(
    ...usageToday.map((u) =>
      el(
        'li',
        '',
        `${u.groupFolder}: ${u.inputTokens.toLocaleString('en')} tokens in, ${u.outputTokens.toLocaleString('en')} out, ${u.requests} requests today`,
      ),
    ),
  );
}

async function loadChats() {
  loadUsage().catch(() => {});
  const body = await api('/api/chats');
  ({ chats, control } = body);
  assistant = body.assistantName || assistant;
  $('tasks-tab').hidden = $('wa-open').hidden = !control;
  input.placeholder = `Message ${assistant}`;
  list.dataset.empty = `No messages yet. Say hello to ${assistant}.`;
  renderChatList();
}

function renderTyping() {
  const on = typing.has(current);
  $('typing').replaceChildren(...(on ? [el('span', 'spinner'), `${assistant} is working…`] : []));
  $('typing').hidden = !on;
  $('stop').hidden = !on || !control;
  $('stop').disabled = false;
}

function setView(next) {
  view = next;
  for (const v of ['chat', 'tasks', 'wa']) $(`${v}-view`).hidden = v !== next;
  $('tasks-tab').setAttribute('aria-pressed', next === 'tasks');
  if (next === 'tasks') loadTasks(current);
  if (next === 'wa') {
    toggleDrawer(false);
    loadWhatsApp();
  }
}

async function stop() {
  $('stop').disabled = true;
  try {
    // Once stopped, the button goes with the typing signal.
    if ((await post(chatPath(current) + '/stop')).stopped) return;
    showError(`Nothing to stop: ${assistant} is not running in this chat.`);
  } catch (err) {
    fail('Could not stop', err);
  }
  $('stop').disabled = false;
}

function signalTyping() {
  const now = Date.now();
  // At most one signal per 3 s per chat.
  if (!control || !input.value.trim() || now - (typingSent.get(current) ?? 0) < 3000) return;
  typingSent.set(current, now);
  post(chatPath(current) + '/typing').catch(() => {});
}

function renderNotice() {
  const name = current.slice(6);
  $('notice').hidden = registered !== false;
  $('register').textContent = `nanoclaw groups register --jid ${current} --name ${name} --folder ${name}`;
}

function toggleDrawer(open) {
  $('drawer').classList.toggle('open', open);
  $('menu').setAttribute('aria-expanded', open);
}

async function openChat(jid) {
  current = jid;
  registered = newest = oldest = undefined;
  shown = new Set();
  list.replaceChildren();
  history.replaceState(null, '', '#' + jid);
  document.title = `${jid.slice(6)} · NanoClaw`;
  $('chat-title').textContent = jid;
  $('earlier').hidden = true;
  toggleDrawer(false);
  showError('');
  if (view === 'wa') setView('chat');
  if (view === 'tasks') loadTasks(jid);
  renderTyping();
  renderNotice();
  renderChatList();
  try {
    const info = await api(chatPath(jid));
    if (jid !== current) return;
    registered = info.registered;
    renderNotice();
    renderChatList();
    await load('', true);
  } catch (err) {
    fail('Could not load this chat', err);
  }
  input.focus();
}

function sent() {
  showError('');
  input.value = '';
  refresh().then(() => (list.scrollTop = list.scrollHeight));
  if (!chats.some((c) => c.jid === current)) loadChats().catch(() => {});
}

async function send() {
  const text = input.value;
  if (!text.trim() || $('send').disabled) return;
  $('send').disabled = true;
  await post(chatPath(current) + '/messages', { text }).then(sent, (err) => fail('Message not sent', err));
  $('send').disabled = false;
  input.focus();
}

async function upload(files) {
  for (const file of files) {
    const headers = {
      'Content-Type': file.type || 'application/octet-stream',
      'X-File-Name': encodeURIComponent(file.name),
      'X-Caption': encodeURIComponent(input.value),
    };
    const init = { method: 'POST', headers, body: file };
    await api(`${chatPath(current)}/files`, init).then(sent, (err) => fail('File not sent', err));
  }
}

const events = new EventSource('/api/events');
events.onopen = () => {
  Object.assign($('conn'), { textContent: 'live', className: 'live' });
  if (current) refresh(); // catch up on what was missed
};
events.onerror = () => Object.assign($('conn'), { textContent: 'reconnecting…', className: '' });
events.onmessage = ({ data }) => {
  const { chat } = JSON.parse(data);
  if (!chats.some((c) => c.jid === chat)) loadChats().catch(() => {});
  loadUsage().catch(() => {});
  if (chat !== current) return;
  refresh();
  if (view === 'tasks') loadTasks(chat);
};
events.addEventListener('typing', ({ data }) => {
  const { chat, isTyping } = JSON.parse(data);
  typing[isTyping ? 'add' : 'delete'](chat);
  renderTyping();
  renderChatList();
});
events.addEventListener('whatsapp', ({ data }) => renderWhatsApp(JSON.parse(data)));

$('composer').onsubmit = (e) => {
  e.preventDefault();
  send();
};
input.onkeydown = (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
};
input.oninput = signalTyping;
$('stop').onclick = stop;
$('attach').onclick = () => $('file').click();
$('file').onchange = () => upload([...$('file').files]).finally(() => ($('file').value = ''));
$('tasks-tab').onclick = () => setView(view === 'tasks' ? 'chat' : 'tasks');
$('wa-open').onclick = () => setView('wa');
$('wa-close').onclick = () => setView('chat');
$('earlier').onclick = () =>
  load(`&before=${around(oldest, 1)}`, true).catch((err) => fail('Could not load', err));
$('menu').onclick = () => toggleDrawer(!$('drawer').classList.contains('open'));
document.onkeydown = (e) => {
  if (e.key === 'Escape') toggleDrawer(false);
};
$('new-chat').onsubmit = (e) => {
  e.preventDefault();
  const name = $('new-chat-name').value.trim();
  const jid = name.startsWith('local:') ? name : `local:${name}`;
  if (!CHAT_ID.test(jid)) return showError('A chat name is 1-64 letters, digits, _ or -.');
  $('new-chat-name').value = '';
  openChat(jid);
};

loadChats()
  .catch((err) => fail('Could not load chats', err))
  .finally(() => {
    const hash = location.hash.slice(1);
    openChat(CHAT_ID.test(hash) ? hash : ((chats.find((c) => c.isMain) ?? chats[0])?.jid ?? 'local:main'));
  });
