import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MAX_FILE_BYTES, safeFileName } from '../../contract/ipc.js';
import { inToAgent, MEDIA_DIR, publishMedia } from '../../ipc/to-agent.js';
import { UnsafeEntryError, withSafeDir } from '../../safe-fs.js';
import { chatOf, type Ctx, decode, fail, ingest } from './api.js';

/** `filesDir`: what agents sent; `tmpDir`: host-private. */
export type LocalFilesDeps = Record<'ipcDir' | 'filesDir' | 'tmpDir', string> & {
  folderOf(jid: string): string | undefined;
};

const X = 'application/vnd.openxmlformats-officedocument.';
const TYPES = new Map(
  `png:image/png jpg:image/jpeg gif:image/gif webp:image/webp pdf:application/pdf txt:text/plain csv:text/csv
  json:application/json zip:application/zip docx:${X}wordprocessingml.document xlsx:${X}spreadsheetml.sheet`
    .split(/\s+/)
    .map((e) => e.split(':') as [string, string]),
);
const typeOf = (name: string) => TYPES.get(path.extname(name).slice(1).toLowerCase().replace('jpeg', 'jpg'));
const tooLarge = () => fail(413, `file is too large (limit ${MAX_FILE_BYTES >> 20} MiB)`);

/** Raw body; `X-File-Name` and `X-Caption` percent-encoded. */
export async function postFile({ req, res, deps, files, params }: Ctx) {
  const jid = chatOf(params[0]);
  const folder = files.folderOf(jid);
  if (!folder) fail(409, `${jid} is not registered`);
  const type = req.headers['content-type']?.split(';')[0]!.trim().toLowerCase();
  const ext = [...TYPES].find(([, t]) => t === type)?.[0];
  if (!ext) fail(415, `file type not allowed: ${type}`);
  if (Number(req.headers['content-length']) > MAX_FILE_BYTES) tooLarge();
  const header = (h: string) => decode(String(req.headers[h] ?? ''), h);
  let name = safeFileName(header('x-file-name'), `upload.${ext}`);
  if (typeOf(name) !== type) name += `.${ext}`;
  const tmp = path.join(files.tmpDir, `upload-${crypto.randomUUID()}`);
  await fs.promises.mkdir(files.tmpDir, { recursive: true, mode: 0o700 });
  try {
    let size = 0;
    const cap = async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        if ((size += chunk.length) > MAX_FILE_BYTES) tooLarge();
        yield chunk;
      }
    };
    await pipeline(req, cap, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    if (!size) fail(400, 'the file is empty');
    name = publishMedia(files, folder, tmp, name);
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
  const ref = `[${type!.startsWith('image/') ? 'image' : 'document'}: /workspace/inbox/${MEDIA_DIR}/${name}]`;
  const caption = header('x-caption').trim();
  res.statusCode = 201;
  return { id: ingest(deps, jid, { text: caption ? `${caption}\n${ref}` : ref }), name };
}

export function getFile({ res, files, params }: Ctx, folder: string | undefined, sent: boolean) {
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
  if (!body) fail(404, 'no such file');
  const type = typeOf(name) ?? 'application/octet-stream';
  res
    .writeHead(200, {
      'Content-Type': type,
      'Content-Length': body.length,
      // Never rendered as a page of this origin.
      'Content-Disposition': `${type.startsWith('image/') ? 'inline' : 'attachment'}; filename="${name}"`,
      'Content-Security-Policy': "default-src 'none'; sandbox",
      'X-Content-Type-Options': 'nosniff',
    })
    .end(body);
}
