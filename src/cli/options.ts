import { InvalidArgumentError } from 'commander';

/** Commander parser for a flag that takes one of a fixed set of values. */
export function oneOf<T extends string>(values: readonly T[]) {
  return (value: string): T => {
    if (!(values as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`expected one of ${values.join(', ')}`);
    }
    return value as T;
  };
}

/** Collect a repeatable flag; each use may also hold a comma-separated list. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')];
}

/** Repeatable flag kept whole (filters carry their own commas). */
export function repeat(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
