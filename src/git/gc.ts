/**
 * Inflated objects are short-lived external buffers, and V8 lets external
 * memory grow by tens of megabytes before it collects. A walk through a big
 * history inflates hundreds of megabytes in total, so the object store asks
 * for a (cheap, young-generation) collection every so often to keep the
 * resident size flat. Null when the runtime will not hand out gc().
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

type Gc = (opts?: { type?: 'minor' | 'major' }) => void;

function obtain(): Gc | null {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Gc) : null;
  } catch {
    return null;
  }
}

const gc = obtain();

/** Bytes of short-lived buffers allocated between collections. */
const EVERY = 16 << 20;
let allocated = 0;

/** Records `bytes` of garbage-to-be; collects the young generation when enough has piled up. */
export function noteAllocation(bytes: number): void {
  allocated += bytes;
  if (allocated >= EVERY) {
    allocated = 0;
    gc?.({ type: 'minor' });
  }
}
