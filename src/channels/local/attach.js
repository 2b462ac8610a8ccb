import { $, chatPath, el } from '/dom.js';

const IMAGE = /\.(png|jpe?g|gif|webp)$/i;
const SENT = /^\[file: ([A-Za-z0-9_-]+)\/([A-Za-z0-9][A-Za-z0-9._-]*)\]$/;
const UPLOADED =
  /^\[(?:image|document): \/workspace\/inbox\/media\/([A-Za-z0-9][A-Za-z0-9._-]*)(?: \(.*\))?\]$/;

/** Attachment lines become images or download links; the rest stays text. */
export function attachments(text, chat) {
  const nodes = [];
  const rest = text
    .split('\n')
    .filter((line) => {
      const sent = SENT.exec(line);
      const uploaded = UPLOADED.exec(line);
      if (!sent && !uploaded) return true;
      const name = sent ? sent[2] : uploaded[1];
      const url = sent ? `/api/files/${sent[1]}/${name}` : `/api/media/${encodeURIComponent(chat)}/${name}`;
      if (IMAGE.test(name)) {
        const img = el('img', 'attachment');
        img.src = url;
        img.alt = name;
        const link = el('a', 'attachment-image');
        link.href = url;
        link.target = '_blank';
        link.append(img);
        nodes.push(link);
      } else {
        const link = el('a', 'attachment-file', `↓ ${name.replace(/^\d+-[0-9a-f]{8}-/, '')}`);
        link.href = url;
        link.download = name;
        nodes.push(link);
      }
      return false;
    })
    .join('\n')
    .trim();
  return { rest, nodes };
}

/** The attach button and drag-and-drop onto the chat; `sent(id, text)` shows the message. */
export function setupAttach({ chat, caption, sent, failed }) {
  const picker = $('file');
  async function upload(file) {
    const res = await fetch(`${chatPath(chat())}/files`, {
      method: 'POST',
      headers: {
        'Content-Type': file.type || 'application/octet-stream',
        'X-File-Name': encodeURIComponent(file.name),
        'X-Caption': encodeURIComponent(caption()),
      },
      body: file,
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    const kind = file.type.startsWith('image/') ? 'image' : 'document';
    sent(body.id, `${caption().trim()}\n[${kind}: /workspace/inbox/media/${body.name}]`.trim());
  }
  const uploadAll = async (list) => {
    try {
      for (const file of list) await upload(file);
    } catch (err) {
      failed('File not sent', err);
    }
  };
  $('attach').onclick = () => picker.click();
  picker.onchange = () => void uploadAll([...picker.files]).finally(() => (picker.value = ''));
  const view = $('chat-view');
  view.ondragover = (e) => {
    e.preventDefault();
    view.classList.add('dropping');
  };
  view.ondragleave = () => view.classList.remove('dropping');
  view.ondrop = (e) => {
    e.preventDefault();
    view.classList.remove('dropping');
    void uploadAll([...e.dataTransfer.files]);
  };
}
