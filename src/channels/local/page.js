'use strict';
(() => {
  const CHAT_ID = /^local:[A-Za-z0-9_-]{1,64}$/;
  const $ = (id) => document.getElementById(id);
  const state = {
    assistant: 'Assistant',
    chats: [],
    current: null,
    registered: null,
    messages: new Map(), // id -> message, for the current chat
    lastServerTs: undefined,
    typing: new Set(),
    unread: new Set(),
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text; // never innerHTML: messages are untrusted
    return node;
  }

  async function api(path, init) {
    const res = await fetch(path, Object.assign({ credentials: 'same-origin' }, init));
    let body = {};
    try {
      body = await res.json();
    } catch {
      // leave body empty; the status says enough
    }
    if (!res.ok) {
      const err = new Error(body.error || 'HTTP ' + res.status);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  const chatPath = (jid) => '/api/chats/' + encodeURIComponent(jid);

  function showError(text) {
    $('error').textContent = text;
    $('error').hidden = !text;
  }

  function reportFailure(what, err) {
    if (err.status === 401) {
      showError('Not signed in: open the link printed by `nanoclaw start` (it ends in ?token=…).');
    } else {
      showError(what + ': ' + err.message);
    }
  }

  function formatTime(iso) {
    const d = new Date(iso);
    const sameDay = d.toDateString() === new Date().toDateString();
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return sameDay ? time : d.toLocaleDateString() + ' ' + time;
  }

  function renderChatList() {
    const list = $('chat-list');
    const known = state.chats.slice();
    if (state.current && !known.some((c) => c.jid === state.current)) {
      known.push({
        jid: state.current,
        name: state.current.slice(6),
        registered: state.registered === true,
      });
    }
    list.replaceChildren(
      ...known.map((chat) => {
        const button = el('button');
        button.type = 'button';
        button.dataset.jid = chat.jid;
        button.setAttribute('aria-current', String(chat.jid === state.current));
        button.append(el('span', 'name', chat.jid.slice(6)));
        if (state.typing.has(chat.jid) || state.unread.has(chat.jid)) button.append(el('span', 'dot'));
        if (chat.isMain) button.append(el('span', 'tag', 'main'));
        else if (!chat.registered) button.append(el('span', 'tag', 'off'));
        button.title = chat.registered ? chat.jid : chat.jid + ' (not registered)';
        button.addEventListener('click', () => openChat(chat.jid));
        return button;
      }),
    );
  }

  function renderMessages() {
    const box = $('messages');
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const sorted = [...state.messages.values()].sort((a, b) =>
      a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0,
    );
    if (sorted.length === 0) {
      box.replaceChildren(el('li', 'empty', 'No messages yet. Say hello to ' + state.assistant + '.'));
      return;
    }
    box.replaceChildren(
      ...sorted.map((m) => {
        const mine = !m.fromAssistant && m.sender === 'local-user';
        const li = el('li', m.fromAssistant ? 'assistant' : mine ? 'me' : 'other');
        if (m.pending) li.classList.add('pending');
        li.dataset.id = m.id;
        const who = m.fromAssistant ? m.senderName || state.assistant : m.senderName;
        li.append(el('span', 'meta', who + ' · ' + formatTime(m.timestamp)), el('div', 'body', m.text));
        return li;
      }),
    );
    if (nearBottom) box.scrollTop = box.scrollHeight;
  }

  function renderTyping() {
    const on = state.current !== null && state.typing.has(state.current);
    $('typing-text').textContent = state.assistant + ' is working…';
    $('typing').hidden = !on;
  }

  function renderNotice() {
    const notice = $('notice');
    if (state.registered !== false) return void (notice.hidden = true);
    const name = state.current.slice(6);
    notice.replaceChildren(
      document.createTextNode(
        'This chat is not registered: messages are kept as a known chat but ' +
          state.assistant +
          ' will not answer here. To register it: ',
      ),
      el(
        'code',
        '',
        'nanoclaw groups register --jid ' + state.current + ' --name ' + name + ' --folder ' + name,
      ),
    );
    notice.hidden = false;
  }

  function merge(messages) {
    for (const m of messages) {
      state.messages.set(m.id, m);
      if (!state.lastServerTs || m.timestamp > state.lastServerTs) state.lastServerTs = m.timestamp;
    }
  }

  /** Pulls what is new since the newest message we have (1 ms of overlap; ids dedupe). */
  async function refresh() {
    const chat = state.current;
    const after = state.lastServerTs
      ? '?after=' + encodeURIComponent(new Date(Date.parse(state.lastServerTs) - 1).toISOString())
      : '';
    const body = await api(chatPath(chat) + '/messages' + after);
    if (chat !== state.current) return;
    merge(body.messages);
    renderMessages();
  }

  async function loadChats() {
    const body = await api('/api/chats');
    state.assistant = body.assistantName || state.assistant;
    state.chats = body.chats;
    $('text').placeholder = 'Message ' + state.assistant + ' — Enter to send, Shift+Enter for a new line';
    renderChatList();
  }

  async function loadStatus() {
    try {
      const status = await api('/api/status');
      const empty = !status || (typeof status === 'object' && Object.keys(status).length === 0);
      $('status-box').hidden = empty;
      if (!empty) $('status').textContent = JSON.stringify(status, null, 2);
    } catch {
      $('status-box').hidden = true;
    }
  }

  async function openChat(jid) {
    state.current = jid;
    state.messages = new Map();
    state.lastServerTs = undefined;
    state.registered = null;
    state.unread.delete(jid);
    if (location.hash !== '#' + jid) history.replaceState(null, '', '#' + jid);
    document.title = jid.slice(6) + ' · NanoClaw';
    $('chat-title').textContent = jid;
    showError('');
    renderChatList();
    renderMessages();
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
    $('text').focus();
  }

  async function send() {
    const box = $('text');
    const text = box.value;
    if (text.trim() === '' || $('send').disabled) return;
    const chat = state.current;
    $('send').disabled = true;
    try {
      const { id } = await api(chatPath(chat) + '/messages', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ text }),
      });
      showError('');
      box.value = '';
      autoGrow();
      if (chat === state.current) {
        // Shown at once; the stored copy (same id) replaces it on the next refresh.
        const pending = {
          id,
          sender: 'local-user',
          senderName: 'You',
          text,
          timestamp: new Date().toISOString(),
        };
        state.messages.set(id, Object.assign(pending, { fromAssistant: false, pending: true }));
        renderMessages();
        $('messages').scrollTop = $('messages').scrollHeight;
      }
      refresh().catch(() => undefined);
      if (!state.chats.some((c) => c.jid === chat)) loadChats().catch(() => undefined);
    } catch (err) {
      reportFailure('Message not sent', err);
    } finally {
      $('send').disabled = false;
      box.focus();
    }
  }

  async function onReply(event) {
    const reply = JSON.parse(event.data);
    if (reply.chat !== state.current) {
      state.unread.add(reply.chat);
      if (state.chats.some((c) => c.jid === reply.chat)) renderChatList();
      else loadChats().catch(() => undefined);
      return;
    }
    try {
      await refresh();
    } catch {
      // history unavailable: still show the text we were pushed
    }
    const shown = [...state.messages.values()].some((m) => m.fromAssistant && m.text === reply.text);
    if (!shown) {
      state.messages.set('pushed-' + reply.timestamp, {
        id: 'pushed-' + reply.timestamp,
        sender: reply.sender,
        senderName: reply.sender,
        text: reply.text,
        timestamp: reply.timestamp,
        fromAssistant: true,
      });
      renderMessages();
    }
    loadStatus();
  }

  function connectEvents() {
    const source = new EventSource('/api/events');
    source.addEventListener('open', () => {
      $('conn').textContent = 'live';
      $('conn').className = 'live';
      if (state.current) refresh().catch(() => undefined); // catch up on what we missed
    });
    source.addEventListener('error', () => {
      $('conn').textContent = source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…';
      $('conn').className = '';
    });
    source.addEventListener('message', (event) => void onReply(event));
    source.addEventListener('typing', (event) => {
      const t = JSON.parse(event.data);
      if (t.isTyping) state.typing.add(t.chat);
      else state.typing.delete(t.chat);
      renderTyping();
      renderChatList();
    });
  }

  function autoGrow() {
    const box = $('text');
    box.style.height = 'auto';
    box.style.height = Math.min(box.scrollHeight + 2, 200) + 'px';
  }

  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    void send();
  });
  $('text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      void send();
    }
  });
  $('text').addEventListener('input', autoGrow);
  $('new-chat').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('new-chat-name')
      .value.trim()
      .replace(/^local:/, '');
    if (!CHAT_ID.test('local:' + name)) {
      showError('A chat name is 1-64 letters, digits, _ or -.');
      return;
    }
    $('new-chat-name').value = '';
    void openChat('local:' + name);
  });

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
  loadStatus();
})();
