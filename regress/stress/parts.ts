/** The parts of make stress, in the order they run. Each part lives in its own module. */
import type { Row, StressOptions } from './table';

export interface Part {
  name: Row['part'];
  run(opts: StressOptions): Promise<Row[]>;
}

import { FAULTS } from './faults';
import { LOAD } from './load';

export const PARTS: Part[] = [LOAD, FAULTS];
