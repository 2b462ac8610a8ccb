import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MAX_FILE_BYTES, safeFileName } from '../../contract/ipc.js';
import { inToAgent, MEDIA_DIR, publishMedia } from '../../ipc/to-agent.js';
import { UnsafeEntryError, withSafeDir } from '../../safe-fs.js';
import { ingest, parseChat } from './api.js';
import { decode, HttpError, sendJson } from './http-io.js';
import type { Ctx } from './local-channel.js';

export interface LocalFilesDeps {
  ipcDir: string;
  /** Host-owned data/files/: what agents sent. */
  filesDir: string;
  /** Host-private, for uploads in progress. */
  tmpDir: string;
  folderOf(jid: string): string | undefined;
}

const OOXML = 'application/vnd.openxmlformats-officedocument.';
const TYPES = new Map([
  ['png', 'image/png'],
  ['jpg', 'image/jpeg'],
  ['gif', 'image/gif'],
  ['webp', 'image/webp'],
  ['pdf', 'application/pdf'],
  ['txt', 'text/plain'],
  ['csv', 'text/csv'],
  ['json', 'application/json'],
  ['zip', 'application/zip'],
  ['docx', `${OOXML}wordprocessingml.document`],
  ['xlsx', `${OOXML}spreadsheetml.sheet`],
]);
const typeOf = (name: string) => TYPES.get(path.extname(name).slice(1).toLowerCase().replace('jpeg', 'jpg'));
const tooLarge = () => new HttpError(413, `file is too large (limit ${MAX_FILE_BYTES >> 20} MiB)`);

/** Raw body, `Content-Type` from the allow list, `X-File-Name` and an optional `X-Caption` (percent-encoded). */
export async function postFile({ req, res, deps, files, params }: Ctx): Promise<void> {
  const jid = parseChat(params[0]);
  const folder = files.folderOf(jid);
  if (!folder) throw new HttpError(409, `chat ${jid} is not registered; send a message first`);
  const type = req.headers['content-type']?.split(';')[0]!.trim().toLowerCase() ?? '';
  const ext = [...TYPES].find(([, t]) => t === type)?.[0];
  if (!ext) throw new HttpError(415, `file type not allowed: ${type || 'none'}`);
  if (Number(req.headers['content-length']) > MAX_FILE_BYTES) throw tooLarge();
  const header = (h: string) => decode(String(req.headers[h] ?? ''), h);
  const caption = header('x-caption').trim();
  let name = safeFileName(header('x-file-name'), `upload.${ext}`);
  if (typeOf(name) !== type) name += `.${ext}`;
  await fs.promises.mkdir(files.tmpDir, { recursive: true, mode: 0o700 });
  const tmp = path.join(files.tmpDir, `upload-${crypto.randomUUID()}`);
  try {
    let size = 0;
    const cap = async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        if ((size += chunk.length) > MAX_FILE_BYTES) throw tooLarge();
        yield chunk;
      }
    };
    await pipeline(req, cap, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    if (!size) throw new HttpError(400, 'the file is empty');
    name = publishMedia(files, folder, tmp, name);
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
  const ref = `[${type.startsWith('image/') ? 'image' : 'document'}: /workspace/inbox/${MEDIA_DIR}/${name}]`;
  sendJson(res, 201, { id: ingest(deps.callbacks, jid, caption ? `${caption}\n${ref}` : ref), name });
}

/** A file an agent sent (`sent`) or one uploaded. */
export function getFile({ res, files, params }: Ctx, folder: string | undefined, sent: boolean): void {
  const name = params[1];
  let body: Buffer | undefined;
  if (folder && /^[\w-]{1,64}$/.test(folder) && safeFileName(name) === name)
    try {
      body = sent
        ? withSafeDir(files.filesDir, [folder], {}, (dir) => dir.readFile(name, MAX_FILE_BYTES))
        : inToAgent(files, folder, [MEDIA_DIR], (dir) => dir.readFile(name, 50 << 20));
    } catch (err) {
      if (!(err instanceof UnsafeEntryError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  if (!body) throw new HttpError(404, 'no such file');
  const type = typeOf(name) ?? 'application/octet-stream';
  res
    .writeHead(200, {
      'Content-Type': type,
      'Content-Length': body.length,
      // Never rendered as a page of this origin: images inline, everything else a download.
      'Content-Disposition': `${type.startsWith('image/') ? 'inline' : 'attachment'}; filename="${name}"`,
      'Content-Security-Policy': "default-src 'none'; sandbox",
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'private, max-age=3600',
    })
    .end(body);
}
