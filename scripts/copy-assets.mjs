// tsc copies no HTML: put the page files next to their compiled modules.
import fs from 'node:fs';
import path from 'node:path';
import { root } from './prepare.mjs';

function copy(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) copy(full);
    else if (/\.(html|css|js|md)$/.test(entry.name)) {
      const target = path.join(root, 'dist', path.relative(path.join(root, 'src'), full));
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(full, target);
    }
  }
}
copy(path.join(root, 'src'));
