import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { MAX_FILE_BYTES, safeFileName } from '../../contract/ipc.js';
import { inToAgent, MEDIA_DIR, publishMedia } from '../../ipc/to-agent.js';
import { UnsafeEntryError, withSafeDir } from '../../safe-fs.js';
import type { ChannelCallbacks } from '../../types.js';
import { ingest, parseChat } from './api.js';
import { HttpError, sendJson } from './http-io.js';

export interface LocalFilesDeps {
  ipcDir: string;
  /** Host-owned data/files/: what agents sent. */
  filesDir: string;
  /** Host-private, for uploads in progress. */
  tmpDir: string;
  folderOf(jid: string): string | undefined;
}

const OOXML = 'application/vnd.openxmlformats-officedocument.';
export const FILE_TYPES = new Map([
  ['image/png', 'png'],
  ['image/jpeg', 'jpg'],
  ['image/gif', 'gif'],
  ['image/webp', 'webp'],
  ['application/pdf', 'pdf'],
  ['text/plain', 'txt'],
  ['text/csv', 'csv'],
  ['application/json', 'json'],
  ['application/zip', 'zip'],
  [`${OOXML}wordprocessingml.document`, 'docx'],
  [`${OOXML}spreadsheetml.sheet`, 'xlsx'],
]);
const typeOf = (name: string) =>
  [...FILE_TYPES].find(
    ([, ext]) => ext === path.extname(name).slice(1).toLowerCase().replace('jpeg', 'jpg'),
  )?.[0];

/** Raw body, `Content-Type` from the allow list, `X-File-Name` and an optional `X-Caption` (percent-encoded). */
export async function postFile(
  files: LocalFilesDeps,
  callbacks: ChannelCallbacks,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  jid: string,
): Promise<void> {
  const folder = files.folderOf(jid);
  if (!folder) throw new HttpError(409, `chat ${jid} is not registered; send a message first`);
  const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase() ?? '';
  const ext = FILE_TYPES.get(type);
  if (!ext) throw new HttpError(415, `file type not allowed: ${type || 'none'}`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_FILE_BYTES) throw tooLarge();
  const decode = (header: string) => {
    try {
      return decodeURIComponent(String(req.headers[header] ?? ''));
    } catch {
      throw new HttpError(400, `${header} is not valid percent-encoding`);
    }
  };
  let name = safeFileName(decode('x-file-name'), `upload.${ext}`);
  if (typeOf(name) !== type) name = `${name}.${ext}`;
  await fs.promises.mkdir(files.tmpDir, { recursive: true, mode: 0o700 });
  const tmp = path.join(files.tmpDir, `upload-${crypto.randomBytes(6).toString('hex')}`);
  try {
    let size = 0;
    const cap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        done(size > MAX_FILE_BYTES ? tooLarge() : null, chunk);
      },
    });
    await pipeline(req, cap, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    if (!size) throw new HttpError(400, 'the file is empty');
    name = publishMedia(files, folder, tmp, name);
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
  const kind = type.startsWith('image/') ? 'image' : 'document';
  const caption = decode('x-caption').trim();
  const reference = `[${kind}: /workspace/inbox/${MEDIA_DIR}/${name}]`;
  const id = ingest(callbacks, jid, caption ? `${caption}\n${reference}` : reference);
  sendJson(res, 201, { id, name });
}

const tooLarge = () => new HttpError(413, `file is too large (limit ${MAX_FILE_BYTES >> 20} MiB)`);

/** `/api/files/<folder>/<name>`: a file an agent sent; `/api/media/<chat>/<name>`: one uploaded. */
export function getFile(
  files: LocalFilesDeps,
  res: http.ServerResponse,
  source: string,
  owner: string,
  raw: string,
) {
  const folder = source === 'files' ? owner : files.folderOf(parseChat(owner));
  const name = raw;
  if (!folder || !/^[A-Za-z0-9_-]{1,64}$/.test(folder) || safeFileName(name) !== name)
    throw new HttpError(404, 'no such file');
  let body: Buffer | undefined;
  try {
    body =
      source === 'files'
        ? withSafeDir(files.filesDir, [folder], {}, (dir) => dir.readFile(name, MAX_FILE_BYTES))
        : inToAgent(files, folder, [MEDIA_DIR], (dir) => dir.readFile(name, 50 * 1024 * 1024));
  } catch (err) {
    if (!(err instanceof UnsafeEntryError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!body) throw new HttpError(404, 'no such file');
  const type = typeOf(name) ?? 'application/octet-stream';
  res.writeHead(200, {
    'Content-Type': type,
    'Content-Length': body.length,
    // Never rendered as a page of this origin: images inline, everything else a download.
    'Content-Disposition': `${type.startsWith('image/') ? 'inline' : 'attachment'}; filename="${name}"`,
    'Content-Security-Policy': "default-src 'none'; sandbox",
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'private, max-age=3600',
  });
  res.end(body);
}
