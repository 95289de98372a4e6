/** The parts of make stress, in the order they run. Each part lives in its own module. */
import type { Row, StressOptions } from './table';
import { exhaustPart } from './exhaust';
import { FAULTS } from './faults';
import { fuzzPart } from './fuzz';
import { LOAD } from './load';

export interface Part {
  name: Row['part'];
  run(opts: StressOptions): Promise<Row[]>;
}

export const PARTS: Part[] = [
  fuzzPart,
  exhaustPart,
  LOAD,
  FAULTS,
];
