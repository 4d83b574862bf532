/** A command: the program and the arguments before the client's own. */
export type Command = readonly [string, readonly string[]];
/** How one package manager installs the tarballs into a fresh project. */
export interface Client {
  name: 'npm' | 'pnpm' | 'yarn';
  /** Tried in order; the first that answers `--version` is used. */
  commands: readonly Command[];
  /** How package.json names a tarball, from the project. */
  spec: (tarball: string, project: string) => string;
  /** The install command's arguments, for the version that answered. */
  install: (version: string) => string[];
  /** The fields of package.json that send every one of our packages to its tarball. */
  fields: (dependencies: Record<string, string>) => Record<string, unknown>;
  /** The client's own files in the project. */
  setup: (dependencies: Record<string, string>, version: string) => Record<string, string>;
}
/** Where the @almora scope's registry points in the test project: nothing listens there. */
export const CLOSED_REGISTRY: string;
/** The yarn run where none is installed: yarn classic from the npm registry, through npx. */
export const YARN_CLASSIC: string;
/** Whether `version` is yarn classic (1.x) rather than yarn berry. */
export function isYarnClassic(version: string): boolean;
/** npm, pnpm (run as `pnpm`) and yarn (installed, else yarn classic through npx). */
export function clients(pnpm: Command): Client[];
/** The files of `client`'s fresh project in `project` for `packages`: package.json, .npmrc, the client's own. */
export function projectFiles(client: Client, version: string, packages: readonly { name: string; tarball: string }[], project: string): Record<string, string>;
/**
 * The first of `client`'s commands that answers `--version` in `cwd`: the command, its version, and why
 * the ones before it did not answer ('' when the first did); or, with no command, why none did.
 */
export function findCommand(client: Client, cwd: string): { command: Command | undefined; version: string; why: string };
