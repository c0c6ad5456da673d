import { UsageError } from './usage.js';

/** Edit distance (insertions, deletions, substitutions) between two short strings. */
const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((row[j - 1] ?? 0) + 1, (previous[j] ?? 0) + 1, (previous[j - 1] ?? 0) + cost));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
};

/** The known flag closest to `given`, when it is close enough to be the one meant. */
export const closestFlag = (given: string, known: readonly string[]): string | undefined => {
  const name = given.replace(/^-+/, '').split('=')[0] ?? '';
  let best: { flag: string; d: number } | undefined;
  for (const flag of known) {
    const d = distance(name, flag);
    if (best === undefined || d < best.d) best = { flag, d };
  }
  // A typo or two (or a missing word part), not any flag at all.
  const limit = Math.max(2, Math.floor(name.length / 3));
  return best !== undefined && best.d <= limit ? `--${best.flag}` : undefined;
};

/**
 * A command-line error as the user should read it: `node:util` parseArgs errors (whose text quotes
 * the argument unevenly and names no alternative) become one UsageError naming the argument and,
 * for an unknown flag, the flag probably meant. Anything else is returned unchanged.
 */
export const explainParseError = (error: unknown, known: readonly string[]): unknown => {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : '';
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? '';
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = quoted.split(' ')[0] ?? quoted;
    const meant = closestFlag(option, known);
    return new UsageError(
      `unknown option ${option}${meant === undefined ? '' : `; did you mean ${meant}?`} (--help lists them)`,
    );
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const option = quoted.split(' ')[0] ?? quoted;
    return new UsageError(
      message.includes('argument missing')
        ? `${option} needs a value`
        : `${option} takes no value (it is a switch)`,
    );
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return new UsageError(`unexpected argument "${quoted}" (--help shows the usage)`);
  }
  return error;
};
