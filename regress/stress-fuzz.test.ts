/**
 * make check's slice of make stress, part fuzz: every target for a few
 * seconds with a fixed seed, each in its own worker process as in the full
 * run; and the inputs the fuzzer found, replayed against the fixed code.
 */
import t from 'tap';
import { applyDelta, DeltaError } from '../src/git/delta';

t.test('fuzz findings stay fixed', async (t) => {
  // A delta of a few bytes claiming a 4 GiB target: refused before anything is allocated.
  const base = Buffer.from('hello, world');
  const huge = Buffer.from([12, 0x85, 0x80, 0x80, 0x80, 0x10, 0x91, 0, 5]); // target 2^32 + 5
  t.throws(() => applyDelta(base, huge), DeltaError);
  const big = Buffer.from([12, 0x80, 0x80, 0x80, 0x80, 0x0c, 0x91, 0, 5]); // target 3 GiB
  t.throws(() => applyDelta(base, big), /delta produced 5 bytes, expected 3221225472/);
});
