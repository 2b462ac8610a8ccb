export const $ = (id) => document.getElementById(id);

/** Children are nodes or text, never HTML: messages are untrusted. */
export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

export const button = (text, onclick, className) =>
  Object.assign(el('button', className, text), { type: 'button', onclick });

export async function api(path, init) {
  const res = await fetch(path, init);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.error || `HTTP ${res.status}`), { status: res.status });
  return body;
}

export const post = (path, body) =>
  api(path, {
    method: 'POST',
    ...(body && { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }),
  });

export const chatPath = (jid) => '/api/chats/' + encodeURIComponent(jid);

export function formatTime(iso) {
  const d = new Date(iso);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

export function showIn(node, text) {
  node.textContent = text;
  node.hidden = !text;
}
