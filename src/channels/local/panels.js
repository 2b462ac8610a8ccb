import { $, api, button, chatPath, el, formatTime, post, showIn } from '/dom.js';

const UNITS = [
  ['d', 864e5],
  ['h', 36e5],
  ['min', 6e4],
  ['s', 1e3],
];

function schedule({ scheduleType: type, scheduleValue: value }) {
  if (type !== 'interval') return type === 'once' ? `once, ${formatTime(value)}` : `cron ${value}`;
  const [unit, size] = UNITS.find(([, size]) => value >= size) ?? UNITS[3];
  return `every ${+(value / size).toFixed(1)} ${unit}`;
}

/** A destructive button asks for a second click. */
function twoStep(label, confirm, action) {
  const b = button(label, () => (b.textContent === confirm ? action() : (b.textContent = confirm)), 'danger');
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
  const head = el('div', 'row', el('span', `tag ${t.status}`, t.status), el('span', 'schedule', schedule(t)));
  if (t.status === 'active') head.append(button('Pause', () => act('pause')));
  if (t.status === 'paused') head.append(button('Resume', () => act('resume')));
  if (t.status !== 'completed') head.append(twoStep('Cancel', 'Really cancel?', () => act('cancel')));
  const runs = t.runs.map((r) => {
    const meta = `${formatTime(r.runAt)} · ${(r.durationMs / 1000).toFixed(1)} s · ${r.status}`;
    return el('li', r.status, el('span', 'meta', meta), ...(r.result ? [el('div', 'result', r.result)] : []));
  });
  const facts = [
    ['Next run', t.nextRun ? formatTime(t.nextRun) : '—'],
    ['Last result', t.lastResult ?? '—'],
  ];
  const card = el(
    'article',
    'task',
    head,
    el('p', 'prompt', t.prompt),
    el('dl', '', ...facts.flatMap(([k, v]) => [el('dt', '', k), el('dd', '', v)])),
    el('h3', '', runs.length ? 'Runs' : 'No runs yet'),
    el('ol', 'runs', ...runs),
  );
  card.dataset.id = t.id;
  return card;
}

const STATUS = {
  unlinked: 'not linked',
  linking: 'linking…',
  'cannot-reach': 'cannot reach WhatsApp, retrying',
  'logged-out': 'logged out: link again',
};
const STEPS = 'On your phone open WhatsApp → Settings → Linked devices → Link a device';

export function renderWhatsApp(wa) {
  const { status } = wa;
  const said = STATUS[status] ?? status;
  const number = wa.selfJid?.split(/[:@]/)[0];
  $('wa-open').textContent = `WhatsApp: ${said}`;
  $('wa-status').textContent = status === 'linked' && number ? `Linked as +${number}` : `Status: ${said}`;
  showIn($('wa-error'), wa.error ?? '');
  const code = [];
  // An <img> cannot run script, whatever the SVG holds; the CSP allows data: images only.
  if (status === 'linking' && wa.qrSvg) {
    const src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(wa.qrSvg);
    code.push(Object.assign(el('img', 'qr'), { src, alt: 'QR code that links WhatsApp' }));
    code.push(el('p', '', `${STEPS}, and scan this code.`));
  } else if (status === 'linking' && wa.pairingCode)
    code.push(
      el('p', 'pairing', wa.pairingCode),
      el('p', '', `${STEPS} → Link with phone number instead, and enter this code.`),
    );
  $('wa-code').replaceChildren(...code);
  const linkable = status === 'unlinked' || status === 'logged-out';
  $('wa-link').hidden = !linkable;
  const unlinker =
    status === 'linking'
      ? button('Cancel linking', unlink)
      : twoStep('Unlink', 'Really unlink? (logs out)', unlink);
  $('wa-unlink').replaceChildren(...(linkable ? [] : [unlinker]));
  $('wa-groups-box').hidden = status !== 'linked';
  const none = el('li', 'muted', 'No groups yet: they appear once WhatsApp has synced.');
  $('wa-groups').replaceChildren(...(wa.groups.length ? wa.groups.map(group) : [none]));
}

const group = (g) =>
  el(
    'li',
    'row',
    el('span', 'name', g.name),
    g.registered ? el('span', 'tag', 'registered') : button('Register', () => register(g)),
  );

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

function unlink() {
  showIn($('wa-note'), '');
  post('/api/whatsapp/unlink').then(renderWhatsApp, failed('Could not unlink'));
}

$('wa-link').onsubmit = (e) => {
  e.preventDefault();
  showIn($('wa-note'), '');
  const phone = $('wa-phone').value.trim() || undefined;
  post('/api/whatsapp/link', { phone }).then(renderWhatsApp, failed('Could not start linking'));
};
