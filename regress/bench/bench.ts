/**
 * make bench: gotd against stock git on the same machine, in the same run,
 * reported as ratios. Each part of gotd adds a section (a module exporting
 * a Section) to SECTIONS below. `node bench.js [section...] [--runs N]`.
 */
import type { Section } from './lib';
import { daemonSection } from './daemon';
import { pushSection } from './push';
import { uploadPackSection } from './upload_pack';
import { wsSection } from './ws';

const SECTIONS: Section[] = [uploadPackSection, pushSection, daemonSection, wsSection];

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let runs = 5;
  const pick: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') runs = Number(argv[++i]);
    else pick.push(argv[i]!);
  }
  for (const s of SECTIONS) {
    if (pick.length && !pick.includes(s.name)) continue;
    console.log(`\n== ${s.name} ==`);
    await s.run({ runs });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
