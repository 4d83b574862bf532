import type { BrowserContext, Page } from 'playwright-core';

/** Debian's chromium (`apt-get install chromium`). */
export const CHROMIUM: string;
/** The flags every almora run of Chromium uses. */
export const CHROMIUM_FLAGS: readonly string[];
/** Whether Chromium is installed where the launcher looks. */
export function chromiumInstalled(): boolean;
/** Headless Chromium with a fresh profile; `close` also removes the profile. */
export function launchChromium(extraFlags?: readonly string[]): Promise<{ context: BrowserContext; close: () => Promise<void> }>;
/** What the page of {@link servePage} is served with. */
export interface PageOptions {
  /** The COOP/COEP headers that make the page cross-origin isolated (SharedArrayBuffer). */
  isolated?: boolean;
  /** An import map declared before the module script: it answers the specifiers the bundle leaves to the browser. */
  importMap?: { imports: Readonly<Record<string, string>> };
}
/**
 * Bundles `entry` for the browser and serves it as the module script of a blank page on 127.0.0.1;
 * with `isolated`, with the COOP/COEP headers that make it cross-origin isolated (SharedArrayBuffer).
 */
export function servePage(entry: string, options?: PageOptions): Promise<{ url: string; close: () => Promise<void> }>;
/**
 * Serves `entry`, opens it in a fresh headless Chromium collecting console and page errors into
 * `errors`, and waits until the global function `ready` exists; `close` shuts browser and server.
 */
export function openEntry(entry: string, options?: PageOptions & { ready?: string }): Promise<{ tab: Page; errors: string[]; close: () => Promise<void> }>;
