import { marked } from '/vendor/marked.js';
import DOMPurify from '/vendor/purify.js';
import { $, api, chatPath, el, formatTime, post } from '/dom.js';
import { attachments, setupAttach } from '/attach.js';
import { loadTasks, loadWhatsApp, renderWhatsApp } from '/panels.js';

const CHAT_ID = /^local:[A-Za-z0-9_-]{1,64}$/;
const PAGE = 100;
const list = $('messages');
const input = $('text');
const state = { assistant: 'Assistant', chats: [], current: null, registered: null, typing: new Set() };
const unread = new Set();
let shown = new Map(); // id -> <li>, for the current chat
let newest, oldest; // the server's timestamps, for paging
let view = 'chat';
const typingSent = new Map(); // chat -> when the last typing signal went out

// Raw HTML in a reply is shown as text; WhatsApp's *bold* wins over Markdown's *italic*.
const escape = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
marked.use({
  breaks: true,
  renderer: {
    html: ({ text }) => escape(text),
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
    const copy = pre.appendChild(el('button', 'copy', 'Copy'));
    copy.type = 'button';
    copy.onclick = () => window.navigator.clipboard.writeText(code).then(() => (copy.textContent = 'Copied'));
  }
  return html;
}

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

function reportFailure(what, err) {
  showError(
    err.status === 401
      ? 'Not signed in: reopen the link that `nanoclaw open` prints.'
      : `${what}: ${err.message}`,
  );
}

function renderChatList() {
  const chats = [...state.chats];
  if (state.current && !chats.some((c) => c.jid === state.current))
    chats.push({ jid: state.current, registered: state.registered });
  $('chat-list').replaceChildren(
    ...chats.map((chat) => {
      const button = el('button');
      button.type = 'button';
      button.dataset.jid = chat.jid;
      button.title = chat.registered ? chat.jid : `${chat.jid} (not registered)`;
      button.setAttribute('aria-current', String(chat.jid === state.current));
      button.append(el('span', 'name', chat.jid.slice(6)));
      if (state.typing.has(chat.jid) || unread.has(chat.jid)) button.append(el('span', 'dot'));
      if (chat.isMain || !chat.registered) button.append(el('span', 'tag', chat.isMain ? 'main' : 'off'));
      button.onclick = () => openChat(chat.jid);
      return button;
    }),
  );
}

/** Inserted in time order, or updated in place (a pending message meets its stored copy). */
function put(m) {
  let li = shown.get(m.id);
  if (!li) {
    const mine = !m.fromAssistant && m.sender === 'local-user';
    li = el('li', m.fromAssistant ? 'assistant' : mine ? 'me' : 'other');
    const who = m.fromAssistant ? m.senderName || state.assistant : m.senderName;
    const { rest, nodes } = attachments(m.text, state.current);
    const body = el('div', 'body', m.fromAssistant ? undefined : rest);
    if (m.fromAssistant) body.append(markdown(rest));
    body.append(...nodes);
    li.append(el('span', 'meta', `${who} · ${formatTime(m.timestamp)}`), body);
    li.dataset.ts = m.timestamp;
    shown.set(m.id, li);
    list.insertBefore(li, [...list.children].find((n) => n.dataset.ts > m.timestamp) ?? null);
  }
  li.classList.toggle('pending', !!m.pending);
}

/** One page of history; what it adds to a live log is announced, so bulk loads mark it busy. */
async function load(query, bulk) {
  const chat = state.current;
  list.setAttribute('aria-busy', String(bulk));
  try {
    const { messages } = await api(`${chatPath(chat)}/messages?limit=${PAGE}${query}`);
    if (chat !== state.current) return;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const fromBottom = list.scrollHeight - list.scrollTop;
    const fresh = messages.filter((m) => !shown.has(m.id));
    for (const m of messages) {
      put(m);
      if (!(m.timestamp <= newest)) newest = m.timestamp;
      if (!(m.timestamp >= oldest)) oldest = m.timestamp;
    }
    // A page back that brings nothing new is the end (a store that cannot page back, too).
    if (bulk) $('earlier').hidden = messages.length < PAGE || (query !== '' && !fresh.length);
    // Earlier messages go in above: what was on screen stays there.
    if (atBottom || bulk) list.scrollTop = atBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
  } finally {
    list.setAttribute('aria-busy', 'false');
  }
}

// 1 ms of overlap at either end; ids dedupe.
const around = (ts, ms) => encodeURIComponent(new Date(Date.parse(ts) + ms).toISOString());
const refresh = () => load(newest ? `&after=${around(newest, -1)}` : '', !newest);

async function loadChats() {
  const body = await api('/api/chats');
  state.assistant = body.assistantName || state.assistant;
  state.chats = body.chats;
  state.control = body.control;
  $('tasks-tab').hidden = $('wa-open').hidden = !body.control;
  input.placeholder = `Message ${state.assistant}`;
  list.dataset.empty = `No messages yet. Say hello to ${state.assistant}.`;
  renderChatList();
}

const num = (n) => Number(n).toLocaleString('en');
const STATUS_LINES = {
  usageToday: (rows) =>
    rows.length
      ? rows.map(
          (u) =>
            `${u.groupFolder}: ${num(u.inputTokens)} tokens in, ${num(u.outputTokens)} out, ${u.requests} requests today`,
        )
      : ['No model use today'],
  runtime: (v) => [`Sandbox: ${v}`],
  running: (v) => [`Working now: ${v.length ? v.join(', ') : 'none'}`],
  startedAt: (v) => [`Up since ${formatTime(v)}`],
};

function statusList(value, top) {
  const ul = el('ul');
  const label = (k) => k.replace(/[A-Z]/g, (c) => ' ' + c.toLowerCase());
  for (const [k, v] of Object.entries(value)) {
    if (top && STATUS_LINES[k] && v) {
      ul.append(...STATUS_LINES[k](v).map((line) => el('li', '', line)));
      continue;
    }
    const li = ul.appendChild(el('li', '', Array.isArray(value) ? '' : label(k) + ': '));
    if (Array.isArray(value) && v && typeof v === 'object')
      li.append(
        Object.entries(v)
          .map(([a, b]) => `${label(a)} ${b}`)
          .join(', '),
      );
    else li.append(v && typeof v === 'object' ? (Object.keys(v).length ? statusList(v) : 'none') : String(v));
  }
  return ul;
}

async function loadStatus() {
  const status = await api('/api/status').catch(() => ({}));
  $('status-box').hidden = !Object.keys(status).length;
  $('status').replaceChildren(statusList(status, true));
}

function renderTyping() {
  const on = state.typing.has(state.current);
  $('typing').replaceChildren(...(on ? [el('span', 'spinner'), `${state.assistant} is working…`] : []));
  $('stop').hidden = !on || !state.control;
  $('stop').disabled = false;
}

function setView(next) {
  view = next;
  for (const v of ['chat', 'tasks', 'wa']) $(`${v}-view`).hidden = v !== next;
  $('tasks-tab').setAttribute('aria-pressed', String(next === 'tasks'));
  if (next === 'tasks') void loadTasks(state.current);
  if (next === 'wa') {
    toggleDrawer(false);
    void loadWhatsApp();
  }
}

async function stop() {
  $('stop').disabled = true;
  try {
    const { stopped } = await post(chatPath(state.current) + '/stop');
    if (stopped) return; // the button goes when the typing signal does
    showError(`Nothing to stop: ${state.assistant} is not running in this chat.`);
  } catch (err) {
    reportFailure('Could not stop', err);
  }
  $('stop').disabled = false;
}

function signalTyping() {
  const chat = state.current;
  const now = Date.now();
  // At most one signal per 3 s per chat.
  if (!state.control || !input.value.trim() || now - (typingSent.get(chat) ?? -Infinity) < 3000) return;
  typingSent.set(chat, now);
  post(chatPath(chat) + '/typing').catch(() => undefined);
}

function renderNotice() {
  const name = state.current.slice(6);
  $('notice').hidden = state.registered !== false;
  $('notice').replaceChildren(
    `This chat is not registered: messages are kept but ${state.assistant} will not answer here. To register it: `,
    el('code', '', `nanoclaw groups register --jid ${state.current} --name ${name} --folder ${name}`),
  );
}

function toggleDrawer(open) {
  $('drawer').classList.toggle('open', open);
  $('menu').setAttribute('aria-expanded', String(open));
}

async function openChat(jid) {
  Object.assign(state, { current: jid, registered: null });
  shown = new Map();
  newest = oldest = undefined;
  list.replaceChildren();
  unread.delete(jid);
  if (location.hash !== '#' + jid) history.replaceState(null, '', '#' + jid);
  document.title = `${jid.slice(6)} · NanoClaw`;
  $('chat-title').textContent = jid;
  $('earlier').hidden = true;
  toggleDrawer(false);
  showError('');
  if (view !== 'chat') setView(view === 'tasks' ? 'tasks' : 'chat');
  renderChatList();
  renderTyping();
  renderNotice();
  try {
    const info = await api(chatPath(jid));
    if (jid !== state.current) return;
    state.registered = info.registered;
    renderNotice();
    renderChatList();
    await refresh();
  } catch (err) {
    reportFailure('Could not load this chat', err);
  }
  input.focus();
}

async function send() {
  const text = input.value;
  const chat = state.current;
  if (!text.trim() || $('send').disabled) return;
  $('send').disabled = true;
  try {
    const { id } = await post(chatPath(chat) + '/messages', { text });
    sent(chat, id, text);
  } catch (err) {
    reportFailure('Message not sent', err);
  } finally {
    $('send').disabled = false;
    input.focus();
  }
}

function sent(chat, id, text) {
  showError('');
  input.value = '';
  autoGrow();
  if (chat === state.current) {
    // Shown at once; the stored copy (same id) replaces it on the next refresh.
    put({
      id,
      sender: 'local-user',
      senderName: 'You',
      text,
      timestamp: new Date().toISOString(),
      pending: true,
    });
    list.scrollTop = list.scrollHeight;
  }
  refresh().catch(() => undefined);
  if (!state.chats.some((c) => c.jid === chat)) loadChats().catch(() => undefined);
}

async function onReply(event) {
  const reply = JSON.parse(event.data);
  if (reply.chat !== state.current) {
    unread.add(reply.chat);
    if (state.chats.some((c) => c.jid === reply.chat)) renderChatList();
    else loadChats().catch(() => undefined);
    return;
  }
  if (view === 'tasks') void loadTasks(state.current);
  // History unavailable: still show the text we were pushed.
  await refresh().catch(() =>
    put({ ...reply, id: `pushed-${reply.timestamp}`, senderName: reply.sender, fromAssistant: true }),
  );
  void loadStatus();
}

function connectEvents() {
  const source = new EventSource('/api/events');
  const conn = $('conn');
  source.onopen = () => {
    conn.textContent = 'live';
    conn.className = 'live';
    if (state.current) refresh().catch(() => undefined); // catch up on what we missed
  };
  source.onerror = () => {
    conn.textContent = source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…';
    conn.className = '';
  };
  source.onmessage = (event) => void onReply(event);
  source.addEventListener('typing', (event) => {
    const t = JSON.parse(event.data);
    state.typing[t.isTyping ? 'add' : 'delete'](t.chat);
    renderTyping();
    renderChatList();
  });
  source.addEventListener('whatsapp', (event) => renderWhatsApp(JSON.parse(event.data)));
}

function autoGrow() {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight + 2, 200)}px`;
}

$('composer').onsubmit = (e) => {
  e.preventDefault();
  void send();
};
input.onkeydown = (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    void send();
  }
};
input.oninput = () => {
  autoGrow();
  signalTyping();
};
$('stop').onclick = () => void stop();
setupAttach({
  chat: () => state.current,
  caption: () => input.value,
  sent: (id, text) => sent(state.current, id, text),
  failed: reportFailure,
});
$('tasks-tab').onclick = () => setView(view === 'tasks' ? 'chat' : 'tasks');
$('wa-open').onclick = () => setView('wa');
$('wa-close').onclick = () => setView('chat');
$('earlier').onclick = () =>
  load(`&before=${around(oldest, 1)}`, true).catch((err) => reportFailure('Could not load', err));
$('menu').onclick = () => toggleDrawer(!$('drawer').classList.contains('open'));
document.onkeydown = (e) => {
  if (e.key === 'Escape') toggleDrawer(false);
};
$('new-chat').onsubmit = (e) => {
  e.preventDefault();
  const name = $('new-chat-name')
    .value.trim()
    .replace(/^local:/, '');
  if (!CHAT_ID.test('local:' + name)) return showError('A chat name is 1-64 letters, digits, _ or -.');
  $('new-chat-name').value = '';
  void openChat('local:' + name);
};

let fromHash = '';
try {
  fromHash = decodeURIComponent(location.hash.slice(1));
} catch {
  // a malformed hash just opens the default chat
}
connectEvents();
loadChats()
  .catch((err) => reportFailure('Could not load chats', err))
  .finally(() => {
    const main = state.chats.find((c) => c.isMain) || state.chats[0];
    void openChat(CHAT_ID.test(fromHash) ? fromHash : main ? main.jid : 'local:main');
  });
void loadStatus();
