import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Repository files the deployment tests read (never fixtures: those stay in shared/). */
export const repoFile = (relative: string): string =>
  fileURLToPath(new URL(`../../${relative}`, import.meta.url));

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  keyword: string;
  /** Everything after the keyword, continuation lines joined with a space. */
  args: string;
}

export interface Stage {
  /** The image reference after FROM. */
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/**
 * A deliberately small Dockerfile reader (the Dockerfile reference: comment lines start with `#`,
 * a trailing backslash continues the instruction), enough to test what Dockerfile.tdx says. It does
 * not expand ARGs, so a FROM that hides its image behind an ARG shows up as unpinned: on purpose.
 */
export const parseDockerfile = (text: string): Stage[] => {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    if (pending !== '' && line.trimStart().startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + line.trim()).trim();
    pending = '';
    const space = full.search(/\s/);
    instructions.push({
      keyword: (space < 0 ? full : full.slice(0, space)).toUpperCase(),
      args: space < 0 ? '' : full.slice(space + 1).trim(),
    });
  }
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [from = '', as, name] = instruction.args.split(/\s+/);
      stages.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      const stage = stages[stages.length - 1];
      if (stage === undefined) throw new Error(`${instruction.keyword} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
};

export const readDockerfile = (): Stage[] =>
  parseDockerfile(readFileSync(repoFile('Dockerfile.tdx'), 'utf8'));

/** `COPY [--flag=value ...] src... dest` split into its flags, sources and destination. */
export const parseCopy = (
  args: string,
): { flags: Record<string, string>; sources: string[]; dest: string } => {
  const words = args.split(/\s+/);
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith('--')) {
    const [key = '', value = ''] = (words.shift() as string).slice(2).split('=');
    flags[key] = value;
  }
  const dest = words.pop();
  if (dest === undefined || words.length === 0)
    throw new Error(`COPY without source or destination: ${args}`);
  return { flags, sources: words, dest };
};

/** Exec-form (JSON array) arguments of ENTRYPOINT, CMD or HEALTHCHECK ... CMD. */
export const execForm = (args: string): string[] => {
  const start = args.indexOf('[');
  if (start < 0) throw new Error(`not in exec form: ${args}`);
  return JSON.parse(args.slice(start)) as string[];
};
