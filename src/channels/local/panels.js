import { $, api, button, chatPath, el, formatTime, post, showIn } from '/dom.js';

const UNITS = [
  ['d', 864e5],
  ['h', 36e5],
  ['min', 6e4],
  ['s', 1e3],
];
const when = (iso) => (Number.isNaN(Date.parse(iso)) ? iso : formatTime(iso));

function schedule({ scheduleType: type, scheduleValue: value }) {
  if (type === 'once') return `once, ${when(value)}`;
  if (type !== 'interval') return `cron ${value}`;
  const [unit, size] = UNITS.find(([, size]) => Number(value) >= size) ?? UNITS[3];
  return `every ${+(Number(value) / size).toFixed(1)} ${unit}`;
}

/** A destructive button asks for a second click. */
function twoStep(label, confirm, action, className = 'danger') {
  const b = button(
    label,
    () => {
      if (b.dataset.armed) return action();
      b.dataset.armed = '1';
      b.textContent = confirm;
    },
    className,
  );
  return b;
}

let tasksChat;
export async function loadTasks(jid) {
  tasksChat = jid;
  try {
    const { tasks } = await api(chatPath(jid) + '/tasks');
    if (jid !== tasksChat) return;
    showIn($('tasks-error'), '');
    const none = el('p', 'muted', 'No scheduled tasks in this chat. Ask the assistant to schedule one.');
    $('task-list').replaceChildren(...(tasks.length ? tasks.map((t) => task(t, jid)) : [none]));
  } catch (err) {
    showIn($('tasks-error'), `Could not load tasks: ${err.message}`);
  }
}

function task(t, jid) {
  const act = (action) =>
    post(`${chatPath(jid)}/tasks/${encodeURIComponent(t.id)}`, { action }).then(
      () => loadTasks(jid),
      (err) => showIn($('tasks-error'), `Could not ${action} the task: ${err.message}`),
    );
  const card = el('article', 'task');
  card.dataset.id = t.id;
  const head = card.appendChild(el('div', 'task-head'));
  head.append(el('span', `tag ${t.status}`, t.status), el('span', 'schedule', schedule(t)));
  if (t.status === 'active') head.append(button('Pause', () => act('pause')));
  if (t.status === 'paused') head.append(button('Resume', () => act('resume')));
  if (t.status !== 'completed') head.append(twoStep('Cancel', 'Really cancel?', () => act('cancel')));
  const facts = el('dl');
  facts.append(el('dt', '', 'Next run'), el('dd', '', t.nextRun ? when(t.nextRun) : '—'));
  facts.append(el('dt', '', 'Last result'), el('dd', '', t.lastResult ?? '—'));
  const runs = el('ol', 'runs');
  for (const r of t.runs) {
    const li = runs.appendChild(el('li', r.status));
    li.append(el('span', 'meta', `${when(r.runAt)} · ${(r.durationMs / 1000).toFixed(1)} s · ${r.status}`));
    if (r.result) li.append(el('div', 'result', r.result));
  }
  card.append(el('p', 'prompt', t.prompt), facts, el('h3', '', t.runs.length ? 'Runs' : 'No runs yet'), runs);
  return card;
}

const STATUS = {
  unlinked: 'not linked',
  linking: 'linking…',
  linked: 'linked',
  'cannot-reach': 'cannot reach WhatsApp, retrying',
  'logged-out': 'logged out: link again',
};
const STEPS = 'On your phone open WhatsApp → Settings → Linked devices → Link a device';

export function renderWhatsApp(wa) {
  const { status } = wa;
  const number = wa.selfJid?.split(/[:@]/)[0];
  $('wa-open').textContent = `WhatsApp: ${STATUS[status] ?? status}`;
  $('wa-status').textContent =
    status === 'linked' && number ? `Linked as +${number}` : `Status: ${STATUS[status] ?? status}`;
  showIn($('wa-error'), wa.error ?? '');
  const code = [];
  // An <img> cannot run script, whatever the SVG holds; CSP allows data: images only.
  if (status === 'linking' && wa.qrSvg) {
    const img = el('img', 'qr');
    img.alt = 'QR code that links WhatsApp';
    img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(wa.qrSvg);
    code.push(img, el('p', '', `${STEPS}, and scan this code.`));
  } else if (status === 'linking' && wa.pairingCode)
    code.push(
      el('p', 'pairing', wa.pairingCode),
      el('p', '', `${STEPS} → Link with phone number instead, and enter this code.`),
    );
  $('wa-code').replaceChildren(...code);
  $('wa-link').hidden = status !== 'unlinked' && status !== 'logged-out';
  const unlink =
    status === 'linking'
      ? button('Cancel linking', unlinkNow)
      : twoStep('Unlink', 'Really unlink? (logs out)', unlinkNow);
  $('wa-unlink').replaceChildren(...($('wa-link').hidden ? [unlink] : []));
  $('wa-groups-box').hidden = status !== 'linked';
  const none = el('li', 'muted', 'No groups yet: they appear once WhatsApp has synced.');
  $('wa-groups').replaceChildren(...(wa.groups.length ? wa.groups.map(group) : [none]));
}

function group(g) {
  const li = el('li');
  li.append(el('span', 'name', g.name));
  li.append(g.registered ? el('span', 'tag', 'registered') : button('Register', () => register(g)));
  return li;
}

const failed = (what) => (err) => showIn($('wa-error'), `${what}: ${err.message}`);
export const loadWhatsApp = () => api('/api/whatsapp').then(renderWhatsApp, failed('Could not load'));

function register(g) {
  post(`/api/whatsapp/groups/${encodeURIComponent(g.jid)}/register`).then(
    (r) => {
      showIn($('wa-note'), `Registered “${g.name}” (folder ${r.folder}).`);
      return loadWhatsApp();
    },
    failed(`Could not register ${g.name}`),
  );
}

function unlinkNow() {
  showIn($('wa-note'), '');
  post('/api/whatsapp/unlink').then(renderWhatsApp, failed('Could not unlink'));
}

$('wa-link').onsubmit = (e) => {
  e.preventDefault();
  const phone = $('wa-phone').value.trim();
  showIn($('wa-note'), '');
  post('/api/whatsapp/link', phone ? { phone } : {}).then(renderWhatsApp, failed('Could not start linking'));
};
