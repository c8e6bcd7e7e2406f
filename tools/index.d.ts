// `fleetcache/tools`: the functions behind the `fleetcache` command.
import type { Options } from '../index'
import type { DoctorCheck, BuildEntry, InspectedEntry, Heartbeat, Receipt, ReceiptInstance } from '../binding'

export type { InspectedEntry, Heartbeat } from '../binding'

/** What `seed` did. */
export interface SeedReport {
  buildId: string
  /** Entries found in the build output. */
  total: number
  /** Written by this run. */
  written: number
  /** Already in the store (a second run, another deploy job, or re-rendered by the fleet). */
  existing: number
  failed: { path: string; key: string; message: string }[]
  /** Manifest routes not seeded, with why (rendered at request time, fallback shells). */
  skipped: { path: string; why: string }[]
  /** `dryRun`: nothing was written; these entries would have been. */
  dryRun?: true
  wouldWrite?: { path: string; key: string; objectKey: string; kind: string; bytes: number }[]
}

/**
 * Puts the prerendered output of `distDir` (default `.next`) into the shared store under the keys
 * Next asks for at run time; conditional writes make it idempotent and safe to run concurrently.
 * `progress(done, written)` replaces the progress bar (false: silent).
 */
export function seed(
  distDir?: string,
  options?: Options,
  tool?: { concurrency?: number; progress?: false | ((done: number, written: number) => void); dryRun?: boolean },
): Promise<SeedReport>

/**
 * Deletes the entries of every registered build but the `keep` that ran (started or were seeded)
 * last, then their markers; never a build a live instance serves (`serving`).
 */
export function prune(
  args: { keep: number; dryRun?: boolean; progress?: false },
  options?: Options,
): Promise<{ kept: BuildEntry[]; pruned: { buildId: string; createdAt: number; lastActiveAt: number; objects: number }[]; serving: string[] }>

/** Checks credentials, bucket, table and every permission the cache needs; never rejects for AWS errors. */
export function doctor(options?: Options): Promise<DoctorCheck[]>

/** What the store holds for a URL path (the build's page/route entries) or a cache key, decoded. */
export function inspect(
  what: string,
  options?: Options,
  tool?: { buildId?: string },
): Promise<{ buildId: string; entries: InspectedEntry[] }>

/** The live fleet from the instances' heartbeats (`fleetcache status`). */
export function status(options?: Options): Promise<{
  instances: Heartbeat[]
  /** The newest feed sequence number handed out. */
  head: number
  now: number
  builds: { buildId: string; instances: number }[]
  /** Revalidations, feed events and uploads waiting in every instance's outbox. */
  outboxDepth: number
}>

/** Revalidates tags and pages across the fleet (`fleetcache revalidate`); with `wait`, the receipt. */
export function revalidate(
  args: { tags?: string[]; paths?: string[]; max?: boolean; wait?: boolean; timeoutMs?: number; onApplied?: (instance: ReceiptInstance) => void },
  options?: Options,
): Promise<Receipt | void>
